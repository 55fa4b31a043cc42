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
