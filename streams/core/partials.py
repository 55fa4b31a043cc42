"""Partial records of long calls: how they are priced, and the helpers around them.

Switches cut long calls into partial records (3GPP TS 32.298 partial records with a record
sequence number 1..n, the last one final; interim records of IP switches). Each partial is
its own billable item, so spend limits and barring trip *during* a long call, no state holds
open calls, and partials may arrive in any order; the CDR key includes ``partial_seq``, so a
re-sent partial is a duplicate and the others are not.

**A partial is priced as its slice of the whole call** (:func:`rate_slice`): slice k costs
``price(call up to the end of slice k) - price(call up to its start)``. The connect fee,
minimum duration, free seconds, first-interval and increment rounding, maximum cost and
time-of-day split therefore apply to the *call*, and the charges of all partials add up to
the charge of the unsplit call exactly (they telescope; tests/unit/test_partials_pricing.py
proves it with hypothesis over the rating rules). Pricing a slice as if it were a call of
its own overcharged: three partials of one 1,360 s call cost 1.37 + 1.37 + 0.29 = 3.03 where
the call costs 2.81.

What a partial record must carry for this (streams/formats/ts32298.py writes it so):
``answer_ms`` = the call's answer time (the same on every partial), ``end_ms`` = the end of
the slice, ``billsec_s`` = the slice's billable seconds, and ``start_ms`` = the call's start.
The seconds before the slice are then ``(end_ms - answer_ms) / 1000 - billsec_s``, known from
the partial alone - no state, any order.

:func:`merge` reconstructs the whole call (for itemised bills and reports) and
:func:`missing` finds gaps; neither is on the rating path.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["is_partial", "bills_connection", "seconds_before", "rate_slice", "dedupe", "missing", "is_complete",
           "merge"]


def is_partial(cdr: dict) -> bool:
    return int(cdr.get("partial_seq") or 0) > 0


def bills_connection(cdr: dict) -> bool:
    """True for the item that carries per-call charges: a complete record or the first partial."""
    return int(cdr.get("partial_seq") or 0) <= 1


def seconds_before(cdr: Mapping[str, Any]) -> int:
    """Billable seconds of the call before this partial's slice (0 for the first partial or a
    complete record): end of the slice minus the call's answer, minus the slice itself."""
    if int(cdr.get("partial_seq") or 0) <= 1 or cdr.get("answer_ms") is None:
        return 0
    talk_to_end = (int(cdr["end_ms"]) - int(cdr["answer_ms"]) + 500) // 1000
    return max(0, talk_to_end - int(cdr.get("billsec_s") or 0))


def rate_slice(rate: Callable[[Mapping[str, Any], str], Any], cdr: Mapping[str, Any], plan: str) -> Any:
    """Price a partial as its slice of the whole call; a complete record is priced as it is.

    ``rate(cdr, plan)`` prices a whole call and returns a ``Rating``. The result is that
    Rating with its money and charged seconds replaced by the difference of the call priced
    up to the end of the slice and up to its start."""
    if int(cdr.get("partial_seq") or 0) <= 0:
        return rate(cdr, plan)
    billsec = int(cdr.get("billsec_s") or 0)
    before = seconds_before(cdr)
    upto = before + billsec
    whole = {**cdr, "partial_seq": 0, "billsec_s": upto, "duration_s": max(int(cdr.get("duration_s") or 0), upto),
             "answered": bool(cdr.get("answered")) or before > 0}
    end = rate(whole, plan)
    if before == 0:
        return end  # the first slice carries the call's connect fee, minimum and first interval
    start = rate({**whole, "billsec_s": before, "duration_s": before, "answered": True}, plan)
    return end._replace(cost_nanos=end.cost_nanos - start.cost_nanos, cost_micros=end.cost_micros - start.cost_micros,
                        charged_s=end.charged_s - start.charged_s,
                        connect_fee_micros=end.connect_fee_micros - start.connect_fee_micros, spans=())


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
    """One call from its partials (deduplicated, any order): the earliest start, the latest
    end, the duration between them, summed billable seconds, the first answer time.
    ``complete`` tells whether every partial and the final one were seen."""
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
        # from the span, not a sum: a partial's start_ms is the call's start (see the module doc)
        "duration_s": (max(c["end_ms"] for c in parts) - min(c["start_ms"] for c in parts)) // 1000,
        "billsec_s": sum(int(c["billsec_s"]) for c in parts),
        "partials": [int(c.get("partial_seq") or 0) for c in parts],
        "complete": is_complete(parts),
        "disposition": last.get("disposition", first.get("disposition")),
    }
