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
import weakref
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterable

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


async def reread_if_skipped(app, watch: OffsetWatch, events, stage: str) -> None:
    """A forward jump in an input partition would lose input: say so, and read again from the
    committed offsets (Faust's commit waits at the hole, and replays are harmless)."""
    committed = getattr(app.consumer, "_committed_offset", {})   # Faust's view: next offset to read
    skips = watch.skips((e.message for e in events), app.consumer_generation_id,
                        lambda m: committed.get(m.tp))
    if not skips:
        return
    for topic, partition, prev, nxt in skips:
        log.error("event=input_skipped stage=%s topic=%s partition=%s last=%s next=%s action=reread_from_committed",
                  stage, topic, partition, prev, nxt)
    count("input_skips", len(skips))
    await app.consumer.perform_seek()
