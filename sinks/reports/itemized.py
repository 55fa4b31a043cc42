"""Itemised bill: one account's (optionally one service user's) calls in a period, in time order."""
from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Callable

from sinks.reports import money, utc, write_csv, write_parquet
from sinks.reports import queries as Q

MONEY_FIELDS = {"rate_micros": "rate", "connect_fee_micros": "connect_fee", "cost_micros": "cost"}

# Export column order: identification, the call, then money.
EXPORT_COLUMNS = [
    "account", "service_user", "period", "cdr_key", "start_time", "end_time", "direction",
    "caller_e164", "presented_cli", "called_e164", "called_type", "destination", "prefix", "service",
    "disposition", "duration_s", "billsec_s", "charged_s", "rate", "connect_fee", "cost",
    "cost_micros", "currency", "tariff_plan", "tariff_version", "rating_version",
]


def itemized(backend, account: str, period: str, service_user: str | None = None) -> list[dict]:
    """Latest rating of every CDR of ``account`` in ``period``, oldest first.

    Money comes as Decimal (``rate``, ``connect_fee``, ``cost``) next to the exact integer
    ``cost_micros`` it was made from.
    """
    rows = backend.query(Q.itemized_sql(backend.database, account, period, service_user))
    out = []
    for values in rows:
        row = dict(zip(Q.ITEMIZED_COLUMNS, values))
        row["start_time"] = utc(row["start_time"])
        row["end_time"] = utc(row["end_time"])
        for src, dst in MONEY_FIELDS.items():
            row[dst] = money(int(row[src]))
        out.append(row)
    return out


def total(rows: list[dict]) -> Decimal:
    """Exact total of an itemised bill (summed as integers, converted once)."""
    return money(sum(int(r["cost_micros"]) for r in rows))


def parquet_schema():
    import pyarrow as pa

    ts = pa.timestamp("ms", tz="UTC")
    money_t = pa.decimal128(18, 6)
    types = {"start_time": ts, "end_time": ts, "duration_s": pa.int32(), "billsec_s": pa.int32(),
             "charged_s": pa.int32(), "rate": money_t, "connect_fee": money_t, "cost": money_t,
             "cost_micros": pa.int64(), "rating_version": pa.uint64()}
    return pa.schema([(c, types.get(c, pa.string())) for c in EXPORT_COLUMNS])


def to_csv(rows: list[dict], path: str | Path, on_row: Callable[[], None] | None = None) -> Path:
    return write_csv(rows, EXPORT_COLUMNS, path, on_row)


def to_parquet(rows: list[dict], path: str | Path) -> Path:
    return write_parquet(rows, parquet_schema(), path)


def currencies(rows: list[dict]) -> str:
    """The bill's currency ("EUR"), several joined by "/" (a plan changed currency mid-period:
    the total then mixes them, which the caption makes visible), "" for rows before migration 9."""
    return "/".join(sorted({r.get("currency") or "" for r in rows} - {""}))
