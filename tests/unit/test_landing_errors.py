"""A message the sink cannot land goes to landing_errors with its bytes, never only to the log."""
from __future__ import annotations

from sinks.clickhouse import ddl
from sinks.clickhouse.columns import column_names
from tests.unit.test_landing_pure import FakeBackend, Msg, make_sink


class RecordingBackend(FakeBackend):
    def __init__(self):
        super().__init__()
        self.rows: dict[str, list[dict]] = {}

    def insert_columns(self, table, names, columns, settings=None):
        super().insert_columns(table, names, columns, settings)
        self.rows.setdefault(table, []).extend(dict(zip(names, r)) for r in zip(*columns))


def test_undecodable_and_unknown_type_messages_land_with_bytes_reason_and_offset():
    backend = RecordingBackend()
    junk = b"\x00\x00\x00\x00\x63not avro"
    sink, consumer = make_sink(backend, [Msg("cdr.rated", 3, 41, junk), Msg("cdr.rated", 3, 42, b"rated:1")])
    sink.decode = lambda v: ("cdr.v1.RatedBatch", {"records": []}) if v.startswith(b"rated") else \
        (_ for _ in ()).throw(ValueError("bad body"))
    for m in consumer.consume(10, 0):
        sink.add_message(m)
    # A record type the sink has no table for (e.g. a newer worker's) is kept too.
    sink.decode = lambda v: ("cdr.v9.Future", {})
    sink.add_message(Msg("account.barring", 0, 7, b"future"))
    assert sink.flush()
    errors = backend.rows["db.landing_errors"]
    got = sorted((r["source_topic"], r["source_partition"], r["source_offset"], r["reason"], r["raw"])
                 for r in errors)
    assert got == [("account.barring", 0, 7, "unknown_schema", b"future"),
                   ("cdr.rated", 3, 41, "undecodable", junk)]
    assert "bad body" in next(r["detail"] for r in errors if r["source_offset"] == 41)
    # Offsets move past them only together with the rows: one commit after every insert.
    assert consumer.log == [("commit", [("account.barring", 0, 8), ("cdr.rated", 3, 43)])]
    assert sink.counters()["undecodable"] == 2


def test_reject_error_reason_is_kept():
    from streams.core.reasons import Reason, RejectError

    backend = RecordingBackend()
    sink, consumer = make_sink(backend, [Msg("cdr.rejected", 0, 0, b"\x07xx")])

    def decode(v):
        raise RejectError(Reason.BAD_MAGIC, "first byte is 0x07")

    sink.decode = decode
    sink.add_message(consumer.consume(1, 0)[0])
    assert sink.flush()
    assert [r["reason"] for r in backend.rows["db.landing_errors"]] == ["bad_magic"]


def test_migration_11_creates_the_table_without_if_not_exists_alters():
    numbers = [n for n, _name, _b in ddl.MIGRATIONS]
    assert numbers[-1] == 11 and numbers.count(11) == 1
    for version in ((18, 16, 1), (26, 9, 2)):
        (sql,) = dict((n, b) for n, _name, b in ddl.MIGRATIONS)[11]("db", version)
        assert sql.startswith("CREATE TABLE IF NOT EXISTS `db`.`landing_errors`")
        assert all(c in sql for c in column_names("landing_errors"))
