"""The sink lands undecodable messages in landing_errors on chdb 26.x and clickhouse-server 18.16:
the real Sink, real codecs.decode, real migrations; only the Kafka consumer is a list."""
from __future__ import annotations

import pytest

from sinks.clickhouse import ddl
from sinks.landing import Sink
from streams import codecs
from tests.support.conftest_clickhouse import ch_backend, chdb_backend, clickhouse_url, native_backend, rejected  # noqa: F401
from tests.unit.test_landing_pure import FakeConsumer, Msg

pytestmark = pytest.mark.integration


def test_undecodable_messages_land_once_with_their_bytes(ch_backend):
    db = ch_backend.database
    # A database of the previous release (migrations 1..10): migration 11 adds the table.
    ch_backend.execute(ddl.create_database(db))
    ch_backend.execute(ddl.create_schema_migrations(db))
    ddl.apply_migrations(ch_backend, db, [m for m in ddl.MIGRATIONS if m[0] < 11])
    assert ddl.migrate(ch_backend) == [11]

    good = codecs.encode("cdr.v1.RejectedCdr", rejected(1))
    bad_magic = b"\x07" + good[1:]
    truncated = good[:9]
    msgs = [Msg("cdr.rejected", 0, 10, good), Msg("cdr.rejected", 0, 11, bad_magic),
            Msg("cdr.rejected", 1, 5, truncated)]
    for _replay in range(2):   # a crash before the commit re-reads the same offsets: still one row each
        consumer = FakeConsumer(msgs)
        sink = Sink(consumer, ch_backend, max_rows=100, max_age_s=0.0)
        for m in consumer.consume(10, 0):
            sink.add_message(m)
        assert sink.flush()
        assert sink.metrics.n_undecodable == 2

    # hex(): chdb hands String columns back through Arrow as UTF-8 text, which raw bytes are not.
    rows = ch_backend.query(f"SELECT source_topic, source_partition, source_offset, reason, hex(raw) "
                            f"FROM {ddl.table_ref(db, 'landing_errors')} FINAL "
                            f"ORDER BY source_partition, source_offset")
    assert [(str(t), int(p), int(o), str(r), bytes.fromhex(h)) for t, p, o, r, h in rows] == [
        ("cdr.rejected", 0, 11, "bad_magic", bad_magic), ("cdr.rejected", 1, 5, "undecodable", truncated)]
    assert ddl.landed_counts(ch_backend)["cdr_rejected"] == 1
