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
                     horizon_days: int, book=None,
                     keys: Callable[[bytes], bytes | None] | None = None,
                     closed=None) -> tuple[BatchResult, dict[str, dict | None]]:
    """Apply one partition's messages (control commands and canonical batches) in offset order.

    ``load`` fetches an account's stored state (None when unknown). ``keys`` reads a node of the
    applied-keys store (streams/core/dedup.py); the caller writes ``result.key_writes`` back to
    it. Returns the outputs and the states; the caller writes back ``states[a]`` for every ``a``
    in ``result.touched``.

    Without ``keys`` (pure tests, in-process tools) the nodes are kept inside each account's
    value under ``knodes``: correct, but that value grows with history like the old ``seen``.
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
    embedded = keys is None
    if embedded:
        keys = _embedded_reader(states)
    cb = ChargeBatch(states, rate, now_ms, horizon_days, book, keys=keys, closed=closed)
    for m, name, rec in decoded:
        if name == codecs.CONTROL:
            cb.command(rec, m.topic, m.offset)
        elif name == codecs.CANONICAL_BATCH:
            cb.cdrs(rec["records"], m.topic, m.partition, m.offset)
        elif name == codecs.CANONICAL:
            cb.cdrs([rec], m.topic, m.partition, m.offset)
        else:
            cb.out.command_errors.append(f"undecodable message at {m.topic}[{m.partition}]@{m.offset}")
    res = cb.finish()
    if embedded:
        _embed_writes(res, states)
    return res, states


def _account_of(nk: bytes) -> str:
    return nk.split(b"\x1f", 1)[0].decode()


def _embedded_reader(states: dict[str, dict | None]) -> Callable[[bytes], bytes | None]:
    def get(nk: bytes) -> bytes | None:
        st = states.get(_account_of(nk))
        v = (st or {}).get("knodes", {}).get(nk.decode())
        return bytes.fromhex(v) if v is not None else None
    return get


def _embed_writes(res: BatchResult, states: dict[str, dict | None]) -> None:
    for nk, v in res.key_writes.items():
        st = states.get(_account_of(nk))
        if st is None:
            continue
        nodes = st.setdefault("knodes", {})
        if v is None:
            nodes.pop(nk.decode(), None)
        else:
            nodes[nk.decode()] = v.hex()
    res.key_writes = {}


def _copy_state(st: dict | None) -> dict | None:
    if st is None:
        return None
    out = dict(st)
    for k in ("spend", "off", "cfg"):
        out[k] = dict(st[k])
    if "seen" in st:
        out["seen"] = dict(st["seen"])           # pre-key-store values: moved to the key store on first use
    if "knodes" in st:
        out["knodes"] = dict(st["knodes"])
    out["recent"] = list(st.get("recent", []))
    out["users"] = dict(st.get("users", {}))
    if "minutes" in st:
        out["minutes"] = dict(st["minutes"])
    return out
