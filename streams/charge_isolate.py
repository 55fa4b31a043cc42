"""Charge a partition's batch so that one failing input never takes the rest down with it.

The fast path is one ``charge_partition`` call for the whole batch. If it raises (a bug, a
tariff rule that crashes on one odd CDR), nothing of it was applied: ``charge_partition``
works on copies, and the caller writes nothing. The batch is then applied again message by
message, and a message that still fails CDR by CDR, each step starting from the state the
previous successful steps left (an overlay over the store), so the result is exactly that of
a batch holding only the inputs that succeed. What still fails alone becomes an
``internal_error`` reject (recyclable) with its raw bytes and source position: every input
ends rated, duplicate or rejected, never acknowledged and silently dropped.

No Faust here: the agent calls this, and the unit tests do too.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

from streams import codecs
from streams.core import credit
from streams.core.charge import BatchResult, cdr_reject, make_reject
from streams.core.dedup import crash_safe_order, decode_pending, encode_pending
from streams.core.reasons import HINTS, Reason
from streams.msg import Msg
from streams.pipeline import charge_partition

# Enough of the exception to find it in the worker log; the traceback itself is logged there.
DETAIL_CHARS = 300


@dataclass(slots=True)
class Failure:
    """One step that raised: ``where`` is "batch", "message" or "cdr"."""
    where: str
    topic: str
    partition: int
    offset: int
    index: int
    error: BaseException


@dataclass(slots=True)
class Isolated:
    res: BatchResult
    states: dict[str, dict | None]
    failures: list[Failure] = field(default_factory=list)


def charge_isolated(msgs: list[Msg], load: Callable[[str], dict | None], rate: Callable, now_ms: int,
                    horizon_days: int, book=None, keys: Callable[[bytes], bytes | None] | None = None,
                    closed=None) -> Isolated:
    """``charge_partition`` with failures isolated to the inputs that cause them (see module doc).

    Same contract for the caller: write ``res.key_writes``, then ``states[a]`` for every ``a`` in
    ``res.touched``, and send the outputs (the ``internal_error`` rejects are in ``res.rejects``).
    """
    def apply(part: list[Msg], ld, ks):
        return charge_partition(part, ld, rate, now_ms, horizon_days, book=book, keys=ks, closed=closed)

    try:
        res, states = apply(msgs, load, keys)
        return Isolated(res, states)
    except Exception as exc:        # noqa: BLE001 - any bug: isolate it below
        first = msgs[0]
        failures = [Failure("batch", first.topic, first.partition, first.offset, -1, exc)]
    run = _Overlay(load, keys, apply, now_ms)
    for m in msgs:
        try:
            run.attempt([m])
        except Exception as exc:    # noqa: BLE001
            failures.append(Failure("message", m.topic, m.partition, m.offset, -1, exc))
            failures += run.per_cdr(m)
    return Isolated(run.finish(), run.states, failures)


class _Overlay:
    """The states and key-store nodes written by the steps that succeeded so far, read in
    preference to the store by the next step."""

    def __init__(self, load, keys, apply, now_ms: int):
        self.base_load = load
        self.base_keys = keys
        self.apply = apply
        self.now_ms = now_ms
        self.states: dict[str, dict | None] = {}
        self.key_writes: dict[bytes, bytes | None] = {}
        self.res = BatchResult()
        # Per account, the pending key entries of every step: one batch's value carries all of
        # them (``kpend``, streams/core/dedup.py), each step's value only its own.
        self.pending: dict[str, dict] = {}

    def load(self, acct: str) -> dict | None:
        # A deep copy: a failing step must not leave a half-changed value in the overlay.
        return copy.deepcopy(self.states[acct] if acct in self.states else self.base_load(acct))

    def keys(self, nk: bytes) -> bytes | None:
        return self.key_writes[nk] if nk in self.key_writes else self.base_keys(nk)

    def attempt(self, part: list[Msg]) -> None:
        res, states = self.apply(part, self.load, self.keys if self.base_keys is not None else None)
        self.states.update(states)
        self.key_writes.update(res.key_writes)
        for acct in res.touched:
            st = states.get(acct)
            if st is not None:
                for day, entries in decode_pending(st.get("kpend")).items():
                    self.pending.setdefault(acct, {}).setdefault(day, {}).update(entries)
        self.res.absorb(res)

    def per_cdr(self, m: Msg) -> list[Failure]:
        try:
            name, rec = codecs.decode(m.value or b"", codecs.book(), 1 << 30)
        except Exception as exc:    # noqa: BLE001 - decoding itself is the bug
            self._reject_message(m, exc)
            return [Failure("message", m.topic, m.partition, m.offset, -1, exc)]
        if name == codecs.CANONICAL:
            records = [rec]
        elif name == codecs.CANONICAL_BATCH:
            records = rec["records"]
        else:               # a control command is one input already: its failure is logged
            self._reject_message(m, RuntimeError(f"{name} failed alone"))
            return []
        accounts = {c["account"] for c in records}
        # The message's offset is marked once, after all its CDRs (ChargeBatch.cdrs): marked by
        # the first CDR's step, a later CDR of the same message would look like a redelivery.
        before = {a: self._offset(a, m.topic) for a in accounts}
        failures = []
        for i, cdr in enumerate(records):
            try:
                self.attempt([m._replace(value=codecs.encode_batch(codecs.CANONICAL_BATCH, [cdr]))])
            except Exception as exc:    # noqa: BLE001
                failures.append(Failure("cdr", m.topic, m.partition, m.offset, i, exc))
                self.res.rejects.append(cdr_reject(cdr, Reason.INTERNAL_ERROR, _detail(exc), self.now_ms))
            for acct, off in before.items():
                st = self.states.get(acct)
                if st is not None:
                    if off is None:
                        st["off"].pop(m.topic, None)
                    else:
                        st["off"][m.topic] = off
        for acct in accounts:
            if acct not in self.states:
                self.states[acct] = self.load(acct)
            if self.states[acct] is not None:
                credit.mark_offset(self.states[acct], m.topic, m.offset)
        return failures

    def _offset(self, acct: str, topic: str) -> int | None:
        st = self.states[acct] if acct in self.states else self.base_load(acct)
        return None if st is None else st["off"].get(topic)

    def _reject_message(self, m: Msg, exc: BaseException) -> None:
        # Not a CDR (or not readable as one): the message's own bytes and position.
        self.res.rejects.append(make_reject(Reason.INTERNAL_ERROR, _detail(exc), "charge", m.topic, m.partition,
                                            m.offset, 0, m.value or b"", self.now_ms))

    def finish(self) -> BatchResult:
        for acct in self.res.touched:
            st = self.states.get(acct)
            if st is not None and acct in self.pending:
                st["kpend"] = encode_pending(self.pending[acct])
        # The steps' writes merged keep each node's first position: order them again.
        self.res.key_writes = crash_safe_order(self.key_writes)
        return self.res


def _detail(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"[:DETAIL_CHARS]
    return f"{text} ({HINTS[Reason.INTERNAL_ERROR]})"
