"""Issue 16's test: a batch for an account with 1M applied keys writes changelog records of
bounded size and still detects a re-sent CDR from 30 days ago.

The 1M keys are put in the store with the store's own insert (``KeyIndex.add``, the call a
batch makes per new CDR), not by charging 1M CDRs: that takes ~5 s here instead of minutes.
The keys that matter - the re-sent ones - are applied through the full charge path. Before the
key store, the account value held 19 bytes per key: ~19 MB written per batch at 1M keys,
over any producer's request limit.
"""
from __future__ import annotations

from hashlib import blake2b

import orjson

from streams.core.dedup import ENTRY, LEAF_MAX, KeyIndex
from tests.unit.test_charge_keys import DAY, NOW, Stores, batch_msg, canonical, provision_msg

N = 1_000_000
DAYS = 31                                   # the keys' call days: the 31 days before today
TODAY = NOW // DAY
LEAF_BYTES = 1 + LEAF_MAX * ENTRY


def bulk_id(i: int) -> bytes:
    return blake2b(i.to_bytes(4, "big"), digest_size=8).digest()


def fill(s: Stores, offset: int) -> None:
    """N applied keys of account A1 over DAYS call days, as if applied at input ``offset`` (at
    or below the account's applied offset, so they count)."""
    assert s.accounts["A1"]["off"]["cdr.normalized"] >= offset
    idx = KeyIndex(s.keys.get)
    digest = b"\x01" * 8
    for i in range(N):
        idx.add("A1", str(TODAY - 1 - i % DAYS), bulk_id(i), digest, offset)
    for nk, v in idx.writes().items():
        s.keys[nk] = v
    st = s.accounts["A1"]
    st["kdays"] = sorted(set(st["kdays"]) | {str(TODAY - 1 - d) for d in range(DAYS)})


def test_a_batch_for_an_account_with_a_million_keys_writes_bounded_records_and_finds_old_re_sends():
    s = Stores()
    s.run([provision_msg(0)])
    old = canonical("old", 61, start=NOW - 30 * DAY)
    first = s.run([batch_msg(1, [old])])
    assert len(first.rated) == 1
    fill(s, offset=1)
    assert len(s.keys) > N // LEAF_MAX and max(len(v) for v in s.keys.values()) <= LEAF_BYTES

    # One batch: a new call, the CDR billed 30 days ago re-sent, and a re-send of one of the
    # million keys (same key, any content) from 30 days ago too.
    thirty = next(i for i in range(N - 1, 0, -1) if TODAY - 1 - i % DAYS == TODAY - 30)
    bulk = dict(canonical("bulk", 61, start=NOW - 30 * DAY), cdr_key=bulk_id(thirty).hex() + "0" * 16)
    res = s.run([batch_msg(3, [canonical("new", 61), old, bulk])])
    assert [r["call_id"] for r in res.rated] == ["new"]
    assert res.duplicates == 2

    # What the batch wrote to the two changelogs: key nodes (a leaf, or a split's marker and
    # halves) and the account value, each record bounded whatever the history.
    records = [len(nk) + len(v or b"") for nk, v in res.key_writes.items()]
    value = len(orjson.dumps(s.accounts["A1"]))
    assert len(records) <= 3 and max(records) <= LEAF_BYTES + 64
    assert value <= 4_096, value
    assert s.last_written == sum(records) + len("A1") + value <= 3 * (LEAF_BYTES + 64) + 4_096
