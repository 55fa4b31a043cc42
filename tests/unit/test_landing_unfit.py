"""A message that decodes but whose rows its table refuses must not hold the stream back: its rows
are isolated (bisecting messages, then rows), land in landing_errors as ``unfit_row`` with the
message's bytes, and everything else lands and commits. An outage is still retried as a whole."""
from __future__ import annotations

import pytest

from sinks import landing
from sinks.landing import is_unfit
from tests.unit.test_landing_errors import RecordingBackend
from tests.unit.test_landing_pure import Msg, make_sink


class RefusesKey(RecordingBackend):
    """A server that refuses any insert holding one cdr_key, as chdb words a data error."""

    def __init__(self, bad_key: str, down_after_refusals: int | None = None):
        super().__init__()
        self.bad_key, self.attempts, self.refusals = bad_key, 0, 0
        self.down_after_refusals = down_after_refusals

    def insert_columns(self, table, names, columns, settings=None):
        self.attempts += 1
        if "cdr_key" in names and self.bad_key in columns[names.index("cdr_key")]:
            self.refusals += 1
            if self.down_after_refusals is not None and self.refusals > self.down_after_refusals:
                self.down_after_refusals = None
                raise ConnectionError("ClickHouse went away")
            raise RuntimeError("Code: 321. DB::Exception: Value out of range of data type: while inserting")
        super().insert_columns(table, names, columns, settings)


def _feed(sink, consumer):
    for m in consumer.consume(100, 0):
        sink.add_message(m)


def test_a_refused_row_lands_in_landing_errors_and_the_rest_lands(monkeypatch):
    monkeypatch.setattr(landing, "backoff_s", lambda attempt: 0.0)
    # fake_decode: rated:N is a RatedBatch holding cdr k{N:06d} twice; k000003 is refused.
    backend = RefusesKey("k000003")
    msgs = [Msg("cdr.rated", 0, 10 + i, f"rated:{i}".encode()) for i in range(1, 7)]
    msgs.append(Msg("cdr.rejected", 1, 4, b"reject:9"))
    sink, consumer = make_sink(backend, msgs)
    _feed(sink, consumer)
    assert sink.flush(give_up_after_s=5)
    landed = sorted(r["cdr_key"] for r in backend.rows["db.cdr_rated"])
    assert set(landed) == {"k000001", "k000002", "k000004", "k000005", "k000006"}
    (err,) = backend.rows["db.landing_errors"]
    assert (err["source_topic"], err["source_partition"], err["source_offset"], err["reason"], err["raw"]) == \
        ("cdr.rated", 0, 13, "unfit_row", b"rated:3")
    assert "k000003" in err["detail"] and "Code: 321" in err["detail"]
    assert len(backend.rows["db.cdr_rejected"]) == 1
    # One commit past every message, the refused one included (it is kept in landing_errors).
    assert consumer.log == [("commit", [("cdr.rated", 0, 17), ("cdr.rejected", 1, 5)])]
    assert sink.counters()["unfit"] == 1 and sink.metrics.n_retries == 0
    # Bounded: 6 messages → a handful of inserts, not one per retry forever (hand count: 1 whole
    # attempt + bisection 3|3 → 1|2 → 1 refused … ≤ 2·1·log2(12) + 3).
    assert backend.attempts <= 12


def test_an_outage_during_isolation_retries_the_batch_and_still_lands_once(monkeypatch):
    monkeypatch.setattr(landing, "backoff_s", lambda attempt: 0.0)
    backend = RefusesKey("k000002", down_after_refusals=1)
    sink, consumer = make_sink(backend, [Msg("cdr.rated", 0, i, f"rated:{i}".encode()) for i in range(1, 5)])
    _feed(sink, consumer)
    assert sink.flush(give_up_after_s=5)
    assert sink.metrics.n_retries == 1          # the outage was retried, not taken for bad data
    assert {r["cdr_key"] for r in backend.rows["db.cdr_rated"]} >= {"k000001", "k000003", "k000004"}
    assert "k000002" not in {r["cdr_key"] for r in backend.rows["db.cdr_rated"]}
    assert [r["source_offset"] for r in backend.rows["db.landing_errors"]] == [2]


def test_an_outage_alone_is_never_taken_for_unfit_rows(monkeypatch):
    monkeypatch.setattr(landing, "backoff_s", lambda attempt: 0.0)

    class Down(RecordingBackend):
        def insert_columns(self, *a, **k):
            raise RuntimeError("Code: 210. DB::NetException: Connection refused")

    backend = Down()
    sink, consumer = make_sink(backend, [Msg("cdr.rated", 0, 0, b"rated:1")])
    _feed(sink, consumer)
    assert not sink.flush(give_up_after_s=0.05)
    assert backend.rows == {} and sink.counters()["unfit"] == 0
    assert not any(e[0] == "commit" for e in consumer.log)


@pytest.mark.parametrize("exc,unfit", [
    (ValueError("12 does not fit Decimal(18,6)"), True),
    (TypeError("expected an integer, got str"), True),
    (OverflowError("int too big to convert"), True),
    (RuntimeError("Code: 53. DB::Exception: Type mismatch"), True),
    (RuntimeError("Code: 349. DB::Exception: Cannot insert NULL value into a column"), True),
    (ConnectionError("reset by peer"), False),
    (TimeoutError(), False),
    (KeyError("db.cdr_rated has no column 'currency'"), False),     # a missing migration
    (RuntimeError("Code: 241. DB::Exception: Memory limit exceeded"), False),
    (RuntimeError("something else"), False),
])
def test_is_unfit_separates_data_errors_from_outages(exc, unfit):
    assert is_unfit(exc) is unfit
