"""Landing logic without Kafka or ClickHouse: dedupe, tokens, offsets, retry-before-commit."""
from __future__ import annotations

import pytest

from sinks import landing
from sinks.landing import Batch, Sink, commit_offsets, dedup_token, dedupe, records_of
from tests.support.conftest_clickhouse import barring, rated, rejected, state


def test_records_of_flattens_rated_batch():
    assert records_of("cdr.v1.RatedBatch", {"records": [rated(1), rated(2)]}) == [rated(1), rated(2)]
    assert records_of("cdr.v1.RejectedCdr", rejected(1)) == [rejected(1)]


def test_dedupe_keeps_highest_rating_version():
    out = dedupe("cdr_rated", [rated(1, rating_version=2, cost_micros=5), rated(1, rating_version=1),
                               rated(2), rated(2)])
    assert [(r["cdr_key"], r["rating_version"], r["cost_micros"]) for r in out] == [
        ("k000001", 2, 5), ("k000002", 1, 2007)]
    assert len(dedupe("cdr_rejected", [rejected(1), rejected(1), rejected(2)])) == 2
    assert len(dedupe("barring_events", [barring(1), barring(1, "acc2"), barring(1)])) == 2
    assert len(dedupe("account_state_history", [state(3), state(3)])) == 1


def test_token_is_stable_and_content_sensitive():
    ranges = {("cdr.rated", 1): (10, 20), ("cdr.rated", 0): (5, 9)}
    a = dedup_token("cdr_rated", ranges, [rated(1), rated(2)])
    assert a == dedup_token("cdr_rated", dict(reversed(list(ranges.items()))), [rated(2), rated(1)])
    assert a.startswith("cdr_rated|cdr.rated:0:5-9,cdr.rated:1:10-20|")
    # Same offsets, different content (e.g. a restarted in-memory broker): a different token.
    assert a != dedup_token("cdr_rated", ranges, [rated(1), rated(3)])
    assert a != dedup_token("cdr_rated", ranges, [rated(1), rated(2, rating_version=2)])


def test_commit_offsets_are_next_to_read():
    assert commit_offsets({("t", 1): (3, 7), ("t", 0): (0, 0)}) == [("t", 0, 1), ("t", 1, 8)]


def test_batch_due_on_count_or_age():
    b = Batch()
    assert not b.due(100.0, 10, 0.5)
    b.note_offset("cdr.rated", 0, 4, now=100.0)
    b.note_offset("cdr.rated", 0, 2, now=100.1)
    assert b.ranges == {("cdr.rated", 0): (2, 4)}
    assert not b.due(100.2, 10, 0.5)
    assert b.due(100.6, 10, 0.5)
    b.add("cdr_rated", [rated(i) for i in range(10)])
    assert b.due(100.2, 10, 0.5)


# ---- the flush contract with fakes -------------------------------------------------------

class Msg:
    def __init__(self, topic, partition, offset, value):
        self._t, self._p, self._o, self._v = topic, partition, offset, value

    def topic(self): return self._t
    def partition(self): return self._p
    def offset(self): return self._o
    def value(self): return self._v
    def error(self): return None


class FakeConsumer:
    def __init__(self, messages=()):
        self.messages = list(messages)
        self.log: list = []

    def subscribe(self, topics, on_revoke=None): self.log.append(("subscribe", tuple(topics)))
    def assignment(self): return ["tp0"]
    def pause(self, tps): self.log.append(("pause",))
    def resume(self, tps): self.log.append(("resume",))
    def poll(self, timeout): return None

    def consume(self, num_messages, timeout):
        out, self.messages = self.messages[:num_messages], self.messages[num_messages:]
        return out

    def commit(self, offsets, asynchronous):
        assert asynchronous is False
        self.log.append(("commit", [(o.topic, o.partition, o.offset) for o in offsets]))


class FakeBackend:
    kind = "fake"
    database = "db"

    def __init__(self, failures=0, version=(26, 9, 2)):
        self.failures = failures
        self.inserts: list = []
        self._version = version

    def version(self): return self._version

    def insert_columns(self, table, names, columns, settings=None):
        if self.failures:
            self.failures -= 1
            raise ConnectionError("ClickHouse is down")
        self.inserts.append((table, len(columns[0]), dict(settings or {})))


def fake_decode(value: bytes):
    kind, _, n = value.partition(b":")
    if kind == b"rated":
        return "cdr.v1.RatedBatch", {"records": [rated(int(n)), rated(int(n))]}
    if kind == b"reject":
        return "cdr.v1.RejectedCdr", rejected(int(n))
    raise ValueError("garbage")


def make_sink(backend, messages):
    consumer = FakeConsumer(messages)
    sink = Sink(consumer, backend, max_rows=1000, max_age_s=0.0, decode=fake_decode)
    return sink, consumer


def test_insert_then_commit_and_undecodable_is_counted(monkeypatch):
    backend = FakeBackend()
    sink, consumer = make_sink(backend, [Msg("cdr.rated", 0, 5, b"rated:1"), Msg("cdr.rated", 0, 6, b"\x00junk"),
                                         Msg("cdr.rejected", 2, 9, b"reject:3"), Msg("account.state", 0, 1, None)])
    for m in consumer.consume(10, 0):
        sink.add_message(m)
    assert sink.flush()
    # The undecodable message lands in landing_errors (tests/unit/test_landing_errors.py), not dropped.
    assert [(t, n) for t, n, _ in backend.inserts] == [("db.cdr_rated", 1), ("db.cdr_rejected", 1),
                                                       ("db.landing_errors", 1)]
    assert backend.inserts[0][2]["async_insert"] == 0
    assert backend.inserts[0][2]["insert_deduplication_token"].startswith("cdr_rated|cdr.rated:0:5-6|")
    assert consumer.log == [("commit", [("account.state", 0, 2), ("cdr.rated", 0, 7), ("cdr.rejected", 2, 10)])]
    assert sink.metrics.n_undecodable == 1 and sink.metrics.n_batches == 1 and sink.metrics.n_rows == 3


def test_failure_retries_paused_and_commits_only_after_success(monkeypatch):
    monkeypatch.setattr(landing, "backoff_s", lambda attempt: 0.0)
    backend = FakeBackend(failures=2)
    sink, consumer = make_sink(backend, [Msg("cdr.rated", 0, 0, b"rated:1")])
    sink.add_message(consumer.consume(1, 0)[0])
    assert sink.flush()
    assert consumer.log == [("pause",), ("commit", [("cdr.rated", 0, 1)]), ("resume",)]
    assert sink.metrics.n_retries == 2 and len(backend.inserts) == 1


def test_gives_up_without_commit_when_deadline_passes(monkeypatch):
    monkeypatch.setattr(landing, "backoff_s", lambda attempt: 0.05)
    backend = FakeBackend(failures=10**6)
    sink, consumer = make_sink(backend, [Msg("cdr.rated", 0, 0, b"rated:1")])
    sink.add_message(consumer.consume(1, 0)[0])
    assert not sink.flush(give_up_after_s=0.2)
    assert not any(e[0] == "commit" for e in consumer.log)
    assert sink.batch.count == 2  # still held (before in-batch dedupe): nothing was lost


def test_run_flushes_on_stop():
    backend = FakeBackend(version=(18, 16, 1))
    sink, consumer = make_sink(backend, [Msg("cdr.rated", 1, 3, b"rated:2")])
    sink.max_age_s = 3600  # only the stop may flush

    original = consumer.consume

    def consume_then_stop(num_messages, timeout):
        out = original(num_messages, timeout)
        if not out:
            sink.stopping.set()
        return out

    consumer.consume = consume_then_stop
    assert sink.run() == 0
    assert backend.inserts == [("db.cdr_rated", 1, {})]  # 18.16: no token, no async_insert
    assert consumer.log[-1] == ("commit", [("cdr.rated", 1, 4)])


@pytest.mark.parametrize("attempt,expected", [(0, 0.5), (1, 1.0), (3, 4.0), (20, 30.0)])
def test_backoff(attempt, expected):
    assert landing.backoff_s(attempt) == expected


def test_dedup_token_bytes_are_stable_across_versions():
    """A retry after an upgrade must reuse the token the server saw: the digest is over each
    sorted key's repr followed by \\x1f (computed here with hashlib, independently)."""
    from hashlib import blake2b

    from sinks.landing import dedup_token

    recs = [{"cdr_key": "b2", "rating_version": 1}, {"cdr_key": "a1", "rating_version": 2}]
    h = blake2b(digest_size=12)
    for k in ("('a1', 2)", "('b2', 1)"):
        h.update(k.encode() + b"\x1f")
    assert dedup_token("cdr_rated", {("cdr.rated", 3): (10, 11)}, recs) == f"cdr_rated|cdr.rated:3:10-11|{h.hexdigest()}"
