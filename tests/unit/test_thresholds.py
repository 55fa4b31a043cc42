"""Service-user monthly thresholds and partner notifications.

Expected figures are written out by hand; the property test checks against its own running sum.
"""
from __future__ import annotations

import io
from datetime import datetime, timezone

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from streams import codecs
from streams.core import credit
from streams.core import thresholds as TH

AMS = "Europe/Amsterdam"


def ms(*args) -> int:
    return int(datetime(*args, tzinfo=timezone.utc).timestamp() * 1000)


def charge(users, user, period, cost, th=(10_000_000, 20_000_000), key="k"):
    return TH.apply_user_charge(users, user, period, cost, th, 1, key, account="ACME")


def test_each_threshold_fires_once_per_period():
    users: dict = {}
    assert charge(users, "101", "2026-11", 9_999_999) == []
    [n1] = charge(users, "101", "2026-11", 1, key="c2")                 # exactly 10.000000
    assert n1 == {"notification_id": "ACME:101:2026-11:1", "account": "ACME", "service_user": "101",
                  "period": "2026-11", "kind": "user_threshold_1", "spend_micros": 10_000_000,
                  "threshold_micros": 10_000_000, "at_ms": 1, "cause_cdr_key": "c2", "correction": False}
    assert charge(users, "101", "2026-11", 5_000_000) == []             # 15: between the two
    assert charge(users, "101", "2026-11", -6_000_000) == []            # a credit note: 9
    assert charge(users, "101", "2026-11", 2_000_000) == []             # 11 again: no repeat
    [n2] = charge(users, "101", "2026-11", 9_000_000)                   # 20
    assert (n2["kind"], n2["notification_id"], n2["spend_micros"]) == ("user_threshold_2", "ACME:101:2026-11:2", 20_000_000)
    assert charge(users, "101", "2026-11", 50_000_000) == []


def test_one_charge_can_cross_both():
    users: dict = {}
    ns = charge(users, "101", "2026-11", 25_000_000)
    assert [n["kind"] for n in ns] == ["user_threshold_1", "user_threshold_2"]
    assert [n["threshold_micros"] for n in ns] == [10_000_000, 20_000_000]


def test_users_are_independent_and_new_period_resets():
    users: dict = {}
    assert len(charge(users, "101", "2026-11", 10_000_000)) == 1
    assert charge(users, "102", "2026-11", 9_000_000) == []
    assert TH.user_spend({"users": users}, "102", "2026-11") == 9_000_000
    [n] = charge(users, "101", "2026-12", 10_000_000)                   # December starts from zero
    assert n["notification_id"] == "ACME:101:2026-12:1" and n["spend_micros"] == 10_000_000
    assert not n["correction"]


def test_late_cdr_for_a_retained_month_is_a_correction():
    users: dict = {}
    charge(users, "101", "2026-11", 9_000_000)
    charge(users, "101", "2026-12", 1_000_000)
    [n] = charge(users, "101", "2026-11", 1_000_000, key="late")
    assert (n["period"], n["correction"], n["spend_micros"]) == ("2026-11", True, 10_000_000)
    assert TH.user_spend({"users": users}, "101", "2026-12") == 1_000_000


def test_cdr_older_than_retained_months_leaves_thresholds_alone():
    users: dict = {}
    for p in ("2026-10", "2026-11", "2026-12"):
        charge(users, "101", p, 1)
    assert charge(users, "101", "2026-09", 50_000_000) == []
    assert sorted(users["101"]["spend"]) == ["2026-10", "2026-11", "2026-12"]
    charge(users, "101", "2027-01", 1)                                  # the oldest month rolls off
    assert sorted(users["101"]["spend"]) == ["2026-11", "2026-12", "2027-01"]


def test_no_thresholds_still_counts_spend_and_empty_user_is_ignored():
    users: dict = {}
    assert charge(users, "101", "2026-11", 30_000_000, th=None) == []
    assert users["101"]["spend"]["2026-11"] == 30_000_000
    # thresholds configured later in the month: the next charge fires both
    assert [n["kind"] for n in charge(users, "101", "2026-11", 1)] == ["user_threshold_1", "user_threshold_2"]
    assert charge(users, "", "2026-11", 99_000_000) == [] and "" not in users


def test_config_default_override_and_off():
    cfg = TH.parse_config({"*": [10, 20], "101": [1, 2], "102": []})
    assert TH.thresholds_for(cfg, "999") == (10, 20)
    assert TH.thresholds_for(cfg, "101") == (1, 2)
    assert TH.thresholds_for(cfg, "102") is None
    assert TH.thresholds_for(None, "101") is None
    assert TH.thresholds_for(TH.parse_config({"101": [1, 2]}), "103") is None


@pytest.mark.parametrize("bad", [{"*": [20, 10]}, {"*": [0, 10]}, {"*": [10]}, {"*": [1.5, 3]}, {"": [1, 2]},
                                 {"*": [True, 3]}, [1, 2]])
def test_bad_config_is_refused(bad):
    with pytest.raises(ValueError):
        TH.parse_config(bad)


# --- wired through the account state ---------------------------------------------------------

def provision(**extra):
    cmd = {"account": "ACME", "action": "provision", "credit_micros": 100_000_000, "soft_limit_pct": 80,
           "period_kind": "weekly", "timezone": AMS, "tariff_plan": "default", "always_allowed": [], **extra}
    state, events = TH.apply_account_command(None, cmd, ms(2026, 11, 2))
    assert events == []
    return state


def test_provision_and_set_user_thresholds_commands():
    st_ = provision(user_thresholds={"*": [10_000_000, 20_000_000]})
    assert st_["user_thresholds"] == {"*": [10_000_000, 20_000_000]}
    TH.apply_account_command(st_, {"account": "ACME", "action": "set_user_thresholds",
                                   "user_thresholds": {"101": [1_000_000, 2_000_000]}}, 0)
    assert st_["user_thresholds"] == {"*": [10_000_000, 20_000_000], "101": [1_000_000, 2_000_000]}
    # a re-provision without the map keeps it; credit commands pass through to credit control
    TH.apply_account_command(st_, {"account": "ACME", "action": "provision", "credit_micros": 5, "timezone": AMS}, 0)
    assert "101" in st_["user_thresholds"] and credit.config(st_).credit_micros == 5
    before = dict(st_["user_thresholds"])
    with pytest.raises(ValueError):
        TH.apply_account_command(st_, {"account": "ACME", "action": "set_user_thresholds",
                                       "user_thresholds": {"101": [3, 2]}}, 0)
    assert st_["user_thresholds"] == before
    with pytest.raises(KeyError):
        TH.apply_account_command(None, {"account": "X", "action": "set_user_thresholds",
                                        "user_thresholds": {"*": [1, 2]}}, 0)


def test_cdr_charge_uses_monthly_user_periods_and_partner_notifications():
    st_ = provision(user_thresholds={"*": [10_000_000, 20_000_000], "boss": []})
    # 30 Nov 23:30 UTC is 1 Dec in Amsterdam: user month 2026-12; the credit period is weekly.
    start = ms(2026, 11, 30, 23, 30)
    period = "2026-W49"
    ev, notes = TH.apply_cdr_charge(st_, period=period, start_ms=start, service_user="101", cost_micros=12_000_000,
                                    at_ms=5, cause_key="c1")
    assert ev == [] and [(n["kind"], n["period"]) for n in notes] == [("user_threshold_1", "2026-12")]
    ev, notes = TH.apply_cdr_charge(st_, period=period, start_ms=start, service_user="boss", cost_micros=70_000_000,
                                    at_ms=6, cause_key="c2")
    assert [e["new_profile"] for e in ev] == ["low_credit"]            # 82 of 100
    assert [(n["kind"], n["service_user"], n["threshold_micros"]) for n in notes] == [("soft_limit", "", 80_000_000)]
    ev, notes = TH.apply_cdr_charge(st_, period=period, start_ms=start, service_user="101", cost_micros=18_000_000,
                                    at_ms=7, cause_key="c3")
    assert [e["new_profile"] for e in ev] == ["blocked"]
    assert [n["kind"] for n in notes] == ["hard_limit", "user_threshold_2"]
    assert notes[0]["notification_id"] == "ACME:*:2026-W49:hard_limit:2"
    assert [n["notification_id"] for n in TH.redelivered(st_, "c3")] == [n["notification_id"] for n in notes]
    assert TH.redelivered(st_, "nope") == []


def test_notification_from_barring_rules():
    st_ = provision()
    [soft] = credit.apply_charge(st_, "2026-W45", 80_000_000, 1, "k")
    assert TH.notification_from_barring(soft)["kind"] == "soft_limit"
    _, [forced] = credit.apply_command(st_, {"account": "ACME", "action": "set_profile", "profile": "blocked"}, 2)
    assert TH.notification_from_barring(forced) is None                  # the partner's own action
    _, [relief] = credit.apply_command(st_, {"account": "ACME", "action": "set_profile", "profile": "normal"}, 3)
    assert TH.notification_from_barring(relief) is None
    _, [lowered] = credit.apply_command(st_, {"account": "ACME", "action": "lower_credit", "credit_micros": 30_000_000}, 4)
    n = TH.notification_from_barring(lowered)
    assert (n["kind"], n["threshold_micros"], n["spend_micros"]) == ("hard_limit", 70_000_000, 80_000_000)
    _, [raised] = credit.apply_command(st_, {"account": "ACME", "action": "raise_credit", "credit_micros": 70_000_000}, 5)
    assert TH.notification_from_barring(raised) is None                  # blocked -> normal is relief


def test_notification_encodes_with_pinned_schema():
    notes = charge({}, "101", "2026-11", 25_000_000)
    for n in notes + [TH.notification_from_barring(credit.apply_charge(provision(), "2026-W45", 99_000_000, 1, "k")[0])]:
        name, back = codecs.decode(codecs.encode("account.v1.Notification", n))
        assert name == "account.v1.Notification" and back == n
    assert codecs.book().schema_id("account.v1.Notification") == 15


def test_control_command_v1_writer_reads_with_user_thresholds_default():
    import json
    from pathlib import Path

    old = parse_schema(json.loads(Path("schemas/history/account.v1.ControlCommand.1.avsc").read_text()))
    rec = {"command_id": "c", "account": "A", "action": "unbar", "credit_micros": None, "profile": None,
           "timezone": None, "period_kind": None, "soft_limit_pct": None, "tariff_plan": None,
           "always_allowed": None, "issued_ms": 1}
    buf = io.BytesIO()
    schemaless_writer(buf, old, rec)
    buf.seek(0)
    got = schemaless_reader(buf, old, codecs.book().parsed["account.v1.ControlCommand"])
    assert got["user_thresholds"] is None and got["action"] == "unbar"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["101", "102"]), st.sampled_from(["2026-10", "2026-11"]),
                          st.integers(0, 7_000_000)), max_size=40),
       st.integers(1, 15_000_000), st.integers(1, 15_000_000))
def test_sums_and_crossings_match_an_independent_count(charges, a, b):
    t1, t2 = min(a, b), max(a, b) + 1
    users: dict = {}
    fired = []
    for user, period, cost in charges:
        fired += [(n["service_user"], n["period"], n["kind"]) for n in
                  TH.apply_user_charge(users, user, period, cost, (t1, t2), 0, "k", account="A")]
    sums: dict = {}
    for user, period, cost in charges:
        sums[(user, period)] = sums.get((user, period), 0) + cost
    for (user, period), total in sums.items():
        assert users[user]["spend"][period] == total
        kinds = [k for u, p, k in fired if (u, p) == (user, period)]
        # costs are non-negative here, so "crossed once" is "the total reached it"
        assert kinds.count("user_threshold_1") == (total >= t1)
        assert kinds.count("user_threshold_2") == (total >= t2)


def test_stored_values_are_never_mutated_in_place():
    """pipeline._copy_state copies only some keys; a shared nested value must stay untouched."""
    import copy

    stored = provision(user_thresholds={"*": [10, 20]})
    TH.apply_cdr_charge(stored, period="2026-W45", start_ms=ms(2026, 11, 3), service_user="101", cost_micros=15,
                        at_ms=1, cause_key="a")
    snapshot = copy.deepcopy(stored)
    working = dict(stored)
    working["users"] = dict(stored["users"])                 # what the lead's _copy_state adds
    working.update(spend=dict(stored["spend"]), off=dict(stored["off"]), cfg=dict(stored["cfg"]))
    TH.apply_cdr_charge(working, period="2026-W45", start_ms=ms(2026, 11, 3), service_user="101", cost_micros=10,
                        at_ms=2, cause_key="b")
    assert stored == snapshot
    assert TH.user_spend(working, "101", "2026-11") == 25 and len(working["recent_notifications"]) == 2
