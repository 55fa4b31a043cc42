"""Issue 10 hole 6: `cdrflow barring watch` must show every transition once, in seq order,
whatever the arrival order of account.state and account.barring (Watcher.record, Kafka-free)."""
from __future__ import annotations

import itertools

from streams import topics
from streams.controllers import Watcher
from streams.core import credit
from streams.core.transitions import Sequencer, is_current


def account_history():
    """Four transitions and the snapshot written after each, as the charge stage makes them."""
    cmd = {"account": "A1", "action": "provision", "credit_micros": 1_000_000, "timezone": "UTC",
           "issued_ms": 1_790_000_000_000}                                   # 2026-09-21
    st, _ = credit.apply_command(None, cmd, 1_790_000_000_000)
    p = st["period"]
    evs, snaps = [], []
    for step in (lambda: credit.apply_charge(st, p, 800_000, 1, "cdr-soft"),     # normal -> low_credit
                 lambda: credit.apply_charge(st, p, 200_000, 2, "cdr-hard"),     # -> blocked
                 lambda: credit.apply_command(st, {"account": "A1", "action": "raise_credit",
                                                   "credit_micros": 1_000_000}, 3)[1],   # -> normal
                 lambda: credit.apply_charge(st, p, 600_000, 4, "cdr-soft2")):   # -> low_credit
        [ev] = step()
        evs.append(ev)
        snaps.append(credit.snapshot(st, 5))
    return evs, snaps


def watch(arrivals, boot=()):
    w = Watcher({})
    shown = []
    for snap in boot:
        w.record(topics.STATE, snap, 0, shown.append)
    w.release(w.sequencer.start(0), shown.append)
    for topic, rec in arrivals:
        w.record(topic, rec, 0, shown.append)
    return w, shown


def test_snapshot_with_the_same_seq_first_does_not_hide_the_event():
    # The live failure: account.state seq 1 read before account.barring seq 1.
    evs, snaps = account_history()
    w, shown = watch([(topics.STATE, snaps[0]), (topics.BARRING, evs[0])])
    assert [t.seq for t in shown] == [1]
    assert shown[0].cause_cdr_key == "cdr-soft" and shown[0].new_profile == "low_credit"


def test_every_interleaving_of_the_two_topics_shows_each_transition_once_in_order():
    evs, snaps = account_history()
    n = len(evs)
    count = 0
    for slots in itertools.combinations(range(2 * n), n):       # where the events go: 70 interleavings
        arrivals, e, s = [], iter(evs), iter(snaps)
        for i in range(2 * n):
            arrivals.append((topics.BARRING, next(e)) if i in slots else (topics.STATE, next(s)))
        w, shown = watch(arrivals + [(topics.BARRING, evs[1]), (topics.BARRING, evs[3])])   # and repeats
        assert [t.seq for t in shown] == [1, 2, 3, 4], slots
        assert [t.cause_cdr_key for t in shown] == ["cdr-soft", "cdr-hard", None, "cdr-soft2"]
        assert w.controller.decisions["A1"].profile == "low_credit"
        assert w.sequencer.duplicates == 2
        count += 1
    assert count == 70


def test_events_out_of_order_are_held_until_the_missing_ones_arrive():
    evs, _ = account_history()
    for perm in itertools.permutations(evs):
        w, shown = watch([(topics.BARRING, e) for e in perm])
        assert [t.seq for t in shown] == [1, 2, 3, 4], [e["seq"] for e in perm]
        assert w.controller.decisions["A1"].profile == "low_credit"


def test_following_from_the_end_starts_after_the_bootstrap_snapshot():
    evs, snaps = account_history()
    # bootstrapped at seq 2; seq 2 itself was written after the barring end offset: still shown
    w, shown = watch([(topics.BARRING, evs[1]), (topics.BARRING, evs[2]), (topics.STATE, snaps[3]),
                      (topics.BARRING, evs[3])], boot=[snaps[1]])
    assert [t.seq for t in shown] == [2, 3, 4]
    # bootstrapped at seq 1, seq 3 arrives first: held for seq 2
    w, shown = watch([(topics.BARRING, evs[2]), (topics.BARRING, evs[1])], boot=[snaps[0]])
    assert [t.seq for t in shown] == [2, 3]


def test_a_missing_seq_is_given_up_after_the_wait_and_counted():
    evs, _ = account_history()
    s = Sequencer(gap_wait_ms=2_000)
    s.start(0)
    assert [e["seq"] for e in s.event(evs[0], 0)] == [1]
    assert s.event(evs[2], 10) == []                 # seq 2 missing
    assert s.expire(2_009) == []
    assert [e["seq"] for e in s.expire(2_010)] == [3]
    assert s.gaps == 1
    assert s.event(evs[1], 2_020) == [] and s.stale == 1     # too late to keep the order


def test_a_past_period_correction_is_shown_but_not_the_current_decision():
    evs, snaps = account_history()
    late = {**evs[1], "seq": 5, "period": "2026-08", "correction": True, "reason": "late_correction",
            "old_profile": "normal", "new_profile": "blocked", "max_rate_micros_per_min": -1,
            "cause_cdr_key": "cdr-august"}
    w, shown = watch([(topics.BARRING, e) for e in evs] + [(topics.BARRING, late)])
    assert [t.seq for t in shown] == [1, 2, 3, 4, 5]
    assert shown[-1].correction and not shown[-1].applied and shown[-1].cause_cdr_key == "cdr-august"
    d = w.controller.decisions["A1"]
    assert (d.profile, d.seq) == ("low_credit", 5)
    assert w.controller.decide("A1", "+441234567", 100_000) == (True, "within_max_rate")
    assert not is_current(late, "2026-09") and is_current(evs[0], "2026-09")
