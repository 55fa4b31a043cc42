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
    # CGRateS reads a bare number as nanoseconds (utils/coreutils.go:371-382); Go units otherwise.
    assert [parse_duration(x) for x in ("0", "0s", "1s", "60s", "1m", "1m30s", "2h", "1h0m5s")] == \
        [0, 0, 10 ** 9, 60 * 10 ** 9, 60 * 10 ** 9, 90 * 10 ** 9, 7200 * 10 ** 9, 3605 * 10 ** 9]
    assert [parse_duration(x) for x in ("1", "1024", "500ms", "1.5s", "")] == [1, 1024, 5 * 10 ** 8, 15 * 10 ** 8, 0]
    assert [parse_duration(x) for x in ("*any", "1d", "s", "1m1x")] == [None] * 4


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


def _err(file: str, new_text: str | None, **kw) -> TariffError:
    t = texts()
    if new_text is None:
        del t[file]
    else:
        t[file] = new_text
    with pytest.raises(TariffError) as e:
        import_cgrates(t, "mem", timezone="Europe/Amsterdam", **kw)
    return e.value


def test_errors_name_file_row_and_problem():
    rates = (FIX / "Rates.csv").read_text()
    e = _err("Rates.csv", rates.replace("RT_DE,0,0.045,60s,30s,0s", "RT_DE,0,0.045,60x,30s,0s"))
    assert e.path == "mem/Rates.csv" and e.row == 8 and "RateUnit" in e.problem
    e = _err("Rates.csv", rates.replace("RT_DE,0,0.045,60s,30s,0s", "RT_DE,0.0000001,0.045,60s,30s,0s"))
    assert e.row == 8 and "6 decimals" in e.problem
    e = _err("Rates.csv", rates.replace("RT_DE,0,0.045,60s,30s,0s", "RT_DE,0,-0.045,60s,30s,0s"))
    assert e.row == 8 and "Rate" in e.problem
    e = _err("Rates.csv", rates + "RT_DE,0,0.05,60s,30s,0\n")
    assert e.row == 10 and "GroupIntervalStart" in e.problem and "row 8" in e.problem
    tm = (FIX / "Timings.csv").read_text()
    e = _err("Timings.csv", tm.replace("1;2;3;4;5,08:00:00", "1;2;8,08:00:00"))
    assert e.path == "mem/Timings.csv" and e.row == 3 and "WeekDays" in e.problem
    e = _err("Timings.csv", tm.replace("08:00:00", "8h"))
    assert e.row == 3 and "Time" in e.problem
    drs = (FIX / "DestinationRates.csv").read_text()
    e = _err("DestinationRates.csv", drs.replace("RT_DE,*down", "RT_NOPE,*down"))
    assert e.path == "mem/DestinationRates.csv" and e.row == 5 and "RatesTag" in e.problem
    e = _err("DestinationRates.csv", drs.replace("*middle", "*banker"))
    assert e.row == 4 and "RoundingMethod" in e.problem
    e = _err("DestinationRates.csv", drs.replace("*up,4,5,*free", "*up,4,5,*maybe"))
    assert e.row == 6 and "MaxCostStrategy" in e.problem
    rp = (FIX / "RatingPlans.csv").read_text()
    e = _err("RatingPlans.csv", rp + "RP_X,DR_ALLDAY,TM_NOPE,10\n")
    assert e.path == "mem/RatingPlans.csv" and e.row == 7 and "TimingTag" in e.problem
    e = _err("RatingProfiles.csv", "acme.test,call,*any,2026-02-01T00:00:00Z,RP_NOPE,\n")
    assert e.path == "mem/RatingProfiles.csv" and e.row == 1 and "RatingPlanId" in e.problem
    e = _err("RatingProfiles.csv", "acme.test,call,*any,yesterday,RP_RETAIL_2026,\n")
    assert e.row == 1 and "ActivationTime" in e.problem
    e = _err("Rates.csv", None)
    assert e.path == "mem/Rates.csv" and "missing" in e.problem
    with pytest.raises(TariffError, match="rename"):
        import_cgrates(texts(), "mem", rename={"nobody:call:x": "y"})


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


# ---- CGRateS semantics on fixtures shaped like the shipped tutorial / tutorial2 / testit dirs -----
# Costs below are worked by hand with CGRateS's rules (cited in streams/core/tariff/cgr_engine.py):
# span cost = round5(rate * duration / unit) (*middle), increment cost = round5(span cost / n),
# span = n * increment cost; total = connect fee + spans, rounded by the rate's method/decimals.
SHAPES = FIX.parent
UTC = timezone.utc


def utc_ms(y, mo, d, h=0, mi=0, s=0) -> int:
    return int(datetime(y, mo, d, h, mi, s, tzinfo=UTC).timestamp()) * 1000


def cgr_book(name: str, **kw):
    doc = import_cgrates_dir(SHAPES / name, **kw)
    return parse_tariff_text(to_yaml(doc), f"{name}.yaml", "yaml")


def micros(text: str) -> int:
    return int(D(text) * 1_000_000)


@pytest.fixture(scope="module")
def tut():
    return cgr_book("shape_tutorial")


@pytest.fixture(scope="module")
def tut2():
    return cgr_book("shape_tutorial2")


@pytest.fixture(scope="module")
def testit():
    return cgr_book("shape_testit")


def test_tutorial_shape_connect_fee_of_first_row_and_groups(tut):
    # RP_2001 (from 2016) -> DST_2002 -> RT_25: fee 0.5 (first row; the 0.1 of row 2 is ignored).
    # 90 s: [0,60) group 0: 0.25*60/60 = 0.25 (1 increment of 60 s); [60,90) group 1: 0.12*30/60 = 0.06,
    # 30 increments of 0.002. Total 0.5 + 0.25 + 0.06 = 0.81, *up 4 -> 0.81.
    r = tut.rate(call("2002", 90, utc_ms(2026, 5, 5, 10)), plan="shop.test:call:2001")
    assert (r.destination, r.tariff_version, r.cost_micros, r.connect_fee_micros, r.charged_s) == \
        ("DST_2002", "RP_2001", micros("0.81"), micros("0.5"), 90)
    assert [(s[1] // 10 ** 9, s[5], s[6]) for s in r.spans] == [(60, 1, 250_000_000), (30, 30, 60_000_000)]


def test_tutorial_shape_disconnect_does_not_cap_but_free_does(tut):
    # RT_2SEC 0.02/s, 100 s = 2.00. *disconnect MaxCost 0.5: GetCost does not cap (calldesc.go:541-552).
    r = tut.rate(call("2003", 100, utc_ms(2026, 5, 5, 10)), plan="shop.test:call:2001")
    assert r.cost_micros == micros("2.00")
    # RP_FREECAP is named by no profile; it was converted and a profile added later can use it.
    t = {n: (SHAPES / "shape_tutorial" / n).read_text() for n in FILES if (SHAPES / "shape_tutorial" / n).exists()}
    t["RatingProfiles.csv"] += "shop.test,call,2009,2016-03-01T00:00:00Z,RP_FREECAP,\n" \
                               "shop.test,call,2010,2016-03-01T00:00:00Z,RP_STEPCAP,\n"
    b = parse_tariff_text(to_yaml(import_cgrates(t, "mem")), "x.yaml", "yaml")
    # *free MaxCost 0.5: 2.00 is capped to 0.50.
    assert b.rate(call("2003", 100, utc_ms(2026, 5, 5, 10)), plan="shop.test:call:2009").cost_micros == micros("0.5")
    # CGRateS's running "max cost so far" adds the running total after each span: RT_STEP 90 s is
    # span 1 = 0.20, span 2 = 0.2*30/60 = 0.10; so far = 0.20 + 0.30 = 0.50 >= 0.35 -> cost 0.35,
    # although the plain total 0.30 is under the cap (reproduced as CGRateS computes it).
    assert b.rate(call("2002", 90, utc_ms(2026, 5, 5, 10)), plan="shop.test:call:2010").cost_micros == micros("0.35")


def test_tutorial_shape_older_activation_and_split_at_activation(tut):
    # 2014: RP_2002 (from 2012) -> DST_2001 -> RT_25: 60 s -> 0.5 + 0.25 = 0.75.
    r = tut.rate(call("2001", 60, utc_ms(2014, 1, 1, 12)), plan="shop.test:call:2001")
    assert (r.tariff_version, r.cost_micros) == ("RP_2002", micros("0.75"))
    # 2016-02-29 23:59:30 + 90 s to 2002: RP_2002 (RT_15) until 00:00, RP_2001 (RT_25) after.
    # Span 1 [23:59:30, 00:00:00) RT_15 group 0 (60 s increment): grows to 60 s (until 00:00:30) = 0.15
    # and swallows RP_2001's first 30 s; span 2 [00:00:30, 00:01:00) is 60 s into the call: RT_25 group 1,
    # 0.12*30/60 = 0.06. Fee of the first span's rate: RT_15 0.3. Total 0.3 + 0.15 + 0.06 = 0.51.
    r = tut.rate(call("2002", 90, utc_ms(2016, 2, 29, 23, 59, 30)), plan="shop.test:call:2001")
    assert (r.cost_micros, r.charged_s, r.tariff_version) == (micros("0.51"), 90, "RP_2002")
    assert [s[2] for s in r.spans] == ["0.15", "0.12"]


def test_tutorial_shape_sms_rated_per_unit(tut):
    # RT_TXT: 0.03 per unit (bare RateUnit 1 = 1 ns = one SMS); 3 SMS = 0.09.
    sms = {**call("2002", 0, utc_ms(2026, 5, 5, 10)), "service": "sms", "usage": 3}
    r = tut.rate(sms, plan="shop.test:sms:*any")
    assert (r.destination, r.cost_micros) == ("*any", micros("0.09"))
    assert tut.rate({**sms, "usage": None}, plan="shop.test:sms:*any").cost_micros == micros("0.03")


def test_tutorial2_shape_time_of_day_rates(tut2):
    P = "lab.test:call:*any"
    # Tue 10:00 peak RT_PEAK: 150 s = 0.9 (first minute) + 0.9*90/60 = 1.35; fee 0.25 -> 2.50
    assert tut2.rate(call("301234", 150, utc_ms(2026, 3, 10, 10)), plan=P).cost_micros == micros("2.50")
    # Tue 20:00 (T_EVENING) RT_OFF 0.02/s: 150 s = 3.00; fee 0.05 -> 3.05
    assert tut2.rate(call("301234", 150, utc_ms(2026, 3, 10, 20)), plan=P).cost_micros == micros("3.05")
    # Tue 08:59:30 + 100 s: [08:59:30,09:00) off-peak 30 s = 0.60; from 09:00 peak group 0 (60 s
    # increment) grows [09:00:00,09:00:30) to 60 s = 0.90, swallowing the group-1 cut at 09:00:30;
    # [09:01:00,09:01:10) is 90 s into the call: group 1, 0.9*10/60 = 0.15. Fee of the first span: RT_OFF 0.05.
    # Total 0.05 + 0.60 + 0.90 + 0.15 = 1.70; the charged time ends at 09:01:10 (100 s).
    r = tut2.rate(call("301234", 100, utc_ms(2026, 3, 10, 8, 59, 30)), plan=P)
    assert (r.cost_micros, r.charged_s, r.connect_fee_micros) == (micros("1.70"), 100, micros("0.05"))
    assert [(s[1] // 10 ** 9, s[4] // 10 ** 9) for s in r.spans] == [(30, 1), (60, 60), (10, 1)]


def test_tutorial2_shape_weekdays_7_is_sunday(tut2):
    P = "lab.test:call:*any"
    # Saturday (6) and Sunday (7) use T_WEEKEND -> RT_OFF: 10 s = 0.20 + fee 0.05 = 0.25
    assert tut2.rate(call("301234", 10, utc_ms(2026, 3, 14, 10)), plan=P).cost_micros == micros("0.25")
    assert tut2.rate(call("301234", 10, utc_ms(2026, 3, 15, 10)), plan=P).cost_micros == micros("0.25")


def test_tutorial2_shape_same_prefix_two_destinations_dated_timing(tut2):
    P = "lab.test:call:*any"
    # 25 Dec: DST_40 (T_XMAS, weight 20) beats DST_4050 (*any, weight 10): RT_OFF 60 s = 1.20 + 0.05 = 1.25
    r = tut2.rate(call("401234", 60, utc_ms(2026, 12, 25, 12)), plan=P)
    assert (r.destination, r.prefix, r.cost_micros) == ("DST_40", "40", micros("1.25"))
    # 24 Dec: T_XMAS is not active at the start, DST_4050 -> RT_PEAK 60 s = 0.90 + 0.25 = 1.15
    r = tut2.rate(call("401234", 60, utc_ms(2026, 12, 24, 12)), plan=P)
    assert (r.destination, r.cost_micros) == ("DST_4050", micros("1.15"))
    # 25 Dec 23:59:30 + 60 s: 30 s of RT_OFF = 0.60, then no timing of DST_40 covers 26 Dec: that part
    # is priced 0 (timespans.go:450-458). 0.05 + 0.60 = 0.65
    assert tut2.rate(call("401234", 60, utc_ms(2026, 12, 25, 23, 59, 30)), plan=P).cost_micros == micros("0.65")


def test_tutorial2_shape_voicemail_fallback_fee_only_and_data(tut2):
    # Non-digit prefix: RT_ZERO, 200 s -> 240 s at 0 = 0
    r = tut2.rate(call("voicemail", 200, utc_ms(2026, 3, 10, 10)), plan="lab.test:call:*any")
    assert (r.destination, r.cost_micros, r.charged_s) == ("DST_VM", 0, 240)
    # Subject 3001: its own plan prices 3002 (RT_3002: 20 s * 0.03 = 0.60 + 0.07 = 0.67) ...
    r = tut2.rate(call("3002", 20, utc_ms(2026, 3, 10, 10)), plan="lab.test:call:3001")
    assert (r.tariff_version, r.cost_micros) == ("RP_3001", micros("0.67"))
    # ... and falls back to *any (RP_MAIN) for 30...: peak 150 s = 2.50 as above
    r = tut2.rate(call("301234", 150, utc_ms(2026, 3, 10, 10)), plan="lab.test:call:3001")
    assert (r.tariff_version, r.cost_micros) == ("RP_MAIN", micros("2.50"))
    # RateUnit 0 = 1 s, rate 0: only the connect fee 0.15
    assert tut2.rate(call("301234", 45, utc_ms(2026, 3, 10, 10)), plan="lab.test:call:FEE").cost_micros == micros("0.15")
    # Data: 2 per 1024 units, increment 1024: 5000 bytes -> 5 increments = 10.00
    d = {**call("", 0, utc_ms(2026, 3, 10, 10)), "service": "data", "usage": 5000}
    assert tut2.rate(d, plan="lab.test:data:*any").cost_micros == micros("10")


def test_tutorial2_shape_uncovered_start_is_refused(tut2):
    # Prefix 30 has no timing at all in 2019 (before every activation) -> no rating plan: NO_TARIFF
    with pytest.raises(RejectError):
        tut2.rate(call("301234", 10, utc_ms(2019, 3, 10, 10)), plan="lab.test:call:*any")


def test_testit_shape_two_level_rounding(testit):
    P = "test.lab:call:*any"
    # +4470 (prefix written with +), RT_1C 0.01/min per second, 37 s: span 0.01*37/60 = 0.0061666.. -> 0.00617;
    # per increment 0.00617/37 = 0.000166756.. -> 0.00017; 37 * 0.00017 = 0.00629; *middle 5 -> 0.00629.
    # (A single rounding of the exact 0.0061666.. would give 0.00617.)
    r = testit.rate(call("+447012345", 37, utc_ms(2026, 3, 10, 10)), plan=P)
    assert (r.destination, r.prefix, r.cost_micros) == ("DST_MOB", "4470", 6290)
    # Global rounding decimals 6: span 0.006167, increment 0.006167/37 = 0.00016667.. -> 0.000167,
    # 37 * 0.000167 = 0.006179, *middle 5 -> 0.00618
    b6 = cgr_book("shape_testit", rounding_decimals=6)
    assert b6.rate(call("+447012345", 37, utc_ms(2026, 3, 10, 10)), plan=P).cost_micros == 6180
    # *any fallback destination, *up 5: 7 s: 0.0011666.. -> 0.00117; /7 = 0.000167.. -> 0.00017; 7 * = 0.00119
    assert testit.rate(call("+3312345", 7, utc_ms(2026, 3, 10, 10)), plan=P).cost_micros == 1190


def test_testit_shape_group_not_starting_at_zero(testit):
    # RT_LATE's only group starts at 60 s: the first 60 s have no rate (0); [60,90) at 0.06/min in 60 s
    # increments -> 60 s = 0.06. Total 0.06, charged 120 s.
    r = testit.rate(call("500512", 90, utc_ms(2026, 3, 10, 10)), plan="test.lab:call:*any")
    assert (r.destination, r.cost_micros, r.charged_s) == ("DST_LATE", micros("0.06"), 120)
    assert testit.rate(call("0800123", 90, utc_ms(2026, 3, 10, 10)), plan="test.lab:call:*any").cost_micros == 0


def test_unanswered_costs_nothing_but_needs_a_destination(testit):
    c = {**call("+447012345", 0, utc_ms(2026, 3, 10, 10)), "answered": False}
    r = testit.rate(c, plan="test.lab:call:*any")
    assert (r.cost_micros, r.destination) == (0, "DST_MOB")


def test_cli_import_reports_and_fails_with_row(tmp_path, capsys):
    from streams.cli.main import main

    out = tmp_path / "t.yaml"
    assert main(["tariffs", "import-cgrates", str(SHAPES / "shape_tutorial2"), "--out", str(out)]) == 0
    said = capsys.readouterr().out
    assert "4 rating plans" in said and "lab.test:call:3001" in said
    from streams.core.tariff import load_tariff_book
    assert load_tariff_book(out).rate(call("3002", 20, utc_ms(2026, 3, 10, 10)), plan="lab.test:call:3001").cost_micros == micros("0.67")
    bad = tmp_path / "bad"
    bad.mkdir()
    for n in FILES:
        if (SHAPES / "shape_tutorial2" / n).exists():
            (bad / n).write_text((SHAPES / "shape_tutorial2" / n).read_text())
    (bad / "Rates.csv").write_text((bad / "Rates.csv").read_text().replace("RT_KB,0,2,1024", "RT_KB,0,2,10x24"))
    assert main(["tariffs", "import-cgrates", str(bad), "--out", str(tmp_path / "b.yaml")]) != 0
    err = capsys.readouterr().err
    assert "Rates.csv: row" in err and "RateUnit" in err and "Traceback" not in err


def test_hand_edited_cgrates_yaml_errors_are_tariff_errors():
    text = to_yaml(import_cgrates_dir(SHAPES / "shape_testit"))
    for bad, needle in ((text.replace("destination: DST_LATE", "destination: DST_NOPE"), "DST_NOPE"),
                        (text.replace("rating_plan: RP_ONE", "rating_plan: RP_NOPE"), "RP_NOPE"),
                        (text.replace("rounding_decimals: 5", "rounding_decimals: 9"), "rounding_decimals")):
        with pytest.raises(TariffError, match=needle):
            parse_tariff_text(bad, "x.yaml", "yaml")
