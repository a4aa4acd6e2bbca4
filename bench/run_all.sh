#!/usr/bin/env bash
# The full benchmark sitting on this machine: accuracy, speed, load, gallery (in that order, one
# after the other), then the tables of BENCHMARKS.md rewritten from bench/results/*.json.
#
#   bench/run_all.sh                    # the shipped model (model/default)
#   bench/run_all.sh --model runs/x/model
#
# Run it on a quiet machine: nothing else busy, or the times mean little. Arguments are passed to
# every script; PYTHON picks the interpreter (default .venv/bin/python, from `make test` or
# `pip install -e '.[bench]'`). About 15 minutes when the embeddings are cached (.cache/); the first
# run on a fresh machine also embeds LFW's 7,701 pair photos and CFP's 6,961 photos with every shipped
# model (~7 min each) and with dlib (~15 + ~12 min on 2 cores, cached once).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}

read -r load _ < /proc/loadavg
echo "run_all: load average $load on $(nproc) CPUs at $(date -u +%FT%TZ)"
if awk -v avg="$load" 'BEGIN { exit !(avg > 0.5) }'; then
  echo "run_all: WARNING: the machine is busy (load average $load); the timings will show it" >&2
fi

for script in accuracy speed load gallery; do
  echo "run_all: ===== bench/$script.py $* ====="
  "$PYTHON" "bench/$script.py" "$@"
done
"$PYTHON" bench/report.py
echo "run_all: done; results in bench/results/, tables in BENCHMARKS.md"
