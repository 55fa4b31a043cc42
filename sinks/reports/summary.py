"""Summary: totals per account, each service user's share of the bill, breaches and barring."""
from __future__ import annotations

import decimal
from decimal import Decimal
from pathlib import Path
from typing import Any

from sinks.reports import money, utc, write_csv, write_parquet
from sinks.reports import queries as Q

# Shares are display fractions, not money: twelve places is far below anything a chart or a
# percentage shows, and a fixed scale makes them exact, comparable and storable as decimal128.
SHARE_PLACES = Decimal("1e-12")
_CTX = decimal.Context(prec=40, rounding=decimal.ROUND_HALF_EVEN)

ROW_COLUMNS = ["account", "period", "service_user", "calls", "charged_s", "user_total",
               "account_total", "share"]


def share(part_micros: int, whole_micros: int) -> Decimal:
    """``part / whole`` as an exact 12-place Decimal; 0 when the whole bill is 0."""
    if whole_micros == 0:
        return Decimal(0).quantize(SHARE_PLACES)
    return _CTX.divide(Decimal(part_micros), Decimal(whole_micros)).quantize(SHARE_PLACES, context=_CTX)


def _barring_row(values: tuple) -> dict:
    row = dict(zip(Q.BARRING_COLUMNS, values))
    for name in ("spend", "credit", "soft_limit"):
        row[name] = money(int(row[f"{name}_micros"]))
    rate = int(row["max_rate_micros_per_min"])
    # -1 is the schema's "calls blocked"; no price applies then.
    row["max_rate_per_min"] = None if rate < 0 else money(rate)
    row["at_time"] = utc(row["at_time"])
    row["correction"] = bool(row["correction"])
    return row


def barring_history(backend, period: str | None = None, breaches_only: bool = False) -> list[dict]:
    rows = backend.query(Q.barring_history_sql(backend.database, period, breaches_only))
    return [_barring_row(r) for r in rows]


def rejects_by_reason(backend) -> list[dict]:
    return [{"reason": r, "stage": s, "count": int(n)}
            for r, s, n in backend.query(Q.rejects_by_reason_sql(backend.database))]


def top_destinations(backend, period: str | None = None, limit: int = 10) -> list[dict]:
    rows = backend.query(Q.top_destinations_sql(backend.database, period, limit))
    return [{"destination": d, "calls": int(c), "charged_s": int(s), "total": money(int(m)),
             "total_micros": int(m)} for d, c, s, m in rows]


def summary(backend, period: str | None = None) -> dict[str, Any]:
    """Everything an account manager asks about, for one period or (None) every period.

    ``accounts`` has one entry per (account, period), largest bill first, each with its
    ``users`` and their ``share`` of that bill; the shares of an account add up to 1 within
    the rounding of ``SHARE_PLACES``. Money is Decimal; ``*_micros`` keep the exact integers.
    """
    db = backend.database
    accounts: dict[tuple[str, str], dict] = {}
    for account, per, user, calls, charged, micros in backend.query(Q.user_totals_sql(db, period)):
        acc = accounts.setdefault((account, per), {
            "account": account, "period": per, "calls": 0, "charged_s": 0, "total_micros": 0, "users": []})
        acc["calls"] += int(calls)
        acc["charged_s"] += int(charged)
        acc["total_micros"] += int(micros)
        acc["users"].append({"service_user": user, "calls": int(calls), "charged_s": int(charged),
                             "total_micros": int(micros), "total": money(int(micros))})
    for acc in accounts.values():
        acc["total"] = money(acc["total_micros"])
        for u in acc["users"]:
            u["share"] = share(u["total_micros"], acc["total_micros"])
        acc["users"].sort(key=lambda u: (-u["total_micros"], u["service_user"]))
    ordered = sorted(accounts.values(), key=lambda a: (-a["total_micros"], a["account"], a["period"]))
    grand = sum(a["total_micros"] for a in ordered)
    history = barring_history(backend, period)
    return {
        "period": period,
        "accounts": ordered,
        "calls": sum(a["calls"] for a in ordered),
        "total_micros": grand,
        "total": money(grand),
        "threshold_breaches": [b for b in history if b["reason"] in Q.BREACH_REASONS],
        "barring_history": history,
        "top_destinations": top_destinations(backend, period),
        "rejects_by_reason": rejects_by_reason(backend),
    }


def summary_rows(result: dict) -> list[dict]:
    """One flat row per (account, period, service user): what the CSV and Parquet hold."""
    rows = []
    for acc in result["accounts"]:
        for u in acc["users"]:
            rows.append({"account": acc["account"], "period": acc["period"],
                         "service_user": u["service_user"], "calls": u["calls"],
                         "charged_s": u["charged_s"], "user_total": u["total"],
                         "account_total": acc["total"], "share": u["share"]})
    return rows


def parquet_schema():
    import pyarrow as pa

    # decimal128(38, 6): an account total is a sum of Decimal(18,6) and may need more digits.
    return pa.schema([("account", pa.string()), ("period", pa.string()), ("service_user", pa.string()),
                      ("calls", pa.int64()), ("charged_s", pa.int64()),
                      ("user_total", pa.decimal128(38, 6)), ("account_total", pa.decimal128(38, 6)),
                      ("share", pa.decimal128(24, 12))])


def to_csv(result: dict, path: str | Path) -> Path:
    return write_csv(summary_rows(result), ROW_COLUMNS, path)


def to_parquet(result: dict, path: str | Path) -> Path:
    return write_parquet(summary_rows(result), parquet_schema(), path)


def to_jsonable(value: Any) -> Any:
    """Decimal → string (exact), datetimes → ISO 8601; for ``--format json``."""
    from sinks.reports import csv_value

    if isinstance(value, dict):
        return {k: to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return csv_value(value)
