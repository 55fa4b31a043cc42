"""Issue 12: pre-call authorisation's per-minute rate for imported CGRateS plans.

``TariffBook.max_rate_per_min_micros`` raised NO_TARIFF for every CGRateS plan (their versions
have no native prefix index). It now takes the highest per-minute price among the rates of the
destination the profile picks at the call's start (every timing, every GroupIntervalStart).
Prices below come from tests/fixtures/cgrates/shape_tutorial2 and shape_tutorial, by hand.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from streams.core.reasons import Reason, RejectError
from streams.core.tariff import parse_tariff_text
from streams.core.tariff.cgrates import import_cgrates_dir, to_yaml

SHAPES = Path(__file__).resolve().parents[1] / "fixtures" / "cgrates"


def utc_ms(*a) -> int:
    return int(datetime(*a, tzinfo=timezone.utc).timestamp()) * 1000


def book(name: str):
    return parse_tariff_text(to_yaml(import_cgrates_dir(SHAPES / name)), f"{name}.yaml", "yaml")


@pytest.fixture(scope="module")
def tut2():
    return book("shape_tutorial2")


TUE_10 = utc_ms(2026, 3, 10, 10)


def test_highest_rate_of_every_timing(tut2):
    # DST_30 at 10:00 on a Tuesday is in RT_PEAK (0.9 per 60 s = 0.90/min), but the call may run
    # into T_EVENING's RT_OFF, 0.02 per 1 s = 0.02 * 60 = 1.20/min: the higher one counts.
    assert tut2.max_rate_per_min_micros("lab.test:call:*any", "+301234", TUE_10) == 1_200_000


def test_destination_chosen_by_timing_at_the_start(tut2):
    # Prefix 40 is in DST_4050 (RT_PEAK 0.90/min, *any timing) and DST_40 (T_XMAS only, weight 20,
    # RT_OFF 1.20/min). On 10 March DST_4050 is picked; on 25 December DST_40 is.
    assert tut2.max_rate_per_min_micros("lab.test:call:*any", "401234", TUE_10) == 900_000
    assert tut2.max_rate_per_min_micros("lab.test:call:*any", "401234", utc_ms(2026, 12, 25, 12)) == 1_200_000
    assert tut2.max_rate_per_min_micros("lab.test:call:*any", "voicemail", TUE_10) == 0


def test_fallback_subject_and_unknown(tut2):
    # Subject 3001: own plan RT_3002 0.03 per 1 s = 1.80/min; 30x is not in it, so the *any
    # fallback subject prices it (DST_30, 1.20/min as above).
    assert tut2.max_rate_per_min_micros("lab.test:call:3001", "3002", TUE_10) == 1_800_000
    assert tut2.max_rate_per_min_micros("lab.test:call:3001", "301234", TUE_10) == 1_200_000
    with pytest.raises(RejectError) as e:
        tut2.max_rate_per_min_micros("lab.test:call:*any", "447012", TUE_10)
    assert e.value.reason == Reason.NO_TARIFF
    with pytest.raises(RejectError):   # before the profile's first activation (2020-06-01)
        tut2.max_rate_per_min_micros("lab.test:call:*any", "301234", utc_ms(2019, 1, 1))


def test_groups_and_rounding_up():
    tut = book("shape_tutorial")
    # DST_2002 RT_25: 0.25 per 60 s, then 0.12 per 60 s -> 0.25/min; DST_2003 RT_2SEC 0.02/s = 1.20/min.
    assert tut.max_rate_per_min_micros("shop.test:call:2001", "+2002", TUE_10) == 250_000
    assert tut.max_rate_per_min_micros("shop.test:call:2001", "2003", TUE_10) == 1_200_000
    # A price that is not a whole micro per minute is rounded up (the limit must not undercount):
    # 0.0000001 per 7 s = 60/7 * 1e-7 = 0.000000857.../min -> 1 micro.
    text = (SHAPES / "shape_testit")
    files = {p.name: p.read_text() for p in text.glob("*.csv")}
    files["Rates.csv"] += "RT_TINY,0,0.0000001,7s,1s,0\n"
    files["DestinationRates.csv"] += "DR_TINY,DST_TINY,RT_TINY,*up,6,,\n"
    files["Destinations.csv"] += "DST_TINY,999\n"
    files["RatingPlans.csv"] += "RP_TINY,DR_TINY,*any,10\n"
    files["RatingProfiles.csv"] += "test.lab,call,tiny,2020-01-01T00:00:00Z,RP_TINY,\n"
    from streams.core.tariff.cgrates import import_cgrates

    b = parse_tariff_text(to_yaml(import_cgrates(files, "mem")), "m.yaml", "yaml")
    assert b.max_rate_per_min_micros("test.lab:call:tiny", "999", TUE_10) == 1
