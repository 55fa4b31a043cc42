"""A reservation is settled by its call's rated CDR (issue 10, follow-up of hole 4): once the spend
holds the call, the hold must not count it a second time.

The rated records are built by hand with the fields cdr.rated carries; their keys are computed
here from keys v2's documented material (switch, call id, leg, partial sequence joined by 0x1f,
blake2b-128), not by the code under test. Money worked out in the comments."""
from __future__ import annotations

from hashlib import blake2b

import orjson

from streams.core import authorize as A

T = 1_773_136_800_000          # 2026-03-10 10:00 UTC
CALL_ID = "a84b4c76e66710@pc33.example.com"      # a SIP Call-ID (RFC 3261 section 8.1.1.4 shape)


def key(switch: str, call_id: str, leg: str, seq: int) -> str:
    return blake2b(f"{switch}\x1f{call_id}\x1f{leg}\x1f{seq}".encode(), digest_size=16).hexdigest()


def rated(call_id=CALL_ID, cost=0, seq=0, account="A", switch="kam-1", leg="A") -> dict:
    return {"account": account, "call_id": call_id, "switch_id": switch, "leg": leg,
            "cdr_key": key(switch, call_id, leg, seq), "cost_micros": cost}


# A 300 s grant reserving 0.30 (UK at 0.06/min, as in the HTTP test).
GRANT = {"reserve_micros": 300_000, "granted_total_s": 300, "max_duration_s": 300}
CALL = {"plan": "default", "number": "+442071234567", "type": "fixed", "trunk": None, "at_ms": T, "minutes_s": 0}


class Table:
    """Stands in for the changelogged table: what a new owner would read back."""

    def __init__(self):
        self.rows: dict[str, bytes] = {}
        self.writes = 0

    def load(self, acct):
        raw = self.rows.get(acct)
        return orjson.loads(raw) if raw else None

    def save(self, acct, entries):
        self.writes += 1
        self.rows[acct] = orjson.dumps(entries)

    def owner(self) -> A.Reservations:
        return A.Reservations(self.load, self.save)


def test_rated_cdr_of_the_call_releases_its_hold_once():
    t = Table()
    res = t.owner()
    rid = res.add("A", {**CALL, "call_id": CALL_ID}, GRANT, T)
    other = res.add("A", {**CALL, "call_id": "other-call"}, GRANT, T)
    assert res.held("A", T) == 600_000
    # The call ran 61 s: 66 s charged * 0.06/60 = 0.066 (hand), now in the spend.
    n = res.settle([rated(cost=66_000)], T + 70_000)
    assert n == 1
    assert res.held("A", T + 70_000) == 300_000                 # only the other call's hold is left
    e = res.get("A", rid, T + 70_000)
    assert e["settled"] and A.outstanding(e) == 0
    assert res.get("A", other, T + 70_000)["amount"] == 300_000
    # Redelivered (same cdr_key): nothing changes, nothing is written.
    writes = t.writes
    assert res.settle([rated(cost=66_000)], T + 80_000) == 0 and t.writes == writes
    # A late /call-end of the settled call does not hold its cost again.
    assert A.outstanding(res.end("A", rid, 66_000, T + 90_000)) == 0
    assert res.held("A", T + 90_000) == 300_000
    # Forgotten after the pending time from the CDR.
    assert rid not in res.entries("A", T + 70_000 + A.PENDING_AFTER_END_MS)


def test_only_the_same_account_and_call_id_settle():
    res = A.Reservations()
    res.add("A", {**CALL, "call_id": CALL_ID}, GRANT, T)
    res.add("A", CALL, GRANT, T)                                 # no call id given: expiry only
    assert res.settle([rated(account="B"), rated(call_id="x@y"), {**rated(), "call_id": ""}], T) == 0
    assert res.held("A", T) == 600_000
    res.settle([rated()], T)
    assert res.held("A", T) == 300_000


def test_partials_lower_the_hold_by_what_the_spend_holds():
    res = A.Reservations()
    rid = res.add("A", {**CALL, "call_id": CALL_ID}, GRANT, T)
    # Partial 1 of a running call: 0.12 of the 0.30 grant is in the spend; 0.18 still held.
    res.settle([rated(cost=120_000, seq=1)], T + 130_000)
    assert res.held("A", T + 130_000) == 180_000
    res.settle([rated(cost=120_000, seq=1)], T + 131_000)       # redelivered: no change
    assert res.held("A", T + 131_000) == 180_000
    # The call ends at 200 s: 0.20 in all (hand: 200 s * 0.06/60); partial 2 brings the other 0.08.
    res.end("A", rid, 200_000, T + 200_000)
    assert res.held("A", T + 200_000) == 80_000
    res.settle([rated(cost=80_000, seq=2)], T + 205_000)
    assert res.held("A", T + 205_000) == 0
    # The interim-update budget counts the call's rated partials once, not in spend and hold.
    rid2 = res.add("A", {**CALL, "call_id": "c2"}, GRANT, T)
    res.settle([rated(call_id="c2", cost=50_000, seq=1)], T + 60_000)
    # others: 0 (first call settled to 0); this call's rated 0.05 is credited back: -0.05.
    assert res.held_for_update("A", rid2, T + 60_000) == -50_000


def test_settled_state_survives_a_new_owner_and_redelivery_after_it():
    t = Table()
    rid = t.owner().add("A", {**CALL, "call_id": CALL_ID}, GRANT, T)
    t.owner().settle([rated(cost=120_000, seq=1)], T + 100_000)
    new_owner = t.owner()                                       # restarted worker: reads the table
    assert new_owner.held("A", T + 100_001) == 180_000
    # The restarted worker's consumer redelivers the batch it had not committed: no second credit.
    assert new_owner.settle([rated(cost=120_000, seq=1)], T + 100_002) == 0
    assert new_owner.held("A", T + 100_002) == 180_000
    new_owner.settle([rated(cost=180_000, seq=2), rated(cost=0, seq=0, leg="A")], T + 300_000)
    assert t.owner().get("A", rid, T + 300_000)["settled"]
    assert t.owner().held("A", T + 300_000) == 0


def test_whole_call_is_told_from_a_partial_by_its_key():
    assert A.is_whole_call(rated(seq=0))
    assert not A.is_whole_call(rated(seq=1))
    assert not A.is_whole_call({**rated(seq=0), "leg": "B"})
