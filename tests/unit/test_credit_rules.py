"""The credit rules of README "Credit rules", one test per sentence an operator can check.

Figures are written by hand in the comments; none is computed with the code under test.
"""
from __future__ import annotations

from streams.core import credit


def provision(credit_micros=1_000_000, pct=80):
    cmd = {"account": "A1", "action": "provision", "credit_micros": credit_micros, "soft_limit_pct": pct,
           "period_kind": "monthly", "timezone": "UTC", "tariff_plan": "default", "always_allowed": []}
    state, _ = credit.apply_command(None, cmd, 1_790_000_000_000)   # 2026-09-21 UTC
    return state


def charge(st, micros, key, period="2026-09"):
    return credit.apply_charge(st, period, micros, 1_790_000_000_000, key)


def profile(st):
    return credit.effective_profile(st, credit.config(st))


def test_unbar_at_1_20_of_1_00_blocks_again_on_the_next_charge():
    # The run: unbar at spend 1.20 / credit 1.00, then 5.20 more stayed low_credit.
    st = provision()
    charge(st, 1_200_000, "c1")
    assert profile(st) == "blocked"
    st, [ev] = credit.apply_command(st, {"account": "A1", "action": "unbar"}, 1)
    assert ev["new_profile"] == "low_credit" and ev["reason"] == "unbar"
    [ev] = charge(st, 200_000, "c2")                 # 1.40 > 1.20 at unbar
    assert (ev["new_profile"], ev["reason"], ev["cause_cdr_key"]) == ("blocked", "hard_limit", "c2")
    assert charge(st, 5_000_000, "c3") == []          # stays blocked: 6.40
    assert profile(st) == "blocked"


def test_unbar_allowance_lets_spend_grow_by_that_much_first():
    st = provision()
    charge(st, 1_200_000, "c1")
    st, _ = credit.apply_command(st, {"account": "A1", "action": "unbar", "credit_micros": 500_000}, 1)
    assert charge(st, 500_000, "c2") == []            # 1.70 = 1.20 + 0.50: still allowed
    assert profile(st) == "low_credit"
    [ev] = charge(st, 1, "c3")                        # 1.700001 > 1.70
    assert ev["new_profile"] == "blocked"


def test_unbar_of_an_account_below_its_credit_changes_nothing_later():
    # An unbar at 0.90 / 1.00 must not block before the credit is reached.
    st = provision()
    charge(st, 900_000, "c1")
    st, evs = credit.apply_command(st, {"account": "A1", "action": "unbar"}, 1)
    assert evs == []
    assert charge(st, 50_000, "c2") == []             # 0.95 < 1.00: low_credit as before
    [ev] = charge(st, 50_000, "c3")                   # 1.00 reached: hard limit as usual
    assert ev["new_profile"] == "blocked"


def test_raise_credit_is_the_lasting_relief_and_clears_an_unbar():
    st = provision()
    charge(st, 1_200_000, "c1")
    st, _ = credit.apply_command(st, {"account": "A1", "action": "unbar"}, 1)
    st, [ev] = credit.apply_command(st, {"account": "A1", "action": "raise_credit", "credit_micros": 2_000_000}, 2)
    assert ev["new_profile"] == "normal" and ev["credit_micros"] == 3_000_000   # 1.20 < 80 % of 3.00 = 2.40
    assert charge(st, 1_000_000, "c2") == []          # 2.20
    [ev] = charge(st, 800_000, "c3")                  # 3.00 reached (soft at 2.40 crossed first)
    assert ev["new_profile"] == "blocked" and ev["old_profile"] == "normal"


def test_new_period_clears_an_unbar():
    st = provision()
    charge(st, 1_200_000, "c1")
    st, _ = credit.apply_command(st, {"account": "A1", "action": "unbar", "credit_micros": 9_000_000}, 1)
    charge(st, 100_000, "o1", period="2026-10")      # October: fresh 0.10, normal
    assert st["unbar_until"] is None
    charge(st, 1_000_000, "o2", period="2026-10")    # 1.10 >= 1.00: blocked, the allowance was September's
    assert profile(st) == "blocked"


def test_set_profile_normal_lifts_like_an_unbar():
    st = provision()
    charge(st, 1_200_000, "c1")
    st, [ev] = credit.apply_command(st, {"account": "A1", "action": "set_profile", "profile": "normal"}, 1)
    assert ev["new_profile"] == "low_credit"
    [ev] = charge(st, 1, "c2")
    assert ev["new_profile"] == "blocked"


def test_state_written_before_the_rule_re_arms_at_its_spend():
    st = provision()
    charge(st, 1_200_000, "c1")
    st.pop("unbar_until")
    st["unbarred"] = True                             # an old stored state: unbarred for the period
    assert profile(st) == "low_credit"
    [ev] = charge(st, 1, "c2")
    assert ev["new_profile"] == "blocked"
