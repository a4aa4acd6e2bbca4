"""What every benchmark script shares: command-line options, the machine it ran on, latency
statistics, Markdown tables and the JSON result file.

Only the standard library and numpy are imported at module level, so that a worker process can pin
itself to one core and set its thread counts before onnxruntime or dlib load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "model" / "default"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "lfw"
DEFAULT_OUT = REPO / "bench" / "results"
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def parser(description: str, name: str) -> argparse.ArgumentParser:
    """Options every script takes; ``name`` is the default result name (``<out>/<name>.json``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--smoke", action="store_true", help="a few seconds of work: checks that it runs")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the JSON result")
    parser.add_argument("--name", default=name, help="result file name, without .json")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="facever model folder")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="LFW folder (images/, pairs.txt)")
    return parser


# -- the machine ---------------------------------------------------------------------------------


def machine_info() -> dict:
    """CPU, memory, versions, git commit, date and load: what a reader needs to judge a number."""
    import onnxruntime

    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "memory_gib": round(_meminfo_kib("MemTotal") / 2**20, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "gpu": _gpus(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "onnxruntime": onnxruntime.__version__,
        "onnxruntime_providers": onnxruntime.get_available_providers(),
        "dlib": _version("dlib-bin") or _version("dlib"),
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": (_git("status", "--porcelain", "--untracked-files=no") or "").splitlines(),
        "thread_env": {name: os.environ[name] for name in THREAD_ENV if name in os.environ},
    }


def model_info(model_dir: Path) -> dict:
    from facever.model.card import ModelCard

    card = ModelCard.load(model_dir)
    return {
        "dir": str(model_dir),
        "name": card.name,
        "version": card.version,
        "created": card.created,
        "input_size": card.input.size,
        "input_channels": card.input.channels,
        "embedding_size": card.embedding_size,
        "threshold": card.threshold,
        "identify_threshold": card.identify_threshold,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _meminfo_kib(field: str) -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def _gpus() -> list[str]:
    if not shutil.which("nvidia-smi"):
        return []
    result = subprocess.run(
        ["nvidia-smi", "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    return [line.strip() for line in result.stdout.splitlines() if line.strip()]


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def rss_bytes(pid: int | str = "self", field: str = "VmRSS") -> int:
    """Resident memory of a process (Linux /proc): VmRSS now, or VmHWM, the peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


# -- numbers -------------------------------------------------------------------------------------


def latency_stats(seconds: Sequence[float]) -> dict:
    """Median, p95, p99, mean and extremes of durations in seconds, reported in milliseconds."""
    ms = np.asarray(seconds, np.float64) * 1000
    if not len(ms):
        return {"n": 0}
    return {
        "n": int(len(ms)),
        "median_ms": float(np.median(ms)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
    }


def fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# -- the result file -----------------------------------------------------------------------------


def cached_per_key(file: Path, paths: dict[str, Path], compute: Callable[[Path], object], desc: str) -> dict:
    """``compute(path)`` for every key of ``paths``, kept in one .npz at ``file`` (a pickled dict by key),
    so that a rerun computes only the keys it has not seen."""
    from tqdm import tqdm  # not at module level: see the module's docstring

    stored: dict = {}
    if file.exists():
        with np.load(file, allow_pickle=True) as data:
            stored = data["records"].item()
    missing = sorted(set(paths) - set(stored))
    for key in tqdm(missing, desc=desc, unit="img"):
        stored[key] = compute(paths[key])
    if missing:
        file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(file, records=np.array(stored, dtype=object))
    return {key: stored[key] for key in paths}


class Run:
    """One benchmark run: the machine at the start, then the results, tables and timings at the end."""

    def __init__(self, benchmark: str, args: argparse.Namespace):
        self.benchmark = benchmark
        self.args = args
        self.machine = machine_info()
        self.started = time.perf_counter()

    @property
    def mode(self) -> str:
        return "smoke" if self.args.smoke else "full"

    def finish(self, config: dict, results: dict, tables: dict[str, str]) -> Path:
        """Print the tables and write ``<out>/<name>.json``; returns its path."""
        self.machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
        payload = {
            "benchmark": self.benchmark,
            "mode": self.mode,
            "duration_s": round(time.perf_counter() - self.started, 1),
            "machine": self.machine,
            "config": config,
            "results": results,
            "tables": tables,
        }
        path = Path(self.args.out) / f"{self.args.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=2, default=jsonable) + "\n")
        for title, table in tables.items():
            print(f"\n{title}\n\n{table}")
        print(f"\n{self.mode} run of {self.benchmark}: {payload['duration_s']} s; wrote {path}")
        return path


def jsonable(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
