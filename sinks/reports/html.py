"""The self-contained HTML run report (inline CSS, inline SVG): what ``make run`` writes."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from html import escape
from pathlib import Path
from typing import Any

from sinks.reports import money, utc
from sinks.reports import queries as Q
from sinks.reports import svg
from sinks.reports.summary import barring_history, rejects_by_reason, share, top_destinations

TOP_ACCOUNTS_BAR = 30
TOP_ACCOUNTS_PIE = 6
# Hourly bars up to four days of calls, daily beyond that: keeps the chart readable.
MAX_HOURLY_BUCKETS = 96

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1100px;color:#222;background:#fafafa;padding:0 16px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.meta{color:#666;font-size:13px;margin-bottom:16px}
.cards{display:flex;gap:12px;flex-wrap:wrap;margin:12px 0}
.card{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:10px 14px;min-width:140px}
.card .v{font-size:20px;font-weight:600}.card .k{font-size:12px;color:#666}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:6px 0;width:100%}
th,td{border:1px solid #e3e3e3;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f3f7;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fcfcfc}
.pies{display:flex;flex-wrap:wrap;gap:18px}.pies figure{margin:0;background:#fff;border:1px solid #e3e3e3;
border-radius:6px;padding:8px}
.chart-box{background:#fff;border:1px solid #e3e3e3;border-radius:6px;padding:8px;overflow-x:auto}
.note{color:#777;font-size:12px}.empty{color:#888;font-style:italic}
.tag{display:inline-block;padding:0 6px;border-radius:3px;font-size:12px;background:#eee}
.tag.blocked{background:#f8d7da}.tag.low_credit{background:#fff3cd}.tag.normal{background:#d4edda}
"""

CENT = Decimal("0.01")


def fmt_money(value: Decimal | None) -> str:
    # Display rounding only (half-even, 2 places); exports keep all six places.
    if value is None:
        return "—"
    return f"{value.quantize(CENT, rounding=ROUND_HALF_EVEN):,}"


def user_label(user: str) -> str:
    return user if user else "(account)"


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None,
           empty: str = "none") -> str:
    if not rows:
        return f'<p class="empty">{escape(empty)}</p>'
    numeric = numeric or set()
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, cell in enumerate(row):
            cls = ' class="n"' if i in numeric else ""
            # Cells that are already markup (charts, tags) are passed as ("html", markup).
            text = cell[1] if isinstance(cell, tuple) and cell[:1] == ("html",) else escape(str(cell))
            cells.append(f"<td{cls}>{text}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _kv_value(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str, sort_keys=True)
    if isinstance(value, datetime):
        return utc(value).isoformat()
    return str(value)


def _profile_tag(profile: str) -> tuple[str, str]:
    return ("html", f'<span class="tag {escape(profile)}">{escape(profile)}</span>')


def _spend_over_time(backend) -> tuple[str, list[tuple[str, Decimal]]]:
    db = backend.database
    rows = backend.query(Q.spend_over_time_sql(db, "hour"))
    bucket = "hour"
    if len(rows) > MAX_HOURLY_BUCKETS:
        rows = backend.query(Q.spend_over_time_sql(db, "day"))
        bucket = "day"
    fmt = "%m-%d %H:00" if bucket == "hour" else "%Y-%m-%d"
    return bucket, [(datetime.fromtimestamp(int(t), timezone.utc).strftime(fmt), money(int(m)))
                    for t, _, m in rows]


def _account_pies(backend) -> list[str]:
    # Shares over all periods in the target: the run report shows one run, usually one period.
    per_account: dict[str, dict[str, int]] = {}
    for account, _period, user, _calls, _charged, micros in backend.query(Q.user_totals_sql(backend.database)):
        users = per_account.setdefault(account, {})
        users[user] = users.get(user, 0) + int(micros)
    top = sorted(per_account.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))[:TOP_ACCOUNTS_PIE]
    figures = []
    for account, users in top:
        whole = sum(users.values())
        items = sorted(users.items(), key=lambda kv: (-kv[1], kv[0]))
        chart = svg.pie_chart([(user_label(u), money(m)) for u, m in items], title=account,
                              value_label=lambda v: fmt_money(v))
        top_user, top_micros = items[0]
        caption = (f"bill {fmt_money(money(whole))}; largest: {escape(user_label(top_user))} "
                   f"{share(top_micros, whole) * 100:.1f}%")
        figures.append(f"<figure>{chart}<figcaption class=\"note\">{caption}</figcaption></figure>")
    return figures


def render_run_report(backend, title: str, summary: dict | None = None) -> str:
    db = backend.database
    (calls, total_micros), = backend.query(Q.totals_sql(db)) or [(0, 0)]
    calls, total_micros = int(calls or 0), int(total_micros or 0)
    by_account = [(a, money(int(m))) for a, m, _ in backend.query(Q.spend_by_account_sql(db, limit=TOP_ACCOUNTS_BAR))]
    bucket, over_time = _spend_over_time(backend)
    bars = barring_history(backend)
    rejects = rejects_by_reason(backend)
    dests = top_destinations(backend)
    n_rejects = sum(r["count"] for r in rejects)
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")

    out = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
           f"<style>{CSS}</style></head><body>",
           f"<h1>{escape(title)}</h1><div class=\"meta\">generated {now} from "
           f"{escape(backend.kind)} database <code>{escape(db)}</code></div>"]
    if summary:
        out.append("<h2>Run summary</h2>")
        out.append(_table(["key", "value"], [[k, _kv_value(v)] for k, v in summary.items()]))
    out.append("<div class=\"cards\">"
               f"<div class=\"card\"><div class=\"v\">{calls:,}</div><div class=\"k\">rated CDRs</div></div>"
               f"<div class=\"card\"><div class=\"v\">{fmt_money(money(total_micros))}</div>"
               f"<div class=\"k\">total spend</div></div>"
               f"<div class=\"card\"><div class=\"v\">{len(bars):,}</div><div class=\"k\">barring events</div></div>"
               f"<div class=\"card\"><div class=\"v\">{n_rejects:,}</div><div class=\"k\">rejected records</div></div>"
               "</div>")
    out.append(f"<h2>Spend by account (top {TOP_ACCOUNTS_BAR})</h2><div class=\"chart-box\">"
               + svg.hbar_chart(by_account, value_label=fmt_money, width=900) + "</div>")
    out.append(f"<h2>Users' share of the bill (top {TOP_ACCOUNTS_PIE} accounts)</h2>")
    pies = _account_pies(backend)
    out.append("<div class=\"pies\">" + "".join(pies) + "</div>" if pies else '<p class="empty">no spend</p>')
    out.append(f"<h2>Spend over time (per {bucket}, UTC)</h2><div class=\"chart-box\">"
               + svg.column_chart(over_time, value_label=fmt_money) + "</div>")
    out.append("<h2>Barring events</h2>")
    out.append(_table(
        ["account", "period", "old → new profile", "reason", "spend", "credit", "time (UTC)"],
        [[b["account"], b["period"],
          ("html", f"{_profile_tag(b['old_profile'])[1]} → {_profile_tag(b['new_profile'])[1]}"),
          b["reason"] + (" (correction)" if b["correction"] else ""),
          fmt_money(b["spend"]), fmt_money(b["credit"]),
          b["at_time"].strftime("%Y-%m-%d %H:%M:%S") if isinstance(b["at_time"], datetime) else b["at_time"]]
         for b in bars], numeric={4, 5}, empty="no barring events"))
    out.append("<h2>Rejects by reason</h2>")
    out.append(_table(["reason", "stage", "count"], [[r["reason"], r["stage"], f"{r['count']:,}"] for r in rejects],
                      numeric={2}, empty="no rejected records"))
    out.append("<h2>Top destinations</h2>")
    out.append(_table(["destination", "calls", "charged minutes", "spend"],
                      [[d["destination"], f"{d['calls']:,}", f"{Decimal(d['charged_s']) / 60:,.1f}",
                        fmt_money(d["total"])] for d in dests], numeric={1, 2, 3}, empty="no calls"))
    out.append("<p class=\"note\">Each CDR counts once at its latest rating version. Amounts are shown "
               "rounded to 2 places; CSV and Parquet exports carry the exact 6-place values.</p>")
    out.append("</body></html>")
    return "\n".join(out)


def write_run_report(backend, path: str | Path, title: str, summary: dict | None = None) -> Path:
    """Write the HTML run report to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render_run_report(backend, title, summary)
    tmp = path.with_name(path.name + ".tmp")
    # Write then rename: a browser refreshing the report never sees half a file.
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path
