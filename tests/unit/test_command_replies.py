"""Issue 10 hole 9: every control command gets an outcome (applied with the new state, or
refused with a reason), produced by the charge step that applies it (no Kafka here)."""
from __future__ import annotations

from streams import codecs
from streams.msg import Msg
from streams.pipeline import charge_partition

NOW = 1_795_000_000_000          # 2026-11-18 UTC


def cmd_msg(offset: int, account: str, action: str, **fields) -> Msg:
    cmd = {"command_id": f"c{offset}", "account": account, "action": action, "credit_micros": None,
           "profile": None, "timezone": None, "period_kind": None, "soft_limit_pct": None, "tariff_plan": None,
           "always_allowed": None, "issued_ms": NOW, **fields}
    return Msg("account.control", 0, offset, NOW, codecs.encode(codecs.CONTROL, cmd))


def run(table: dict, msgs: list[Msg]):
    res, states = charge_partition(msgs, table.get, lambda c, p: None, NOW, 35)
    for a in res.touched:
        table[a] = states[a]
    return res


def test_unknown_account_is_refused_with_a_reason():
    res = run({}, [cmd_msg(0, "NOPE", "raise_credit", credit_micros=5_000_000)])
    [rep] = res.replies
    assert (rep["command_id"], rep["outcome"], rep["reason"]) == ("c0", "refused", "unknown_account")
    assert "NOPE" in rep["detail"] and rep["state"] is None
    # the reply travels as its own Avro type on account.replies
    assert codecs.decode(codecs.encode(codecs.REPLY, rep)) == (codecs.REPLY, rep)


def test_applied_commands_carry_the_new_state_and_their_transitions():
    table: dict = {}
    res = run(table, [cmd_msg(0, "A1", "provision", credit_micros=1_000_000, timezone="UTC"),
                      cmd_msg(1, "A1", "lower_credit", credit_micros=1_000_000),         # 0 credit: blocked
                      cmd_msg(2, "A1", "set_profile", profile="vip")])
    prov, lower, bad = res.replies
    assert prov["outcome"] == "applied" and prov["state"]["credit_micros"] == 1_000_000
    assert lower["outcome"] == "applied" and lower["state"]["profile"] == "blocked"
    assert lower["state"]["credit_micros"] == 0 and lower["transitions"] == [res.events[0]["event_id"]]
    assert (bad["outcome"], bad["reason"]) == ("refused", "invalid_command") and "vip" in bad["detail"]


def test_a_redelivered_command_is_answered_again_without_applying_twice():
    table: dict = {}
    run(table, [cmd_msg(0, "A1", "provision", credit_micros=1_000_000, timezone="UTC"),
                cmd_msg(1, "A1", "raise_credit", credit_micros=500_000)])
    res = run(table, [cmd_msg(1, "A1", "raise_credit", credit_micros=500_000)])      # same offset again
    [rep] = res.replies
    assert rep["outcome"] == "applied" and rep["state"]["credit_micros"] == 1_500_000   # not 2.00


def test_internal_period_rolls_are_not_answered():
    table: dict = {}
    run(table, [cmd_msg(0, "A1", "provision", credit_micros=1_000_000, timezone="UTC")])
    assert run(table, [cmd_msg(1, "A1", "roll_period")]).replies == []
