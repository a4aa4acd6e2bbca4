"""Old and new code timed alternately in one sitting: ``facever serve`` of each, the same client, the
same pairs; besides requests/s, the server's CPU time per answered verify (all its processes, from
/proc), which the client sharing the machine disturbs less than the rate. The old one runs from a
folder that holds its ``facever`` package (PYTHONPATH), e.g. one made from ``git worktree add
/tmp/old <commit>``; the new one is this checkout.

    python ab.py --old-path /tmp/pkg-old --rounds 3 --levels 1,8 --duration 15
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import common
import numpy as np
from load import choose_pairs, cpu_seconds, level, screen, start_server


def main() -> None:
    parser = common.parser(__doc__.splitlines()[0], "ab")
    parser.add_argument("--old-path", required=True, help="PYTHONPATH of the old code's facever package")
    parser.add_argument("--old-name", default="old", help="what to call the old code in the table")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--levels", default="1,8")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--pairs", type=int, default=100)
    parser.add_argument("--old-model", type=Path, help="the model the old code serves (default: --model)")
    args = parser.parse_args()
    run = common.Run("ab", args)
    levels = [int(c) for c in args.levels.split(",")]
    pairs = choose_pairs(args.data, 4 if args.smoke else args.pairs)
    duration = 0.3 if args.smoke else args.duration
    rounds: list[dict] = []
    for round_index in range(1 if args.smoke else args.rounds):
        for version in (args.old_name, "new"):
            with tempfile.TemporaryDirectory() as workdir:
                model = args.model if version == "new" else (args.old_model or args.model)
                server = start_server(model, Path(workdir))
                if version != "new":
                    server.env["PYTHONPATH"] = args.old_path
                with server:
                    kept, _ = asyncio.run(screen(server.url, pairs))
                    for concurrency in levels:
                        before = cpu_seconds(server.process.pid)
                        result = level(server.url, kept, concurrency, duration)
                        spent = cpu_seconds(server.process.pid) - before
                        result["server_cpu_ms_per_ok"] = spent * 1000 / max(1, result["ok"])
                        rounds.append({"round": round_index, "version": version, **result})
                        rate, p50 = result["requests_per_s"], result["latency"].get("median_ms", 0)
                        print(
                            f"ab: {round_index} {version} c={concurrency}: {rate:.1f}/s, p50 {p50:.1f} ms",
                            flush=True,
                        )
    rows = []
    for concurrency in levels:
        by = {
            v: [r for r in rounds if r["version"] == v and r["concurrency"] == concurrency]
            for v in (args.old_name, "new")
        }
        rate = {v: float(np.mean([r["requests_per_s"] for r in rs])) for v, rs in by.items()}
        p50 = {v: float(np.mean([r["latency"]["median_ms"] for r in rs])) for v, rs in by.items()}
        errors = {v: sum(r["errors"] for r in rs) for v, rs in by.items()}
        cpu = {v: float(np.mean([r["server_cpu_ms_per_ok"] for r in rs])) for v, rs in by.items()}
        rows.append(
            [
                concurrency,
                " / ".join(common.fmt(r["requests_per_s"]) for r in by[args.old_name]),
                " / ".join(common.fmt(r["requests_per_s"]) for r in by["new"]),
                f"{rate['new'] / rate[args.old_name]:.2f}",
                f"{common.fmt(p50[args.old_name])} → {common.fmt(p50['new'])}",
                f"{common.fmt(cpu[args.old_name])} → {common.fmt(cpu['new'])} "
                f"({cpu['new'] / cpu[args.old_name]:.2f})",
                f"{errors[args.old_name]} / {errors['new']}",
            ]
        )
    table = common.markdown_table(
        [
            "concurrency",
            f"{args.old_name}: requests/s per round",
            "new: requests/s per round",
            "new / old (means)",
            "p50 ms, old → new (means)",
            "server CPU ms per verify, old → new (means; new / old)",
            "errors old / new",
        ],
        rows,
    )
    run.finish(
        {
            "old_path": args.old_path,
            "old_name": args.old_name,
            "levels": levels,
            "duration_s": duration,
            "rounds": args.rounds,
            "pairs": len(pairs),
            "model": str(args.model),
            "old_model": str(args.old_model or args.model),
        },
        {"rounds": rounds},
        {f"POST /v1/verify, {args.old_name} and new code alternately ({args.rounds} rounds)": table},
    )


if __name__ == "__main__":
    main()
