"""Rewrite the result tables in BENCHMARKS.md from the JSON results (bench/results/<name>.json).

Each result goes between the markers ``<!-- bench:<name>:start -->`` and ``<!-- bench:<name>:end -->``,
headed by one line saying when, where and at which commit it ran. Results that are missing are left
as they are; smoke results are refused unless ``--allow-smoke`` (their numbers mean nothing).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import common

SECTIONS = (
    "accuracy",
    "speed",
    "speed-float",
    "load",
    "ab-2core",
    "ab-2core-now",
    "ab-2core-default",
    "ab-batched-detection",
    "ab-together",
    "overload",
    "overload-wait600",
    "overload-workers-2",
    "overload-workers-2-budget-64mib",
    "gallery",
    "gallery-backends",
    "devices-gpu",
    "devices-cpu",
    "load-gpu",
    "load-gpu-machine-cpu",
    "load-gpu-machine-cpu-2",
    "load-gpu-machine-cpu-16",
    "load-gpu-batching-thread",
    "load-gpu-batching",
    "load-gpu-detect-cuda-batched",
    "gpu-torch",
    "quality",
    "alignment",
    "framing",
    "views",
    "equalise",
    "mirror_landmarks",
    "model_choice",
    "reframe",
    "stages",
    "pnet_fill",
    "pyramid",
    "proxies-pnet-fill",
    "proxies-lfw-folds-1-4",
    "resampling-pillow",
    "resampling-opencv-equalisation",
    "resampling",
    "parts",
    "ab-issue16",
    "db_contention",
    "db_contention-before",
    "proxies",
    "proxies-no-relight",
    "dark_chips",
    "stages-pause",
    "stages-dlib",
    "speed-before-fifth-sitting",
    "speed-sixth-start",
    "stages-seventh",
    "stages-seventh-dlib",
    "speed-seventh-run0",
    "gap",
    "speed-eighth-run1",
    "speed-ninth-run0",
    "stages-ninth",
    "stages-ninth-dlib",
    "accuracy-ninth",
    "proxies-ninth",
    "jitter",
)


def provenance(payload: dict) -> str:
    m = payload["machine"]
    commit = (m.get("git_commit") or "unknown")[:10]
    commit += " + uncommitted changes" if m.get("git_dirty") else ""
    gpu = f", GPU {'; '.join(m['gpu'])}" if m.get("gpu") else ""
    return (
        f"*{payload['mode'].capitalize()} run of {m['date']} at commit {commit}: {m['cpu']}, "
        f"{m['usable_cpus']} of {m['logical_cpus']} CPUs usable{gpu}, {m['memory_gib']} GiB; "
        f"Python {m['python']}, numpy {m['numpy']}, onnxruntime {m['onnxruntime']} "
        f"({', '.join(m['onnxruntime_providers'])}), dlib {m.get('dlib') or 'not installed'}; "
        f"load average {m['load_average'][0]} at start, {m.get('load_average_end', ['?'])[0]} at the end; "
        f"took {payload['duration_s']} s. From `{payload['source']}`.*"
    )


def render(payload: dict) -> str:
    parts = [provenance(payload)]
    for title, table in payload["tables"].items():
        parts += [f"**{title}**", table]
    return "\n\n".join(parts)


def replace_section(text: str, name: str, body: str) -> str:
    start, end = (re.escape(f"<!-- bench:{name}:{edge} -->") for edge in ("start", "end"))
    pattern = re.compile(rf"({start}\n).*?(\n{end})", re.S)
    if not pattern.search(text):
        raise SystemExit(f"no markers for '{name}' in the document")
    return pattern.sub(lambda match: match.group(1) + body + match.group(2), text, count=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=common.DEFAULT_OUT, help="folder of the JSON results")
    parser.add_argument("--doc", type=Path, default=common.REPO / "BENCHMARKS.md", help="document to update")
    parser.add_argument("--allow-smoke", action="store_true", help="accept smoke results (tests only)")
    args = parser.parse_args()

    text = args.doc.read_text()
    for name in SECTIONS:
        path = args.results / f"{name}.json"
        if not path.exists():
            print(f"report: {name}: no {path}, section left as it is")
            continue
        payload = json.loads(path.read_text())
        if payload["mode"] != "full" and not args.allow_smoke:
            print(f"report: {name}: {path} is a {payload['mode']} run, section left as it is")
            continue
        resolved = path.resolve()
        source = resolved.relative_to(common.REPO) if resolved.is_relative_to(common.REPO) else path
        text = replace_section(text, name, render({**payload, "source": source}))
        print(f"report: {name}: updated from {path}")
    args.doc.write_text(text)


if __name__ == "__main__":
    main()
