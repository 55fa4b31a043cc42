"""Which account a CDR without an account code belongs to: rules on switch, trunk, DID and
caller-number ranges (the ``account_map`` section of the sources YAML file).

    account_map:
      - {account: acct-100, switch: ast-1}                         # everything from a switch
      - {account: acct-200, switch: ast-1, trunk: kpn-trunk}       # one trunk of it
      - {account: acct-300, did: "+31201234500..+31201234599"}     # inbound calls to a DID block
      - {account: acct-400, caller: "+3120765*"}                   # outbound calls from a number prefix

* ``did`` matches the called number of **inbound** calls, ``caller`` the calling number of
  **outbound** calls (that is whose number it is); numbers are E.164 as normalised.
* A number condition is one number, a ``from..to`` range of equal-length numbers, or a prefix
  ending in ``*``.
* All conditions of a rule must hold. Of the rules that match, the most specific wins: a DID
  rule over a caller rule over a trunk rule over a switch rule, then the narrower number range,
  then the earlier rule. A CDR that carries an account code is never mapped.

Pure code: no I/O, the caller hands in the parsed YAML.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["AccountMap", "NumberSet", "Rule"]

_KEYS = frozenset({"account", "switch", "trunk", "did", "caller"})


@dataclass(frozen=True)
class NumberSet:
    low: str
    high: str
    prefix: bool = False

    @classmethod
    def parse(cls, spec: Any, where: str) -> "NumberSet":
        if not isinstance(spec, str) or not spec.strip():
            raise ValueError(f"{where}: expected a number, a range 'from..to' or a prefix ending in '*'")
        s = spec.strip().replace(" ", "")
        if s.endswith("*"):
            p = s[:-1]
            _digits(p, where)
            return cls(p, p, prefix=True)
        low, sep, high = s.partition("..")
        high = high if sep else low
        _digits(low, where)
        _digits(high, where)
        if len(low) != len(high) or low > high:
            raise ValueError(f"{where}: range {spec!r} must run from the lower to the higher number of equal length")
        return cls(low, high)

    def __contains__(self, number: str) -> bool:
        if self.prefix:
            return number.startswith(self.low)
        return len(number) == len(self.low) and self.low <= number <= self.high

    @property
    def width(self) -> int:
        if self.prefix:
            return 10 ** max(0, 16 - len(self.low))   # E.164 has at most 15 digits after '+'
        return int(self.high[1:]) - int(self.low[1:]) + 1


def _digits(s: str, where: str) -> None:
    if not (s.startswith("+") and s[1:].isdigit() and 2 <= len(s) <= 16):
        raise ValueError(f"{where}: {s!r} is not an E.164 number ('+' and up to 15 digits)")


@dataclass(frozen=True)
class Rule:
    account: str
    switch: str | None = None
    trunk: str | None = None
    did: NumberSet | None = None
    caller: NumberSet | None = None
    order: int = 0

    def matches(self, switch_id: str, trunk: str, direction: str, caller: str, called: str) -> bool:
        if self.switch is not None and self.switch != switch_id:
            return False
        if self.trunk is not None and self.trunk != trunk:
            return False
        if self.did is not None and (direction != "inbound" or called not in self.did):
            return False
        if self.caller is not None and (direction != "outbound" or caller not in self.caller):
            return False
        return True

    def rank(self) -> tuple:
        # Smaller is more specific; see the module docstring for the order.
        return (self.did is None, self.did.width if self.did else 0,
                self.caller is None, self.caller.width if self.caller else 0,
                self.trunk is None, self.switch is None, self.order)


class AccountMap:
    def __init__(self, rules: list[Rule] | None = None):
        self.rules = sorted(rules or [], key=Rule.rank)

    def __bool__(self) -> bool:
        return bool(self.rules)

    @classmethod
    def from_list(cls, data: Any) -> "AccountMap":
        if data is None:
            return cls()
        if not isinstance(data, list):
            raise ValueError("account_map: expected a list of rules")
        rules = []
        for i, spec in enumerate(data, 1):
            where = f"account_map rule {i}"
            if not isinstance(spec, Mapping):
                raise ValueError(f"{where}: expected a mapping")
            unknown = set(spec) - _KEYS
            if unknown:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(_KEYS)}")
            account = spec.get("account")
            if not isinstance(account, str) or not account.strip():
                raise ValueError(f"{where}: account is required")
            if not any(spec.get(k) is not None for k in ("switch", "trunk", "did", "caller")):
                raise ValueError(f"{where}: give at least one of switch, trunk, did, caller")
            if spec.get("did") is not None and spec.get("caller") is not None:
                raise ValueError(f"{where}: did (inbound) and caller (outbound) never hold together")
            rules.append(Rule(
                account=account.strip(),
                switch=None if spec.get("switch") is None else str(spec["switch"]),
                trunk=None if spec.get("trunk") is None else str(spec["trunk"]),
                did=None if spec.get("did") is None else NumberSet.parse(spec["did"], f"{where} did"),
                caller=None if spec.get("caller") is None else NumberSet.parse(spec["caller"], f"{where} caller"),
                order=i))
        return cls(rules)

    def lookup(self, switch_id: str, trunk: str, direction: str, caller: str, called: str) -> str | None:
        for rule in self.rules:   # sorted most specific first: the first match wins
            if rule.matches(switch_id, trunk or "", direction, caller, called):
                return rule.account
        return None
