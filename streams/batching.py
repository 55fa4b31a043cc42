"""Batch helpers for Faust agents.

Faust finds the changelog partition of a table write from the "current event", which
``stream.take_events()`` does not set while the batch is being processed ("Cannot modify table
key from outside of stream iteration"). We group a batch by source partition and write each
partition's coalesced updates while acting as that partition's last event, so every changelog
record lands on the partition that owns the key. This uses Faust's private context variable;
tests/integration/test_agents.py checks the changelog partitions line up.
"""
from __future__ import annotations

import logging
import time
import weakref
from collections import defaultdict
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator, Sequence

from faust import streams as _faust_streams

from streams.faust_compat import OffsetWatch
from streams.metrics import count
from streams.msg import Msg

log = logging.getLogger("cdrflow.batching")


@contextmanager
def acting_as(event):
    token = _faust_streams._current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _faust_streams._current_event.reset(token)


def by_partition(events: Iterable) -> dict[int, list]:
    groups: dict[int, list] = defaultdict(list)
    for ev in events:
        groups[ev.message.partition].append(ev)
    return groups


def to_msg(event) -> Msg:
    m = event.message
    return Msg(m.topic, m.partition, m.offset, int(m.timestamp * 1000) if m.timestamp else 0, event.value)


# A re-read asked for by reread_if_skipped that has not started after this long ends the worker.
REREAD_STALL_S = 30.0


def check_rereads(watch: OffsetWatch, stage: str, die, after_s: float = REREAD_STALL_S) -> None:
    """End the process (``die``, streams/supervise.py) when a re-read never started: an idle
    worker holding unread, uncommitted input is the worst state (issue 16)."""
    stalled = watch.stalled(time.monotonic(), after_s)
    if stalled:
        topic, partition, offset = stalled[0]
        die(stage, RuntimeError(f"{topic}[{partition}] was passed over at offset {offset} and not read again "
                                f"within {after_s:.0f} s of the seek; restarting reads it from the committed offset"))


async def reread_if_skipped(app, watch: OffsetWatch, events, stage: str) -> None:
    """A forward jump in an input partition would lose input: say so, and read again from the
    committed offsets (Faust's commit waits at the hole, and replays are harmless)."""
    committed = getattr(app.consumer, "_committed_offset", {})   # Faust's view: next offset to read
    skips = watch.skips((e.message for e in events), app.consumer_generation_id,
                        lambda m: committed.get(m.tp))
    if not skips:
        return
    now = time.monotonic()
    for topic, partition, prev, nxt in skips:
        log.error("event=input_skipped stage=%s topic=%s partition=%s last=%s next=%s action=reread_from_committed",
                  stage, topic, partition, prev, nxt)
        watch.expect_reread(topic, partition, prev + 1, now)
    count("input_skips", len(skips))
    await app.consumer.perform_seek()


# Room left in a producer request for the record batch header, the record's own framing, its
# key and Faust's headers, so an encoded value of ``limit - OUTPUT_MARGIN`` bytes always sends.
OUTPUT_MARGIN = 16 * 1024


class OutputTooLarge(ValueError):
    """One record encodes larger than the producer may send: it cannot be split."""


def encoded_chunks(encode: Callable[[Sequence], bytes], records: Sequence, max_bytes: int,
                   max_records: int = 0) -> Iterator[tuple[bytes, int]]:
    """(encoded value, record count) of consecutive slices of ``records``, in order, each at
    most ``max_bytes`` long and ``max_records`` records (0: no count limit).

    Encodes once in the usual case; a slice over the byte limit is re-split by its measured
    size. A 17 MB canonical batch once failed to send and stopped the normaliser for good."""
    step = max_records if max_records > 0 else max(len(records), 1)
    todo = [(i, min(i + step, len(records))) for i in range(0, len(records), step)]
    todo.reverse()
    while todo:
        lo, hi = todo.pop()
        value = encode(records[lo:hi])
        if len(value) <= max_bytes:
            yield value, hi - lo
            continue
        if hi - lo == 1:
            raise OutputTooLarge(f"one record encodes to {len(value)} bytes, over the {max_bytes}-byte output limit")
        # Aim a little under the limit so one re-split is nearly always enough.
        parts = min(hi - lo, -(-len(value) * 5 // (max_bytes * 4)) + 1)
        size = -(-(hi - lo) // parts)
        todo.extend(reversed([(i, min(i + size, hi)) for i in range(lo, hi, size)]))


def byte_slices(items: Sequence, size_of: Callable[[object], int], max_bytes: int) -> Iterator[Sequence]:
    """Consecutive slices of ``items`` whose sizes add up to at most ``max_bytes`` (a single
    item over it is a slice of its own). The charge agent applies a batch one slice of input
    messages at a time: an account value carries its slice's new keys (``kpend``, ~50 bytes a
    CDR), and a whole ``take_events`` batch's once made a 295 KB changelog record that a
    256 KiB producer limit refused, killing the worker."""
    lo, total = 0, 0
    for i, item in enumerate(items):
        n = size_of(item)
        if i > lo and total + n > max_bytes:
            yield items[lo:i]
            lo, total = i, 0
        total += n
    if lo < len(items):
        yield items[lo:]


def fitted_reject(rej: dict, encode: Callable[[dict], bytes], max_bytes: int) -> bytes:
    """The encoded reject, its raw bytes cut to fit one producer request if they must be.

    A raw message just under the broker's limit makes a reject just over it; failing the send
    would stop the agent, so the reject keeps the leading bytes and says how many it had."""
    value = encode(rej)
    if len(value) <= max_bytes:
        return value
    raw = rej.get("raw") or b""
    keep = max(0, len(raw) - (len(value) - max_bytes) - 1024)
    cut = {**rej, "raw": raw[:keep],
           "detail": f"{rej.get('detail', '')} [raw cut to its first {keep} of {len(raw)} bytes to fit the output limit]"}
    return encode(cut)
