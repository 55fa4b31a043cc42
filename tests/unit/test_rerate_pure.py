"""Pure rerating logic: canonical rebuilt from a landed row, deltas, adjustments, commands.

Expected numbers are computed here by hand (started minutes × rate), not with the rating core.
"""
from __future__ import annotations

import pytest

from sinks.clickhouse import periods as P
from streams import rerate as R
from streams.core.tariff import parse_tariff_text
from tests.support.rerate_tariff import TARIFF

T = 1_793_000_000_000   # 2026-10-26


def row(i: int, billsec: int, cost: int, period: str = "2026-10", account: str = "A", version: int = 1) -> dict:
    return {"cdr_key": f"k{i}", "account": account, "service_user": "u", "period": period, "switch_id": "sw",
            "call_id": f"c{i}", "leg": "A", "correlation_id": f"c{i}", "direction": "outbound",
            "caller_e164": "+31201234567", "presented_cli": "+31201234567", "called_e164": "+33142685300",
            "called_type": "fixed", "trunk": "t1", "destination": "fr", "prefix": "33", "start_ms": T + i * 1000,
            "end_ms": T + i * 1000 + (5 + billsec) * 1000, "duration_s": 5 + billsec, "billsec_s": billsec,
            "answered": billsec > 0, "disposition": "ANSWERED" if billsec else "NO ANSWER", "service": "voice",
            "charged_s": -(-billsec // 60) * 60, "rate_micros": 100_000, "rate_unit_s": 60,
            "connect_fee_micros": 0, "cost_nanos": cost * 1000, "cost_micros": cost, "tariff_plan": "std",
            "tariff_version": "v1", "rating_version": version, "rated_at_ms": T, "ingest_ms": T,
            "source_partition": 2, "source_offset": 40 + i}


@pytest.fixture(scope="module")
def book():
    return parse_tariff_text(TARIFF, "t.yaml", "yaml")


def test_canonical_from_row():
    c = R.canonical_from_row(row(1, 61, 200_000))
    assert c["answer_ms"] == T + 1000 + 5000            # end − billsec: the ring time is skipped
    assert c["start_ms"] == T + 1000 and c["billsec_s"] == 61 and c["answered"] is True
    assert (c["direction"], c["called_e164"], c["called_type"], c["trunk"]) == ("outbound", "+33142685300", "fixed", "t1")
    assert c["source_partition"] == 2 and c["source_offset"] == 41
    unanswered = R.canonical_from_row(row(2, 0, 0))
    assert unanswered["answer_ms"] is None and unanswered["answered"] is False


def test_rerate_same_version_is_unchanged(book):
    rec = row(1, 61, 200_000)                           # 2 started minutes × 0.10
    new = R.rerated(rec, lambda c, plan: book.rate(c, plan=plan), T + 5)
    assert new["cost_micros"] == 200_000 and R.priced_equal(rec, new)
    assert new["rating_version"] == 2 and new["cdr_key"] == "k1" and new["period"] == "2026-10"


def test_pinned_version_and_deltas(book):
    v2 = R.pin_version(book, "std", "v2")
    rate = lambda c, plan: v2.rate(c, plan=plan)        # noqa: E731
    rows = [row(1, 61, 200_000), row(2, 1, 100_000), row(3, 0, 0), row(4, 3600, 6_000_000, account="B")]
    res = R.plan_rerate(rows, [], rate, decision_of=lambda a, p: None, ever_closed=lambda a, p: False,
                        now_ms=T + 9, run_id="r1")
    # (2 + 1) minutes × 0.15 more for A; 60 × 0.15 more for B; the unanswered call costs nothing.
    assert res.deltas == {("A", "2026-10"): 3 * 150_000, ("B", "2026-10"): 60 * 150_000}
    # The unanswered call is rewritten too (its tariff_version label changes) at zero delta.
    assert res.unchanged == 0 and len(res.replaced) == 4
    assert res.delta_micros == 63 * 150_000
    assert res.commands == [
        {"command_id": "rerate:r1:A:2026-10", "account": "A", "action": "adjust_spend", "credit_micros": None,
         "profile": None, "timezone": None, "period_kind": None, "soft_limit_pct": None, "tariff_plan": None,
         "always_allowed": None, "issued_ms": T + 9, "user_thresholds": None, "period": "2026-10",
         "delta_micros": 450_000},
        {"command_id": "rerate:r1:B:2026-10", "account": "B", "action": "adjust_spend", "credit_micros": None,
         "profile": None, "timezone": None, "period_kind": None, "soft_limit_pct": None, "tariff_plan": None,
         "always_allowed": None, "issued_ms": T + 9, "user_thresholds": None, "period": "2026-10",
         "delta_micros": 9_000_000},
    ]
    with pytest.raises(ValueError, match="no version 'v9'"):
        R.pin_version(book, "std", "v9")


def _closed(a, p):
    return P.Decision("*", p, P.CLOSED, 0, "x", 0, 1) if p == "2026-10" else None


def test_closed_refused_and_adjusted(book):
    v2 = R.pin_version(book, "std", "v2")
    rate = lambda c, plan: v2.rate(c, plan=plan)        # noqa: E731
    rows = [row(1, 61, 200_000)]
    with pytest.raises(R.RerateRefused, match="closed financial periods: A 2026-10"):
        R.plan_rerate(rows, [], rate, decision_of=_closed, ever_closed=lambda a, p: True)
    kw = dict(decision_of=_closed, ever_closed=lambda a, p: True, adjust=True,
              adj_period_of=lambda r: "2026-11", adj_start_of=lambda a, p: 1_000, now_ms=T)
    res = R.plan_rerate(rows, [], rate, **kw)
    (adj,) = res.adjustments
    assert adj["cdr_key"] == "k1#adj@2026-11" and R.adjustment_of(adj["cdr_key"]) == "k1"
    assert adj["cost_micros"] == 500_000 - 200_000 and adj["period"] == "2026-11" and adj["start_ms"] == 1_000
    assert adj["disposition"] == R.ADJ_DISPOSITION and adj["rating_version"] == 1
    assert res.deltas == {("A", "2026-11"): 300_000}
    # With an adjustment of 100 000 already posted in 2026-09 and this period's one landed, nothing is due.
    prior = [dict(adj, cdr_key="k1#adj@2026-09", period="2026-09", cost_micros=100_000),
             dict(adj, cost_micros=200_000)]
    again = R.plan_rerate(rows, prior, rate, **kw)
    assert not again.rows and not again.commands and again.unchanged == 1
    prior[0]["cost_micros"] = 50_000                    # 2026-11's row must grow by 50 000
    third = R.plan_rerate(rows, prior, rate, **kw)
    assert third.adjustments[0]["cost_micros"] == 250_000 and third.adjustments[0]["rating_version"] == 2
    assert third.deltas == {("A", "2026-11"): 50_000}


def test_effective_decision_and_partial_lock():
    d_all = P.Decision("*", "2026-10", P.CLOSED, 0, "a", 0, 10)
    d_a = P.Decision("A", "2026-10", P.OPEN, 0, "b", 0, 11)
    assert P.effective([d_all, d_a], "A", "2026-10") is d_a
    assert P.effective([d_all, d_a], "B", "2026-10") is d_all
    d_all2 = P.Decision("*", "2026-10", P.PARTIAL, 5_000, "c", 0, 12)
    assert P.effective([d_all, d_a, d_all2], "A", "2026-10") is d_all2
    assert P.is_locked(d_all2, 4_999) and not P.is_locked(d_all2, 5_000)
    assert not P.is_locked(None, 0) and P.is_locked(d_all, 10**15)
