"""A simulated Dutch operator: accounts and a realistic CDR mix, deterministic per seed.

The mix covers local, national, mobile, international and premium calls, inbound toll-free
calls, short and long calls, and unanswered attempts. Numbers arrive in the formats switches
really emit (national with trunk prefix, 00-international, E.164). A share of accounts has a
small credit and heavy traffic, so soft and hard limits are crossed.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from streams.core.money import parse_money

HOME_AREAS = ["20", "10", "30", "40", "50", "70", "13", "23", "24", "26", "43", "53"]
INTERNATIONAL = [("44", 10), ("49", 10), ("32", 8), ("33", 9), ("1", 10), ("34", 9), ("39", 10),
                 ("91", 10), ("86", 11), ("7", 10), ("27", 9), ("61", 9)]
TIMEZONES = ["Europe/Amsterdam"] * 8 + ["Europe/London", "America/New_York"]


@dataclass
class SimAccount:
    account: str
    timezone: str
    period_kind: str
    credit_micros: int
    soft_limit_pct: int
    heavy: bool
    numbers: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)

    def provision_command(self, issued_ms: int) -> dict:
        return {"command_id": f"provision-{self.account}", "account": self.account, "action": "provision",
                "credit_micros": self.credit_micros, "profile": None, "timezone": self.timezone,
                "period_kind": self.period_kind, "soft_limit_pct": self.soft_limit_pct,
                "tariff_plan": "default", "always_allowed": ["112"], "issued_ms": issued_ms}


def make_accounts(n: int, seed: int = 7, heavy_share: float = 0.1) -> list[SimAccount]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        heavy = rnd.random() < heavy_share
        credit = parse_money(rnd.choice(["1.50", "2.00", "3.00"])) if heavy else \
            parse_money(rnd.choice(["25.00", "50.00", "100.00", "250.00"]))
        area = rnd.choice(HOME_AREAS)
        acct = SimAccount(
            account=f"ACC{i + 1:06d}", timezone=rnd.choice(TIMEZONES),
            period_kind="weekly" if rnd.random() < 0.2 else "monthly",
            credit_micros=credit, soft_limit_pct=rnd.choice([70, 80, 90]), heavy=heavy)
        base = rnd.randrange(2_000_000, 9_000_000)
        acct.numbers = [f"0{area}{base + k:07d}"[: 1 + len(area) + 7] for k in range(rnd.randint(1, 4))]
        acct.users = [f"ext{100 + k}" for k in range(len(acct.numbers))]
        out.append(acct)
    return out


class CdrGenerator:
    def __init__(self, accounts: list[SimAccount], now_ms: int, seed: int = 11, switch_id: str = "sw-ams-1",
                 window_s: int = 6 * 3600):
        self.rnd = random.Random(seed)
        self.accounts = accounts
        self.heavy = [a for a in accounts if a.heavy] or accounts
        self.now_ms = now_ms
        self.switch_id = switch_id
        self.window_s = window_s
        self.seq = 0

    def _called(self, rnd: random.Random, acct: SimAccount) -> tuple[str, str]:
        x = rnd.random()
        if x < 0.30:
            area = acct.numbers[0][1:3] if acct.numbers[0][1:3] in HOME_AREAS else "20"
            return "outbound", f"0{area}{rnd.randrange(1_000_000, 9_999_999)}"
        if x < 0.50:
            return "outbound", f"0{rnd.choice(HOME_AREAS)}{rnd.randrange(1_000_000, 9_999_999)}"
        if x < 0.72:
            return "outbound", f"06{rnd.randrange(10_000_000, 99_999_999)}"
        if x < 0.88:
            cc, length = rnd.choice(INTERNATIONAL)
            national = str(rnd.randrange(10 ** (length - 1), 10 ** length))
            if cc == "1":
                national = rnd.choice(["212", "415", "312", "646"]) + national[3:]
            elif cc == "44":
                national = "20" + national[2:]
            elif cc == "49":
                national = "30" + national[2:]
            return "outbound", rnd.choice(["00", "+"]) + cc + national
        if x < 0.92:
            return "outbound", f"0900{rnd.randrange(1_000_000, 9_999_999)}"
        return "inbound", f"0800{rnd.randrange(1000, 9999)}"

    def next(self) -> dict:
        rnd = self.rnd
        acct = rnd.choice(self.heavy) if rnd.random() < 0.35 else rnd.choice(self.accounts)
        direction, called = self._called(rnd, acct)
        k = rnd.randrange(len(acct.numbers))
        caller = acct.numbers[k]
        if direction == "inbound":
            # Inbound toll-free: the account owns the 0800 number and pays; the caller is anyone.
            caller = rnd.choice([f"06{rnd.randrange(10_000_000, 99_999_999)}",
                                 f"0{rnd.choice(HOME_AREAS)}{rnd.randrange(1_000_000, 9_999_999)}",
                                 f"+32{rnd.randrange(400_000_000, 499_999_999)}"])
        r = rnd.random()
        answered = r > 0.18
        disposition = "ANSWERED" if answered else rnd.choice(["NO ANSWER", "BUSY", "FAILED"])
        billsec = 0
        if answered:
            billsec = int(rnd.expovariate(1 / 150)) + 1 if rnd.random() < 0.9 else rnd.randint(1800, 7200)
        ring = rnd.randint(2, 25)
        duration = ring + billsec
        end_ms = self.now_ms - rnd.randrange(0, self.window_s * 1000)
        start_ms = end_ms - duration * 1000
        self.seq += 1
        presented = None
        if rnd.random() < 0.1:
            presented = f"0{rnd.choice(HOME_AREAS)}{rnd.randrange(1_000_000, 9_999_999)}"  # virtual PBX CLI
        return {
            "switch_id": self.switch_id, "call_id": f"{self.switch_id}-{self.now_ms}-{self.seq}", "leg": "A",
            "partial_seq": 0, "partial_final": True, "correlation_id": None, "account": acct.account,
            "service_user": acct.users[k], "direction": direction, "caller": caller,
            "presented_cli": presented, "called": called, "trunk": rnd.choice(["kpn-1", "kpn-2", "tele2-1"]),
            "start_ms": start_ms, "answer_ms": start_ms + ring * 1000 if answered else None, "end_ms": end_ms,
            "duration_s": duration, "billsec_s": billsec, "disposition": disposition, "service": "voice",
        }

    def take(self, n: int) -> list[dict]:
        return [self.next() for _ in range(n)]
