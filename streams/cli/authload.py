"""cdrflow authorize-load: p50/p99 latency of GET /authorize under concurrent load."""
from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from rich.console import Console


def register(sub) -> None:
    p = sub.add_parser("authorize-load", help="measure authorisation latency (starts its own stack unless --url)")
    p.add_argument("--requests", type=int, default=5000)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--accounts", type=int, default=200)
    p.add_argument("--url", help="an already running worker, e.g. http://127.0.0.1:6066")
    p.add_argument("--account-prefix", default="ACC", help="with --url: accounts ACC000001.. must exist")
    p.add_argument("--max-seconds", type=float, default=120)
    p.set_defaults(func=cmd_load)


def cmd_load(args) -> int:
    from streams.authload import run_load

    console = Console(stderr=True)
    if args.url:
        names = [f"{args.account_prefix}{i + 1:06d}" for i in range(args.accounts)]
        out = asyncio.run(run_load(args.url, names, args.requests, args.concurrency, max_seconds=args.max_seconds))
        print(json.dumps(out))
        return 0
    from streams.core.charge import utc_now_ms
    from streams.local.stack import LocalStack
    from streams.publisher import Publisher
    from streams.simulator import make_accounts

    stack = LocalStack(Path("var") / f"authload-{os.getpid()}", workers=1)
    stack.start()
    try:
        stack.wait_workers_ready(120)
        accounts = make_accounts(args.accounts, seed=5)
        pub = Publisher(stack.client_conf)
        stack.provision(pub, accounts, utc_now_ms())
        url = f"http://127.0.0.1:{stack.worker_ports['worker-1']}"
        console.log(f"load: {args.requests} requests, concurrency {args.concurrency}, {url}")
        out = asyncio.run(run_load(url, [a.account for a in accounts], args.requests, args.concurrency,
                                   max_seconds=args.max_seconds))
        out["machine"] = f"{os.cpu_count()} cores"
        print(json.dumps(out))
    finally:
        stack.stop()
    return 0
