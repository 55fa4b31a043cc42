"""Credit control core: limits, transitions, periods in non-UTC zones, commands, late CDRs.

Expected figures are written out by hand; none are computed with the code under test.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from streams.core import credit
from streams.core.periods import period_bounds, period_of

AMS = "Europe/Amsterdam"


def ms(*args, tz=timezone.utc) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)


def provision(credit_micros=10_000_000, pct=80, kind="monthly", tz=AMS, now=None):
    cmd = {"account": "A1", "action": "provision", "credit_micros": credit_micros, "soft_limit_pct": pct,
           "period_kind": kind, "timezone": tz, "tariff_plan": "default", "always_allowed": ["0031800"]}
    state, events = credit.apply_command(None, cmd, now or ms(2026, 11, 10, 12))
    assert events == []
    return state


def test_soft_then_hard_limit_emit_one_transition_each():
    st = provision()
    t = ms(2026, 11, 10, 12)
    assert credit.apply_charge(st, "2026-11", 7_999_999, t, "k1") == []
    [soft] = credit.apply_charge(st, "2026-11", 1, t, "k2")            # exactly 8.000000 = 80 %
    assert (soft["old_profile"], soft["new_profile"], soft["reason"]) == ("normal", "low_credit", "soft_limit")
    assert soft["spend_micros"] == 8_000_000 and soft["soft_limit_micros"] == 8_000_000
    assert soft["max_rate_micros_per_min"] == 400_000
    assert credit.apply_charge(st, "2026-11", 1_999_999, t, "k3") == []
    [hard] = credit.apply_charge(st, "2026-11", 1, t, "k4")
    assert (hard["new_profile"], hard["reason"], hard["seq"]) == ("blocked", "hard_limit", 2)
    assert hard["cause_cdr_key"] == "k4" and hard["max_rate_micros_per_min"] == -1
    assert "112" in hard["allowed_destinations"] and "0031800" in hard["allowed_destinations"]
    assert credit.apply_charge(st, "2026-11", 5_000_000, t, "k5") == []    # no repeat while blocked


def test_one_cdr_can_jump_straight_to_blocked():
    st = provision()
    [ev] = credit.apply_charge(st, "2026-11", 12_000_000, ms(2026, 11, 10), "big")
    assert (ev["old_profile"], ev["new_profile"]) == ("normal", "blocked")


def test_soft_limit_rounds_up_to_whole_micros():
    st = provision(credit_micros=10, pct=75)        # 7.5 micros -> the limit is 8
    assert credit.soft_limit_micros(credit.config(st)) == 8
    assert credit.apply_charge(st, "2026-11", 7, 0, "a") == []
    assert credit.apply_charge(st, "2026-11", 1, 0, "b")[0]["new_profile"] == "low_credit"


@pytest.mark.parametrize("kind,before,after", [
    # Monthly in Amsterdam: 30 Nov 23:30 UTC is already 1 Dec 00:30 local.
    ("monthly", ms(2026, 11, 30, 22, 59), ms(2026, 11, 30, 23, 0)),
    # Weekly (ISO, Monday start) in Amsterdam: Sunday 29 Nov 23:00 UTC is Monday 00:00 local.
    ("weekly", ms(2026, 11, 29, 22, 59), ms(2026, 11, 29, 23, 0)),
])
def test_new_period_resets_to_normal_at_local_boundary(kind, before, after):
    st = provision(kind=kind, now=before)
    p1, p2 = period_of(before, AMS, kind), period_of(after, AMS, kind)
    assert p1 != p2
    [ev] = credit.apply_charge(st, p1, 20_000_000, before, "old")
    assert ev["new_profile"] == "blocked"
    events = credit.apply_charge(st, p2, 1_000, after, "new")
    assert [(e["reason"], e["old_profile"], e["new_profile"], e["period"]) for e in events] == \
        [("period_reset", "blocked", "normal", p2)]
    assert credit.snapshot(st, after)["spend_micros"] == 1_000


def test_period_labels_and_bounds_follow_dst():
    # Europe/Amsterdam leaves DST on 2026-10-25: October has 31*24+1 hours locally.
    start, end = period_bounds("2026-10", AMS)
    assert (end - start) == (31 * 24 + 1) * 3_600_000
    assert start == ms(2026, 9, 30, 22)
    assert period_of(ms(2026, 10, 31, 23, 30), AMS, "monthly") == "2026-11"
    assert period_of(ms(2026, 10, 31, 23, 30), "UTC", "monthly") == "2026-10"
    assert period_of(ms(2026, 1, 1, 5), "America/New_York", "weekly") == "2026-W01"
    assert period_of(ms(2027, 1, 1, 4), "America/New_York", "weekly") == "2026-W53"


def test_late_cdr_goes_to_its_own_period_and_emits_a_correction():
    st = provision(now=ms(2026, 11, 2))
    credit.apply_charge(st, "2026-11", 100, ms(2026, 11, 2), "now")
    credit.apply_charge(st, "2026-10", 7_000_000, ms(2026, 11, 2), "late1")  # October existed before
    [corr] = credit.apply_charge(st, "2026-10", 4_000_000, ms(2026, 11, 2), "late2")
    assert corr["correction"] is True and corr["period"] == "2026-10"
    assert (corr["old_profile"], corr["new_profile"], corr["reason"]) == ("normal", "blocked", "late_correction")
    snap = credit.snapshot(st, ms(2026, 11, 2))
    assert snap["period"] == "2026-11" and snap["profile"] == "normal" and snap["spend_micros"] == 100


def test_raise_credit_unblocks_and_lower_credit_blocks():
    st = provision()
    credit.apply_charge(st, "2026-11", 10_000_000, 0, "k")
    st, [ev] = credit.apply_command(st, {"account": "A1", "action": "raise_credit", "credit_micros": 10_000_000}, 5)
    assert (ev["old_profile"], ev["new_profile"], ev["reason"]) == ("blocked", "normal", "credit_changed")
    assert ev["credit_micros"] == 20_000_000
    st, [ev] = credit.apply_command(st, {"account": "A1", "action": "lower_credit", "credit_micros": 11_000_000}, 6)
    assert ev["new_profile"] == "blocked" and ev["credit_micros"] == 9_000_000
    st, [ev] = credit.apply_command(st, {"account": "A1", "action": "set_credit", "credit_micros": 12_500_000}, 7)
    assert ev["new_profile"] == "low_credit"


def test_unbar_lifts_block_only_until_spend_grows_past_it():
    # Issue 10 hole 5: unbar at 11.00 / credit 10.00 used to last the rest of the period.
    st = provision()
    credit.apply_charge(st, "2026-11", 11_000_000, 0, "k")
    st, [ev] = credit.apply_command(st, {"account": "A1", "action": "unbar"}, 1)
    assert (ev["old_profile"], ev["new_profile"], ev["reason"]) == ("blocked", "low_credit", "unbar")
    [again] = credit.apply_charge(st, "2026-11", 1_000_000, 2, "k2")          # 12.00 > 11.00 at unbar
    assert (again["old_profile"], again["new_profile"], again["reason"]) == ("low_credit", "blocked", "hard_limit")
    assert again["spend_micros"] == 12_000_000 and again["cause_cdr_key"] == "k2"


def test_set_profile_restricts_but_never_lifts_a_block():
    st = provision()
    st, [ev] = credit.apply_command(st, {"account": "A1", "action": "set_profile", "profile": "low_credit"}, 1)
    assert ev["new_profile"] == "low_credit" and ev["reason"] == "profile_set"
    with pytest.raises(ValueError):
        credit.apply_command(st, {"account": "A1", "action": "set_profile", "profile": "vip"}, 2)


def test_commands_for_unknown_accounts_are_refused():
    with pytest.raises(KeyError):
        credit.apply_command(None, {"account": "X", "action": "unbar"}, 0)


def test_replay_detection_by_offset():
    st = provision()
    assert not credit.is_replay(st, "t", 0)
    credit.mark_offset(st, "t", 5)
    assert credit.is_replay(st, "t", 5) and credit.is_replay(st, "t", 3)
    assert not credit.is_replay(st, "t", 6) and not credit.is_replay(st, "other", 1)


def test_config_validation():
    with pytest.raises(ValueError):
        credit.AccountConfig("a", period_kind="daily")
    with pytest.raises(ValueError):
        credit.AccountConfig("a", soft_limit_pct=0)
    assert ZoneInfo(AMS)  # the zone exists on this machine


def test_rerate_adjustment_moves_the_profile_both_ways():
    st = provision()
    credit.apply_charge(st, "2026-11", 7_000_000, 0, "k")
    _, [up] = credit.apply_command(st, {"account": "A1", "action": "adjust_spend", "period": "2026-11",
                                        "delta_micros": 1_500_000}, 1)
    assert (up["old_profile"], up["new_profile"], up["reason"]) == ("normal", "low_credit", "rerate")
    assert up["spend_micros"] == 8_500_000
    _, [down] = credit.apply_command(st, {"account": "A1", "action": "adjust_spend", "period": "2026-11",
                                          "delta_micros": -2_000_000}, 2)
    assert down["new_profile"] == "normal" and down["spend_micros"] == 6_500_000


def test_roll_period_command_resets_an_idle_account_at_its_local_boundary():
    st = provision(kind="weekly", now=ms(2026, 11, 29, 22))         # Sunday 23:00 Amsterdam, W48
    credit.apply_charge(st, "2026-W48", 20_000_000, 0, "k")
    _, none = credit.apply_command(st, {"account": "A1", "action": "roll_period"}, ms(2026, 11, 29, 22, 59))
    assert none == []
    _, [ev] = credit.apply_command(st, {"account": "A1", "action": "roll_period"}, ms(2026, 11, 29, 23, 0))
    assert (ev["reason"], ev["new_profile"], ev["period"]) == ("period_reset", "normal", "2026-W49")
