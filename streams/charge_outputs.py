"""The messages one charge batch sends, each fitted to one producer request.

The charge agent used to send every rated record of a ``take_events`` batch (up to
``CDRFLOW_BATCH_MAX`` input messages, each up to 2000 CDRs) as one message per partition. On a
broker with the stock 1 MiB limit that send failed, and the worker (rightly) exited and
crash-looped on the same input. Here batches of rated records are cut into consecutive slices
that fit ``max_bytes`` (streams/batching.py::encoded_chunks), and a reject's raw bytes are cut
to fit like the normaliser's.

Replay: the slices are a pure function of the batch's outputs, and a redelivered batch re-emits
the same records in the same order (streams/core/charge.py), so the sink sees the same rows
whichever slice a crash interrupted; it collapses them by key. Kept free of Faust so it can be
tested without a worker.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple

from streams import codecs, topics
from streams.batching import encoded_chunks, fitted_reject
from streams.core import credit
from streams.core.charge import BatchResult


class Output(NamedTuple):
    topic: str
    key: bytes | None       # None: sent to the input's partition (rated batches)
    value: bytes


def _rated(recs) -> bytes:
    return codecs.encode_batch(codecs.RATED_BATCH, recs)


def _reject(rej: dict) -> bytes:
    return codecs.encode(codecs.REJECTED, rej)


def before_store(res: BatchResult, max_bytes: int) -> Iterator[Output]:
    """Outputs sent before the states are written (a crash in between repeats them)."""
    for topic, recs in ((topics.RATED, res.rated), (topics.COMMISSIONS, res.commissions)):
        if recs:
            for value, _n in encoded_chunks(_rated, recs, max_bytes):
                yield Output(topic, None, value)
    for rej in res.rejects:
        yield Output(topics.REJECTED, rej["reject_id"].encode(), fitted_reject(rej, _reject, max_bytes))
    for ev in res.events:
        yield Output(topics.BARRING, ev["account"].encode(), codecs.encode(codecs.BARRING, ev))
    for note in res.notifications:
        yield Output(topics.NOTIFICATIONS, note["account"].encode(), codecs.encode(codecs.NOTIFICATION, note))


def after_store(res: BatchResult, states: dict, now_ms: int) -> Iterator[Output]:
    """Snapshots of the touched accounts, then the replies: an answered command is one whose
    state is already stored. Each is one small record per account or command."""
    for acct in res.touched:
        yield Output(topics.STATE, acct.encode(), codecs.encode(codecs.STATE, credit.snapshot(states[acct], now_ms)))
    for rep in res.replies:
        yield Output(topics.REPLIES, rep["account"].encode(), codecs.encode(codecs.REPLY, rep))
