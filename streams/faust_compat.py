"""Make Faust's "seek back to committed offsets" real, so no fetched input is ever skipped.

Faust drops fetched records in a few places (flow stopped, generation changed, a rebalance
mid-batch) and relies on a later ``perform_seek`` to read them again from the committed offsets.
aiokafka's ``seek_to_committed`` only moves a partition whose committed offset is above 0, so on
a partition with no commit yet (or a commit of 0) the seek does nothing: the dropped records are
passed over and Faust's acked list keeps a hole that also stalls its commits. Measured in the
SIGKILL test (tests/integration/test_crash_recovery.py): about 1 run in 5 on this machine lost
1-2k CDRs at offsets 1-4 of cdr.normalized right after the restarted worker came up.

Two changes, neither alters a broker-visible behaviour on the happy path:

* partitions without a committed offset are sought to their beginning (the app's
  ``auto_offset_reset`` is ``earliest``) and a committed 0 is sought to 0;
* Faust's gap filling (which treats skipped offsets as processed, for compacted or
  transactional inputs) is off for our own non-compacted topics: there, a skipped offset is
  lost input, so the commit must wait at it rather than pass it.

``OffsetWatch`` lets the agents notice a skip anyway and ask for a re-read from the committed
offsets; replays are harmless by design (keys and offsets in the account state).
"""
from __future__ import annotations

import logging

log = logging.getLogger("cdrflow.faust_compat")


async def _seek_all_to_committed(consumer, stream_topics: frozenset[str]) -> dict:
    """Runs on Faust's consumer thread (aiokafka objects are not thread-safe). Only our stream
    topics are moved: changelog partitions are positioned by Faust's table recovery itself."""
    committed = await consumer.seek_to_committed()
    ours = {tp: off for tp, off in committed.items() if tp.topic in stream_topics}
    for tp, off in ours.items():
        if off == 0:
            consumer.seek(tp, 0)
    never = [tp for tp, off in ours.items() if off is None]
    if never:
        await consumer.seek_to_beginning(*never)
    return committed


def install(non_compacted_topics: set[str]) -> None:
    from faust.transport import consumer as faust_consumer
    from faust.transport.drivers import aiokafka as faust_aiokafka

    thread_cls = faust_aiokafka.AIOKafkaConsumerThread
    if getattr(thread_cls, "_cdrflow_patched", False):
        return

    stream_topics = frozenset(non_compacted_topics)

    async def seek_to_committed(self):
        return await self.call_thread(_seek_all_to_committed, self._ensure_consumer(), stream_topics)

    thread_cls.seek_to_committed = seek_to_committed
    thread_cls._cdrflow_patched = True

    original_add_gap = faust_consumer.Consumer._add_gap

    async def _add_gap(self, tp, offset_from: int, offset_to: int) -> None:
        if tp.topic in non_compacted_topics:
            log.error("event=input_gap topic=%s partition=%s from=%s to=%s note=commit_waits_at_gap",
                      tp.topic, tp.partition, offset_from, offset_to)
            return
        await original_add_gap(self, tp, offset_from, offset_to)

    faust_consumer.Consumer._add_gap = _add_gap


class OffsetWatch:
    """Per input partition, the last offset an agent processed; reports forward skips.

    Offsets of a non-compacted topic are contiguous, so within one consumer generation a jump
    forward means input was passed over. Going back is normal (a re-read after a seek). A new
    generation starts afresh: a partition that comes back after a rebalance resumes wherever
    its other owner committed."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, int], int] = {}
        self._generation: int | None = None
        # Partitions asked to be read again: (first skipped offset, monotonic time asked).
        self._rereads: dict[tuple[str, int], tuple[int, float]] = {}

    def expect_reread(self, topic: str, partition: int, from_offset: int, now: float) -> None:
        """The agent asked for ``topic[partition]`` to be read again from its committed offset,
        which is at or before ``from_offset``: the re-read is seen once a message at or before
        that offset arrives."""
        self._rereads.setdefault((topic, partition), (from_offset, now))

    def stalled(self, now: float, after_s: float) -> list[tuple[str, int, int]]:
        """[(topic, partition, first skipped offset)] of re-reads not seen for ``after_s``
        seconds. Seen under SIGKILL storms (docs/notes/2026-11-30/perf3.md): after the seek,
        Faust fetched nothing more from that partition and the worker sat idle with its input
        unread and uncommitted. The caller ends the worker; a new consumer reads from the
        committed offset."""
        return [(t, p, off) for (t, p), (off, since) in self._rereads.items() if now - since > after_s]

    def skips(self, messages, generation: int = 0, committed_of=None) -> list[tuple[str, int, int, int]]:
        """[(topic, partition, last offset, next offset seen)] for each forward jump.

        ``committed_of(message)`` gives the partition's committed offset (the next one to read),
        so a skip right at the start of a generation is seen too; "last" is then committed - 1."""
        if generation != self._generation:
            self._last.clear()
            # A rebalance re-reads every partition from its committed offset (or hands it over).
            self._rereads.clear()
            self._generation = generation
        out = []
        last = self._last
        rereads = self._rereads
        for m in messages:
            tp = (m.topic, m.partition)
            if rereads:
                r = rereads.get(tp)
                if r is not None and m.offset <= r[0]:
                    del rereads[tp]
            prev = last.get(tp)
            if prev is None and committed_of is not None:
                committed = committed_of(m)
                if committed is not None:
                    prev = committed - 1
            if prev is not None and m.offset > prev + 1:
                out.append((m.topic, m.partition, prev, m.offset))
            last[tp] = m.offset
        return out


def store_reader(table):
    """``table.get`` for the charge agent's hot path, without Faust's per-read cost.

    A Faust ``Table`` read goes through ``ManagedUserDict.__getitem__`` (the sensor's
    ``on_table_get``) and, for a key that is absent, a ``KeyError`` raised by ``__missing__`` and
    caught by ``Mapping.get``: 3-5 µs per read. The key store's look-ups walk a few nodes per
    day searched, mostly absent ones, so this grew with an account's history (issue 16's
    call-centre run: 157 → 316 µs per CDR over 1M CDRs). For the in-memory store of a table
    without a default or windows, the same answer comes from the store's dict. Any other store
    (RocksDB, ...) reads through the table. Resolve it per batch: a store may swap its dict
    when partitions are recovered."""
    return table.data.data.get if plain_memory_table(table) else table.get


def plain_memory_table(table) -> bool:
    """True for a Faust table on the in-memory store, without a default or windows: its store's
    dict holds exactly what the table reads and writes, so the hot path may use it directly
    (``store_reader``, streams/direct_send.py ``TableWriter``)."""
    store = getattr(table, "data", None)
    return (type(store).__module__ == "faust.stores.memory" and type(getattr(store, "data", None)) is dict
            and table.default is None and getattr(table, "window", None) is None)
