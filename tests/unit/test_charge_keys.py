"""The applied-keys store of the charge stage: which copy of a re-sent CDR is billed and
re-emitted (issue 15), state written per batch that does not grow with history (issue 16),
crash splits between the key nodes and the account value, horizon expiry, old values.

Costs are computed by hand from the default tariff (NL mobile 0.08/min, 30 s then per 6 s).
"""
from __future__ import annotations

from hashlib import blake2b

import orjson

from streams import codecs
from streams.core.dedup import ENTRY, LEAF_MAX
from streams.core.normalize import normalize
from streams.core.sources import NumberingContext
from streams.core.tariff import load_tariff_book
from streams.msg import Msg
from streams.pipeline import charge_partition
from streams.settings import DATA_DIR

NOW = 1_795_000_000_000          # 2026-11-18 UTC
DAY = 86_400_000
BOOK = load_tariff_book(DATA_DIR / "tariff_default.yaml")


def rate(cdr, plan):
    return BOOK.rate(cdr, plan=plan)


def canonical(call_id: str, billsec: int, start: int = NOW - 3_600_000, now: int = NOW) -> dict:
    raw = {"switch_id": "sw", "call_id": call_id, "leg": "A", "partial_seq": 0, "partial_final": True,
           "correlation_id": None, "account": "A1", "service_user": "ext1", "direction": "outbound",
           "caller": "0201234567", "presented_cli": None, "called": "0612345678", "trunk": "t1",
           "start_ms": start, "answer_ms": start + 5_000, "end_ms": start + 5_000 + billsec * 1000,
           "duration_s": 5 + billsec, "billsec_s": billsec, "disposition": "ANSWERED", "service": "voice"}
    c = normalize(raw, NumberingContext(), now_ms=now)
    c.update(source_topic="cdr.raw", source_partition=0, source_offset=1, source_index=0, ingest_ms=NOW, raw=b"x")
    return c


def provision_msg(offset: int, credit_micros: int = 1_000_000_000) -> Msg:
    cmd = {"command_id": "p", "account": "A1", "action": "provision", "credit_micros": credit_micros,
           "profile": None, "timezone": "UTC", "period_kind": "monthly", "soft_limit_pct": 80,
           "tariff_plan": "default", "always_allowed": None, "issued_ms": NOW - 40 * DAY}
    return Msg("account.control", 0, offset, NOW, codecs.encode(codecs.CONTROL, cmd))


def batch_msg(offset: int, cdrs: list[dict]) -> Msg:
    return Msg("cdr.normalized", 0, offset, NOW, codecs.encode_batch(codecs.CANONICAL_BATCH, cdrs))


class Stores:
    """The two tables the worker keeps: account values and key nodes (a Faust table each)."""

    def __init__(self):
        self.accounts: dict[str, dict] = {}
        self.keys: dict[bytes, bytes] = {}
        self.last_written = 0           # bytes written to both changelogs by the last batch

    def run(self, msgs: list[Msg], now: int = NOW, write_keys: bool = True, write_states: bool = True):
        res, states = charge_partition(msgs, self.accounts.get, rate, now, 35, keys=self.keys.get)
        written = 0
        if write_keys:
            for nk, v in res.key_writes.items():
                if v is None:
                    self.keys.pop(nk, None)
                else:
                    self.keys[nk] = v
                written += len(nk) + len(v or b"")
        if write_states:
            for a in res.touched:
                self.accounts[a] = states[a]
                written += len(a) + len(orjson.dumps(states[a]))
        self.last_written = written
        return res


def spend(s: Stores) -> int:
    return sum(s.accounts["A1"]["spend"].values())


def test_a_conflicting_copy_redelivered_after_a_crash_re_emits_the_billed_copy():
    s = Stores()
    s.run([provision_msg(0)])
    billed = canonical("c1", 61)                  # 61 s -> 66 s at 0.08/min = 0.088
    changed = canonical("c1", 120)                # same key, the switch re-sent it with more billsec
    assert billed["cdr_key"] == changed["cdr_key"]
    first = s.run([batch_msg(10, [billed]), batch_msg(11, [changed])])
    assert [(r["billsec_s"], r["cost_micros"]) for r in first.rated] == [(61, 88_000)]
    assert first.duplicates == 1 and spend(s) == 88_000

    # The worker crashed before committing: both messages come again. The sink keeps the last
    # row of a key, so only the billed copy may be emitted.
    again = s.run([batch_msg(10, [billed]), batch_msg(11, [changed])])
    assert [(r["billsec_s"], r["cost_micros"]) for r in again.rated] == [(61, 88_000)]
    assert again.redelivered == 1 and again.redelivered_conflicts == 1
    # Offset 10 was committed, 11 was not: the changed copy alone comes again, and emits nothing.
    only_changed = s.run([batch_msg(11, [changed])])
    assert only_changed.rated == [] and only_changed.redelivered_conflicts == 1
    assert spend(s) == 88_000


def test_an_exact_re_send_is_a_duplicate_and_a_new_message_with_changed_content_too():
    s = Stores()
    s.run([provision_msg(0)])
    s.run([batch_msg(1, [canonical("c1", 61)])])
    res = s.run([batch_msg(2, [canonical("c1", 61), canonical("c1", 300)])])
    assert res.rated == [] and res.duplicates == 2 and spend(s) == 88_000


def test_state_written_for_one_cdr_does_not_grow_with_history():
    s = Stores()
    s.run([provision_msg(0)])
    base = canonical("c0", 30)

    def copy(i: int, day: int) -> dict:
        key = blake2b(f"hist{i}".encode(), digest_size=16).hexdigest()
        return dict(base, call_id=f"h{i}", cdr_key=key, start_ms=base["start_ms"] - day * DAY,
                    end_ms=base["end_ms"] - day * DAY, answer_ms=base["answer_ms"] - day * DAY)

    s.run([batch_msg(1, [canonical("first", 30)])])
    small = s.last_written
    n, offset = 20_000, 1
    for i in range(0, n, 2_000):
        offset += 1
        s.run([batch_msg(offset, [copy(j, j % 31) for j in range(i, i + 2_000)])])
    assert s.accounts["A1"]["applied"] == n + 1
    s.run([batch_msg(offset + 1, [canonical("new", 30)])])
    # One leaf of at most LEAF_MAX entries plus the account value (a few hundred bytes), whatever
    # the history: the old value held 19 bytes per applied CDR (380 KB here).
    bound = 1 + LEAF_MAX * ENTRY + 2_048
    assert s.last_written <= bound, (s.last_written, small)
    # Every node in the store stays small too.
    assert max(len(v) for v in s.keys.values()) <= 1 + LEAF_MAX * ENTRY
    # ... and the CDR re-sent from 30 days ago is still recognised.
    res = s.run([batch_msg(offset + 2, [copy(30, 30)])])
    assert res.duplicates == 1 and res.rated == []


def test_a_lost_key_node_write_is_repaired_from_the_account_value():
    s = Stores()
    s.run([provision_msg(0)])
    s.run([batch_msg(1, [canonical("c1", 61)])], write_keys=False)     # crash: key nodes lost
    assert s.keys == {}
    s.run([batch_msg(2, [canonical("c2", 30)])])                       # the next batch writes them again

    def pending() -> int:
        return sum(len(bytes.fromhex(h)) // ENTRY for h in s.accounts["A1"]["kpend"].values())

    assert pending() == 2           # the repaired key stays carried until a batch finds it stored
    res = s.run([batch_msg(3, [canonical("c1", 61)])])
    assert res.duplicates == 1 and spend(s) == 88_000 + 40_000
    # Once the store holds them, the account value stops carrying older batches' keys.
    assert pending() == 0
    s.run([batch_msg(4, [canonical("c3", 30)])])
    assert pending() == 1


def test_key_nodes_that_outlived_a_lost_account_value_do_not_count():
    s = Stores()
    s.run([provision_msg(0)])
    s.run([batch_msg(1, [canonical("c1", 61)])], write_states=False)   # crash: account value lost
    assert spend(s) == 0 and s.keys
    res = s.run([batch_msg(1, [canonical("c1", 61)])])                 # redelivery applies it once
    assert [r["cost_micros"] for r in res.rated] == [88_000] and spend(s) == 88_000
    again = s.run([batch_msg(2, [canonical("c1", 61)])])
    assert again.duplicates == 1 and spend(s) == 88_000


def test_days_past_the_horizon_leave_the_key_store():
    s = Stores()
    s.run([provision_msg(0)])
    s.run([batch_msg(1, [canonical("old", 30, start=NOW - 30 * DAY)])])
    old_day = str((NOW - 30 * DAY) // DAY)
    assert any(k.split(b"\x1f")[1].decode() == old_day for k in s.keys)
    s.run([batch_msg(2, [canonical("late", 30, start=NOW + 6 * DAY, now=NOW + 6 * DAY)])], now=NOW + 6 * DAY)
    assert not any(k.split(b"\x1f")[1].decode() == old_day for k in s.keys)
    assert old_day not in s.accounts["A1"]["kdays"]


def test_values_written_before_the_key_store_keep_their_keys():
    s = Stores()
    s.run([provision_msg(0)])
    c1 = canonical("c1", 61)
    # What the old code stored: day -> first 16 hex chars of each applied key.
    st = s.accounts["A1"]
    st["seen"] = {str(c1["start_ms"] // DAY): [c1["cdr_key"][:16]]}
    st["off"]["cdr.normalized"] = 5
    res = s.run([batch_msg(6, [c1, canonical("c2", 30)])])
    assert res.duplicates == 1 and [r["cost_micros"] for r in res.rated] == [40_000]
    assert "seen" not in s.accounts["A1"]
    # A redelivery of an old value's key re-emits the arriving copy, as before (its billed copy
    # is unknown).
    assert len(s.run([batch_msg(6, [c1])]).rated) == 1


def test_pure_callers_without_a_key_store_keep_nodes_in_the_account_value():
    table: dict[str, dict] = {}

    def run(msgs):
        res, states = charge_partition(msgs, table.get, rate, NOW, 35)
        for a in res.touched:
            table[a] = states[a]
        return res

    run([provision_msg(0)])
    run([batch_msg(1, [canonical("c1", 61)])])
    assert table["A1"]["knodes"] and run([batch_msg(2, [canonical("c1", 61)])]).duplicates == 1


def test_the_content_digest_covers_every_canonical_field_but_transport():
    import json

    from streams.core.dedup import CONTENT_FIELDS
    from pathlib import Path

    schema = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "cdr.v1.CanonicalCdr.avsc").read_text())
    transport = {"source_topic", "source_partition", "source_offset", "source_index", "ingest_ms", "raw"}
    assert set(CONTENT_FIELDS) == {f["name"] for f in schema["fields"]} - transport


def _kid(n: int) -> bytes:
    # Key ids that share their first bits, so one leaf fills and its split can cascade.
    return bytes([0b1010_0000]) + n.to_bytes(7, "big")


def test_a_crash_part_way_through_a_split_never_hides_applied_keys():
    """The node records reach the changelog one by one and a crash keeps a first part of them.
    Before the fix the split marker went first: a crash right after it left the account's old
    keys behind children that were never written, so a re-send of any of them billed again."""
    from streams.core.dedup import SPLIT, KeyIndex

    store: dict[bytes, bytes | None] = {}
    first = KeyIndex(store.get)
    for n in range(LEAF_MAX):                         # one full leaf, stored
        first.add("A1", "20410", _kid(n), b"d" * 8, n)
    store.update(first.writes())
    assert list(store.values()).count(SPLIT) == 0
    nxt = KeyIndex(store.get)
    for n in range(LEAF_MAX, LEAF_MAX + 40):           # the leaf splits (and splits again)
        nxt.add("A1", "20410", _kid(n), b"e" * 8, n)
    writes = list(nxt.writes().items())
    assert sum(v == SPLIT for _k, v in writes) >= 2
    for cut in range(len(writes) + 1):                 # a crash after any number of records
        after = dict(store)
        for nk, v in writes[:cut]:
            if v is None:
                after.pop(nk, None)
            else:
                after[nk] = v
        seen = KeyIndex(after.get)
        missing = [n for n in range(LEAF_MAX) if seen.lookup("A1", "20410", _kid(n)) != (b"d" * 8, n)]
        assert not missing, f"after {cut} of {len(writes)} records, {len(missing)} applied keys look new"


def test_writes_merged_from_several_steps_are_ordered_again():
    from streams.core.dedup import SPLIT, crash_safe_order

    merged = {b"A\x1fd\x1f": b"L", b"A\x1fd\x1f1": b"L", b"A\x1fd\x1f0": b"L"}
    merged[b"A\x1fd\x1f"] = SPLIT                      # a later step split the first leaf
    merged[b"A\x1fd\x1f0"] = SPLIT
    merged[b"A\x1fd\x1f00"] = b"L"
    merged[b"A\x1fd\x1f01"] = None
    assert list(crash_safe_order(merged).items()) == [
        (b"A\x1fd\x1f1", b"L"), (b"A\x1fd\x1f00", b"L"), (b"A\x1fd\x1f01", None),
        (b"A\x1fd\x1f0", SPLIT), (b"A\x1fd\x1f", SPLIT)]
