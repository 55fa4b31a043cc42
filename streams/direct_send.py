"""The charge agent's per-account writes, sent with librdkafka instead of Faust's producer.

Why: every table write in Faust (``table[key] = value``) goes through the sensor, a
``FutureMessage``/``PendingMessage`` pair, Faust's producer buffer and aiokafka's Python record
builder: about 30 µs per record on this project's machine, and the futures it keeps pending
made full garbage collections slower as the backlog grew (issue 16's call-centre run). The
charge agent writes one account value, about one key-store node and one ``account.state``
snapshot per account per batch, so these per-record costs were the largest part of the worker's
CPU that was not billing work. ``confluent_kafka.Producer.produce`` costs ~2 µs.

What stays the same:

* The records are byte-for-byte what Faust would write (raw key and value serializers), to the
  same changelog topic and partition (the input's), so Faust's own recovery (``cdrflow-*-changelog``
  read back on assignment) and the table's in-memory store see no difference. Only the in-memory
  store is written directly; any other store type goes through the table as before.
* Nothing is committed before it is stored: the hook :func:`flush_before_commit` runs inside
  Faust's producer flush, which Faust awaits right before every offset commit
  (``Consumer._commit_offsets``), and it waits until the broker acknowledged every record produced
  so far. A delivery error makes that flush raise, which crashes the agent and so the worker
  (exit 70, streams/supervise.py): a lost changelog record must never be skipped over.
* Order: idempotent producer (per-partition order kept across retries), so two writes of one key
  land in the order they were made. Across topics there was never an order guarantee; the books
  do not depend on one (streams/core/dedup.py, "Crash safety").
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

log = logging.getLogger("cdrflow.direct_send")


class DirectSendError(RuntimeError):
    pass


class DirectProducer:
    def __init__(self, conf: dict[str, Any], max_request_bytes: int):
        from confluent_kafka import Producer

        from streams.partitioning import producer_config

        self._p = Producer(producer_config(conf, **{"message.max.bytes": max_request_bytes,
                                                    "acks": "all"}))
        self.produced = 0
        self.acked = 0
        self.error: str | None = None
        self._stop = threading.Event()
        # Delivery reports are served here, off the event loop.
        self._thread = threading.Thread(target=self._serve, name="cdrflow-direct-send", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._p.poll(0.05)

    def _delivered(self, err, msg) -> None:
        if err is not None and self.error is None:
            self.error = f"{msg.topic()}[{msg.partition()}]: {err}"
        self.acked += 1

    def send(self, topic: str, partition: int | None, key: bytes | None, value: bytes | None) -> None:
        """``partition`` None: by key, with the murmur2 partitioner Faust and Java clients use
        (streams/partitioning.py ``producer_config``)."""
        if self.error is not None:
            raise DirectSendError(f"an earlier record was not stored: {self.error}")
        from confluent_kafka import KafkaException

        while True:
            try:
                if partition is None:
                    self._p.produce(topic, value=value, key=key, on_delivery=self._delivered)
                else:
                    self._p.produce(topic, value=value, key=key, partition=partition, on_delivery=self._delivered)
                break
            except BufferError:
                # librdkafka's local queue is full: the broker is behind. Wait for it here rather
                # than grow memory without bound; the serving thread keeps draining.
                time.sleep(0.005)
            except KafkaException as exc:       # refused before sending (e.g. over message.max.bytes)
                self.error = self.error or f"{topic}[{partition}]: {exc}"
                raise DirectSendError(f"a record could not be sent: {self.error}") from exc
        self.produced += 1

    async def flush(self, timeout_s: float = 120.0) -> None:
        """Return once every record produced before the call is acknowledged; raise if any was
        refused or the broker did not answer within ``timeout_s``."""
        target = self.produced
        deadline = time.monotonic() + timeout_s
        delay = 0.0005
        while self.acked < target and self.error is None:
            if time.monotonic() > deadline:
                raise DirectSendError(f"{target - self.acked} records not acknowledged after {timeout_s:.0f} s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)
        if self.error is not None:
            raise DirectSendError(f"a record was not stored: {self.error}")


class TableWriter:
    """Writes of one Faust table: the in-memory store and its changelog record, or (any other
    store) the table itself, which needs the caller to act as the input's event."""

    def __init__(self, table, producer: DirectProducer | None):
        from streams.faust_compat import plain_memory_table

        self.table = table
        self.producer = producer
        self._direct = producer is not None and plain_memory_table(table)
        self._topic = table.changelog_topic.get_topic_name() if self._direct else None

    @property
    def direct(self) -> bool:
        return self._direct

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        if not self._direct:
            if value is None:
                if key in self.table:
                    del self.table[key]
            else:
                self.table[key] = value
            return
        store = self.table.data
        if value is None:
            if store.get(key) is None:
                return
            del store[key]
        else:
            store[key] = value
        self.producer.send(self._topic, partition, key, value)


_hooks: list = []


def flush_before_commit(hook) -> None:
    """Run ``await hook()`` whenever Faust flushes its producer (before each offset commit)."""
    _install()
    _hooks.append(hook)


_installed = False


def _install() -> None:
    global _installed
    if _installed:
        return
    from faust.transport.drivers.aiokafka import Producer

    original = Producer.flush

    async def flush(self) -> None:
        await original(self)
        for hook in list(_hooks):
            await hook()

    Producer.flush = flush
    _installed = True
