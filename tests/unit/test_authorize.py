"""Authorisation before a call (issue 10 holes 1-4): always-allowed numbers in the caller's
numbering context, the prepaid time limit from the real rater, quota-sized reservations renewed
by interim updates, and reservations that survive a new owner and expire on their own.

Expected money is worked out by hand in the comments (Decimal where it helps), never by the code
under test."""
from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from streams.core import authorize as A
from streams.core import credit
from streams.core.numbering import to_e164
from streams.core.sources import NumberingContext
from streams.core.tariff import load_tariff_book
from streams.settings import DATA_DIR

NL = NumberingContext()
US = NumberingContext(country="US", trunk_prefix="1", international_prefix="011", timezone="America/New_York")
# Tuesday 2026-03-10 10:00 UTC = 11:00 in Amsterdam: the default plan's NL peak period.
T = int(datetime(2026, 3, 10, 10, 0, tzinfo=timezone.utc).timestamp()) * 1000


@pytest.fixture(scope="module")
def book():
    return load_tariff_book(DATA_DIR / "tariff_default.yaml")


def state(credit_micros=10_000_000, spend=0, allowed=("112",)):
    st, _ = credit.apply_command(None, {"account": "A", "action": "provision", "credit_micros": credit_micros,
                                        "soft_limit_pct": 80, "period_kind": "monthly", "timezone": "UTC",
                                        "tariff_plan": "default", "always_allowed": list(allowed)}, T)
    if spend:
        credit.apply_charge(st, st["period"], spend, T, "k")
    return st


def ask(book, st, dialled, ctx=NL, reserved=0, quota_s=A.DEFAULT_QUOTA_S, used_s=0):
    number, kind = to_e164(dialled, ctx)
    try:
        q = A.quote(book, "default", number, kind, T)
    except Exception:
        q = None
    return A.decide(st, number, kind, q, reserved, T, ctx, quota_s, used_s)


# --- hole 1: a blocked account calling abroad through an emergency "prefix" ---------------------

@pytest.mark.parametrize("dialled,ctx", [("00911123456789", NL), ("+911123456789", NL), ("+9111234567890", US),
                                         ("011911123456789", US), ("+11234567890", NL)])
def test_blocked_account_cannot_reach_international_numbers_through_emergency_codes(book, dialled, ctx):
    blocked = state(credit_micros=1_000_000, spend=1_000_000, allowed=("112", "911", "999"))
    d = ask(book, blocked, dialled, ctx)
    assert d["profile"] == "blocked"
    assert not d["allowed"] and d["reason"] == "blocked"


@pytest.mark.parametrize("dialled,ctx", [("112", NL), ("911", US), ("112", US), ("911", NL)])
def test_blocked_account_reaches_local_emergency_numbers(book, dialled, ctx):
    blocked = state(credit_micros=1_000_000, spend=1_000_000, allowed=())
    d = ask(book, blocked, dialled, ctx)
    assert d["allowed"] and d["reason"] == "always_allowed" and d["max_duration_s"] is None
    assert d["reserve_micros"] == 0


def test_customer_entries_read_as_dialled_in_the_callers_plan(book):
    # '+31800' and '0800' (NL trunk prefix) are the +31 800 range; a bare '1233' is a short code.
    blocked = state(credit_micros=1_000_000, spend=1_000_000, allowed=("+31800", "1233"))
    assert ask(book, blocked, "0800123456")["allowed"]
    assert ask(book, blocked, "1233")["allowed"]
    assert not ask(book, blocked, "+12335550100")["allowed"]           # '1233' is no NANP prefix
    assert A.read_entry("0800", NL) == ("range", "31800")
    assert A.read_entry("0031800", NL) == ("range", "31800")
    assert A.read_entry("911", NL) == ("code", "911")
    assert A.read_entry("911", US) == ("code", "911")
    assert A.read_entry("31800", NL) == ("code", "31800")              # bare digits read as dialled


def test_unknown_account_gets_emergency_only(book):
    assert ask(book, None, "112")["allowed"]
    assert ask(book, None, "0201234567")["reason"] == "unknown_account"


# --- hole 2: the time limit is what the full rated cost allows ------------------------------------

def test_pay_per_minute_time_limit_counts_fee_free_seconds_and_rounding(book):
    # Credit 10.00, spent 4.91: 5.09 left. Dialled 0900 1234567 -> +31 900 1234567, destination
    # nl_premium_0900: connect fee 0.50, 10 s included, then per second at 0.80/min, rounded up to
    # 4 decimals per call. The old limit, 5.09 / (0.80/60) = 381 s, would cost
    # 0.50 + 371 * 0.80/60 = 5.446666… -> 5.4467 (more than what is left).
    # Longest d with 0.50 + (d - 10) * 0.80/60 <= 5.09:  d - 10 <= 4.59 * 75 = 344.25 -> d = 354:
    #   cost(354) = 0.50 + 344 * 0.80/60 = 5.086666… -> 5.0867 <= 5.09
    #   cost(355) = 0.50 + 345 * 0.80/60 = 5.10              >  5.09
    st = state(credit_micros=10_000_000, spend=4_910_000)
    d = ask(book, st, "09001234567", quota_s=3600)
    assert d["allowed"] and d["limit_s"] == 354 and d["max_duration_s"] == 354
    assert d["reserve_micros"] == 5_086_700
    number, kind = to_e164("09001234567", NL)
    q = A.quote(book, "default", number, kind, T)
    assert (q.cost(354), q.cost(355)) == (5_086_700, 5_100_000)


def test_first_increment_and_connect_fee_refuse_a_call_credit_cannot_start(book):
    # A credit of 0.55 (nothing spent, profile normal): the 0900 fee (0.50) and 10 included
    # seconds, then 0.80/60 a second: d = 13 s costs 0.50 + 3 * 0.80/60 = 0.54; 14 s costs
    # 0.50 + 4 * 0.80/60 = 0.55333… -> 0.5534 > 0.55. (The old rule: 0.55 * 60 / 0.80 = 41 s.)
    st = state(credit_micros=550_000)
    assert ask(book, st, "09001234567")["limit_s"] == 13
    # 0.49 does not even pay the connect fee.
    st = state(credit_micros=490_000)
    d = ask(book, st, "09001234567")
    assert not d["allowed"] and d["reason"] == "no_credit_left"


# --- hole 3: one call reserves its quota, not the whole credit ------------------------------------

def test_two_concurrent_calls_each_get_a_quota(book):
    # Credit 10.00, NL mobile at peak 0.08/min (30 s, then 6 s increments), quota 600 s:
    # the first call reserves 10 min * 0.08 = 0.80, leaving 9.20 for the second.
    st, res = state(), A.Reservations()
    call = {"plan": "default", "number": "+31612345678", "type": "mobile", "trunk": None, "at_ms": T, "minutes_s": 0}
    first = ask(book, st, "0612345678", reserved=res.held("A", T))
    assert first["allowed"] and first["max_duration_s"] == 600 and first["reserve_micros"] == 800_000
    r1 = res.add("A", call, first, T)
    second = ask(book, st, "0612345678", reserved=res.held("A", T))
    assert second["allowed"] and second["remaining_micros"] == 9_200_000 and second["max_duration_s"] == 600
    r2 = res.add("A", call, second, T)
    assert res.held("A", T) == 1_600_000
    # Interim update of the first call after 590 s: 600 s more (1190 s in all), which costs
    # 30 s + 194 * 6 s = 1194 s charged * 0.08/60 = 1.592 (held instead of 0.80).
    upd = ask(book, st, "0612345678", reserved=res.held("A", T, exclude=r1), used_s=590)
    assert upd["allowed"] and upd["max_duration_s"] == 600 and upd["reserve_micros"] == 1_592_000
    res.renew("A", r1, upd, 590, 0, T)
    # The second call ends after 61 s: 30 + 6*6 = 66 s charged * 0.08/60 = 0.088.
    number, kind = to_e164("0612345678", NL)
    q = A.quote(book, "default", number, kind, T)
    assert res.end("A", r2, q.cost(61), T + 61_000)["amount"] == 88_000
    assert res.held("A", T + 61_000) == 1_592_000 + 88_000


def test_update_is_refused_when_the_credit_is_gone(book):
    # 0.50 left in all; the call used 300 s (0.40), another call holds 0.45: nothing more is granted.
    st = state(credit_micros=10_000_000, spend=9_500_000)
    d = ask(book, st, "0612345678", reserved=450_000, used_s=300)
    assert not d["allowed"] and d["reason"] == "no_credit_left"


# --- hole 4: reservations are data a new owner reads, and they expire ------------------------------

def test_reservations_survive_a_new_owner_and_expire(book):
    table: dict[str, bytes] = {}                           # stands in for the changelogged table

    def load(acct):
        raw = table.get(acct)
        return orjson.loads(raw) if raw else None

    def save(acct, entries):
        table[acct] = orjson.dumps(entries)

    st = state()
    d = ask(book, st, "0612345678")
    call = {"plan": "default", "number": "+31612345678", "type": "mobile", "trunk": None, "at_ms": T, "minutes_s": 0}
    rid = A.Reservations(load, save).add("A", call, d, T)
    new_owner = A.Reservations(load, save)                 # a restarted worker: nothing in memory
    assert new_owner.held("A", T + 1) == 800_000
    assert new_owner.get("A", rid, T + 1)["number"] == "+31612345678"
    # Never renewed nor ended: held for the grant (600 s) plus the pending time, then dropped.
    last = T + 600_000 + A.PENDING_AFTER_END_MS
    assert new_owner.held("A", last - 1) == 800_000
    assert new_owner.held("A", last) == 0 and orjson.loads(table["A"]) == {}
    # An ended call is held for the pending time after its end.
    rid = new_owner.add("A", call, d, T)
    new_owner.end("A", rid, 88_000, T + 61_000)
    assert A.Reservations(load, save).held("A", T + 61_000 + A.PENDING_AFTER_END_MS - 1) == 88_000
    assert A.Reservations(load, save).held("A", T + 61_000 + A.PENDING_AFTER_END_MS) == 0


# --- profiles -------------------------------------------------------------------------------------

def test_profiles_limit_rates_and_block_keeps_emergency(book):
    low = state(credit_micros=1_000_000, spend=850_000)       # >= 80 %: low_credit, max 0.40/min
    assert ask(book, low, "09001234567")["reason"] == "rate_above_profile_max"     # 0900 at 0.80/min
    assert ask(book, low, "+442071234567")["allowed"]                           # uk 0.06/min
    blocked = state(credit_micros=1_000_000, spend=1_000_000)
    assert ask(book, blocked, "0201234567")["reason"] == "blocked"


def test_short_code_without_destination_is_no_tariff(book):
    d = ask(book, state(), "1234")
    assert not d["allowed"] and d["reason"] == "no_tariff"


def test_time_limit_for_a_plan_with_its_own_rater():
    """A CGRateS-semantics plan (cgr_engine rater, no prefix indexes) is priced by its rater too."""
    from pathlib import Path

    from streams.core.tariff import parse_tariff_text
    from streams.core.tariff.cgrates import import_cgrates_dir, to_yaml

    shape = Path(__file__).resolve().parents[1] / "fixtures" / "cgrates" / "shape_tutorial"
    book = parse_tariff_text(to_yaml(import_cgrates_dir(shape)), "tut.yaml", "yaml")
    at = int(datetime(2026, 5, 5, 10, tzinfo=timezone.utc).timestamp()) * 1000
    q = A.quote(book, "shop.test:call:2001", "+2002", "fixed", at)
    # RT_25 (tests/unit/test_cgrates_spans.py): fee 0.50, first 60 s 0.25, then 0.12/min per second.
    # 1.00 pays 0.50 + 0.25 + 0.12 * (d - 60) / 60 <= 1.00 -> d - 60 <= 125 -> 185 s.
    assert A.time_limit(q.cost, 1_000_000) == 185
    assert q.cost(185) == 1_000_000 and q.cost(186) == 1_002_000
