"""``cdrflow periods``: close, reopen, partially close and list financial periods.

    cdrflow periods close  --period 2026-10 [--account A] [--partial-until ISO] [--by WHO] [--note T]
                           [--bootstrap B] [--no-publish]
    cdrflow periods reopen --period 2026-10 [--account A] [--by WHO] [--note T] [--bootstrap B] [--no-publish]
    cdrflow periods list   [--period 2026-10] [--account A] [--history]

Without --account a decision applies to every account ("*"); an account's own newer decision
overrides it (see sinks/clickhouse/periods.py). --partial-until closes the period up to that
instant only (a partial close; close again later to finish it). Every decision is logged with
who (--by, default the login name) and when, and published to ``financial.periods`` so the
workers book a late CDR of a closed period in the open period (with a correction event) instead
of changing the closed one (``--no-publish``: ClickHouse only).
"""
from __future__ import annotations

import getpass
from datetime import datetime, timezone

from streams.cli.clickhouse import add_target_arg, open_target
from streams.cli.main import UserError


def parse_instant(text: str) -> int:
    """ISO 8601 → epoch ms; a naive value is taken as UTC."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UserError(f"not an ISO date-time: {text!r} (e.g. 2026-10-20T00:00:00+02:00)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(dt.timestamp() * 1000)


def _period_arg(text: str) -> str:
    import re

    if not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2]|W(0[1-9]|[1-4]\d|5[0-3]))", text):
        raise UserError(f"a period looks like 2026-10 or 2026-W42, not {text!r}")
    return text


def register(subparsers) -> None:
    p = subparsers.add_parser("periods", help="close, reopen, partially close and list financial periods")
    sub = p.add_subparsers(dest="periods_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
    for name, helptext in (("close", "close a period (or close it up to --partial-until)"),
                           ("reopen", "reopen a closed or partially closed period")):
        c = sub.add_parser(name, help=helptext)
        c.add_argument("--period", required=True)
        c.add_argument("--account", default="*", help="one account (default: all accounts, '*')")
        if name == "close":
            c.add_argument("--partial-until", metavar="ISO", help="close only CDRs that started before this instant")
        c.add_argument("--by", default=None, help="who decides (default: the login name)")
        c.add_argument("--note", default="")
        c.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
        c.add_argument("--no-publish", action="store_true",
                       help="record in ClickHouse only; workers keep booking late CDRs in the period")
        add_target_arg(c)
        c.set_defaults(func=cmd_change, action=name)
    ls = sub.add_parser("list", help="current status (or --history: every decision)")
    ls.add_argument("--period")
    ls.add_argument("--account")
    ls.add_argument("--history", action="store_true")
    add_target_arg(ls)
    ls.set_defaults(func=cmd_list)


def _ensure_schema(backend) -> None:
    from sinks.clickhouse import ddl

    ddl.migrate(backend)


def cmd_change(args) -> int:
    from sinks.clickhouse import periods as P

    period = _period_arg(args.period)
    status, until = P.CLOSED, 0
    if args.action == "reopen":
        status = P.OPEN
    elif args.partial_until:
        status, until = P.PARTIAL, parse_instant(args.partial_until)
    by = args.by or getpass.getuser()
    backend = open_target(args)
    try:
        _ensure_schema(backend)
        d = P.record(backend, account=args.account, period=period, status=status, by=by,
                     closed_until_ms=until, note=args.note)
    finally:
        backend.close()
    if not args.no_publish:
        _publish(args, d)
    what = {P.OPEN: "reopened", P.CLOSED: "closed", P.PARTIAL: f"closed up to {_iso(d.closed_until_ms)}"}[status]
    print(f"period {period} {what} for {'all accounts' if d.account == P.ALL else 'account ' + d.account} "
          f"by {d.changed_by} at {_iso(d.changed_at_ms)}")
    return 0


def _publish(args, d) -> None:
    """Tell the workers (topic financial.periods): a late CDR of a closed period is then booked
    in the open period with a correction event, never as a change of the closed one."""
    from streams.periods_feed import publish
    from streams.settings import get_settings

    conf = get_settings().kafka_client_config()
    if args.bootstrap:
        conf["bootstrap.servers"] = args.bootstrap
    try:
        publish(conf, {"account": d.account, "period": d.period, "status": d.status,
                       "closed_until_ms": d.closed_until_ms, "version": d.version})
    except Exception as exc:
        raise UserError(f"period {d.period} is recorded as {d.status} in ClickHouse, but the workers were not "
                        f"told ({exc}); run the same command again once the broker is reachable") from None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="seconds")


def cmd_list(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from sinks.clickhouse import periods as P

    backend = open_target(args)
    try:
        _ensure_schema(backend)
        rows = (P.history if args.history else P.current)(backend, args.period, args.account)
    finally:
        backend.close()
    t = Table(title="financial periods" + (" (history)" if args.history else ""))
    for c in ("period", "account", "status", "closed until", "by", "at", "note"):
        t.add_column(c)
    for d in rows:
        t.add_row(d.period, d.account, d.status, _iso(d.closed_until_ms) if d.status == P.PARTIAL else "",
                  d.changed_by, _iso(d.changed_at_ms), d.note)
    Console().print(t)
    if not rows:
        print("no period has been closed; every period is open")
    return 0
