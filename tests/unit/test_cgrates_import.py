"""CGRateS tariff-plan CSV import: the hand-written fixture in tests/fixtures/cgrates/acme (invented
data), imported, written as YAML, loaded by the normal loader, then used to rate CDRs whose costs
are computed here by hand with Decimal."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from streams.core.reasons import RejectError
from streams.core.tariff import TariffError, parse_tariff_text
from streams.core.tariff.cgrates import FILES, import_cgrates, import_cgrates_dir, parse_duration, to_yaml

D = Decimal
FIX = Path(__file__).resolve().parents[1] / "fixtures" / "cgrates" / "acme"
AMS = ZoneInfo("Europe/Amsterdam")
PLAN = "acme.test:call:*any"


def local_ms(y, mo, d, h, mi, s=0) -> int:
    return int(datetime(y, mo, d, h, mi, s, tzinfo=AMS).timestamp()) * 1000


def call(called: str, billsec: int, at: int) -> dict:
    return {"direction": "outbound", "called_e164": called, "caller_e164": "+31201111111", "called_type": "fixed",
            "start_ms": at, "answer_ms": at, "billsec_s": billsec, "answered": True, "service": "voice"}


def m(d: Decimal, places: int = 4, rounding=ROUND_UP) -> int:
    return int(d.quantize(D(1).scaleb(-places), rounding=rounding) * 1_000_000)


@pytest.fixture(scope="module")
def book():
    doc = import_cgrates_dir(FIX, timezone="Europe/Amsterdam")
    return parse_tariff_text(to_yaml(doc), "acme.yaml", "yaml")


def texts() -> dict[str, str]:
    return {n: (FIX / n).read_text() for n in FILES}


def test_durations():
    assert [parse_duration(x) for x in ("0", "0s", "1s", "60s", "1m", "1m30s", "2h", "1h0m5s")] == \
        [0, 0, 1, 60, 60, 90, 7200, 3605]
    assert [parse_duration(x) for x in ("60", "1.5s", "500ms", "", "*any", "1d")] == [None] * 6


def test_profiles_become_plan_versions_by_activation_time(book):
    assert book.plans == (PLAN,)
    assert book.versions(PLAN) == ("RP_RETAIL_2025", "RP_RETAIL_2026")   # sorted by ActivationTime
    assert book.version_at(PLAN, local_ms(2026, 1, 31, 23, 59)).version == "RP_RETAIL_2025"
    assert book.version_at(PLAN, local_ms(2026, 2, 1, 0, 0)).version == "RP_RETAIL_2026"
    with pytest.raises(RejectError):
        book.rate(call("+31201234567", 10, int(datetime(2024, 12, 31, tzinfo=timezone.utc).timestamp()) * 1000), plan=PLAN)


def test_fixed_peak_offpeak_from_timings(book):
    tue_10 = local_ms(2026, 3, 10, 10, 0)        # TM_WEEKDAY_PEAK
    r = book.rate(call("+31201234567", 125, tue_10), plan=PLAN)
    # first minute whole, then 10 s steps: 125 s -> 60 + 70 = 130 s at 0.024/min, *up 4 decimals
    assert (r.destination, r.charged_s, r.cost_micros) == ("DST_NL_FIXED", 130, m(D("0.024") * 130 / 60))
    r = book.rate(call("+31101234567", 125, local_ms(2026, 3, 10, 20, 0)), plan=PLAN)   # TM_WEEKDAY_EVENING
    assert r.cost_micros == m(D("0.012") * 130 / 60)
    r = book.rate(call("+31201234567", 125, local_ms(2026, 3, 10, 7, 0)), plan=PLAN)    # morning: TM_ALWAYS
    assert r.cost_micros == m(D("0.012") * 130 / 60)
    # 07:59 + 130 s runs into peak at 08:00: 60 s off-peak, then 70 s peak
    r = book.rate(call("+31201234567", 125, local_ms(2026, 3, 10, 7, 59)), plan=PLAN)
    assert r.cost_micros == m(D("0.012") * 60 / 60 + D("0.024") * 70 / 60)
    r = book.rate(call("+31201234567", 125, local_ms(2026, 3, 8, 10, 0)), plan=PLAN)    # Sunday
    assert r.cost_micros == m(D("0.012") * 130 / 60)


def test_call_across_peak_end_is_split(book):
    # starts 18:29:00 local, peak ends 18:30: 60 s at peak, the remaining 70 s at off-peak
    r = book.rate(call("+31201234567", 125, local_ms(2026, 3, 10, 18, 29)), plan=PLAN)
    assert r.charged_s == 130
    assert r.cost_micros == m(D("0.024") * 60 / 60 + D("0.012") * 70 / 60)


def test_mobile_connect_fee_and_middle_rounding(book):
    r = book.rate(call("+31612345678", 47, local_ms(2026, 3, 10, 10, 0)), plan=PLAN)
    exact = D("0.05") + D("0.09") * 47 / 60                      # 0.1205
    assert (r.destination, r.connect_fee_micros, r.cost_micros) == ("DST_NL_MOBILE", 50_000, m(exact, 4, ROUND_HALF_EVEN))
    r = book.rate(call("+31612345678", 41, local_ms(2026, 3, 10, 10, 0)), plan=PLAN)
    exact = D("0.05") + D("0.09") * 41 / 60                      # 0.1115 exactly: half_even keeps 0.1115
    assert r.cost_micros == m(exact, 4, ROUND_HALF_EVEN)
    r = book.rate(call("+31612345678", 7, local_ms(2026, 3, 10, 10, 0)), plan=PLAN)
    exact = D("0.05") + D("0.09") * 7 / 60                       # 0.0605
    assert r.cost_micros == m(exact, 4, ROUND_HALF_EVEN)


def test_down_rounding_two_decimals(book):
    r = book.rate(call("+4930123456", 65, local_ms(2026, 3, 10, 10, 0)), plan=PLAN)
    # 30 s increments: 90 s at 0.045/min = 0.0675, *down to 2 decimals = 0.06
    assert (r.charged_s, r.cost_nanos, r.cost_micros) == (90, int(D("0.0675") * 10 ** 9), m(D("0.0675"), 2, ROUND_DOWN))


def test_max_cost_caps_premium(book):
    r = book.rate(call("+31909123456", 600, local_ms(2026, 3, 10, 10, 0)), plan=PLAN)
    assert D("0.40") + D("1.20") * 10 > 5                         # uncapped 12.40
    assert r.cost_micros == 5_000_000
    r = book.rate(call("+31909123456", 100, local_ms(2026, 3, 10, 10, 0)), plan=PLAN)
    assert r.cost_micros == m(D("0.40") + D("1.20") * 100 / 60)   # 2.40


def test_earlier_version_prices(book):
    at = local_ms(2026, 1, 15, 10, 0)
    r = book.rate(call("+31612345678", 47, at), plan=PLAN)
    assert (r.tariff_version, r.charged_s, r.cost_micros, r.connect_fee_micros) == ("RP_RETAIL_2025", 60, m(D("0.12")), 0)
    r = book.rate(call("+31201234567", 125, at), plan=PLAN)       # no peak in 2025
    assert r.cost_micros == m(D("0.012") * 130 / 60)


def test_rename_and_naive_activation():
    t = texts()
    t["RatingProfiles.csv"] = "acme.test,call,*any,2026-02-01T00:00:00,RP_RETAIL_2026,\n"
    doc = import_cgrates(t, "mem", timezone="Europe/Amsterdam", rename={PLAN: "retail"})
    b = parse_tariff_text(to_yaml(doc), "x.yaml", "yaml")
    assert b.plans == ("retail",)
    assert b.version_at("retail", local_ms(2026, 2, 1, 0, 0)).version == "RP_RETAIL_2026"
    with pytest.raises(RejectError):
        b.version_at("retail", local_ms(2026, 1, 31, 23, 59))


def _err(file: str, new_text: str, **kw) -> TariffError:
    t = texts()
    t[file] = new_text
    with pytest.raises(TariffError) as e:
        import_cgrates(t, "mem", timezone="Europe/Amsterdam", **kw)
    return e.value


def test_errors_name_file_row_and_problem():
    rates = (FIX / "Rates.csv").read_text()
    e = _err("Rates.csv", rates.replace("RT_DE,0,0.045,60s,30s,0s", "RT_DE,0,0.045,60,30s,0s"))
    assert e.path == "mem/Rates.csv" and e.row == 8 and "RateUnit" in e.problem
    e = _err("Rates.csv", rates.replace("RT_DE,0,0.045,60s,30s,0s", "RT_DE,0,0.0450001,60s,30s,0s"))
    assert e.row == 8 and "6 decimals" in e.problem
    e = _err("Rates.csv", rates.replace("RT_DE,0,0.045,60s,30s,0s", "RT_DE,0,0.045,60s,500ms,0s"))
    assert e.row == 8 and "RateIncrement" in e.problem
    tm = (FIX / "Timings.csv").read_text()
    e = _err("Timings.csv", tm.replace("TM_WEEKDAY_PEAK,*any,*any,*any", "TM_WEEKDAY_PEAK,2026,*any,*any"))
    assert e.path == "mem/Timings.csv" and e.row == 3 and "dated timings" in e.problem
    e = _err("Timings.csv", tm.replace("TM_ALWAYS,*any,*any,*any,*any,00:00:00", "TM_ALWAYS,*any,*any,*any,*any,06:00:00"))
    assert e.path == "mem/RatingPlans.csv" and "no timing covers" in e.problem
    drs = (FIX / "DestinationRates.csv").read_text()
    e = _err("DestinationRates.csv", drs.replace("DR_FIXED_PEAK,DST_NL_FIXED,RT_FIXED_PEAK,*up,4", "DR_FIXED_PEAK,DST_NL_FIXED,RT_FIXED_PEAK,*up,2"))
    assert e.path == "mem/DestinationRates.csv" and e.row == 2 and "time of day" in e.problem
    e = _err("DestinationRates.csv", drs.replace("RT_DE,*down", "RT_NOPE,*down"))
    assert e.row == 5 and "RatesTag" in e.problem
    e = _err("DestinationRates.csv", drs.replace("*middle", "*banker"))
    assert e.row == 4 and "RoundingMethod" in e.problem
    e = _err("RatingProfiles.csv", "acme.test,call,*any,2026-02-01T00:00:00Z,RP_RETAIL_2026,other\n")
    assert e.row == 1 and "RatesFallbackSubject" in e.problem
    e = _err("Destinations.csv", (FIX / "Destinations.csv").read_text() + "DST_DE,+3120\n")
    assert e.path == "mem/Destinations.csv" and e.row == 7 and "'3120'" in e.problem
    rp = (FIX / "RatingPlans.csv").read_text()
    e = _err("RatingPlans.csv", rp + "RP_RETAIL_2026,DR_FIXED_PEAK,TM_ALWAYS,10\n")
    assert e.row == 7 and "two rates for timing" in e.problem
    t = texts()
    t["Timings.csv"] += "TM_ALSO_ALWAYS,*any,*any,*any,*any,00:00:00\n"
    t["RatingPlans.csv"] += "RP_RETAIL_2026,DR_FIXED_PEAK,TM_ALSO_ALWAYS,10\n"
    with pytest.raises(TariffError) as ei:
        import_cgrates(t, "mem")
    assert ei.value.row == 7 and "both start" in ei.value.problem
    t = texts()
    del t["Timings.csv"]
    with pytest.raises(TariffError, match="missing"):
        import_cgrates(t, "mem")


def test_weight_decides_overlap():
    # Peak all day on weekdays with a higher weight than the always-on off-peak timing.
    t = texts()
    t["Timings.csv"] += "TM_WEEKDAYS,*any,*any,*any,1;2;3;4;5,00:00:00\n"
    t["RatingPlans.csv"] = ("RP_RETAIL_2026,DR_FIXED_OFF,TM_ALWAYS,10\n"
                            "RP_RETAIL_2026,DR_FIXED_PEAK,TM_WEEKDAYS,20\n")
    t["RatingProfiles.csv"] = "acme.test,call,*any,2026-02-01T00:00:00Z,RP_RETAIL_2026,\n"
    b = parse_tariff_text(to_yaml(import_cgrates(t, "mem", timezone="Europe/Amsterdam")), "x.yaml", "yaml")
    assert b.rate(call("+31201234567", 60, local_ms(2026, 3, 10, 3, 0)), plan=PLAN).cost_micros == m(D("0.024"))
    assert b.rate(call("+31201234567", 60, local_ms(2026, 3, 14, 3, 0)), plan=PLAN).cost_micros == m(D("0.012"))
