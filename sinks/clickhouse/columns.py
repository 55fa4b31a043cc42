"""Decoded Avro records → columnar lists for a ClickHouse insert.

One table spec per table is the single source of the column names: the DDL renders the kinds
into server-specific types (ddl.py) and ``to_columns`` fills the same names, so the insert and
the table cannot drift apart.

Kinds (rendered per server version in ddl.py):
  str, lc_str (low-cardinality string), nstr (nullable string), bytes (raw String),
  i32, i64, ni64 (nullable Int64), u64, bool (UInt8), time (timestamp from epoch millis),
  money (Decimal(18,6) from an integer micro-units field), strs (Array(String)).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from operator import itemgetter
from typing import Any, Callable

UTC = timezone.utc
# Decimal(18,6) holds at most 18 digits, i.e. |micros| < 10**18; beyond that the insert would
# overflow, so fail loudly here rather than land a wrong amount.
MONEY_LIMIT_MICROS = 10**18


REQUIRED = object()


@dataclass(frozen=True)
class Column:
    name: str
    kind: str
    source: str  # Avro field it is read from
    # A field added to the Avro schema later has a default there; rows built by older code paths
    # (subscriptions, adjustments, tests) may lack it, so the column takes the same default.
    default: Any = REQUIRED


def _c(name: str, kind: str, source: str | None = None, default: Any = REQUIRED) -> Column:
    return Column(name, kind, source or name, default)


TABLES: dict[str, tuple[Column, ...]] = {
    "cdr_rated": (
        _c("cdr_key", "str"), _c("account", "str"), _c("service_user", "str"), _c("period", "lc_str"),
        _c("switch_id", "lc_str"), _c("call_id", "str"), _c("leg", "lc_str"), _c("correlation_id", "str"),
        _c("direction", "lc_str"), _c("caller_e164", "str"), _c("presented_cli", "str"),
        _c("called_e164", "str"), _c("called_type", "lc_str"), _c("trunk", "lc_str"),
        _c("destination", "lc_str"), _c("prefix", "str"),
        _c("start_time", "time", "start_ms"), _c("end_time", "time", "end_ms"),
        _c("duration_s", "i32"), _c("billsec_s", "i32"), _c("answered", "bool"),
        _c("disposition", "lc_str"), _c("service", "lc_str"), _c("charged_s", "i32"),
        _c("rate_micros", "i64"), _c("rate", "money", "rate_micros"), _c("rate_unit_s", "i32"),
        _c("connect_fee_micros", "i64"), _c("connect_fee", "money", "connect_fee_micros"),
        _c("cost_nanos", "i64"), _c("cost_micros", "i64"), _c("cost", "money", "cost_micros"),
        _c("tariff_plan", "lc_str"), _c("tariff_version", "lc_str"), _c("rating_version", "u64"),
        _c("rated_at_ms", "i64"), _c("ingest_ms", "i64"),
        _c("source_partition", "i32"), _c("source_offset", "i64"),
        # CGRateS cost breakdown (streams.core.tariff.cgr_engine.spans_text): compact text, so
        # it lands the same on ClickHouse 18.16 and chdb; "" for native plans.
        _c("spans", "str", default=""),
        # ISO 4217 code of the plan that priced the row (streams/core/currency.py); "" before migration 9.
        _c("currency", "str", default=""),
        # Partial record number (0 = whole call) and the call's answer instant, so a rerate prices
        # a partial as its slice of the call (streams/core/partials.py); migration 10.
        _c("partial_seq", "i32", default=0), _c("answer_ms", "ni64", default=None),
    ),
    "cdr_rejected": (
        _c("reject_id", "str"), _c("reason", "lc_str"), _c("detail", "str"), _c("stage", "lc_str"),
        _c("source_topic", "lc_str"), _c("source_partition", "i32"), _c("source_offset", "i64"),
        _c("source_index", "i32"), _c("raw", "bytes"), _c("cdr_key", "nstr"), _c("account", "nstr"),
        _c("rejected_at", "time", "rejected_at_ms"),
    ),
    "barring_events": (
        _c("event_id", "str"), _c("account", "str"), _c("seq", "i64"), _c("period", "lc_str"),
        _c("old_profile", "lc_str"), _c("new_profile", "lc_str"), _c("spend_micros", "i64"),
        _c("credit_micros", "i64"), _c("soft_limit_micros", "i64"), _c("reason", "lc_str"),
        _c("cause_cdr_key", "nstr"), _c("at_time", "time", "at_ms"), _c("cause_ingest_ms", "ni64"),
        _c("max_rate_micros_per_min", "i64"), _c("allowed_destinations", "strs"),
        _c("correction", "bool"),
    ),
    "notifications": (
        _c("notification_id", "str"), _c("account", "str"), _c("service_user", "str"), _c("period", "lc_str"),
        _c("kind", "lc_str"), _c("spend_micros", "i64"), _c("threshold_micros", "i64"),
        _c("at_time", "time", "at_ms"), _c("cause_cdr_key", "nstr"), _c("correction", "bool"),
    ),
    "account_state_history": (
        _c("account", "str"), _c("period", "lc_str"), _c("profile", "lc_str"), _c("spend_micros", "i64"),
        _c("credit_micros", "i64"), _c("soft_limit_micros", "i64"), _c("seq", "i64"),
        _c("updated_time", "time", "updated_ms"), _c("max_rate_micros_per_min", "i64"),
        _c("allowed_destinations", "strs"),
        _c("currency", "str", default=""),           # the account's currency; migration 9
    ),
    # Messages the sink read but could not land (sinks/landing.py), kept with their raw bytes
    # instead of a log line; migration 11.
    "landing_errors": (
        _c("source_topic", "lc_str"), _c("source_partition", "i32"), _c("source_offset", "i64"),
        _c("reason", "lc_str"), _c("detail", "str"), _c("raw", "bytes"),
        _c("landed_at", "time", "landed_at_ms"),
    ),
}


def column_names(table: str) -> list[str]:
    return [c.name for c in TABLES[table]]


def micros_to_decimal(micros: int) -> Decimal:
    """Exact: an integer scaled by 10**-6, never through float."""
    if isinstance(micros, bool) or not isinstance(micros, int):
        raise TypeError(f"money must be integer micro-units, got {type(micros).__name__}")
    if abs(micros) >= MONEY_LIMIT_MICROS:
        raise ValueError(f"{micros} micro-units does not fit Decimal(18,6)")
    return Decimal(micros).scaleb(-6)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Epoch millis in [0, year 9999]: where the fast path below and ``_to_time_reference`` agree.
_FAST_TIME_MAX = 253_402_300_800_000


def to_time(value: Any, _epoch=_EPOCH, _td=timedelta) -> datetime:
    """fastavro gives timestamp-millis as an aware datetime; plain longs are epoch millis."""
    # Two time columns per rated row: fromtimestamp + replace was ~1 µs each, the sink's largest
    # per-row conversion (issue 16). Epoch + timedelta is exact integer arithmetic and gives the
    # same aware UTC datetime (tests/unit/test_columns_fast.py); other inputs take the old path.
    if type(value) is int and 0 <= value < _FAST_TIME_MAX:
        return _epoch + _td(0, 0, 0, value)
    return _to_time_reference(value)


def _to_time_reference(value: Any) -> datetime:
    """The general conversion (datetimes, negative or out-of-range millis, wrong types)."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"time must be epoch millis or datetime, got {type(value).__name__}")
    # Integer arithmetic keeps the millisecond exact (fromtimestamp(ms / 1000) can be off by 1 µs).
    seconds, millis = divmod(value, 1000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=millis * 1000)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"expected an integer, got {type(v).__name__}")
    return v


def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise TypeError(f"expected a string, got {type(v).__name__}")
    return v


def _nstr(v: Any) -> str | None:
    return None if v is None else _str(v)


def _bytes(v: Any) -> bytes:
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v)
    raise TypeError(f"expected bytes, got {type(v).__name__}")


def _nint(v: Any) -> int | None:
    return None if v is None else _int(v)


def _u64(v: Any) -> int:
    v = _int(v)
    if v < 0:
        raise ValueError(f"{v} is negative; ReplacingMergeTree versions are unsigned")
    return v


# Rates and fees repeat across rows: a converted value is reused (a Decimal is immutable). Only
# exact ints are memoised, so bools and other types still reach micros_to_decimal and its errors.
_MONEY: dict[int, Decimal] = {}
_MONEY_MAX = 4096


def _money(v: Any) -> Decimal:
    if type(v) is int:
        d = _MONEY.get(v)
        if d is None:
            d = micros_to_decimal(v)        # raises for out-of-range values, never memoised
            if len(_MONEY) >= _MONEY_MAX:
                _MONEY.clear()
            _MONEY[v] = d
        return d
    return micros_to_decimal(v)


CONVERT: dict[str, Callable[[Any], Any]] = {
    "str": _str, "lc_str": _str, "nstr": _nstr, "bytes": _bytes,
    "i32": _int, "i64": _int, "ni64": _nint, "u64": _u64,
    "bool": lambda v: 1 if v else 0,
    "time": to_time, "money": _money,
    "strs": lambda v: [_str(s) for s in v],
}


def to_columns(table: str, records: list[dict]) -> tuple[list[str], list[list]]:
    """Columnar lists in ``column_names(table)`` order. Raises KeyError/TypeError/ValueError
    naming the field on a record that does not fit (workers wrote these, so that is a bug).

    A column is first checked whole: one C-level pass for the set of its value types. When every
    value already is what the column takes, the list is used as it is; otherwise the column goes
    value by value through ``CONVERT``, which converts or raises exactly as before. Per value
    checks were ~40 % of the sink's CPU per row (issue 16); ``_to_columns_reference`` is the old
    path, and tests/unit/test_columns_fast.py holds the two equal."""
    spec = TABLES[table]
    names = [c.name for c in spec]
    columns: list[list] = []
    for col in spec:
        src = col.source
        try:
            if col.default is REQUIRED:
                try:
                    values = list(map(itemgetter(src), records))
                except KeyError:   # raise what the value-by-value path raises first
                    conv = CONVERT[col.kind]
                    values = [conv(r[src]) for r in records]
            else:
                dflt = col.default
                values = [r.get(src, dflt) for r in records]
            columns.append(_column(col.kind, values))
        except (KeyError, TypeError, ValueError) as exc:
            raise type(exc)(f"{table}.{col.name} (from {src!r}): {exc}") from None
    return names, columns


# Column kinds whose values pass unchanged when their types are all in the set (type(), not
# isinstance: a bool is no integer here, as in _int).
_AS_IS: dict[str, frozenset] = {
    "str": frozenset({str}), "lc_str": frozenset({str}), "nstr": frozenset({str, type(None)}),
    "bytes": frozenset({bytes}), "i32": frozenset({int}), "i64": frozenset({int}),
    "ni64": frozenset({int, type(None)}),
}


def _column(kind: str, values: list, _epoch=_EPOCH, _td=timedelta) -> list:
    types = set(map(type, values))
    allowed = _AS_IS.get(kind)
    if allowed is not None and types <= allowed:
        return values
    if types == _INT_ONLY and values:
        if kind == "u64" and min(values) >= 0:
            return values
        if kind == "time" and min(values) >= 0 and max(values) < _FAST_TIME_MAX:
            return [_epoch + _td(0, 0, 0, v) for v in values]
        if kind == "money":
            once = {v: _money(v) for v in set(values)}     # raises as _money does
            return [once[v] for v in values]
    conv = CONVERT[kind]
    return [conv(v) for v in values]


_INT_ONLY = frozenset({int})


def _to_columns_reference(table: str, records: list[dict]) -> tuple[list[str], list[list]]:
    """The value-by-value conversion ``to_columns`` must equal (kept for its test)."""
    spec = TABLES[table]
    names = [c.name for c in spec]
    columns: list[list] = []
    for col in spec:
        conv = CONVERT[col.kind]
        src = col.source
        try:
            if col.default is REQUIRED:
                columns.append([conv(r[src]) for r in records])
            else:
                dflt = col.default
                columns.append([conv(r.get(src, dflt)) for r in records])
        except (KeyError, TypeError, ValueError) as exc:
            raise type(exc)(f"{table}.{col.name} (from {src!r}): {exc}") from None
    return names, columns

# Partner commissions are rated records of their own (see sinks/landing.py TOPIC_TABLE).
TABLES["cdr_commissions"] = TABLES["cdr_rated"]
