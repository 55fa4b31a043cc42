"""cdrflow simulate: publish simulated switch CDRs (and optionally provision their accounts)."""
from __future__ import annotations

from rich.console import Console
from rich.progress import Progress

from streams.core.charge import utc_now_ms
from streams.publisher import Publisher
from streams.settings import get_settings
from streams.simulator import CdrGenerator, make_accounts


def register(sub) -> None:
    p = sub.add_parser("simulate", help="publish simulated switch CDRs to cdr.raw")
    p.add_argument("--cdrs", type=int, default=1000)
    p.add_argument("--accounts", type=int, default=100)
    p.add_argument("--mode", choices=["single", "batch"], default="batch",
                   help="one CDR per message, or Avro containers of --batch-size CDRs")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-provision", action="store_true", help="do not send provisioning commands first")
    p.set_defaults(func=cmd_simulate)


def cmd_simulate(args) -> int:
    console = Console(stderr=True)
    pub = Publisher(get_settings().kafka_client_config())
    accounts = make_accounts(args.accounts, seed=args.seed)
    now = utc_now_ms()
    if not args.no_provision:
        pub.commands(a.provision_command(now) for a in accounts)
    gen = CdrGenerator(accounts, now, seed=args.seed + 1)
    chunk = max(args.batch_size, 1000)
    with Progress(console=console) as progress:
        task = progress.add_task("publishing", total=args.cdrs)
        left = args.cdrs
        while left > 0:
            n = min(chunk, left)
            pub.cdrs(gen.take(n), args.mode, args.batch_size)
            left -= n
            progress.advance(task, n)
        pub.flush()
    console.print(f"published {args.cdrs} CDRs for {args.accounts} accounts in {pub.sent} messages")
    return 0
