"""The sink's in-memory landing counters and the /counters endpoint (no ClickHouse query).

`cdrflow bench` reads progress from these instead of `count() FINAL` per poll (issue 16).
"""
from __future__ import annotations

import json
import urllib.request

from sinks import landing
from tests.unit.test_landing_pure import FakeBackend, Msg, make_sink


class NoQueryBackend(FakeBackend):
    """Inserts work; any query fails the test: counters must come from memory."""

    def query(self, *args, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError("counters ran a ClickHouse query")

    execute = query


def _land(sink, consumer):
    for m in consumer.consume(100, 0):
        sink.add_message(m)
    assert sink.flush()


def test_counters_count_rows_landed_per_table_across_batches():
    backend = NoQueryBackend()
    # rated:N decodes to a batch holding the same CDR twice: in-batch dedupe lands one row.
    sink, consumer = make_sink(backend, [Msg("cdr.rated", 0, 0, b"rated:1"), Msg("cdr.rated", 0, 1, b"rated:2"),
                                         Msg("cdr.rejected", 0, 0, b"reject:7"), Msg("cdr.rated", 1, 0, b"junk")])
    assert sink.counters()["rows_landed"] == {}
    _land(sink, consumer)
    consumer.messages = [Msg("cdr.rejected", 0, 1, b"reject:8"), Msg("cdr.rejected", 0, 2, b"reject:9")]
    _land(sink, consumer)
    c = sink.counters()
    # 2 distinct rated rows in batch 1; 1 + 2 rejects over both batches; the junk message is one
    # landing_errors row (hand count of the inputs).
    assert c["rows_landed"] == {"cdr_rated": 2, "cdr_rejected": 3, "landing_errors": 1}
    assert c["rows_inserted"] == 6 and c["batches"] == 2 and c["undecodable"] == 1
    # The same totals as what the backend actually received.
    received: dict = {}
    for table, n, _ in backend.inserts:
        received[table.split(".", 1)[1]] = received.get(table.split(".", 1)[1], 0) + n
    assert received == c["rows_landed"]


def test_a_failed_insert_is_not_counted_and_its_retry_counts_once(monkeypatch):
    monkeypatch.setattr(landing, "backoff_s", lambda attempt: 0.0)
    backend = NoQueryBackend(failures=2)
    sink, consumer = make_sink(backend, [Msg("cdr.rated", 0, 0, b"rated:1"), Msg("cdr.rejected", 0, 0, b"reject:1")])
    _land(sink, consumer)
    assert sink.counters()["rows_landed"] == {"cdr_rated": 1, "cdr_rejected": 1}
    assert sink.counters()["retries"] == 2


def test_a_table_that_landed_before_a_later_table_failed_is_not_counted_again(monkeypatch):
    """insert_batch re-sends only the tables not landed yet; the counter must follow that."""
    monkeypatch.setattr(landing, "backoff_s", lambda attempt: 0.0)
    backend = NoQueryBackend()
    calls = {"n": 0}
    real = backend.insert_columns

    def second_table_fails_once(table, names, columns, settings=None):
        calls["n"] += 1
        if calls["n"] == 2:  # cdr_rated (first, sorted) lands, cdr_rejected fails once
            raise ConnectionError("down")
        return real(table, names, columns, settings)

    backend.insert_columns = second_table_fails_once
    sink, consumer = make_sink(backend, [Msg("cdr.rated", 0, 0, b"rated:1"), Msg("cdr.rejected", 0, 0, b"reject:1")])
    _land(sink, consumer)
    assert sink.counters()["rows_landed"] == {"cdr_rated": 1, "cdr_rejected": 1}
    assert [t for t, _, _ in backend.inserts] == ["db.cdr_rated", "db.cdr_rejected"]


def test_counters_endpoint_answers_from_memory():
    backend = NoQueryBackend()
    sink, consumer = make_sink(backend, [Msg("cdr.rated", 0, 4, b"rated:3")])
    _land(sink, consumer)
    server = landing.serve_status(sink, 0)
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/counters", timeout=5) as r:
            body = json.load(r)
    finally:
        server.shutdown()
    assert body["rows_landed"] == {"cdr_rated": 1}
    assert body["lag"] == {"cdr.rated:0": 0}


def test_consumer_lag_is_scraped_per_partition_from_the_offsets_noted():
    """cdrflow_sink_consumer_lag (deploy/prometheus/alerts.yml) is computed at scrape time:
    read-but-uncommitted messages per partition, counted from the first offset this process read
    until it commits there."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from sinks.landing import Metrics

    m = Metrics()
    for off in range(100, 110):             # 10 messages read on cdr.rated[2], nothing committed
        m.note_seen("cdr.rated", 2, off)
    for off in range(0, 5):
        m.note_seen("account.state", 0, off)
    m.note_committed("account.state", 0, 5)  # all of account.state[0] landed

    def lag() -> dict:
        text = generate_latest(m.registry).decode()
        return {(s.labels["topic"], s.labels["partition"]): s.value
                for fam in text_string_to_metric_families(text) for s in fam.samples
                if s.name == "cdrflow_sink_consumer_lag"}

    assert lag() == {("cdr.rated", "2"): 10, ("account.state", "0"): 0}
    m.note_committed("cdr.rated", 2, 107)
    m.note_seen("cdr.rated", 2, 110)
    assert lag()[("cdr.rated", "2")] == 4    # offsets 107..110
