"""Service load: ``facever serve`` (SQLite, auth disabled) in its own process, driven over HTTP with
``POST /v1/verify`` on real LFW pairs at concurrency 1, 8 and 32 for a fixed time each (smoke: 1 and 4).

The client is an asyncio loop with httpx: exactly ``concurrency`` requests in flight (each worker
sends its next request when the previous one is answered), image bytes loaded beforehand, every
request to 127.0.0.1 only, and the whole run bounded in time and in count. Reported per level:
requests/s, latency p50/p95/p99 (client side, request sent to response read), errors (any answer
but 200, or no answer) and the server's resident memory (VmRSS) after the level; the memory at start
and the peak (VmHWM) are reported too. The client shares the machine with the server.

Pairs that the service answers with something else than 200 before the timed levels (e.g. 422
no_face: the service has no centre-crop fallback) are left out of the timed requests and counted.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import common
import httpx
import numpy as np

from facever.live_server import LiveServer
from facever.training.evaluation.lfw import LFW, Pair

MAX_REQUESTS_PER_LEVEL = 100_000
STARTUP_TIMEOUT_S = 180


def choose_pairs(data: Path, n: int) -> list[tuple[Pair, bytes, bytes]]:
    """n LFW pairs, half matched and half mismatched, the same every run, with their image bytes."""
    lfw = LFW(data)
    pairs = lfw.pairs()
    rng = np.random.default_rng(0)
    chosen = []
    for same in (True, False):
        group = [p for p in pairs if p.same == same]
        chosen += [group[i] for i in sorted(rng.choice(len(group), size=n // 2, replace=False))]
    return [(p, lfw.path(p.first).read_bytes(), lfw.path(p.second).read_bytes()) for p in chosen]


def start_server(model_dir: Path, workdir: Path, cpus: str | None = None) -> LiveServer:
    """``facever serve`` with ``model_dir`` on a free port, a temporary SQLite database, auth disabled;
    on the cores ``cpus`` (taskset) when given."""
    return LiveServer(workdir, startup_timeout_s=STARTUP_TIMEOUT_S, cpus=cpus, model=str(model_dir))


def parse_cpus(spec: str) -> set[int]:
    """``taskset -c`` syntax: "0-3,8" -> {0, 1, 2, 3, 8}."""
    cores: set[int] = set()
    for part in spec.split(","):
        first, _, last = part.partition("-")
        cores.update(range(int(first), int(last or first) + 1))
    return cores


async def verify(client: httpx.AsyncClient, first: bytes, second: bytes) -> tuple[float, int | str]:
    files = {"image1": ("1.jpg", first, "image/jpeg"), "image2": ("2.jpg", second, "image/jpeg")}
    start = time.perf_counter()
    try:
        response = await client.post("/v1/verify", files=files)
        status: int | str = response.status_code
        if status == 200 and "verified" not in response.json():
            status = "bad body"
    except httpx.HTTPError as error:
        status = type(error).__name__
    return time.perf_counter() - start, status


async def client_level(url: str, pairs: list, concurrency: int, duration: float, start_at: float) -> dict:
    """One client's share of a level: ``concurrency`` workers, each sending its next pair as soon as its
    last one is answered, from wall-clock time ``start_at`` for ``duration`` seconds."""
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    cursor = iter(range(MAX_REQUESTS_PER_LEVEL))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=120) as client:
        await asyncio.sleep(max(0.0, start_at - time.time()))
        started = time.perf_counter()
        deadline = started + duration

        async def worker() -> None:
            for i in cursor:
                if time.perf_counter() >= deadline:
                    return
                _, first, second = pairs[i % len(pairs)]
                seconds, status = await verify(client, first, second)
                statuses[str(status)] = statuses.get(str(status), 0) + 1
                if status == 200:
                    latencies.append(seconds)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {"latencies": latencies, "statuses": statuses, "elapsed": elapsed}


def _client_process(url: str, pairs: list, concurrency: int, duration: float, start_at: float) -> dict:
    return asyncio.run(client_level(url, pairs, concurrency, duration, start_at))


def level(url: str, pairs: list, concurrency: int, duration: float, clients: int = 1) -> dict:
    """``concurrency`` requests in flight, shared by ``clients`` client processes (one Python client
    tops out at a few hundred requests/s, below what a large server answers)."""
    clients = max(1, min(clients, concurrency))
    shares = [concurrency // clients + (i < concurrency % clients) for i in range(clients)]
    start_at = time.time() + (2.0 if clients > 1 else 0.0)  # every process connected before the start
    if clients == 1:
        parts = [_client_process(url, pairs, concurrency, duration, start_at)]
    else:
        with ProcessPoolExecutor(clients) as pool:
            futures = [pool.submit(_client_process, url, pairs, n, duration, start_at) for n in shares]
            parts = [future.result() for future in futures]
    latencies = [seconds for part in parts for seconds in part["latencies"]]
    statuses: dict[str, int] = {}
    for part in parts:
        for status, count in part["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    elapsed = max(part["elapsed"] for part in parts)
    requests = sum(statuses.values())
    return {
        "concurrency": concurrency,
        "clients": clients,
        "duration_s": elapsed,
        "requests": requests,
        "ok": len(latencies),
        "errors": requests - len(latencies),
        "statuses": statuses,
        "requests_per_s": len(latencies) / elapsed,
        "latency": common.latency_stats(latencies),
    }


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) used so far by process ``pid`` and every process below it (uvicorn's
    workers), from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        times[child] = (int(fields[11]) + int(fields[12])) / tick
    family = {pid}
    grown = True
    while grown:
        grown = False
        for child, parent in parents.items():
            if parent in family and child not in family:
                family.add(child)
                grown = True
    return sum(times.get(member, 0.0) for member in family)


async def screen(url: str, pairs: list) -> tuple[list, list]:
    """Send every pair once (also the warm-up); keep those answered 200."""
    kept, dropped = [], []
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for pair in pairs:
            _, status = await verify(client, pair[1], pair[2])
            (kept if status == 200 else dropped).append((pair, status))
    dropped = [{"first": p[0].first, "second": p[0].second, "status": status} for p, status in dropped]
    return [p for p, _ in kept], dropped


def table(levels: list[dict], rss_start: int) -> str:
    fmt = common.fmt
    rows = [
        [
            r["concurrency"],
            fmt(r["requests_per_s"]),
            fmt(r["latency"].get("median_ms")),
            fmt(r["latency"].get("p95_ms")),
            fmt(r["latency"].get("p99_ms")),
            f"{r['ok']:,}",
            r["errors"],
            f"{rss_start / 2**20:,.0f} → {r['rss_after_bytes'] / 2**20:,.0f}",
        ]
        for r in levels
    ]
    headers = ["concurrency", "requests/s", "p50 ms", "p95 ms", "p99 ms", "answered", "errors"]
    return common.markdown_table([*headers, "server RSS MiB, start → after"], rows)


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "load")
    parser.add_argument("--duration", type=float, help="seconds per level (default 30; smoke 0.3)")
    parser.add_argument("--levels", help="comma-separated concurrency levels (default 1,8,32; smoke 1,4)")
    parser.add_argument("--pairs", type=int, help="LFW pairs cycled through (default 200; smoke 4)")
    parser.add_argument("--clients", type=int, default=1, help="client processes sharing each level")
    parser.add_argument(
        "--cpus",
        help="the server's cores, as taskset -c takes them (e.g. 0-3); the client runs on the others",
    )
    args = parser.parse_args()
    run = common.Run("load", args)
    duration = args.duration or (0.3 if args.smoke else 30.0)
    levels_wanted = [int(c) for c in (args.levels or ("1,4" if args.smoke else "1,8,32")).split(",")]
    pairs = choose_pairs(args.data, args.pairs or (4 if args.smoke else 200))

    model = common.model_info(args.model)
    if args.cpus:
        others = set(os.sched_getaffinity(0)) - parse_cpus(args.cpus)
        if others:  # the client keeps off the server's cores where there are others
            os.sched_setaffinity(0, others)
    with (
        tempfile.TemporaryDirectory() as workdir,
        start_server(args.model, Path(workdir), args.cpus) as server,
    ):
        info = httpx.get(f"{server.url}/v1/info", timeout=10).json()
        if os.environ.get("FACEVER_DEVICE") == "cuda" and info["providers"][0] != "CUDAExecutionProvider":
            raise SystemExit(f"FACEVER_DEVICE=cuda but the service runs on {info['providers']}")
        served = (info["model"]["name"], info["model"]["version"])
        if served != (model["name"], model["version"]):
            raise SystemExit(f"the service runs {served}, not the model of {args.model}")
        rss_start = server.memory_kib() * 1024
        pairs, dropped = asyncio.run(screen(server.url, pairs))
        if not pairs:
            raise SystemExit(f"the service answered no pair with 200: {dropped[:3]}\n{server.log_tail()}")
        levels = []
        for concurrency in levels_wanted:
            result = level(server.url, pairs, concurrency, duration, args.clients)
            result["rss_after_bytes"] = server.memory_kib() * 1024
            levels.append(result)
            print(f"load: concurrency {concurrency}: {result['requests_per_s']:.1f} requests/s", flush=True)
        rss_peak = server.memory_kib("VmHWM") * 1024

    config = {
        "model": model,
        "duration_s_per_level": duration,
        "levels": levels_wanted,
        "pairs": len(pairs) + len(dropped),
        "pairs_dropped": dropped,
        "clients": args.clients,
        "server": {
            "command": "facever serve, SQLite, FACEVER_AUTH=disabled",
            "cpus": args.cpus or f"all {len(os.sched_getaffinity(0))}",
            "providers": info.get("providers"),
            "stage_providers": info.get("stage_providers"),
            "detection_ms": info.get("detection_ms"),
            "workers": info.get("workers"),
            "inference_workers": info.get("inference_workers"),
            "ort_threads": info.get("ort_threads"),
            "batch_window_ms": info.get("batch_window_ms"),
            "threshold": info.get("threshold"),
            "env": {k: v for k, v in os.environ.items() if k.startswith("FACEVER_")},
        },
    }
    results = {"levels": levels, "rss_start_bytes": rss_start, "rss_peak_bytes": rss_peak}
    stages = info.get("stage_providers") or {}
    cpus = (
        f"server on CPUs {args.cpus}"
        if args.cpus
        else f"{len(os.sched_getaffinity(0))} CPUs, server and client"
    )
    title = (
        f"POST /v1/verify under load ({cpus}; {info.get('workers')} processes × "
        f"{info.get('inference_workers')} inference workers × {info.get('ort_threads')} onnxruntime threads; "
        f"detection on {stages.get('detection', '?')}, embedding on {stages.get('embedding', '?')}, "
        f"batch window {info.get('batch_window_ms')} ms, detection batch window "
        f"{info.get('detection_batch_window_ms', 0.0)} ms)"
    )
    run.finish(config, results, {title: table(levels, rss_start)})


if __name__ == "__main__":
    main()
