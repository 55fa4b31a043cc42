"""``cdrflow report``: itemised bills, summaries and the HTML run report."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from streams.cli.clickhouse import add_target_arg, open_target


def _user_error(msg: str):
    from streams.cli.main import UserError

    return UserError(msg)


def _check_out(args, formats: tuple[str, ...]) -> None:
    if args.format in formats and not args.out:
        raise _user_error(f"--format {args.format} writes a file: give --out FILE")


def _csv_to_stdout(rows: list[dict], columns: list[str]) -> None:
    import csv

    from sinks.reports import csv_value

    writer = csv.writer(sys.stdout)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([csv_value(row.get(c)) for c in columns])


def _progress(total: int):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    # stderr, so a CSV piped from stdout never gets progress bars in it.
    from rich.console import Console

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=Console(stderr=True), transient=True, disable=total < 10_000)


def cmd_itemized(args) -> int:
    from sinks.reports import itemized as mod
    from sinks.reports.html import fmt_money, user_label

    _check_out(args, ("parquet",))
    backend = open_target(args)
    try:
        rows = mod.itemized(backend, args.account, args.period, args.user)
    finally:
        backend.close()
    if args.format == "csv":
        if args.out:
            with _progress(len(rows)) as progress:
                task = progress.add_task("writing CSV", total=len(rows))
                path = mod.to_csv(rows, args.out, on_row=lambda: progress.advance(task))
            print(f"wrote {len(rows)} lines to {path}", file=sys.stderr)
        else:
            _csv_to_stdout(rows, mod.EXPORT_COLUMNS)
        return 0
    if args.format == "parquet":
        with _progress(len(rows)) as progress:
            progress.add_task("writing Parquet", total=None)
            path = mod.to_parquet(rows, args.out)
        print(f"wrote {len(rows)} lines to {path}", file=sys.stderr)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.account} — {args.period}" + (f" — {args.user}" if args.user else ""))
    for name, justify in (("start (UTC)", "left"), ("user", "left"), ("called", "left"),
                          ("destination", "left"), ("charged s", "right"), ("cost", "right"), ("v", "right")):
        table.add_column(name, justify=justify)
    for r in rows:
        table.add_row(r["start_time"].strftime("%Y-%m-%d %H:%M:%S"), user_label(r["service_user"]),
                      r["called_e164"], r["destination"], str(r["charged_s"]), str(r["cost"]),
                      str(r["rating_version"]))
    cur = mod.currencies(rows)
    table.caption = (f"{len(rows)} calls, total {mod.total(rows)}{' ' + cur if cur else ''} "
                     f"({fmt_money(mod.total(rows))})")
    Console().print(table)
    return 0


def cmd_summary(args) -> int:
    from sinks.reports import summary as mod
    from sinks.reports.html import user_label

    backend = open_target(args)
    try:
        result = mod.summary(backend, args.period)
    finally:
        backend.close()
    if args.format == "json":
        text = json.dumps(mod.to_jsonable(result), indent=2)
        if args.out:
            Path(args.out).write_text(text + "\n", encoding="utf-8")
        else:
            print(text)
        return 0
    if args.format == "csv":
        if args.out:
            mod.to_csv(result, args.out)
        else:
            _csv_to_stdout(mod.summary_rows(result), mod.ROW_COLUMNS)
        return 0
    if args.format == "parquet":
        _check_out(args, ("parquet",))
        mod.to_parquet(result, args.out)
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Spend {args.period or '(all periods)'} — total {result['total']}")
    for name, justify in (("account", "left"), ("period", "left"), ("calls", "right"), ("total", "right"),
                          ("users (share)", "left")):
        table.add_column(name, justify=justify)
    for acc in result["accounts"]:
        users = ", ".join(f"{user_label(u['service_user'])} {u['share'] * 100:.1f}%" for u in acc["users"])
        table.add_row(acc["account"], acc["period"], str(acc["calls"]), str(acc["total"]), users)
    console.print(table)
    if result["barring_history"]:
        bt = Table(title="Barring history")
        for name in ("time (UTC)", "account", "period", "old → new", "reason", "spend", "credit"):
            bt.add_column(name)
        for b in result["barring_history"]:
            bt.add_row(b["at_time"].strftime("%Y-%m-%d %H:%M:%S"), b["account"], b["period"],
                       f"{b['old_profile']} → {b['new_profile']}", b["reason"], str(b["spend"]), str(b["credit"]))
        console.print(bt)
    return 0


def cmd_html(args) -> int:
    from sinks.reports.html import write_run_report

    backend = open_target(args)
    try:
        path = write_run_report(backend, args.out, args.title)
    finally:
        backend.close()
    print(f"wrote {path}")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("report", help="itemised bills, spend summaries, HTML report")
    sub = parser.add_subparsers(dest="report_command", metavar="REPORT", required=True)

    p = sub.add_parser("itemized", help="one account's calls in a period, latest rating of each")
    p.add_argument("--account", required=True)
    p.add_argument("--period", required=True, help="e.g. 2026-11 or 2026-W47")
    p.add_argument("--user", default=None, help="only this service user's calls")
    p.add_argument("--format", choices=("table", "csv", "parquet"), default="table")
    p.add_argument("--out", default=None, help="file to write (required for parquet; csv defaults to stdout)")
    add_target_arg(p)
    p.set_defaults(func=cmd_itemized)

    p = sub.add_parser("summary", help="per-account totals, users' shares, breaches and barring history")
    p.add_argument("--period", default=None)
    p.add_argument("--format", choices=("table", "csv", "json", "parquet"), default="table")
    p.add_argument("--out", default=None, help="file to write instead of stdout")
    add_target_arg(p)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("html", help="self-contained HTML report with charts")
    p.add_argument("--out", required=True)
    p.add_argument("--title", default="cdrflow report")
    add_target_arg(p)
    p.set_defaults(func=cmd_html)
