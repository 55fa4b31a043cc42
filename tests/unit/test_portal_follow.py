"""The portal's Directory following account.control + account.replies (pure: records handed in
as the follower would), and the demo login."""
from __future__ import annotations

import json

from streams.core import replies as R
from streams.portal.directory import PENDING, Directory
from streams.portal.embedded import DEMO_USER, demo_login
from streams.portal.users import UserStore


def cmd(cid: str, action: str, account: str = "A", **kw) -> dict:
    return {"command_id": cid, "account": account, "action": action, **kw}


def reply(cid: str, action: str, outcome: str = R.APPLIED, account: str = "A", reason=None) -> dict:
    return {"command_id": cid, "account": account, "action": action, "outcome": outcome, "reason": reason,
            "detail": None}


def test_a_command_counts_only_once_the_worker_applied_it():
    d = Directory()
    d.on_command(cmd("p1", "provision", timezone="Asia/Tokyo", user_thresholds={"*": [1_000_000, 2_000_000]}))
    assert not d.get("A").known                       # asked for, not yet applied
    d.on_reply(reply("p1", "provision"))
    info = d.get("A")
    assert info.timezone == "Asia/Tokyo" and info.thresholds_for("x") == (1_000_000, 2_000_000)


def test_reply_before_command_is_applied_when_the_command_arrives_in_reply_order():
    d = Directory()
    # The follower reads two topics: replies may come before their commands.
    d.on_reply(reply("p1", "provision"))
    d.on_reply(reply("t1", "set_user_thresholds"))
    d.on_command(cmd("t1", "set_user_thresholds", user_thresholds={"101": [5, 9]}))
    assert not d.get("A").known                       # t1 waits behind p1: order of the worker's replies
    d.on_command(cmd("p1", "provision", timezone="Europe/Amsterdam", user_thresholds={"101": [1, 2]}))
    assert d.get("A").user_thresholds == {"101": [5, 9]}   # provision first, then the merge on top


def test_refused_and_redelivered_commands_change_nothing():
    d = Directory()
    d.on_command(cmd("p1", "provision", timezone="UTC"))
    d.on_reply(reply("p1", "provision"))
    d.on_command(cmd("bad", "set_user_thresholds", user_thresholds={"101": [7, 8]}))
    d.on_reply(reply("bad", "set_user_thresholds", R.REFUSED, reason=R.INVALID_COMMAND))
    assert d.get("A").user_thresholds == {}
    d.on_command(cmd("t1", "set_user_thresholds", user_thresholds={"101": [1, 2]}))
    d.on_reply(reply("t1", "set_user_thresholds"))
    d.on_command(cmd("t2", "set_user_thresholds", user_thresholds={"101": [3, 4]}))
    d.on_reply(reply("t2", "set_user_thresholds"))
    # t1 redelivered and answered again: applying it again would undo t2.
    d.on_command(cmd("t1", "set_user_thresholds", user_thresholds={"101": [1, 2]}))
    d.on_reply(reply("t1", "set_user_thresholds"))
    assert d.get("A").user_thresholds == {"101": [3, 4]}
    assert [o["outcome"] for o in d.recent("A")] == ["applied", "applied", "refused", "applied"]
    assert d.recent("A")[2]["reason"] == R.INVALID_COMMAND


def test_internal_commands_and_other_accounts_are_kept_apart():
    d = Directory()
    d.on_command(cmd("", "roll_period"))
    d.on_command(cmd("p", "provision", account="B", timezone="Asia/Tokyo"))
    d.on_reply(reply("p", "provision", account="B"))
    assert d.get("B").timezone == "Asia/Tokyo" and not d.get("A").known
    assert d.recent("A") == []


def test_sent_commands_are_pending_until_their_reply():
    d = Directory()
    d.note_sent(cmd("c1", "set_credit"))
    assert d.outcome("c1")["outcome"] == PENDING
    d.on_reply(reply("c1", "set_credit"))
    assert d.outcome("c1")["outcome"] == R.APPLIED


def test_demo_login_prints_a_fresh_password_and_stores_only_its_hash(tmp_path):
    f = tmp_path / "users.json"
    pw1 = demo_login(f, ["ACC000001", "ACC000002"])
    pw2 = demo_login(f, ["ACC000001", "ACC000002"])
    assert pw1 != pw2 and len(pw1) >= 16
    store = UserStore(f)
    assert store.authenticate(DEMO_USER, pw2) is not None and store.authenticate(DEMO_USER, pw1) is None
    assert pw2 not in f.read_text()
    user = store.get(DEMO_USER)
    assert user.accounts() == ["ACC000001", "ACC000002"]
    assert user.can("ACC000001", "manage", whole=True) and user.can("ACC000002", "finance")
    assert not user.can("ACC000003")
    json.loads(f.read_text())
