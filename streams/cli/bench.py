"""cdrflow bench: end-to-end throughput, raw ceiling, barring latency and landing lag on the
embedded local stack. Progress goes to stderr; the result is one JSON object on the last line
of stdout."""
from __future__ import annotations

import json
import sys
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmark the pipeline on the embedded stack (JSON on stdout)")
    p.add_argument("--cdrs", type=int, default=50_000, help="CDRs of the flood phase (default 50000)")
    p.add_argument("--accounts", type=int, default=5_000, help="accounts of the flood phase (default 5000)")
    p.add_argument("--mode", choices=["single", "batch"], default="batch",
                   help="one CDR per message, or Avro containers of --batch-size CDRs")
    p.add_argument("--workers", type=int, default=1, help="Faust worker processes")
    p.add_argument("--batch-size", type=int, default=500, help="CDRs per container in batch mode")
    p.add_argument("--seed", type=int, default=7)
    lat = p.add_mutually_exclusive_group()
    lat.add_argument("--latency", dest="latency", action="store_true", default=True,
                     help="run the paced barring-latency phase (default)")
    lat.add_argument("--no-latency", dest="latency", action="store_false", help="skip the paced phase")
    p.add_argument("--rate", type=float, default=None,
                   help="CDRs/s of the paced phase (default: half the measured end-to-end rate)")
    p.add_argument("--latency-seconds", type=float, default=15.0, help="length of the paced phase")
    p.add_argument("--latency-accounts", type=int, default=200, help="small-credit accounts of the paced phase")
    p.add_argument("--poll-ms", type=int, default=100, help="sink status poll interval")
    p.add_argument("--poll-final", action="store_true",
                   help="read progress with count() FINAL per poll (the old way) instead of the sink's "
                        "in-memory counters, to measure what that costs the sink")
    p.add_argument("--no-stage-profile", dest="stage_profile", action="store_false",
                   help="skip the in-process per-stage profile")
    p.add_argument("--timeout", type=float, default=900, help="bound on each wait, seconds")
    p.add_argument("--workdir", type=Path, help="keep logs and ClickHouse data here (default: a temp dir)")
    p.add_argument("--scenario", choices=["default", "call-centre"], default="default",
                   help="call-centre: few accounts, many CDRs over --days, published in --segments parts; "
                        "reports worker CPU per CDR per part and the largest changelog record")
    p.add_argument("--segments", type=int, default=10, help="call-centre: parts the CDRs are published in")
    p.add_argument("--days", type=int, default=30, help="call-centre: days the call dates spread over")
    p.set_defaults(func=cmd_bench)


def cmd_bench(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streams.bench import BenchOptions, run_bench
    if args.cdrs < 1 or args.accounts < 1 or args.workers < 1 or args.batch_size < 1 or args.segments < 1 \
            or args.days < 1:
        # Printed here rather than raised as UserError: under `python -m streams.cli.main` that
        # class lives in __main__, so a raise from here would not be caught as one.
        print("cdrflow bench: --cdrs, --accounts, --workers, --batch-size, --segments and --days must be at least 1",
              file=sys.stderr)
        return 2
    opts = BenchOptions(cdrs=args.cdrs, accounts=args.accounts, mode=args.mode, workers=args.workers,
                        batch_size=args.batch_size, seed=args.seed, latency=args.latency, rate=args.rate,
                        latency_seconds=args.latency_seconds, latency_accounts=args.latency_accounts,
                        poll_ms=args.poll_ms, poll_final=args.poll_final, stage_profile=args.stage_profile, timeout_s=args.timeout,
                        workdir=args.workdir)
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        tasks: dict[str, int] = {}

        def step(text=None, phase="setup", total=None, completed=None, advance=None):
            if text:
                console.log(text)
            if phase == "setup":
                return
            if text or phase not in tasks:
                tasks[phase] = progress.add_task((text or phase).split(':')[0], total=total)
            task = tasks[phase]
            if total is not None:
                progress.update(task, total=total)
            if completed is not None:
                progress.update(task, completed=completed)
            if advance:
                progress.advance(task, advance)

        if args.scenario == "call-centre":
            from streams.bench_call_centre import run_call_centre
            result = run_call_centre(opts, step, segments=args.segments, days=args.days)
        else:
            result = run_bench(opts, step)
    print(json.dumps(result), flush=True)
    return 0
