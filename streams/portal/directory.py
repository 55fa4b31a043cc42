"""What the portal knows of each account beyond ClickHouse: time zone, period kind, user thresholds.

account.state and ClickHouse carry spend, credit and profile, but not the account's time zone or
its service-user thresholds: those live in the control commands (``provision``,
``set_user_thresholds``). The directory is built from the same commands, through the same
pure rules the worker uses (``streams.core.thresholds.parse_config``, merge on
``set_user_thresholds``, replace on ``provision``):

* the operator's provisioning file (``CDRFLOW_PORTAL_ACCOUNTS_FILE``, the CSV/YAML that
  ``cdrflow account load`` reads), validated by the same code as that command;
* every command the portal itself sends on ``account.control``;
* with a follower (``streams/portal/follower.py``), every command anyone sends on
  ``account.control`` (the CLI's ``cdrflow account ...`` too) — applied here only once the
  worker's reply on ``account.replies`` says it was applied, in the order of the replies, so
  the portal shows what the worker holds, not what somebody asked for.

The outcome of each command (pending / applied / refused with the reason) is kept, bounded, for
the pages to show.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

from streams.core import replies as R
from streams.core import thresholds as TH

PENDING = "pending"
MAX_REMEMBERED = 5_000      # commands / outcomes / applied ids kept (bounded memory)
MAX_WAITING = 100           # replies of one account waiting for their command before the oldest is given up


@dataclass
class AccountInfo:
    account: str
    timezone: str
    period_kind: str = "monthly"
    user_thresholds: dict[str, list[int]] = field(default_factory=dict)
    known: bool = False      # False: defaults, no provisioning command seen

    def thresholds_for(self, user: str) -> tuple[int, int] | None:
        return TH.thresholds_for(self.user_thresholds, user)


class Directory:
    def __init__(self, default_tz: str = "UTC") -> None:
        self.default_tz = default_tz
        self._lock = threading.Lock()
        self._accounts: dict[str, AccountInfo] = {}
        self._commands: OrderedDict[str, dict] = OrderedDict()      # seen on account.control, not replied yet
        self._waiting: dict[str, deque] = {}                        # account -> applied replies, command unseen
        self._applied: OrderedDict[str, None] = OrderedDict()       # command ids already applied here
        self._outcomes: OrderedDict[str, dict] = OrderedDict()      # command id -> outcome for the pages

    def get(self, account: str) -> AccountInfo:
        with self._lock:
            info = self._accounts.get(account)
            if info is None:
                return AccountInfo(account, self.default_tz)
            return AccountInfo(info.account, info.timezone, info.period_kind, dict(info.user_thresholds), True)

    def apply(self, cmd: dict) -> None:
        with self._lock:
            self._apply(cmd)

    def _apply(self, cmd: dict) -> None:
        config = TH.parse_config(cmd.get(TH.CONFIG_KEY))
        acc = cmd["account"]
        info = self._accounts.get(acc)
        if cmd["action"] == "provision":
            info = info or AccountInfo(acc, self.default_tz, known=True)
            info.timezone = cmd.get("timezone") or "UTC"
            info.period_kind = cmd.get("period_kind") or "monthly"
            if config is not None:
                info.user_thresholds = config
            self._accounts[acc] = info
        elif cmd["action"] == TH.SET_ACTION and config is not None:
            info = info or AccountInfo(acc, self.default_tz, known=True)
            info.user_thresholds = {**info.user_thresholds, **config}
            self._accounts[acc] = info

    # --- following account.control and account.replies ------------------------------------

    @staticmethod
    def _remember(od: OrderedDict, key: str, value) -> None:
        od[key] = value
        od.move_to_end(key)
        while len(od) > MAX_REMEMBERED:
            od.popitem(last=False)

    def note_sent(self, cmd: dict) -> None:
        """A command the portal sent: pending until its reply is seen."""
        with self._lock:
            self._remember(self._outcomes, cmd["command_id"], {
                "command_id": cmd["command_id"], "account": cmd["account"], "action": cmd["action"],
                "outcome": PENDING, "reason": None, "detail": None})

    def on_command(self, cmd: dict) -> None:
        if not R.wanted(cmd):
            return      # internal commands (roll_period) get no reply and change nothing here
        with self._lock:
            cid = cmd["command_id"]
            if cid in self._applied:
                return
            self._remember(self._commands, cid, cmd)
            self._drain(cmd["account"])

    def on_reply(self, reply: dict) -> None:
        with self._lock:
            cid, acc = reply["command_id"], reply["account"]
            self._remember(self._outcomes, cid, {k: reply.get(k) for k in (
                "command_id", "account", "action", "outcome", "reason", "detail")})
            if cid in self._applied:
                return  # a redelivered command answered again: applying it twice could undo a later one
            if reply["outcome"] != R.APPLIED:
                self._commands.pop(cid, None)
                return
            q = self._waiting.setdefault(acc, deque())
            q.append(cid)
            if len(q) > MAX_WAITING:
                q.popleft()     # its command is gone from account.control (retention): give it up
            self._drain(acc)

    def _drain(self, account: str) -> None:
        """Apply the account's applied commands in reply order, as far as their commands are known."""
        q = self._waiting.get(account)
        while q and q[0] in self._commands:
            cid = q.popleft()
            try:
                self._apply(self._commands.pop(cid))
            except ValueError:
                pass    # the worker applied it, so it parsed there; never let one command stop the follower
            self._remember(self._applied, cid, None)
        if q is not None and not q:
            del self._waiting[account]

    def outcome(self, command_id: str) -> dict | None:
        with self._lock:
            o = self._outcomes.get(command_id)
            return dict(o) if o else None

    def recent(self, account: str, n: int = 5) -> list[dict]:
        """The latest outcomes of commands for ``account``, newest first."""
        with self._lock:
            out = [dict(o) for o in reversed(self._outcomes.values()) if o["account"] == account]
        return out[:n]

    def load_file(self, path: str | Path) -> int:
        """Apply the provisioning file's commands; errors come back as the CLI's UserError."""
        from streams.cli.account import commands_from_rows, read_rows

        cmds = commands_from_rows(read_rows(Path(path)))
        for cmd in cmds:
            self.apply(cmd)
        return len(cmds)
