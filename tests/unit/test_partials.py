"""Partials rate as deltas: each slice is its own item; order does not matter; repeats share a key."""
from __future__ import annotations


from hypothesis import given, strategies as st

from streams.core import partials
from streams.core.keys import cdr_key

T0 = 1_759_910_400_000


def slices(n: int, slice_s: int = 600) -> list[dict]:
    out = []
    for i in range(1, n + 1):
        s = T0 + (i - 1) * slice_s * 1000
        out.append({"cdr_key": cdr_key("msc", "ref", "mo", i), "switch_id": "msc", "call_id": "ref", "leg": "mo",
                    "partial_seq": i, "partial_final": i == n, "start_ms": s, "answer_ms": s,
                    "end_ms": s + slice_s * 1000, "duration_s": slice_s, "billsec_s": slice_s,
                    "disposition": "ANSWERED", "account": "a"})
    return out


def test_each_partial_is_its_own_item():
    p = slices(3)
    assert len({c["cdr_key"] for c in p}) == 3
    assert [partials.bills_connection(c) for c in p] == [True, False, False]
    assert all(partials.is_partial(c) for c in p)


@given(st.integers(1, 12), st.randoms(use_true_random=False), st.integers(0, 5))
def test_merge_is_order_and_duplicate_independent(n, rnd, dups):
    p = slices(n)
    shuffled = p + [rnd.choice(p) for _ in range(dups)]
    rnd.shuffle(shuffled)
    m = partials.merge(shuffled)
    assert m["partials"] == list(range(1, n + 1)) and m["complete"]
    assert m["billsec_s"] == 600 * n and m["start_ms"] == T0 and m["end_ms"] == T0 + 600_000 * n
    # The billable items, deduplicated by key, sum to the whole call.
    assert sum(c["billsec_s"] for c in partials.dedupe(shuffled)) == m["billsec_s"]


def test_gaps_and_missing_final():
    p = slices(4)
    assert partials.missing([p[0], p[3]]) == [2, 3]
    assert not partials.is_complete([p[0], p[3]])
    assert not partials.is_complete(p[:3])           # final not seen yet
    assert partials.merge(p[:3])["complete"] is False
    assert partials.is_complete([{"partial_seq": 0}])


def test_complete_record_is_not_partial():
    assert not partials.is_partial({"partial_seq": 0}) and partials.bills_connection({})
