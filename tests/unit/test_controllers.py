"""The reference call controller: decision rules, replays, bootstrap then follow."""
from __future__ import annotations

import pytest

from streams.controllers import Controller, Stopper
from streams.core import credit, thresholds

SNAP = {"account": "A1", "period": "2026-11", "profile": "normal", "spend_micros": 0, "credit_micros": 10_000_000,
        "soft_limit_micros": 8_000_000, "seq": 0, "updated_ms": 1, "max_rate_micros_per_min": 800_000,
        "allowed_destinations": ["112", "911", "999", "+31800"]}


def event(seq, old, new, rate, reason="soft_limit", account="A1"):
    return {"event_id": f"{account}:{seq}", "account": account, "seq": seq, "period": "2026-11",
            "old_profile": old, "new_profile": new, "spend_micros": 0, "credit_micros": 10_000_000,
            "soft_limit_micros": 8_000_000, "reason": reason, "cause_cdr_key": None, "at_ms": seq,
            "cause_ingest_ms": None, "max_rate_micros_per_min": rate,
            "allowed_destinations": ["112", "911", "999", "+31800"], "correction": False}


@pytest.mark.parametrize("profile,rate,dest,price,expect", [
    ("normal", 800_000, "+441234567", 800_000, (True, "within_max_rate")),
    ("normal", 800_000, "+441234567", 800_001, (False, "rate_above_max")),
    ("low_credit", 400_000, "+441234567", 400_000, (True, "within_max_rate")),
    ("low_credit", 400_000, "441234567", 500_000, (False, "rate_above_max")),
    ("low_credit", 400_000, "+31800123", 5_000_000, (True, "always_allowed")),   # exception beats the price
    ("blocked", -1, "+441234567", 0, (False, "blocked")),                          # even a free call
    ("blocked", -1, "112", 0, (True, "always_allowed")),
    ("blocked", -1, "+31800555", 0, (True, "always_allowed")),
])
def test_decide_rules(profile, rate, dest, price, expect):
    c = Controller()
    c.bootstrap({**SNAP, "profile": profile, "max_rate_micros_per_min": rate})
    assert c.decide("A1", dest, price) == expect


@pytest.mark.parametrize("dest,ctx", [("+911123456789", None), ("00911123456789", None), ("+9111234567890", "US"),
                                      ("011911123456789", "US"), ("+11234567890", None)])
def test_blocked_account_cannot_call_abroad_through_emergency_codes(dest, ctx):
    """Issue 10 hole 1: '911' was a plain digit prefix, so it opened India (+91 1…)."""
    from streams.core.sources import NumberingContext

    c = Controller()
    c.bootstrap({**SNAP, "profile": "blocked", "max_rate_micros_per_min": -1})
    args = (NumberingContext("US", "1", "011"),) if ctx else ()
    assert c.decide("A1", dest, 0, *args) == (False, "blocked")


def test_blocked_account_reaches_local_emergency_numbers():
    from streams.core.sources import NumberingContext

    c = Controller()
    c.bootstrap({**SNAP, "profile": "blocked", "max_rate_micros_per_min": -1, "allowed_destinations": []})
    assert c.decide("A1", "112", 0) == (True, "always_allowed")
    assert c.decide("A1", "911", 0, NumberingContext("US", "1", "011")) == (True, "always_allowed")


def test_unknown_account_gets_emergency_only():
    c = Controller()
    assert c.decide("nobody", "+441234567", 0) == (False, "unknown_account")
    assert c.decide("nobody", "911", 0) == (True, "always_allowed")


def test_bootstrap_then_follow_and_replays_are_ignored():
    c = Controller()
    assert c.bootstrap({**SNAP, "seq": 2, "profile": "low_credit", "max_rate_micros_per_min": 400_000})
    # an event the snapshot already reflects (delivered again) changes nothing
    t = c.apply_event(event(2, "normal", "low_credit", 400_000))
    assert not t.applied and c.replays == 1
    t = c.apply_event(event(1, "blocked", "normal", 800_000, "credit_changed"))   # older still
    assert not t.applied and c.decisions["A1"].profile == "low_credit"
    t = c.apply_event(event(3, "low_credit", "blocked", -1, "hard_limit"))
    assert t.applied and c.decide("A1", "+441234567", 1) == (False, "blocked")
    assert not c.apply_event(event(3, "low_credit", "blocked", -1, "hard_limit")).applied   # duplicate
    # a stale snapshot (older seq) read late does not undo the block; an equal one refreshes
    assert not c.bootstrap({**SNAP, "seq": 2})
    assert c.bootstrap({**SNAP, "seq": 3, "profile": "blocked", "max_rate_micros_per_min": -1})
    assert c.apply_event(event(4, "blocked", "normal", 800_000, "credit_changed")).applied
    assert c.decide("A1", "+441234567", 800_000) == (True, "within_max_rate")
    assert c.replays == 3


def test_follows_real_credit_events_end_to_end():
    """Events and snapshots as streams.core.credit makes them drive the controller."""
    cmd = {"account": "A1", "action": "provision", "credit_micros": 10_000_000, "timezone": "UTC",
           "always_allowed": ["+31800"]}
    st, _ = thresholds.apply_account_command(None, cmd, 0)
    c = Controller()
    c.bootstrap(credit.snapshot(st, 0))
    assert c.decide("A1", "+44", 800_000)[0]
    evs = credit.apply_charge(st, st["period"], 8_000_000, 1, "k1") + credit.apply_charge(st, st["period"], 2_000_000, 2, "k2")
    for ev in evs + evs:                    # at-least-once: everything twice
        c.apply_event(ev)
    assert c.replays == 2 and c.decisions["A1"].profile == "blocked"
    assert c.decide("A1", "+3180012", 0) == (True, "always_allowed")
    _, evs = credit.apply_command(st, {"account": "A1", "action": "raise_credit", "credit_micros": 10_000_000}, 3)
    c.apply_event(evs[0])
    assert c.decide("A1", "+44", 800_000) == (True, "within_max_rate")


def test_stopper_deadline():
    s = Stopper(0.0, install_signals=False)
    assert s.stopped()
    s = Stopper(None, install_signals=False)
    assert not s.stopped()
    s.flag.set()
    assert s.stopped()
