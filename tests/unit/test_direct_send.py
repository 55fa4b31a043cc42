"""streams/direct_send.py without a broker: what happens when records are not stored, and the
table writer's fallback. The live path (records stored, recovered by Faust after SIGKILLs, books
exact) is exercised by every integration test through the worker, CDRFLOW_DIRECT_SEND being on
by default (tests/integration/test_kill_recovery*.py prove the totals)."""
from __future__ import annotations

import asyncio

import faust
import pytest

from streams.direct_send import DirectProducer, DirectSendError, TableWriter

NOWHERE = {"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 300, "socket.connection.setup.timeout.ms": 1000,
           "log_level": 0}   # the refused connections are the point, not news


def test_flush_raises_when_a_record_is_not_acknowledged_and_later_sends_refuse():
    p = DirectProducer(NOWHERE, 1 << 20)
    try:
        p.send("cdrflow-accounts-changelog", 0, b"A1", b"{}")
        with pytest.raises(DirectSendError, match="not stored"):
            asyncio.run(p.flush(timeout_s=30))
        # Once a record is lost, nothing more goes out: the worker must restart and read again.
        with pytest.raises(DirectSendError):
            p.send("cdrflow-accounts-changelog", 0, b"A2", b"{}")
    finally:
        p._stop.set()


def test_flush_times_out_instead_of_waiting_forever():
    p = DirectProducer({**NOWHERE, "message.timeout.ms": 60_000}, 1 << 20)
    try:
        p.send("t", None, b"k", b"v")      # by key, as the state snapshots are sent
        with pytest.raises(DirectSendError, match="not acknowledged"):
            asyncio.run(p.flush(timeout_s=0.5))
    finally:
        p._stop.set()


def test_a_record_over_the_size_limit_is_refused_at_once():
    p = DirectProducer(NOWHERE, 2_000)
    try:
        with pytest.raises(DirectSendError, match="could not be sent"):
            p.send("t", 0, b"k", b"x" * 5_000)
    finally:
        p._stop.set()


def test_nothing_to_flush_returns_at_once():
    p = DirectProducer(NOWHERE, 1 << 20)
    try:
        asyncio.run(p.flush(timeout_s=0.1))
    finally:
        p._stop.set()


class _Recorder:
    def __init__(self):
        self.sent = []

    def send(self, topic, partition, key, value):
        self.sent.append((topic, partition, key, value))


def test_table_writer_writes_the_store_and_the_changelog_record_faust_would():
    app = faust.App("cdrflow-direct-test", broker="kafka://127.0.0.1:1", store="memory://",
                    key_serializer="raw", value_serializer="raw")
    table = app.Table("accounts", default=None, partitions=4, key_type=bytes, value_type=bytes)
    rec = _Recorder()
    w = TableWriter(table, rec)
    assert w.direct
    w.put(3, b"A1", b"v1")
    w.put(3, b"A1", b"v2")
    w.put(3, b"A1", None)           # delete: a tombstone
    w.put(3, b"A9", None)           # deleting an absent key writes nothing
    assert rec.sent == [("cdrflow-direct-test-accounts-changelog", 3, b"A1", b"v1"),
                        ("cdrflow-direct-test-accounts-changelog", 3, b"A1", b"v2"),
                        ("cdrflow-direct-test-accounts-changelog", 3, b"A1", None)]
    assert table.data.get(b"A1") is None
    w.put(1, b"B", b"x")
    assert table.data[b"B"] == b"x"


def test_without_a_producer_the_table_itself_is_written():
    app = faust.App("cdrflow-direct-test2", broker="kafka://127.0.0.1:1", store="memory://")
    table = app.Table("t", default=None, partitions=4, key_type=bytes, value_type=bytes)
    assert not TableWriter(table, None).direct


def test_faust_flushes_its_producer_before_committing_offsets():
    """The direct records are acknowledged before a commit only because Faust awaits its
    producer's flush (where our hook runs) right before committing. Pinned here so a Faust
    upgrade that changes this fails loudly."""
    import inspect

    from faust.transport.consumer import Consumer

    src = inspect.getsource(Consumer._commit_offsets)
    assert "await self.app.producer.flush()" in src
    assert src.index("await self.app.producer.flush()") < src.index("await self._commit(")


def test_the_hook_runs_after_faust_s_own_flush():
    from faust.transport.drivers.aiokafka import Producer

    from streams import direct_send

    order = []

    class Buffer:
        async def flush(self):
            order.append("faust buffer")

    async def hook():
        order.append("direct records")

    fake = type("P", (), {})()
    fake.buffer, fake._producer, fake._transaction_producers = Buffer(), None, {}
    direct_send.flush_before_commit(hook)
    try:
        asyncio.run(Producer.flush(fake))
    finally:
        direct_send._hooks.remove(hook)
    assert order == ["faust buffer", "direct records"]
