"""Issue 10 hole 8: any sequence of rerates (adjust, reopen + rerate --reopened, closes in
between) leaves each call counted once at its latest price.

The landed table is modelled as ClickHouse ``cdr_rated FINAL`` does it: the highest
rating_version per key. Prices are minutes x rate by hand: a 61 s call is 2 started minutes,
0.20 at v1 (0.10/min) and 0.50 at v2 (0.25/min)."""
from __future__ import annotations

import itertools

from sinks.clickhouse import periods as P
from streams import rerate as R
from streams.core.periods import period_bounds
from streams.core.tariff import parse_tariff_text
from tests.support.rerate_tariff import TARIFF

NOV = 1_794_300_000_000          # 2026-11-10 UTC
PRICE = {"v1": 200_000, "v2": 500_000}


def row() -> dict:
    return {"cdr_key": "k1", "account": "A", "service_user": "u", "period": "2026-11", "switch_id": "sw",
            "call_id": "c1", "leg": "A", "correlation_id": "c1", "direction": "outbound",
            "caller_e164": "+31201234567", "presented_cli": "+31201234567", "called_e164": "+33142685300",
            "called_type": "fixed", "trunk": "t1", "destination": "fr", "prefix": "33", "start_ms": NOV,
            "end_ms": NOV + 66_000, "duration_s": 66, "billsec_s": 61, "answered": True, "disposition": "ANSWERED",
            "service": "voice", "charged_s": 120, "rate_micros": 250_000, "rate_unit_s": 60, "connect_fee_micros": 0,
            "cost_nanos": 500_000_000, "cost_micros": 500_000, "tariff_plan": "std", "tariff_version": "v2",
            "rating_version": 1, "rated_at_ms": NOV, "ingest_ms": NOV, "source_partition": 0, "source_offset": 1}


BOOK = parse_tariff_text(TARIFF, "t.yaml", "yaml")
RATES = {v: (lambda b: (lambda c, plan: b.rate(c, plan=plan)))(R.pin_version(BOOK, "std", v)) for v in PRICE}


class Books:
    def __init__(self):
        self.rows = {"k1": row()}
        self.decisions: list[P.Decision] = []
        self.spend = {"2026-11": 500_000}      # what adjust_spend commands would give the account
        self.version = 0
        self.price = PRICE["v2"]

    def decide(self, period: str, status: str) -> None:
        self.version += 1
        self.decisions.append(P.Decision("*", period, status, 0, "t", self.version, self.version))

    def locked(self, period: str) -> bool:
        return P.is_locked(P.effective(self.decisions, "A", period), period_bounds(period, "UTC")[0])

    def total(self, period: str) -> int:
        return sum(r["cost_micros"] for r in self.rows.values() if r["period"] == period)

    def billed(self) -> int:
        return sum(r["cost_micros"] for k, r in self.rows.items() if k == "k1" or R.adjustment_of(k) == "k1")

    def rerate(self, version: str) -> None:
        originals = [r for r in self.rows.values() if r["disposition"] != R.ADJ_DISPOSITION]
        adjs = [r for r in self.rows.values() if r["disposition"] == R.ADJ_DISPOSITION]
        adj_period = "2026-12" if not self.locked("2026-12") else "2027-01"
        res = R.plan_rerate(
            originals, adjs, RATES[version], decision_of=lambda a, p: P.effective(self.decisions, a, p),
            ever_closed=lambda a, p: P.was_ever_closed(self.decisions, a, p),
            adjust=self.locked("2026-11"), reopened=not self.locked("2026-11"),
            adj_period_of=lambda r: adj_period, adj_start_of=lambda a, p: period_bounds(p, "UTC")[0],
            now_ms=NOV + 1000 * self.version, run_id="r")
        for r in res.rows:
            old = self.rows.get(r["cdr_key"])
            assert old is None or r["rating_version"] > old["rating_version"], "a write FINAL would drop"
            self.rows[r["cdr_key"]] = r
        for (_a, p), d in res.deltas.items():
            assert not self.locked(p), f"spend moved in closed {p}"
            self.spend[p] = self.spend.get(p, 0) + d
        self.price = PRICE[version]


OPS = ["close 2026-11", "reopen 2026-11", "close 2026-12", "reopen 2026-12", "rerate v1", "rerate v2"]


def play(ops) -> Books:
    b = Books()
    for op in ops:
        verb, arg = op.split()
        if verb == "rerate":
            frozen = {p: b.total(p) for p in ("2026-11", "2026-12") if b.locked(p)}
            b.rerate(arg)
            assert {p: b.total(p) for p in frozen} == frozen, ops      # closed totals never move
        else:
            b.decide(arg, P.CLOSED if verb == "close" else P.OPEN)
        assert b.billed() == b.price, ops                              # counted once, at its latest price
        assert all(b.spend.get(p, 0) == b.total(p) for p in ("2026-11", "2026-12", "2027-01")), ops
    return b


def test_the_issue_run_adjust_then_reopen_and_rerate():
    # November closed, rerate --adjust to v1 posts -0.30 in December; then reopen + --reopened.
    b = play(["close 2026-11", "rerate v1"])
    assert b.total("2026-11") == 500_000 and b.total("2026-12") == -300_000
    b = play(["close 2026-11", "rerate v1", "reopen 2026-11", "rerate v1"])
    # Before the fix November became 0.20 and December kept -0.30 (refunded twice).
    assert b.total("2026-11") == 200_000 and b.total("2026-12") == 0 and b.billed() == 200_000


def test_a_closed_adjustment_period_is_offset_in_the_next_open_one():
    b = play(["close 2026-11", "rerate v1", "close 2026-12", "reopen 2026-11", "rerate v1"])
    assert b.total("2026-12") == -300_000                     # closed: as invoiced
    assert b.total("2026-11") == 200_000 and b.total("2027-01") == 300_000 and b.billed() == 200_000


def test_every_sequence_counts_the_call_once_at_its_latest_price():
    # Every sequence of 2..5 steps with at least two rerates: sum of 6^k - 4^k - 2k*4^(k-1) = 4,780.
    n = 0
    for k in range(2, 6):
        for ops in itertools.product(OPS, repeat=k):
            if sum(o.startswith("rerate") for o in ops) >= 2:
                play(list(ops))
                n += 1
    assert n == 4780
