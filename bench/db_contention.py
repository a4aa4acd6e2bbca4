"""A reader holding the SQLite database while the service deletes and writes (issue 18's reproducer):
``facever serve`` (SQLite, auth disabled) in its own process; a second process opens the database,
starts a read transaction and holds it for ``--hold`` seconds (100; smoke: 3), like a backup or an
open ``sqlite3`` shell. Meanwhile the client deletes an enrolled identity, then sends ``--writes``
requests (6), alternately creating an identity and enrolling one LFW photo, spread evenly over the
hold. Reported per request: when it was sent, its latency and status, and its delay (latency minus
the median of the same kind of request measured before the reader started); and how long after the
reader ended the deleted templates left the database files (the erasure checkpoint).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from statistics import median

import common
import httpx

from facever.live_server import LiveServer

HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN")
connection.execute("SELECT count(*) FROM faces").fetchone()
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
connection.close()
"""
PERSON = "George_W_Bush"
PHOTOS = (1, 2, 3, 4)  # photos of PERSON that enrollment accepts (one face, good quality)
# The identity deleted: another person, so that no template enrolled meanwhile has the same bytes.
DELETED = "Colin_Powell"
STARTUP_TIMEOUT_S = 180


@dataclass
class Answer:
    request: str
    sent_s: float  # from the start of the hold
    latency_s: float
    status: int | str
    during_hold: bool  # answered before the reader ended


def photo(data: Path, number: int, person: str = PERSON) -> bytes:
    number = PHOTOS[number % len(PHOTOS)]
    return (data / "images" / person / f"{person}_{number:04d}.jpg").read_bytes()


def timed(client: httpx.Client, kind: str, target: int, data: Path, number: int) -> tuple[float, int | str]:
    started = time.perf_counter()
    try:
        if kind == "create":
            status: int | str = client.post("/v1/identities", json={"name": f"Person {number}"}).status_code
        elif kind == "enroll":
            files = [("images", (f"{number}.jpg", photo(data, number)))]
            status = client.post(f"/v1/identities/{target}/faces", files=files).status_code
        else:
            status = client.delete(f"/v1/identities/{target}").status_code
    except httpx.HTTPError as exc:
        status = type(exc).__name__
    return time.perf_counter() - started, status


def files_holding(folder: Path, needle: bytes) -> list[str]:
    return [
        p.name for p in sorted(folder.iterdir()) if p.name.startswith("live.db") and needle in p.read_bytes()
    ]


def template_bytes(database: Path, identity: int) -> bytes:
    connection = sqlite3.connect(database)
    try:
        return bytes(
            connection.execute("SELECT embedding FROM faces WHERE identity_id = ?", (identity,)).fetchone()[0]
        )
    finally:
        connection.close()


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "db_contention")
    parser.add_argument("--hold", type=float, help="seconds the reader holds its transaction (100; smoke 3)")
    parser.add_argument("--writes", type=int, default=6, help="creates and enrolls sent during the hold")
    args = parser.parse_args()
    run = common.Run("db_contention", args)
    hold = args.hold or (3.0 if args.smoke else 100.0)
    numbers = iter(range(1, 200))

    with (
        tempfile.TemporaryDirectory(prefix="facever-db-contention-") as workdir,
        LiveServer(Path(workdir), startup_timeout_s=STARTUP_TIMEOUT_S, model=str(args.model)) as server,
        httpx.Client(base_url=server.url, timeout=600) as client,
    ):
        database = Path(workdir) / "live.db"
        doomed = client.post("/v1/identities", json={"name": "to delete"}).json()["id"]
        files = [("images", (f"{n}.jpg", photo(args.data, n, DELETED))) for n in (1, 2)]
        assert client.post(f"/v1/identities/{doomed}/faces", files=files).status_code == 201
        target = client.post("/v1/identities", json={"name": "enrolled meanwhile"}).json()["id"]
        deleted_template = template_bytes(database, doomed)

        baseline: dict[str, list[float]] = {"create": [], "enroll": []}
        for kind in ("create", "enroll") * 3:
            latency, status = timed(client, kind, target, args.data, next(numbers))
            assert status == 201, (kind, status)
            baseline[kind].append(latency)

        reader = subprocess.Popen(
            [sys.executable, "-c", HOLDER, str(database), str(hold)], stdout=subprocess.PIPE, text=True
        )
        assert reader.stdout is not None and reader.stdout.readline().strip() == "holding"
        hold_started = time.perf_counter()
        answers: list[Answer] = []
        lock = threading.Lock()

        def send(kind: str, at_s: float, number: int) -> None:
            time.sleep(max(0.0, hold_started + at_s - time.perf_counter()))
            sent = time.perf_counter() - hold_started
            latency, status = timed(client, kind, doomed if kind == "delete" else target, args.data, number)
            with lock:
                answers.append(Answer(kind, round(sent, 2), latency, status, reader.poll() is None))

        plan = [("delete", 0.2)] + [
            ("create" if i % 2 == 0 else "enroll", hold * (i + 1) / (args.writes + 1))
            for i in range(args.writes)
        ]
        threads = [threading.Thread(target=send, args=(kind, at, next(numbers))) for kind, at in plan]
        for thread in threads:
            thread.start()
        reader.wait()
        reader_ended = time.perf_counter()
        for thread in threads:
            thread.join()
        while files_holding(Path(workdir), deleted_template) and time.perf_counter() - reader_ended < 60:
            time.sleep(0.05)
        erased_after_s = time.perf_counter() - reader_ended
        left_in = files_holding(Path(workdir), deleted_template)

    answers.sort(key=lambda a: a.sent_s)
    usual = {kind: median(latencies) for kind, latencies in baseline.items()}
    rows, results = [], []
    for answer in answers:
        delay = answer.latency_s - usual[answer.request] if answer.request in usual else None
        results.append({**asdict(answer), "delay_s": delay})
        rows.append(
            [
                answer.request,
                common.fmt(answer.sent_s),
                common.fmt(answer.latency_s, 3),
                "—" if delay is None else common.fmt(delay, 3),
                answer.status,
                "yes" if answer.during_hold else "no",
            ]
        )
    writes = [r for r in results if r["request"] != "delete"]
    summary = {
        "hold_s": hold,
        "baseline_median_s": usual,
        "max_write_delay_s": max(r["delay_s"] for r in writes),
        "server_errors": sum(1 for r in results if isinstance(r["status"], int) and r["status"] >= 500),
        "not_2xx": sum(1 for r in results if not (isinstance(r["status"], int) and 200 <= r["status"] < 300)),
        "erased_after_reader_ended_s": None if left_in else erased_after_s,
        "deleted_template_still_in": left_in,
    }
    table = common.markdown_table(
        ["request", "sent at s", "latency s", "delay s", "status", "answered while the reader held"], rows
    )
    fmt = common.fmt
    erased = "never (60 s)" if left_in else f"{fmt(erased_after_s, 2)} s"
    summary_table = common.markdown_table(
        ["reader hold s", "max create/enroll delay s", "5xx", "not 2xx", "erasure after the reader ended"],
        [
            [
                fmt(hold),
                fmt(summary["max_write_delay_s"], 3),
                summary["server_errors"],
                summary["not_2xx"],
                erased,
            ]
        ],
    )
    run.finish(
        {"hold_s": hold, "writes": args.writes, "model": common.model_info(args.model)},
        {"requests": results, "summary": summary},
        {f"A reader holding the database for {fmt(hold)} s": table, "Summary": summary_table},
    )


if __name__ == "__main__":
    main()
