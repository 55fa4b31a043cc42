"""Outcomes of control commands (pure): every command on ``account.control`` gets one reply
on ``account.replies`` — applied (with the account's new state) or refused (with the reason).

A partner's tool (``cdrflow account ...``) waits for the reply matching its ``command_id`` and
exits non-zero on a refusal, so a mistyped account is an error, never a silent "sent".
A redelivered command (already applied: same input offset) is answered again as applied with
the current state, because the first reply may have been lost with a crashed producer.
"""
from __future__ import annotations

from streams.core import credit

APPLIED = "applied"
REFUSED = "refused"
OUTCOMES = (APPLIED, REFUSED)

# Why a command was refused: a closed list, like the reject reasons.
UNKNOWN_ACCOUNT = "unknown_account"
INVALID_COMMAND = "invalid_command"
REASONS = (UNKNOWN_ACCOUNT, INVALID_COMMAND)

# Commands the pipeline sends itself: nobody waits for them, so they are not answered.
INTERNAL_ACTIONS = frozenset({"roll_period"})


def wanted(cmd: dict) -> bool:
    return cmd.get("action") not in INTERNAL_ACTIONS and bool(cmd.get("command_id"))


def applied(cmd: dict, state: dict, events: list[dict], now_ms: int) -> dict:
    return {"command_id": cmd["command_id"], "account": cmd["account"], "action": cmd["action"],
            "outcome": APPLIED, "reason": None, "detail": None,
            "state": credit.snapshot(state, now_ms), "transitions": [e["event_id"] for e in events],
            "at_ms": now_ms}


def refused(cmd: dict, exc: Exception, now_ms: int) -> dict:
    reason = UNKNOWN_ACCOUNT if isinstance(exc, KeyError) else INVALID_COMMAND
    detail = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    return {"command_id": cmd["command_id"], "account": cmd["account"], "action": cmd["action"],
            "outcome": REFUSED, "reason": reason, "detail": str(detail), "state": None, "transitions": [],
            "at_ms": now_ms}
