"""`python -m bench`: every scenario on SQLite and PostgreSQL, against same-run baselines.

poetry install --with bench && poetry run python -m bench            # the real run
poetry run python -m bench --quick                                   # a smoke run
poetry run python -m bench --databases sqlite --scenario-seconds 5   # any mix
"""

import argparse
import os
import platform
import shlex
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from bench import load, report
from bench.scenarios import Options, run_database

RESULTS = Path(__file__).resolve().parent / "results"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of warm-up before each")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of each S1, S2 and S3 target; the median counts"
    )
    parser.add_argument("--mixed-duration", type=float, default=60, help="seconds of S6")
    parser.add_argument("--deep-heroes", type=int, default=1_000_000, help="S5's table size")
    parser.add_argument(
        "--databases", default="sqlite,postgresql", help="comma-separated: sqlite,postgresql"
    )
    parser.add_argument(
        "--only", default="S1,S2,S3,S4,S5,S6", help="comma-separated scenarios to run"
    )
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the service, e.g. DB_POOL_PRE_PING=false (repeatable)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: 3 s runs, 5 s of S6, 100,000 heroes; leaves docs/ alone",
    )
    parser.add_argument("--profile", action="store_true", help="run the service under pyinstrument")
    parser.add_argument(
        "--no-docs", action="store_true", help="do not rewrite docs/benchmarks.md and the chart"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.mixed_duration, args.rounds = 3, 1, 5, 1
        args.deep_heroes = min(args.deep_heroes, 100_000)
        args.no_docs = True
    return args


def _stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)  # unwinds like Ctrl-C, so every process started is stopped


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    load.ensure_wrk()
    if len(os.sched_getaffinity(0)) < 2:
        print("warning: fewer than 2 cores; server and load share one", file=sys.stderr)
    only = frozenset(s.strip().upper() for s in args.only.split(","))
    options = Options(
        args.duration,
        args.warmup,
        args.mixed_duration,
        args.deep_heroes,
        args.rounds,
        args.profile,
        only,
        dict(item.split("=", 1) for item in args.service_env),
    )
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    run_dir = RESULTS / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    clock = time.monotonic()

    def log(message: str) -> None:
        print(f"{time.monotonic() - clock:6.0f}s  {message}", flush=True)

    results = {}
    for kind in args.databases.split(","):
        results[kind] = run_database(kind.strip(), options, run_dir, log)

    found = report.checks(results)
    meta = {
        "started": started.isoformat(timespec="seconds"),
        "duration_s": time.monotonic() - clock,
        "command": (
            "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:])
        ).strip(),
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}",
        "options": {
            "duration": args.duration,
            "warmup": args.warmup,
            "mixed_duration": args.mixed_duration,
            "deep_heroes": args.deep_heroes,
            "rounds": args.rounds,
        },
    }
    report.write_json(run_dir / "results.json", meta, results, found)
    report.write_json(RESULTS / "latest.json", meta, results, found)
    print("\n" + report.targets_table(found, results) + "\n\n" + report.table(results) + "\n")
    print(f"results: {run_dir / 'results.json'}")
    complete = len(found) == len(report.TARGETS) * len(results)  # all ran on every database
    if not args.no_docs and complete:
        report.chart(report.DOCS / "benchmarks.png", results, f"python -m bench, {meta['started']}")
        print(f"docs: {report.write_docs(results, found, meta)}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # everything started was stopped on the way out
        print("\ninterrupted; every process the run started has been stopped", file=sys.stderr)
        sys.exit(130)
