"""``cdrflow tariffs``: validate, publish (live update), show and import tariff files.

    cdrflow tariffs validate FILE                  exit 0 when valid, 2 with "file: row N (where): problem"
    cdrflow tariffs load FILE [--bootstrap B] [--plan P ...]
                                                   validate, then publish each plan to tariff.plans
    cdrflow tariffs show [--plan P] [--file F] [--at ISO] [--topic] [--bootstrap B]
    cdrflow tariffs import-cgrates DIR --out FILE.yaml [--timezone TZ] [--rename OLD=NEW ...] [--rounding-decimals N]
"""
from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from streams import topics
from streams.cli.main import UserError
from streams.core.money import format_micros
from streams.core.tariff import TariffBook, TariffError, load_tariff_book
from streams.settings import get_settings


def register(subparsers) -> None:
    p = subparsers.add_parser("tariffs", help="validate, publish, show and import tariff plans")
    sub = p.add_subparsers(dest="tariffs_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    v = sub.add_parser("validate", help="check a tariff file (YAML or CSV); exit 2 naming row and problem")
    v.add_argument("file")
    v.set_defaults(func=cmd_validate)

    ld = sub.add_parser("load", help="validate a tariff file, then publish it to the tariff.plans topic")
    ld.add_argument("file")
    ld.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
    ld.add_argument("--plan", action="append", help="publish only this plan (repeatable; default: all)")
    ld.add_argument("--topic", default=topics.TARIFFS, help=argparse.SUPPRESS)
    ld.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the broker")
    ld.set_defaults(func=cmd_load)

    sh = sub.add_parser("show", help="table of the destinations and prices of the version in force")
    sh.add_argument("--plan", help="plan name (default: every plan)")
    sh.add_argument("--file", help="tariff file (default: the configured one)")
    sh.add_argument("--at", help="ISO date-time with offset (default: now)")
    sh.add_argument("--topic", action="store_true", help="apply the latest plans of the tariff.plans topic")
    sh.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
    sh.set_defaults(func=cmd_show)

    im = sub.add_parser("import-cgrates", help="convert a CGRateS tariff plan directory (CSV) to a cdrflow YAML file")
    im.add_argument("dir")
    im.add_argument("--out", required=True, help="YAML file to write")
    im.add_argument("--timezone", default="UTC", help="time zone of the plans and of naive ActivationTimes")
    im.add_argument("--rename", action="append", default=[], metavar="TENANT:CATEGORY:SUBJECT=PLAN",
                    help="name a profile's plan (repeatable)")
    im.add_argument("--rounding-decimals", type=int, default=5, metavar="N",
                    help="CGRateS general rounding_decimals: precision of each increment's cost (default 5)")
    im.set_defaults(func=cmd_import_cgrates)


def _client_conf(bootstrap: str | None) -> dict:
    conf = get_settings().kafka_client_config()
    if bootstrap:
        conf["bootstrap.servers"] = bootstrap
    return conf


def _fmt(path: str) -> str:
    return "csv" if Path(path).suffix.lower() == ".csv" else "yaml"


def _load(path: str) -> TariffBook:
    try:
        return load_tariff_book(path)
    except TariffError as e:
        raise UserError(f"invalid tariff, refused whole: {e}") from None


def cmd_validate(args) -> int:
    book = _load(args.file)
    for p in book.plans:
        print(f"ok {p}: versions {', '.join(book.versions(p))}")
    return 0


def cmd_load(args) -> int:
    from confluent_kafka import Producer

    from streams.partitioning import producer_config
    from streams.tariffs import encode_plan_message

    book = _load(args.file)   # refuse before anything reaches the topic
    plans = args.plan or list(book.plans)
    missing = [p for p in plans if p not in book.plans]
    if missing:
        raise UserError(f"{args.file} has no plan {missing} (plans: {list(book.plans)})")
    text = Path(args.file).read_text(encoding="utf-8")
    producer = Producer(producer_config(_client_conf(args.bootstrap)))
    errors: list[str] = []

    def done(err, msg):
        if err is not None:
            errors.append(f"{msg.key().decode()}: {err}")

    now = int(time.time() * 1000)
    for p in plans:
        producer.produce(args.topic, key=p.encode(), on_delivery=done,
                         value=encode_plan_message(text, _fmt(args.file), Path(args.file).name, now))
    left = producer.flush(args.timeout)
    if left or errors:
        raise UserError(f"publishing failed ({left} undelivered): {'; '.join(errors) or 'broker timeout'}")
    for p in plans:
        print(f"published {p} ({', '.join(book.versions(p))}) to {args.topic}")
    return 0


def _topic_book(base: TariffBook, conf: dict, idle_s: float = 2.0, limit_s: float = 30.0) -> TariffBook:
    """The base book with the topic's latest plans applied (reads the topic once, to idle)."""
    from streams import tariffs

    books: list[TariffBook] = []
    # The watcher would install books process-wide; here we only want the result for display.
    w = tariffs.TariffWatcher(conf, base=base, poll_s=0.2, install=books.append)
    try:
        w.start()
        if not w.wait_assigned(limit_s):
            raise UserError(f"topic {topics.TARIFFS} not found on {conf.get('bootstrap.servers')}")
        deadline = time.monotonic() + limit_s
        seen, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            n = w.applied + w.rejected
            if n != seen:
                seen, quiet_since = n, time.monotonic()
            elif time.monotonic() - quiet_since >= idle_s:
                break
            time.sleep(0.1)
    finally:
        w.stop()
    if w.last_error:
        print(f"note: last refused update: {w.last_error['message']}", file=sys.stderr)
    return books[-1] if books else base


def _money(m: int) -> str:
    # Full micro precision is noise in a price table; keep at least cents, drop trailing zeros.
    whole, frac = format_micros(m).split(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(2, '0')}"


def _cgr_dur(ns: int) -> str:
    # CGRateS durations: whole seconds for voice, bare nanoseconds = units for SMS/data rates.
    if ns % 1_000_000_000 == 0:
        return f"{ns // 1_000_000_000}s"
    if ns < 1_000_000:
        return f"{ns}ns"
    return f"{Decimal(ns).scaleb(-9).normalize():f}s"


def _cgr_price(x) -> str:
    return format(Decimal(x.numerator) / Decimal(x.denominator), "f")


def _cgr_timing(t) -> str:
    days = "Sun Mon Tue Wed Thu Fri Sat".split()
    parts = [t.id]
    if t.years:
        parts.append("years " + ",".join(map(str, sorted(t.years))))
    if t.months:
        parts.append("months " + ",".join(map(str, sorted(t.months))))
    if t.month_days:
        parts.append("days " + ",".join(map(str, sorted(t.month_days))))
    if t.week_days:
        parts.append(" ".join(days[d] for d in sorted(t.week_days)))
    if t.start_s:
        parts.append(f"from {t.start_s // 3600:02d}:{t.start_s // 60 % 60:02d}:{t.start_s % 60:02d}")
    return " ".join(parts)


def cgr_rows(plan, at_ms: int) -> tuple[str, list[list[str]]]:
    """(rating plan id, rows) of an imported CGRateS plan: one row per destination, one price
    line per rate interval (timing and weight, then each GroupIntervalStart's rate)."""
    rater = plan.rater
    rp_id, fallback, dests = rater.data.describe(rater.key, at_ms * 1_000_000)
    rows = []
    for did, prefixes, intervals in dests:
        lines, opts = [], []
        for ri in intervals:
            groups = "; ".join(f"from {_cgr_dur(g.start_ns)}: {_cgr_price(g.rate)}/{_cgr_dur(g.unit_ns)} "
                               f"per {_cgr_dur(g.increment_ns)}" for g in ri.groups)
            fee = f", fee {_cgr_price(ri.connect_fee)}" if ri.connect_fee else ""
            lines.append(f"{_cgr_timing(ri.timing)} (w{_cgr_price(ri.weight)}, {ri.rates_id}{fee}): {groups}")
            opt = f"{ri.method} {ri.decimals}"
            if ri.max_cost:
                opt += f", max {_cgr_price(ri.max_cost)} {ri.strategy or ''}".rstrip()
            if opt not in opts:
                opts.append(opt)
        ps = list(prefixes) or [did]
        rows.append([did, "cgrates", " ".join(ps[:8]) + (f" (+{len(ps) - 8})" if len(ps) > 8 else ""),
                     "\n".join(lines), ", ".join(opts)])
    if fallback:
        rows.append(["(fallback)", "cgrates", "", "then " + ", ".join(fallback), ""])
    return rp_id, rows


def destination_rows(book: TariffBook, plan: str, at_ms: int) -> tuple[str, list[list[str]]]:
    """(version id, rows) describing the version in force; one row per destination."""
    if book.plan(plan).rater is not None:
        return cgr_rows(book.plan(plan), at_ms)
    v = book.version_at(plan, at_ms)
    rows, seen = [], set()
    for side, indexes in v.indexes.items():
        for conds, idx in indexes:
            by_dest: dict[int, list] = {}
            for prefix, dest in idx._map.items():   # noqa: SLF001 - read-only listing
                by_dest.setdefault(id(dest), [dest, []])[1].append(prefix)
            for dest, prefixes in by_dest.values():
                if id(dest) in seen:
                    continue
                seen.add(id(dest))
                periods = dest.schedule.periods if dest.schedule is not None else ("*",)
                groups = []
                for g in dest.groups:
                    if len(set(g.rates)) == 1:
                        price = _money(g.rates[0])
                    else:
                        price = " ".join(f"{p}={_money(r)}" for p, r in zip(periods, g.rates))
                    groups.append(f"from {g.start}s: {price}/{g.unit}s per {g.increment}s")
                cond = " ".join(f"{k}={val}" for k, val in conds)
                opts = []
                if dest.connect_fee_micros:
                    opts.append(f"fee {_money(dest.connect_fee_micros)}")
                if dest.min_duration:
                    opts.append(f"min {dest.min_duration}s")
                if dest.free_seconds:
                    opts.append(f"free {dest.free_seconds}s")
                if dest.max_cost_micros is not None:
                    opts.append(f"max {_money(dest.max_cost_micros)}")
                ps = sorted(prefixes)
                rows.append([dest.name, side + (f" [{cond}]" if cond else ""),
                             " ".join(ps[:8]) + (f" (+{len(ps) - 8})" if len(ps) > 8 else ""),
                             "\n".join(groups), ", ".join(opts)])
    for sv, price in v.services.items():
        rows.append([sv, "service", "", f"{_money(price)} per item", ""])
    return v.version, rows


def cmd_show(args) -> int:
    from rich.console import Console
    from rich.table import Table

    book = _load(args.file or str(get_settings().tariff_file))
    if args.topic:
        book = _topic_book(book, _client_conf(args.bootstrap))
    if args.at:
        try:
            at = datetime.fromisoformat(args.at)
        except ValueError:
            raise UserError(f"--at {args.at!r} is not an ISO date-time") from None
        if at.tzinfo is None:
            raise UserError("--at needs a UTC offset, e.g. 2026-03-01T12:00:00+01:00")
        at_ms = int(at.timestamp()) * 1000
    else:
        at_ms = int(time.time() * 1000)
    plans = [args.plan] if args.plan else list(book.plans)
    if args.plan and args.plan not in book.plans:
        raise UserError(f"no plan {args.plan!r} (plans: {list(book.plans)})")
    console = Console()
    for p in plans:
        try:
            vid, rows = destination_rows(book, p, at_ms)
        except Exception as e:   # RejectError: no version in force yet
            console.print(f"[bold]{p}[/bold]: {e}")
            continue
        t = Table(title=f"{p} - version {vid} ({book.timezone(p)})")
        for col in ("destination", "applies to", "prefixes", "price", "options"):
            t.add_column(col)
        for r in rows:
            t.add_row(*r)
        console.print(t)
    return 0


def cmd_import_cgrates(args) -> int:
    from streams.core.tariff.cgrates import import_cgrates_dir, summary, to_yaml
    from streams.core.tariff.loader import parse_tariff_text

    rename = {}
    for r in args.rename:
        old, sep, new = r.partition("=")
        if not sep or not old or not new:
            raise UserError(f"--rename {r!r} must be TENANT:CATEGORY:SUBJECT=PLAN")
        rename[old] = new
    try:
        doc = import_cgrates_dir(args.dir, timezone=args.timezone, rename=rename,
                                 rounding_decimals=args.rounding_decimals)
        text = to_yaml(doc)
        book = parse_tariff_text(text, args.out, "yaml")   # the output must load as it will later
    except TariffError as e:
        raise UserError(f"cannot import: {e}") from None
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as e:
        raise UserError(f"cannot write {args.out}: {e}") from None
    print(f"converted {summary(doc)}")
    for p in book.plans:
        print(f"imported {p}: versions {', '.join(book.versions(p))} -> {args.out}")
    return 0
