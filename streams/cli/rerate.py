"""``cdrflow rerate``: price landed CDRs again and write them with a higher rating_version.

    cdrflow rerate (--account A ... | --all) --from ISO --to ISO
                   [--tariff-version V] [--tariff-file F] [--adjust | --reopened]
                   [--adjust-period P] [--timezone TZ] [--dry-run] [--no-spend] [--bootstrap B]
                   [--clickhouse TARGET]

* Rows of open periods are replaced (same key, rating_version + 1); reports read FINAL, so
  they show the new price at once.
* Rows of closed periods: refused, unless the period was reopened (``cdrflow periods reopen``,
  then rerate with --reopened to confirm) or --adjust is given: the closed rows stay, and
  adjustment rows ``<cdr_key>#adj@<period>`` carry the difference in the current open period.
* One ``adjust_spend`` command per (account, open period) with a changed spend is published to
  the control topic, so the account agent corrects spend and barring (--no-spend skips that).

chdb allows one process per data path: stop the sink (``python -m sinks``) before rerating a
chdb target. A ``clickhouse://`` server can be rerated while the sink runs.
"""
from __future__ import annotations

from streams.cli.clickhouse import add_target_arg, open_target
from streams.cli.main import UserError
from streams.cli.periods import parse_instant


def register(subparsers) -> None:
    p = subparsers.add_parser("rerate", help="rerate landed CDRs (new rating_version or adjustments)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--account", action="append", help="account to rerate (repeatable)")
    who.add_argument("--all", action="store_true", help="every account")
    p.add_argument("--from", dest="from_", required=True, metavar="ISO", help="first call start (inclusive)")
    p.add_argument("--to", required=True, metavar="ISO", help="last call start (exclusive)")
    p.add_argument("--tariff-version", help="price with this version of each row's plan (default: the one in force)")
    p.add_argument("--tariff-file", help="tariff file (default: the configured one)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--adjust", action="store_true",
                      help="leave closed periods untouched; post adjustment rows in the open period")
    mode.add_argument("--reopened", action="store_true",
                      help="confirm rewriting periods that were closed and have been reopened")
    p.add_argument("--adjust-period", help="period label the adjustments are posted in (default: the current one)")
    p.add_argument("--timezone", help="time zone for the adjustment period (default: the plan's)")
    p.add_argument("--dry-run", action="store_true", help="compute and print, write and publish nothing")
    p.add_argument("--no-spend", action="store_true", help="do not publish adjust_spend commands")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
    add_target_arg(p)
    p.set_defaults(func=cmd_rerate)


def _book(path: str | None):
    from streams.core.tariff import TariffError, load_tariff_book
    from streams.settings import get_settings

    try:
        return load_tariff_book(path or get_settings().tariff_file)
    except (TariffError, OSError) as exc:
        raise UserError(f"cannot load tariff file: {exc}") from None


def publish_commands(commands: list[dict], bootstrap: str | None, publisher_factory=None) -> int:
    if not commands:
        return 0
    if publisher_factory is None:
        from streams.publisher import Publisher
        from streams.settings import get_settings

        conf = get_settings().kafka_client_config()
        if bootstrap:
            conf["bootstrap.servers"] = bootstrap
        publisher_factory = lambda: Publisher(conf)  # noqa: E731
    pub = publisher_factory()
    n = pub.commands(commands)
    pub.flush()
    return n


def cmd_rerate(args, publisher_factory=None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from sinks.clickhouse import ddl
    from streams import rerate as R
    from streams.core.money import format_micros

    from_ms, to_ms = parse_instant(args.from_), parse_instant(args.to)
    if to_ms <= from_ms:
        raise UserError("--to must be after --from")
    book = _book(args.tariff_file)
    console = Console(stderr=True)
    backend = open_target(args)
    try:
        ddl.migrate(backend)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeRemainingColumn(), console=console, transient=False) as bar:
            def progress(what: str, total: int):
                task = bar.add_task(what, total=total)
                return lambda done: bar.update(task, completed=done)

            try:
                res = R.run(backend, book, accounts=None if args.all else args.account, from_ms=from_ms,
                            to_ms=to_ms, tariff_version=args.tariff_version, adjust=args.adjust,
                            reopened=args.reopened, adjust_period=args.adjust_period,
                            timezone_name=args.timezone, dry_run=args.dry_run, progress=progress)
            except R.RerateRefused as exc:
                raise UserError(str(exc)) from None
            except ValueError as exc:
                raise UserError(str(exc)) from None
    finally:
        backend.close()
    published = 0
    if not args.dry_run and not args.no_spend:
        published = publish_commands(res.commands, args.bootstrap, publisher_factory)
    print(f"examined {res.examined}, replaced {len(res.replaced)}, adjustments {len(res.adjustments)}, "
          f"unchanged {res.unchanged}, failed {len(res.failed)}")
    for (acct, period), d in sorted(res.deltas.items()):
        print(f"  {acct} {period}: {'+' if d > 0 else ''}{format_micros(d)}")
    print(f"money delta {'+' if res.delta_micros > 0 else ''}{format_micros(res.delta_micros)}"
          f"{' (dry run: nothing written)' if args.dry_run else ''}")
    print(f"adjust_spend commands: {len(res.commands)} built, {published} published")
    for key, why in res.failed[:10]:
        print(f"  not rerated {key}: {why}")
    return 1 if res.failed else 0
