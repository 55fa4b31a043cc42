"""Decode + charge one partition's batch of Kafka messages, without Faust.

The charge agent is a thin wrapper around ``charge_partition``; tests and benchmarks call it
directly with ``Msg`` tuples.
"""
from __future__ import annotations

from typing import Callable

from streams import codecs
from streams.core.charge import BatchResult, ChargeBatch
from streams.core.reasons import RejectError
from streams.msg import Msg


def charge_partition(msgs: list[Msg], load: Callable[[str], dict | None], rate: Callable, now_ms: int,
                     horizon_days: int, book=None) -> tuple[BatchResult, dict[str, dict | None]]:
    """Apply one partition's messages (control commands and canonical batches) in offset order.

    ``load`` fetches an account's stored state (None when unknown). Returns the outputs and the
    states; the caller writes back ``states[a]`` for every ``a`` in ``result.touched``.
    """
    sb = codecs.book()
    decoded = []
    accounts: set[str] = set()
    for m in msgs:
        try:
            name, rec = codecs.decode(m.value or b"", sb, 1 << 30)
        except RejectError:
            # Only cdrflow itself writes these topics, so this is a bug or a foreign producer;
            # it is counted and skipped rather than crashing the agent.
            decoded.append((m, None, None))
            continue
        decoded.append((m, name, rec))
        if name == codecs.CANONICAL_BATCH:
            accounts.update(c["account"] for c in rec["records"])
        elif name in (codecs.CONTROL, codecs.CANONICAL):
            accounts.add(rec["account"])
    # Copies, so that a failure half-way never leaves a table value mutated but unwritten.
    states = {a: _copy_state(load(a)) for a in accounts}
    cb = ChargeBatch(states, rate, now_ms, horizon_days, book)
    for m, name, rec in decoded:
        if name == codecs.CONTROL:
            cb.command(rec, m.topic, m.offset)
        elif name == codecs.CANONICAL_BATCH:
            cb.cdrs(rec["records"], m.topic, m.partition, m.offset)
        elif name == codecs.CANONICAL:
            cb.cdrs([rec], m.topic, m.partition, m.offset)
        else:
            cb.out.command_errors.append(f"undecodable message at {m.topic}[{m.partition}]@{m.offset}")
    return cb.finish(), states


def _copy_state(st: dict | None) -> dict | None:
    if st is None:
        return None
    out = dict(st)
    for k in ("spend", "off", "cfg"):
        out[k] = dict(st[k])
    out["seen"] = dict(st.get("seen", {}))      # day lists are copied on first write (ChargeBatch._seen)
    out["recent"] = list(st.get("recent", []))
    out["users"] = dict(st.get("users", {}))
    if "minutes" in st:
        out["minutes"] = dict(st["minutes"])
    return out
