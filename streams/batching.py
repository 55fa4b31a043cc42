"""Batch helpers for Faust agents.

Faust finds the changelog partition of a table write from the "current event", which
``stream.take_events()`` does not set while the batch is being processed ("Cannot modify table
key from outside of stream iteration"). We group a batch by source partition and write each
partition's coalesced updates while acting as that partition's last event, so every changelog
record lands on the partition that owns the key. This uses Faust's private context variable;
tests/integration/test_agents.py checks the changelog partitions line up.
"""
from __future__ import annotations

import weakref
from collections import defaultdict
from contextlib import contextmanager
from typing import Iterable

from faust import streams as _faust_streams

from streams.msg import Msg


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
