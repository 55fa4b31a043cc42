"""Issue 12: every rated record keeps its CGRateS cost breakdown (``cdr_rated.spans``).

The breakdown goes Rating.spans -> charge.rated_record -> Avro RatedCdr -> sink columns -> the
``spans`` String column (migration 8 adds it to tables created before). Expected texts are
written out by hand from the fixture's rates (tests/fixtures/cgrates/shape_tutorial).
"""
from __future__ import annotations

import io
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

import schemas

from sinks.clickhouse import ddl
from sinks.clickhouse.columns import column_names, to_columns
from sinks.landing import records_of
from streams import codecs
from streams.core.charge import rated_record
from streams.core.tariff import parse_tariff_text
from streams.core.tariff.cgr_engine import spans_text
from streams.core.tariff.cgrates import import_cgrates_dir, to_yaml
from streams.core.tariff.model import Rating
from tests.support.conftest_clickhouse import rated

SHAPES = Path(__file__).resolve().parents[1] / "fixtures" / "cgrates"
T0 = int(datetime(2026, 5, 5, 10, tzinfo=timezone.utc).timestamp()) * 1000   # 1777975200000


@pytest.fixture(scope="module")
def tut():
    return parse_tariff_text(to_yaml(import_cgrates_dir(SHAPES / "shape_tutorial")), "tut.yaml", "yaml")


def cdr(called: str, billsec: int, at: int, **kw) -> dict:
    base = {"cdr_key": "k1", "account": "a1", "switch_id": "sw", "call_id": "c1", "leg": "A",
            "correlation_id": "c1", "direction": "outbound", "caller_e164": "+3120", "presented_cli": "+3120",
            "called_e164": called, "called_type": "geographic", "start_ms": at, "answer_ms": at,
            "end_ms": at + billsec * 1000, "duration_s": billsec, "billsec_s": billsec,
            "answered": billsec > 0, "disposition": "ANSWERED" if billsec else "NO ANSWER"}
    return {**base, **kw}


# RP_2001 -> DST_2002 -> RT_25: fee 0.5; group 0 = 0.25 per 60 s in 60 s increments, group 1 from
# 60 s = 0.12 per 60 s in 1 s increments. 90 s: span [0,60) 1 x 0.25; span [60,90) 0.12*30/60 = 0.06
# in 30 increments of 0.002. Fee on the first span only. fee + spans = 0.81 = cost_nanos.
TUT_90S = f"{T0},60,0.25,60,60,1,0.5,0.25;{T0 + 60_000},30,0.12,60,1,30,0,0.06"


def test_voice_breakdown_text(tut):
    r = tut.rate(cdr("2002", 90, T0), plan="shop.test:call:2001")
    assert spans_text(r) == TUT_90S
    assert r.cost_nanos == 810_000_000


def test_sms_breakdown_is_in_units(tut):
    # RT_TXT 0.03 per unit, 3 SMS = 0.09, no fee: amounts are usage units, not seconds.
    r = tut.rate(cdr("2002", 0, T0, service="sms", usage=3), plan="shop.test:sms:*any")
    assert spans_text(r, "sms") == f"{T0},3,0.03,1,1,3,0,0.09"


def test_native_plan_and_unanswered_have_no_breakdown(tut):
    native = Rating(1000, 1, 1, 1, 60, 0, "NL", "31", "p", "v1")
    assert spans_text(native) == ""
    assert spans_text(tut.rate(cdr("2002", 0, T0), plan="shop.test:call:2001")) == ""


def test_rated_record_carries_spans_through_avro_to_the_column(tut):
    r = tut.rate(cdr("2002", 90, T0), plan="shop.test:call:2001")
    rec = rated_record(cdr("2002", 90, T0), r, "2026-05", 1)
    assert rec["spans"] == TUT_90S
    name, back = codecs.decode(codecs.encode_batch("cdr.v1.RatedBatch", [rec]))
    rows = records_of(name, back)
    assert rows[0]["spans"] == TUT_90S
    names, cols = to_columns("cdr_rated", rows)
    assert cols[names.index("spans")] == [TUT_90S]
    names, cols = to_columns("cdr_commissions", rows)
    assert cols[names.index("spans")] == [TUT_90S]


def test_rows_without_the_field_land_empty():
    # Records built by code paths that predate the field (and older Avro writers) land "".
    old = rated(1)
    old.pop("spans", None)
    names, cols = to_columns("cdr_rated", [old])
    assert cols[names.index("spans")] == [""]
    # A record written with the previous schema (schemas/history) reads back with spans "".
    prev = json.loads((Path(schemas.SCHEMA_DIR) / "history" / "cdr.v1.RatedCdr.1.avsc").read_text())
    rec = rated_record(cdr("2002", 0, T0), Rating(0, 0, 0, 0, 0, 0, "D", "2", "p", "v"), "2026-05", 1)
    rec.pop("spans")
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(prev), rec)
    buf.seek(0)
    back = schemaless_reader(buf, parse_schema(prev), parse_schema(schemas.load_raw("cdr.v1.RatedCdr")))
    assert back["spans"] == "" and back["cdr_key"] == "k1"


@pytest.mark.parametrize("version,guard", [((18, 16, 1), ""), ((26, 9, 2), "IF NOT EXISTS ")])
def test_spans_column_ddl(version, guard):
    # currency: migration 9; partial_seq, answer_ms: migration 10
    assert ["spans", "currency", "partial_seq", "answer_ms"] == column_names("cdr_rated")[-4:]
    # The current CREATE has the column; migrations 1 and 7 keep sending their original SQL
    # (without it) and migration 8 adds it, on old databases and fresh ones alike.
    assert "    spans String,\n" in ddl.create_cdr_rated("db", version)
    assert "    spans String,\n" in ddl.create_cdr_commissions("db", version)
    sql = {n: build("db", version) for n, _name, build in ddl.MIGRATIONS}
    assert "spans" not in sql[1][0] and "spans" not in sql[7][0]
    assert sql[1][0] == ddl.create_cdr_rated("db", version).replace(",\n    spans String", "").replace(
        ",\n    currency String", "").replace(",\n    partial_seq Int32,\n    answer_ms Nullable(Int64)", "")
    assert sql[8] == [
        f"ALTER TABLE `db`.`cdr_rated` ADD COLUMN {guard}spans String DEFAULT ''",
        f"ALTER TABLE `db`.`cdr_commissions` ADD COLUMN {guard}spans String DEFAULT ''",
    ]
