"""Partial records of long calls: the billing decision and the helpers around it.

Switches cut long calls into partial records (3GPP TS 32.298 partial records with a record
sequence number 1..n, the last one final; interim records of IP switches). cdrflow
**rates partials as deltas**: every partial is its own billable item covering only its own
time slice ``[start_ms, end_ms]`` with its own ``billsec_s``. Why:

* spend limits and barring must trip *during* a long call - waiting for the final record
  of a 10-hour call would let it run past any credit limit;
* no state has to hold open calls until their last partial arrives (it may never arrive);
* partials may arrive out of order: a slice's price never depends on another slice, so
  order does not matter;
* a re-sent partial is a duplicate, the others are not: the CDR key is
  hash(switch, call id, leg, **partial_seq**), so the charge stage's key dedup catches
  exactly the repeats.

The cost of the choice: per-call rounding (minimum charge, first-interval rounding) applies
per slice. Tariffs with per-call connection fees should charge them on ``partial_seq <= 1``
only - the :func:`bills_connection` helper says when.

:func:`merge` reconstructs the whole call (for itemised bills and reports) and
:func:`missing` finds gaps; neither is on the rating path.
"""
from __future__ import annotations

from collections.abc import Iterable

__all__ = ["is_partial", "bills_connection", "dedupe", "missing", "is_complete", "merge"]


def is_partial(cdr: dict) -> bool:
    return int(cdr.get("partial_seq") or 0) > 0


def bills_connection(cdr: dict) -> bool:
    """True for the item that carries per-call charges: a complete record or the first partial."""
    return int(cdr.get("partial_seq") or 0) <= 1


def dedupe(cdrs: Iterable[dict]) -> list[dict]:
    """Partials of one call, duplicates (same cdr_key, or same seq when no key) dropped,
    ordered by sequence - whatever order they arrived in."""
    seen: dict[object, dict] = {}
    for c in cdrs:
        k = c.get("cdr_key") or (c.get("switch_id"), c.get("call_id"), c.get("leg"), c.get("partial_seq"))
        seen.setdefault(k, c)
    return sorted(seen.values(), key=lambda c: int(c.get("partial_seq") or 0))


def missing(cdrs: Iterable[dict]) -> list[int]:
    """Sequence numbers not yet seen between 1 and the highest (or the final) partial."""
    parts = [c for c in cdrs if is_partial(c)]
    if not parts:
        return []
    seqs = {int(c["partial_seq"]) for c in parts}
    top = max(seqs)
    return [s for s in range(1, top + 1) if s not in seqs]


def is_complete(cdrs: Iterable[dict]) -> bool:
    """A complete record alone, or partials 1..n with n final and no gap."""
    cdrs = list(cdrs)
    if any(not is_partial(c) for c in cdrs):
        return True
    return bool(cdrs) and not missing(cdrs) and any(
        c.get("partial_final") and int(c["partial_seq"]) == max(int(x["partial_seq"]) for x in cdrs) for c in cdrs)


def merge(cdrs: Iterable[dict]) -> dict:
    """One call from its partials (deduplicated, any order): start of the first slice, end of
    the last, summed durations and billable seconds, the first answer time. ``complete``
    tells whether every partial and the final one were seen."""
    parts = dedupe(cdrs)
    if not parts:
        raise ValueError("no records to merge")
    first, last = parts[0], parts[-1]
    answers = [c["answer_ms"] for c in parts if c.get("answer_ms") is not None]
    return {
        **{k: first[k] for k in first if k not in ("cdr_key", "partial_seq", "partial_final", "raw")},
        "start_ms": min(c["start_ms"] for c in parts),
        "end_ms": max(c["end_ms"] for c in parts),
        "answer_ms": min(answers) if answers else None,
        "duration_s": sum(int(c["duration_s"]) for c in parts),
        "billsec_s": sum(int(c["billsec_s"]) for c in parts),
        "partials": [int(c.get("partial_seq") or 0) for c in parts],
        "complete": is_complete(parts),
        "disposition": last.get("disposition", first.get("disposition")),
    }
