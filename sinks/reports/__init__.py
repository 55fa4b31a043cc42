"""Reports over the landed ClickHouse tables: itemised bills, summaries, the HTML run report.

Shared helpers live here: exact money conversion and the CSV / Parquet writers the itemised
and summary exports both use.
"""
from __future__ import annotations

import csv
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

MICRO = Decimal("0.000001")


def money(micros: int | None) -> Decimal:
    """Integer micro-units → Decimal with exactly six places (never through float)."""
    if micros is None:
        micros = 0
    if isinstance(micros, bool) or not isinstance(micros, int):
        raise TypeError(f"money must be integer micro-units, got {type(micros).__name__}")
    # quantize, not just scaleb: 0 would otherwise print as '0E-6'.
    return Decimal(micros).scaleb(-6).quantize(MICRO)


def utc(value: Any) -> Any:
    """clickhouse-driver returns naive datetimes for DateTime('UTC'); chdb returns aware ones."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value


def csv_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    if value is None:
        return ""
    return value  # Decimal's str() is exact


def write_csv(rows: Iterable[dict], columns: Sequence[str], path: str | Path,
              on_row: Callable[[], None] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([csv_value(row.get(c)) for c in columns])
            if on_row:
                on_row()
    return path


def write_parquet(rows: list[dict], schema, path: str | Path) -> Path:
    """``schema`` is a pyarrow schema; Decimal columns are decimal128 so money stays exact."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = []
    for field in schema:
        values = [r.get(field.name) for r in rows]
        if pa.types.is_timestamp(field.type):
            values = [utc(v) for v in values]
        arrays.append(pa.array(values, type=field.type))
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), path)
    return path
