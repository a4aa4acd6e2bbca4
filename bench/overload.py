"""Overload: one client holding idle connections, and many maximum-size uploads at once, against
``facever serve`` (SQLite, auth disabled) in its own process; each sitting with the limits off (the
service before issue 18) and on.

Idle connections: a "hog" at 127.0.0.1 keeps 256 connections open without sending a byte, reopening
each as soon as the server closes it (its header timeout; after a refusal, --hog-retry s later), while
another client at 127.0.0.2 sends ``GET /v1/info`` on a fresh connection every 0.3 s for 30 s.
Reported: the share of the other client's requests answered 200, refusals by code, its latency, and
what the hog got.

Large uploads: 100 concurrent ``POST /v1/verify``, each with two different 9.9 MB JPEGs made from
LFW photos (upscaled to 3600 px with noise, in memory, never stored). Reported: the answers by
status and code, the wall time, and the service's memory: the sum over all its processes (uvicorn's
supervisor and each worker, FACEVER_WORKERS) of VmHWM (each process's peak; their sum bounds the
peak of the total from above) and of VmRSS sampled every 50 ms (the peak seen) and after.

Limits off: FACEVER_MAX_CONNECTIONS_PER_CLIENT=0 and FACEVER_UPLOAD_BUDGET_BYTES=0 (the service before
issue 18); on: the defaults, or what FACEVER_* variables in the environment set (the server inherits
them; e.g. FACEVER_UPLOAD_WAIT_TIMEOUT).
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import common
import httpx
import numpy as np

from facever.live_server import HOST, LiveServer

OTHER = "127.0.0.2"  # the other client's address (Linux answers the whole of 127.0.0.0/8)
STARTUP_TIMEOUT_S = 180
UPLOAD_SIDE = 3600  # pixels: 13 MP, under FACEVER_MAX_IMAGE_PIXELS
UPLOAD_PEOPLE = ("George_W_Bush", "Colin_Powell")
LIMITS_OFF = {"max_connections_per_client": "0", "upload_budget_bytes": "0"}  # the service before issue 18


# -- idle connections ------------------------------------------------------------------------------


async def hog_connection(port: int, until: float, retry: float, tally: Counter) -> None:
    """One idle connection from 127.0.0.1, reopened whenever the server closes it, until ``until``."""
    loop = asyncio.get_running_loop()
    while (left := until - loop.time()) > 0:
        try:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=("127.0.0.1", 0))
        except OSError:
            tally["connect_errors"] += 1
            await asyncio.sleep(retry)
            continue
        tally["opened"] += 1
        try:
            first = await asyncio.wait_for(reader.read(65536), left)
        except (TimeoutError, OSError):
            first = b"held"
        finally:
            writer.close()
        if first.startswith(b"HTTP/1.1 503"):
            tally["refused"] += 1
            await asyncio.sleep(retry)
        elif not first:
            tally["closed_by_server"] += 1


async def other_client(port: int, until: float, interval: float) -> list[tuple[float, str]]:
    """GET /v1/info from OTHER on a fresh connection every ``interval`` s: (seconds, outcome) each."""
    loop = asyncio.get_running_loop()
    outcomes = []
    request = f"GET /v1/info HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode()
    while loop.time() < until:
        start = loop.time()
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, port, local_addr=(OTHER, 0)), 10
            )
            writer.write(request)
            response = await asyncio.wait_for(reader.read(), 10)
            writer.close()
            outcome = _outcome(response)
        except (TimeoutError, OSError) as error:
            outcome = type(error).__name__
        outcomes.append((loop.time() - start, outcome))
        await asyncio.sleep(max(0.0, interval - (loop.time() - start)))
    return outcomes


def _outcome(response: bytes) -> str:
    """ "200", "503 too_many_connections", ... or "no answer"."""
    if not response:
        return "no answer"
    head, _, body = response.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1].decode()
    if status == "200":
        return status
    try:
        return f"{status} {json.loads(body)['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return status


async def idle_sitting(port: int, connections: int, duration: float, retry: float) -> dict:
    loop = asyncio.get_running_loop()
    until = loop.time() + duration
    tally: Counter = Counter()
    hogs = [asyncio.create_task(hog_connection(port, until, retry, tally)) for _ in range(connections)]
    await asyncio.sleep(min(1.0, duration / 10))  # the hog is in place first
    outcomes = await other_client(port, until, interval=0.3)
    await asyncio.gather(*hogs)
    answered = [seconds for seconds, outcome in outcomes if outcome == "200"]
    return {
        "requests": len(outcomes),
        "answered": len(answered),
        "answered_share": len(answered) / len(outcomes) if outcomes else None,
        "outcomes": dict(Counter(outcome for _, outcome in outcomes)),
        "latency": common.latency_stats([seconds for seconds, _ in outcomes]),
        "hog": dict(tally),
    }


# -- large uploads ---------------------------------------------------------------------------------


def large_jpeg(photo: Path, target_bytes: int, side: int) -> bytes:
    """``photo`` upscaled to side x side with Gaussian noise, as a JPEG of at most ``target_bytes``,
    as close to it as the noise level (bisected) gets."""
    from PIL import Image

    face = np.asarray(Image.open(photo).convert("RGB").resize((side, side), Image.Resampling.BICUBIC))
    unit_noise = np.random.default_rng(0).standard_normal(face.shape, np.float32)
    low, high, best = 0.0, 48.0, b""
    for _ in range(9):
        sigma = (low + high) / 2
        pixels = np.clip(face + sigma * unit_noise, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=95)
        if buffer.tell() <= target_bytes:
            low, best = sigma, buffer.getvalue()
        else:
            high = sigma
    if not best:
        raise SystemExit(f"no JPEG of {photo} at {side} px fits in {target_bytes} bytes")
    return best


class MemorySampler:
    """The sum of VmRSS over the server's processes, every ``interval`` s, in a thread; the peak seen."""

    def __init__(self, server: LiveServer, interval: float = 0.05):
        self.server, self.interval, self.peak_kib = server, interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self.server.memory_kib("VmRSS"))
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


async def verify_all(url: str, images: list[bytes], concurrency: int) -> list[str]:
    """``concurrency`` verifies at once, each with two different images; each answer as in _outcome."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=600) as client:

        async def one(index: int) -> str:
            first, second = images[index % len(images)], images[(index + 1) % len(images)]
            files = {"image1": ("1.jpg", first, "image/jpeg"), "image2": ("2.jpg", second, "image/jpeg")}
            try:
                response = await client.post("/v1/verify", files=files)
            except httpx.HTTPError as error:
                return type(error).__name__
            if response.status_code == 200:
                return "200"
            return f"{response.status_code} {response.json().get('error', {}).get('code', '?')}"

        return list(await asyncio.gather(*(one(i) for i in range(concurrency))))


def upload_sitting(server: LiveServer, images: list[bytes], concurrency: int) -> dict:
    rss_start = server.memory_kib("VmRSS")
    start = time.perf_counter()
    with MemorySampler(server) as sampler:
        outcomes = asyncio.run(verify_all(server.url, images, concurrency))
    wall = time.perf_counter() - start
    return {
        "requests": concurrency,
        "outcomes": dict(Counter(outcomes)),
        "wall_s": wall,
        "rss_start_bytes": rss_start * 1024,
        "rss_peak_sampled_bytes": sampler.peak_kib * 1024,
        "hwm_sum_bytes": server.memory_kib("VmHWM") * 1024,
        "rss_after_bytes": server.memory_kib("VmRSS") * 1024,
        "processes": len(server.worker_pids()) + 1,
    }


# -- the sittings ----------------------------------------------------------------------------------


def serve(workdir: Path, model: Path, **settings: str) -> LiveServer:
    return LiveServer(workdir, startup_timeout_s=STARTUP_TIMEOUT_S, model=str(model), **settings)


def mib(value: int) -> str:
    return f"{value / 2**20:,.0f}"


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "overload")
    parser.add_argument("--connections", type=int, help="the hog's idle connections (default 256)")
    parser.add_argument("--duration", type=float, help="seconds of the idle sitting (default 30)")
    parser.add_argument("--hog-retry", type=float, default=0.5, help="s before reopening after a refusal")
    parser.add_argument("--uploads", type=int, help="concurrent verifies (default 100)")
    parser.add_argument("--upload-bytes", type=int, help="bytes of each JPEG (default 9,900,000)")
    args = parser.parse_args()
    run = common.Run("overload", args)
    connections = args.connections or (16 if args.smoke else 256)
    duration = args.duration or (2.0 if args.smoke else 30.0)
    uploads = args.uploads or (4 if args.smoke else 100)
    upload_bytes = args.upload_bytes or (1_000_000 if args.smoke else 9_900_000)
    side = 1200 if args.smoke else UPLOAD_SIDE

    print(f"overload: making {len(UPLOAD_PEOPLE)} JPEGs of {upload_bytes:,} bytes", flush=True)
    photos = [args.data / "images" / name / f"{name}_0001.jpg" for name in UPLOAD_PEOPLE]
    images = [large_jpeg(photo, upload_bytes, side) for photo in photos]

    idle, large, servers = {}, {}, {}
    for limit in ("off", "on"):
        # "off": the service before issue 18; "on": its defaults.
        settings = LIMITS_OFF if limit == "off" else {}
        with tempfile.TemporaryDirectory() as workdir, serve(Path(workdir), args.model, **settings) as server:
            idle[limit] = asyncio.run(idle_sitting(server.port, connections, duration, args.hog_retry))
            info = httpx.get(f"{server.url}/v1/info", timeout=10).json()
        print(f"overload: idle connections, limits {limit}: {idle[limit]['outcomes']}", flush=True)
        with tempfile.TemporaryDirectory() as workdir, serve(Path(workdir), args.model, **settings) as server:
            large[limit] = upload_sitting(server, images, uploads)
        print(f"overload: large uploads, limits {limit}: {large[limit]['outcomes']}", flush=True)
        servers[limit] = settings

    idle_rows = [
        [
            limit,
            f"{r['answered']} / {r['requests']} ({100 * (r['answered_share'] or 0):.1f} %)",
            ", ".join(f"{k}: {v}" for k, v in sorted(r["outcomes"].items()) if k != "200") or "—",
            common.fmt(r["latency"].get("median_ms")),
            common.fmt(r["latency"].get("p95_ms")),
            f"{r['hog'].get('opened', 0):,} opened, {r['hog'].get('refused', 0):,} refused",
        ]
        for limit, r in idle.items()
    ]
    upload_rows = [
        [
            limit,
            ", ".join(f"{k}: {v}" for k, v in sorted(r["outcomes"].items())),
            f"{r['wall_s']:.1f}",
            mib(r["rss_start_bytes"]),
            mib(r["rss_peak_sampled_bytes"]),
            mib(r["hwm_sum_bytes"]),
            mib(r["rss_after_bytes"]),
        ]
        for limit, r in large.items()
    ]
    workers = info.get("workers")
    environment = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("FACEVER_")]
    on_settings = "the defaults" + (f" with {', '.join(environment)}" if environment else "")
    idle_title = (
        f"{connections} idle connections from one address (127.0.0.1) for {duration:g} s while another "
        f"(127.0.0.2) sends GET /v1/info every 0.3 s ({workers} server processes; limits off = "
        f"FACEVER_MAX_CONNECTIONS_PER_CLIENT=0 and FACEVER_UPLOAD_BUDGET_BYTES=0, on = {on_settings})"
    )
    upload_title = (
        f"{uploads} concurrent POST /v1/verify of two {upload_bytes / 1e6:.1f} MB JPEGs ({workers} server "
        "processes; memory summed over them; limits off and on as above)"
    )
    idle_headers = ["limits", "other client answered 200", "other answers", "p50 ms", "p95 ms", "the hog"]
    upload_headers = ["limits", "answers", "wall s", "RSS MiB at start", "peak RSS MiB (sampled)"]
    upload_headers += ["peak RSS MiB (sum of VmHWM)", "RSS MiB after"]
    tables = {
        idle_title: common.markdown_table(idle_headers, idle_rows),
        upload_title: common.markdown_table(upload_headers, upload_rows),
    }
    config = {
        "model": common.model_info(args.model),
        "connections": connections,
        "duration_s": duration,
        "hog_retry_s": args.hog_retry,
        "uploads": uploads,
        "upload_bytes": [len(image) for image in images],
        "upload_side_px": side,
        "settings": servers,
        "server": {
            "workers": workers,
            "inference_workers": info.get("inference_workers"),
            "env": {k: v for k, v in os.environ.items() if k.startswith("FACEVER_")},
        },
    }
    run.finish(config, {"idle_connections": idle, "large_uploads": large}, tables)


if __name__ == "__main__":
    main()
