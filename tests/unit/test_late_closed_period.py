"""Issue 10 hole 7: after `periods close --period 2026-10`, a late October CDR moved October's
total. It must be booked in the open period, with a correction event every time.

Costs are computed by hand from the default tariff: NL mobile off-peak (weekends) 0.06/min,
first 30 s then per 6 s, so a call of a multiple of 6 s >= 30 s costs 0.001 per second."""
from __future__ import annotations

from streams import codecs
from streams.core.normalize import normalize
from streams.core.periods import ClosedPeriods
from streams.core.sources import NumberingContext
from streams.core.tariff import load_tariff_book
from streams.msg import Msg
from streams.periods_feed import PeriodWatcher, encode
from streams.pipeline import charge_partition
from streams.settings import DATA_DIR

NOW = 1_795_000_000_000          # 2026-11-18 07:06:40 UTC
OCT_20 = 1_792_238_400_000       # Saturday 2026-10-17 12:00 UTC (off-peak)
NOV_14 = 1_794_657_600_000       # Saturday 2026-11-14 12:00 UTC (off-peak)
BOOK = load_tariff_book(DATA_DIR / "tariff_default.yaml")


def rate(cdr, plan):
    return BOOK.rate(cdr, plan=plan)


def canonical(call_id: str, start: int, billsec: int) -> dict:
    raw = {"switch_id": "sw", "call_id": call_id, "leg": "A", "partial_seq": 0, "partial_final": True,
           "correlation_id": None, "account": "A1", "service_user": "ext1", "direction": "outbound",
           "caller": "0201234567", "presented_cli": None, "called": "0612345678", "trunk": "t1",
           "start_ms": start, "answer_ms": start + 5_000, "end_ms": start + 5_000 + billsec * 1000,
           "duration_s": 5 + billsec, "billsec_s": billsec, "disposition": "ANSWERED", "service": "voice"}
    c = normalize(raw, NumberingContext(), now_ms=NOW)
    c.update(source_topic="cdr.raw", source_partition=0, source_offset=1, source_index=0, ingest_ms=NOW, raw=b"x")
    return c


def msgs(offset0: int, *cdrs) -> list[Msg]:
    return [Msg("cdr.normalized", 0, offset0 + i, NOW, codecs.encode_batch(codecs.CANONICAL_BATCH, [c]))
            for i, c in enumerate(cdrs)]


def provision(table: dict, credit_micros: int) -> None:
    cmd = {"command_id": "p", "account": "A1", "action": "provision", "credit_micros": credit_micros,
           "profile": None, "timezone": "UTC", "period_kind": "monthly", "soft_limit_pct": 80,
           "tariff_plan": "default", "always_allowed": None, "issued_ms": OCT_20}
    run(table, [Msg("account.control", 0, 0, NOW, codecs.encode(codecs.CONTROL, cmd))], None)


def run(table: dict, ms: list[Msg], closed):
    res, states = charge_partition(ms, table.get, rate, NOW, 60, closed=closed)
    for a in res.touched:
        table[a] = states[a]
    return res


def closed_october(version=1, account="*", status="closed", until=0) -> ClosedPeriods:
    c = ClosedPeriods()
    c.apply({"account": account, "period": "2026-10", "status": status, "closed_until_ms": until, "version": version})
    return c


def test_late_cdr_of_a_closed_period_is_booked_in_the_open_one_with_a_correction():
    table: dict = {}
    provision(table, 100_000_000)
    run(table, msgs(1, canonical("oct", OCT_20, 240)), None)            # October, still open: 0.24
    run(table, msgs(2, canonical("nov", NOV_14, 60)), None)             # November: 0.06
    assert table["A1"]["spend"]["2026-10"] == 240_000
    closed = closed_october()
    res = run(table, msgs(3, canonical("late", OCT_20 + 1000, 600)), closed)   # 10 min late October call
    [row] = res.rated
    assert row["period"] == "2026-11" and row["cost_micros"] == 600_000          # 600 s x 0.001
    st = table["A1"]
    assert st["spend"]["2026-10"] == 240_000                             # the closed total did not move
    assert st["spend"]["2026-11"] == 60_000 + 600_000
    [ev] = res.events                                                    # no limit crossed: still an event
    assert ev["correction"] is True and ev["reason"] == "late_cdr_closed_period"
    assert ev["period"] == "2026-10" and ev["cause_cdr_key"] == row["cdr_key"]
    assert ev["old_profile"] == ev["new_profile"] == "normal" and ev["spend_micros"] == 240_000
    assert res.notifications == []


def test_open_period_limits_apply_to_the_late_booking():
    table: dict = {}
    provision(table, 600_000)                                            # credit 0.60
    run(table, msgs(1, canonical("nov", NOV_14, 60)), None)              # 0.06 in November
    res = run(table, msgs(2, canonical("late", OCT_20, 600)), closed_october())   # +0.60 -> 0.66
    kinds = [(e["period"], e["new_profile"], e["reason"], e["correction"]) for e in res.events]
    assert kinds == [("2026-11", "blocked", "hard_limit", False),
                     ("2026-10", "normal", "late_cdr_closed_period", True)]


def test_reopened_or_partially_closed_periods():
    table: dict = {}
    provision(table, 100_000_000)
    closed = closed_october()
    closed.apply({"account": "A1", "period": "2026-10", "status": "open", "closed_until_ms": 0, "version": 2})
    [row] = run(table, msgs(1, canonical("a", OCT_20, 60)), closed).rated
    assert row["period"] == "2026-10"                                    # A1 reopened: books in October
    part = closed_october(status="partial", until=OCT_20 + 3_600_000)
    before, after = run(table, msgs(2, canonical("b", OCT_20 + 60_000, 60), canonical("c", OCT_20 + 7_200_000, 60)),
                        part).rated
    assert (before["period"], after["period"]) == ("2026-11", "2026-10")


def test_closed_periods_rules_and_the_feed_messages():
    c = ClosedPeriods()
    w = PeriodWatcher({}, closed=c)
    for d in ({"account": "*", "period": "2026-10", "status": "closed", "closed_until_ms": 0, "version": 5},
              {"account": "B", "period": "2026-10", "status": "open", "closed_until_ms": 0, "version": 6},
              {"account": "*", "period": "2026-10", "status": "open", "closed_until_ms": 0, "version": 4}):  # older
        assert w.handle(encode(d)[1])
    assert not w.handle(b"not json") and not w.handle(None)
    assert c.locked("A", "2026-10", 0) and not c.locked("B", "2026-10", 0) and not c.locked("A", "2026-09", 0)
    assert encode({"account": "*", "period": "2026-10", "status": "closed", "closed_until_ms": 0,
                   "version": 5})[0] == b"*|2026-10"
