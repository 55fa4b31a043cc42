"""Decoded Avro records → columns, exactly (no float anywhere in money)."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from sinks.clickhouse.columns import TABLES, column_names, micros_to_decimal, to_columns, to_time
from tests.support.conftest_clickhouse import barring, rated, rejected, state


def test_money_is_exact():
    assert micros_to_decimal(1) == Decimal("0.000001")
    assert micros_to_decimal(-1_234_567) == Decimal("-1.234567")
    assert micros_to_decimal(999_999_999_999_999_999) == Decimal("999999999999.999999")
    with pytest.raises(ValueError):
        micros_to_decimal(10**18)
    with pytest.raises(TypeError):
        micros_to_decimal(1.5)
    with pytest.raises(TypeError):
        micros_to_decimal(True)


def test_time_from_millis_and_datetime():
    assert to_time(1_793_000_000_123) == datetime(2026, 10, 26, 7, 33, 20, 123000, tzinfo=timezone.utc)
    assert to_time(0) == datetime(1970, 1, 1, tzinfo=timezone.utc)
    aware = datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert to_time(aware) is aware
    assert to_time(datetime(2026, 1, 1)).tzinfo is timezone.utc
    assert to_time(-1) == datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=timezone.utc)


def test_rated_columns():
    recs = [rated(1), rated(2, cost_micros=1_500_000, rating_version=3)]
    names, cols = to_columns("cdr_rated", recs)
    assert names == column_names("cdr_rated")
    by = dict(zip(names, cols))
    assert by["cost"] == [Decimal("0.001007"), Decimal("1.500000")]
    assert by["cost_micros"] == [1007, 1_500_000]
    assert by["rate"] == [Decimal("0.012345")] * 2
    assert by["answered"] == [1, 1]
    assert by["rating_version"] == [1, 3]
    assert by["start_time"][0] == recs[0]["start_ms"]
    assert all(len(c) == 2 for c in cols)
    assert not any(isinstance(v, float) for c in cols for v in c)


def test_other_tables():
    names, cols = to_columns("cdr_rejected", [rejected(1)])
    by = dict(zip(names, cols))
    assert by["raw"] == [bytes([0, 255, 1, 10, 39])]
    assert by["cdr_key"] == [None]
    assert by["rejected_at"] == [to_time(1_793_000_000_001)]
    names, cols = to_columns("barring_events", [barring(2)])
    by = dict(zip(names, cols))
    assert by["allowed_destinations"] == [["112", "999"]] and by["correction"] == [0]
    assert by["cause_ingest_ms"] == [1_793_000_000_000]
    names, cols = to_columns("account_state_history", [state(1)])
    assert dict(zip(names, cols))["updated_time"] == [to_time(1_793_000_000_001)]


def test_bad_record_names_the_field():
    bad = rated(1)
    bad["cost_micros"] = "12"
    with pytest.raises(TypeError, match=r"cdr_rated.cost_micros"):
        to_columns("cdr_rated", [bad])
    missing = rated(1)
    del missing["account"]
    with pytest.raises(KeyError, match="account"):
        to_columns("cdr_rated", [missing])
    with pytest.raises(ValueError, match="unsigned"):
        to_columns("cdr_rated", [rated(1, rating_version=-1)])


def test_empty_batch():
    names, cols = to_columns("cdr_rated", [])
    assert len(names) == len(TABLES["cdr_rated"]) and all(c == [] for c in cols)


def test_spec_sources_exist_in_avro_schemas():
    import schemas

    sources = {"cdr_rated": "cdr.v1.RatedCdr", "cdr_rejected": "cdr.v1.RejectedCdr",
               "barring_events": "account.v1.BarringEvent", "account_state_history": "account.v1.AccountState"}
    for table, schema in sources.items():
        fields = {f["name"] for f in schemas.load_raw(schema)["fields"]}
        used = {c.source for c in TABLES[table]}
        assert used <= fields, used - fields
        assert fields <= used, f"{schema} fields not landed: {fields - used}"
