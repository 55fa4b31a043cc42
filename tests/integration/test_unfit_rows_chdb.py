"""Rows that decode but do not fit their ClickHouse columns, on chdb with the real codecs and
migrations: before, the batch retried forever and nothing after it landed; now the refused rows'
messages land in landing_errors (unfit_row, raw bytes) and the rest lands and commits."""
from __future__ import annotations

from sinks import landing
from sinks.clickhouse import ddl
from sinks.landing import Sink
from streams import codecs
from tests.support.conftest_clickhouse import chdb_backend, rated, rejected  # noqa: F401
from tests.unit.test_landing_pure import FakeConsumer, Msg

import pytest
from datetime import datetime

pytestmark = pytest.mark.integration


def _wire(rec: dict) -> dict:
    # The fixtures carry datetimes where the Avro schemas carry epoch milliseconds (longs).
    return {k: int(v.timestamp() * 1000) if isinstance(v, datetime) else v for k, v in rec.items()}


def test_unfit_rows_land_in_landing_errors_and_the_rest_lands_once(chdb_backend, monkeypatch):
    # Bounded: no backoff sleeps, and flush gives up after 20 s instead of retrying forever.
    monkeypatch.setattr(landing, "backoff_s", lambda attempt: 0.0)
    db = chdb_backend.database
    ddl.migrate(chdb_backend)
    # Decimal(18, 6) holds under 10**12 currency units = 10**18 micro-units; Avro long holds more.
    too_rich = _wire({**rated(2, cost_micros=2 * 10**18), "cost_nanos": 2 * 10**18})
    negative_version = _wire(rated(5, rating_version=-1))   # rating_version is UInt64
    msgs = [
        Msg("cdr.rated", 0, 100,
            codecs.encode_batch("cdr.v1.RatedBatch", [_wire(rated(1)), too_rich, _wire(rated(3))])),
        Msg("cdr.rated", 0, 101, codecs.encode_batch("cdr.v1.RatedBatch", [_wire(rated(4))])),
        Msg("cdr.rated", 1, 7, codecs.encode("cdr.v1.RatedCdr", negative_version)),
        Msg("cdr.rated", 1, 8, codecs.encode_batch("cdr.v1.RatedBatch", [_wire(rated(6)), _wire(rated(7))])),
        Msg("cdr.rejected", 0, 3, codecs.encode("cdr.v1.RejectedCdr", _wire(rejected(1)))),
    ]
    for _replay in range(2):     # a crash before the commit re-reads the same offsets: still once each
        consumer = FakeConsumer(msgs)
        sink = Sink(consumer, chdb_backend, max_rows=1000, max_age_s=0.0)
        for m in consumer.consume(10, 0):
            sink.add_message(m)
        assert sink.flush(give_up_after_s=20)
        assert consumer.log[-1] == ("commit", [("cdr.rated", 0, 102), ("cdr.rated", 1, 9), ("cdr.rejected", 0, 4)])
        assert sink.counters()["unfit"] == 2

    keys = [k for (k,) in chdb_backend.query(
        f"SELECT cdr_key FROM {ddl.table_ref(db, 'cdr_rated')} FINAL ORDER BY cdr_key")]
    # Everything that fits lands, the good rows of the message that held an unfit one included.
    assert keys == ["k000001", "k000003", "k000004", "k000006", "k000007"]
    rows = chdb_backend.query(
        f"SELECT source_topic, source_partition, source_offset, reason, detail, hex(raw) "
        f"FROM {ddl.table_ref(db, 'landing_errors')} FINAL ORDER BY source_partition, source_offset")
    got = [(str(t), int(p), int(o), str(r), bytes.fromhex(h)) for t, p, o, r, _d, h in rows]
    assert got == [("cdr.rated", 0, 100, "unfit_row", msgs[0].value()),
                   ("cdr.rated", 1, 7, "unfit_row", msgs[2].value())]
    details = [str(d) for *_x, d, _h in rows]
    assert "k000002" in details[0] and "Decimal(18,6)" in details[0]
    assert "k000005" in details[1] and "negative" in details[1]
    # The stored bytes decode again to the refused record: a replay after a fix has what it needs.
    assert codecs.decode(got[0][4])[1]["records"][1]["cost_micros"] == 2 * 10**18
    assert ddl.landed_counts(chdb_backend)["cdr_rejected"] == 1
