"""The sink's fast per-row converters (issue 16, sink CPU per row) equal the general ones.

``to_time`` takes epoch + timedelta for plain millis in [0, year 9999] and the old
fromtimestamp path otherwise; money values are memoised. Both must give exactly what the old
conversion gave (value, type and time zone) or raise what it raised.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.clickhouse import columns as C
from tests.support.conftest_clickhouse import rated

LAST_MS = 253_402_300_799_999       # 9999-12-31 23:59:59.999 UTC


def _outcome(fn, value):
    try:
        out = fn(value)
    except Exception as exc:   # the error type is part of the behaviour compared
        return ("raises", type(exc))
    return ("value", out, type(out), getattr(out, "tzinfo", None), str(out))


@settings(max_examples=3000, deadline=None)
@given(st.one_of(st.integers(min_value=-10**16, max_value=LAST_MS + 10**6),
                 st.integers(min_value=1_700_000_000_000, max_value=1_900_000_000_000),
                 st.sampled_from([0, 1, 999, 1000, LAST_MS, LAST_MS + 1, -1, -1000, True, False]),
                 st.datetimes(), st.datetimes(timezones=st.just(timezone.utc)),
                 st.floats(allow_nan=False), st.none(), st.text(max_size=3)))
def test_to_time_equals_the_reference_conversion(value):
    assert _outcome(C.to_time, value) == _outcome(C._to_time_reference, value)


def test_to_time_fast_path_sample_over_the_range_and_its_edges():
    values = list(range(0, 5000)) + [LAST_MS - i for i in range(2000)]
    values += [1_795_995_724_481 + 7919 * i for i in range(20000)]
    for v in values:
        assert _outcome(C.to_time, v) == _outcome(C._to_time_reference, v), v
    assert C.to_time(1_793_000_000_123) == datetime(2026, 10, 26, 7, 33, 20, 123000, tzinfo=timezone.utc)


@settings(max_examples=2000, deadline=None)
@given(st.one_of(st.integers(min_value=-(10**18) - 5, max_value=10**18 + 5),
                 st.integers(min_value=-1000, max_value=1000),
                 st.sampled_from([True, False, 10**18, -(10**18), 10**18 - 1]),
                 st.floats(allow_nan=False), st.none(), st.decimals(allow_nan=False)))
def test_money_memo_equals_micros_to_decimal(value):
    # Twice: the second call is answered from the memo.
    for _ in range(2):
        got, want = _outcome(C._money, value), _outcome(C.micros_to_decimal, value)
        assert got == want
        if got[0] == "value":
            assert got[1].as_tuple() == want[1].as_tuple()    # same digits and exponent, not just equal


def test_money_memo_stays_bounded_and_never_confuses_bool_with_int():
    C._MONEY.clear()
    for v in range(C._MONEY_MAX + 10):
        assert C._money(v) == Decimal(v).scaleb(-6)
    assert len(C._MONEY) <= C._MONEY_MAX
    C._money(1)
    with pytest.raises(TypeError):
        C._money(True)


def test_rated_columns_equal_with_the_reference_converters(monkeypatch):
    recs = [rated(i, cost_micros=i * 1_007) for i in range(300)]
    for i, r in enumerate(recs[::2]):       # epoch millis as the decoder gives them, and datetimes
        r["start_ms"] = 1_793_000_000_000 + i * 61_001
        r["end_ms"] = r["start_ms"] + 61_000
    fast = C.to_columns("cdr_rated", recs)
    monkeypatch.setitem(C.CONVERT, "time", C._to_time_reference)
    monkeypatch.setitem(C.CONVERT, "money", C.micros_to_decimal)
    assert C.to_columns("cdr_rated", recs) == fast


# Values a column may meet: right types, near misses (bool for int, bytes for str, None), edges.
_ANY = st.one_of(st.integers(min_value=-(10**18) - 5, max_value=LAST_MS + 5), st.booleans(), st.none(),
                 st.text(max_size=3), st.binary(max_size=3), st.floats(allow_nan=False),
                 st.datetimes(timezones=st.just(timezone.utc)), st.lists(st.text(max_size=2), max_size=2))


def _columns_outcome(fn, table, records):
    try:
        names, cols = fn(table, records)
    except Exception as exc:   # which error, and on which column, is part of the behaviour
        return ("raises", type(exc), str(exc).split(":")[0])
    return ("value", names, [[(type(v), repr(v), getattr(v, "tzinfo", None)) for v in c] for c in cols])


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_to_columns_equals_the_value_by_value_conversion(data):
    # Mostly good rated rows with a few fields replaced by anything: each column either passes
    # whole (fast path) or is converted value by value, and the result must not tell them apart.
    rows = [dict(rated(i)) for i in range(data.draw(st.integers(0, 6)))]
    for row in rows:
        for field in data.draw(st.lists(st.sampled_from(sorted(row)), max_size=2)):
            if data.draw(st.booleans()):
                row[field] = data.draw(_ANY)
            else:
                row.pop(field, None)
    assert _columns_outcome(C.to_columns, "cdr_rated", rows) == _columns_outcome(C._to_columns_reference, "cdr_rated", rows)


def test_to_columns_fast_path_keeps_types_exact():
    rows = [rated(0), rated(1, cost_micros=1_234_567)]
    assert _columns_outcome(C.to_columns, "cdr_rated", rows) == _columns_outcome(C._to_columns_reference, "cdr_rated", rows)
    rows[1]["billsec_s"] = True          # a bool is no integer: refused, as before
    with pytest.raises(TypeError, match="billsec"):
        C.to_columns("cdr_rated", rows)
