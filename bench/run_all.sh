#!/usr/bin/env bash
# The full benchmark sitting on this machine: accuracy, speed, load, gallery (in that order, one
# after the other), then the tables of BENCHMARKS.md rewritten from bench/results/*.json.
#
#   bench/run_all.sh                    # the shipped model (model/default)
#   bench/run_all.sh --model runs/x/model
#
# Run it on a quiet machine: nothing else busy, or the times mean little. Arguments are passed to
# every script; PYTHON picks the interpreter (default .venv/bin/python, from `make test` or
# `pip install -e '.[bench]'`). About 10 minutes when the embeddings are cached (.cache/); the first
# run on a fresh machine also builds dlib's descriptors of all 13,233 LFW images (14 to 45 min on 2 cores).
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
