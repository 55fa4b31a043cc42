"""Loading: the shipped tariff, the CSV form, and invalid files refused whole with row + problem."""
from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from streams.core.tariff import TariffError, default_tariff_path, load_tariff_book, parse_tariff_text

D = Decimal
T = int(datetime(2026, 3, 10, 10, 0, tzinfo=timezone.utc).timestamp()) * 1000   # Tue 11:00 CET, peak
T_OFF = int(datetime(2026, 3, 10, 20, 0, tzinfo=timezone.utc).timestamp()) * 1000


def call(called: str, billsec: int, at: int = T, **kw) -> dict:
    c = {"direction": "outbound", "called_e164": called, "caller_e164": "+31201234567",
         "called_type": "fixed", "start_ms": at, "answer_ms": at, "end_ms": at + billsec * 1000,
         "duration_s": billsec, "billsec_s": billsec, "answered": True, "service": "voice",
         "stage": "", "trunk": ""}
    c.update(kw)
    return c


def m(d: str | Decimal) -> int:
    return int(D(d) * 1_000_000)


def test_default_tariff_loads_and_prices():
    book = load_tariff_book(default_tariff_path())
    assert set(book.plans) == {"default", "callcentre"}
    r = book.rate(call("+31201234567", 61))
    assert (r.destination, r.prefix, r.cost_micros) == ("nl_fixed", "3120", m(D("0.02") * 2))
    assert book.rate(call("+31201234567", 61, at=T_OFF)).cost_micros == m(D("0.01") * 2)
    r = book.rate(call("+31612345678", 31))                  # 30/6 mobile, peak
    assert (r.destination, r.charged_s, r.cost_micros) == ("nl_mobile", 36, m(D("0.08") * 36 / 60))
    # 0900: fee 0.50 + 10 s included + 0.80/min; rounded up to 4 decimals
    r = book.rate(call("+31900123456", 100))
    assert r.cost_micros == m((D("0.50") + D("0.80") * 90 / 60))
    assert book.rate(call("+31800123456", 100)).cost_micros == 0
    assert book.rate(call("+4930123456", 100)).destination == "de"
    assert book.rate(call("+4915112345678", 100)).destination == "de_mobile"
    assert book.rate(call("+2348012345678", 100)).destination == "world"
    assert book.rate(call("+12125550100", 100)).destination == "nanp"
    assert book.rate(call("112", 100, called_type="emergency")).cost_micros == 0
    r = book.rate(call("+31800123456", 120, direction="inbound", called_type="toll_free", caller_e164="+31612345678"))
    assert (r.destination, r.cost_micros) == ("tollfree_in_nl_mobile", m(D("0.05") * 2))
    assert book.rate(call("+31201234567", 0, service="sms")).cost_micros == m("0.05")
    assert book.max_rate_per_min_micros("default", "+31900123", T) == m("0.80")
    # King's Day 2026-04-27 is off-peak all day
    kings = int(datetime(2026, 4, 27, 10, 0, tzinfo=timezone.utc).timestamp()) * 1000
    assert book.rate(call("+31201234567", 60, at=kings)).cost_micros == m("0.01")


def test_default_callcentre_stages():
    book = load_tariff_book(default_tariff_path())
    base = dict(direction="inbound", called_type="toll_free", caller_e164="+31612345678")
    got = {st: book.rate(call("+31800123456", 60, stage=st, **base), plan="callcentre").destination
           for st in ("ivr", "agent", "post", "")}
    assert got == {"ivr": "ivr", "agent": "agent_nl", "post": "post", "": "tollfree_unstaged"}
    assert book.rate(call("+31201234567", 60, trunk="wholesale"), plan="callcentre").cost_micros == m("0.01")
    assert book.rate(call("+31201234567", 60), plan="callcentre").cost_micros == m("0.02")


CSV = """\
plan,version,effective_from,timezone,destination,prefixes,start,rate,unit,increment,connect_fee,rounding,decimals,service,applies_to,trunk
default,v1,2026-01-01T00:00:00+01:00,Europe/Amsterdam,mobile,316 3197,30,0.08,60,6,,up,4,,,
default,v1,,,mobile,,0,0.08,60,30,0.01,,,,,
default,v1,,,fixed,31,0,0.02,60,60,,,,,,
default,v1,,,fixed_t1,31,0,0.01,60,60,,,,,,t1
default,v1,,,tf_in,31,0,0.03,60,1,,,,,inbound_toll_free,
default,v1,,,,,,0.05,,,,,,sms,,
default,v2,2026-03-15T00:00:00+01:00,Europe/Amsterdam,fixed,31,0,0.03,60,60,,half_even,2,,,
"""


def test_csv_form(tmp_path: Path):
    p = tmp_path / "t.csv"
    p.write_text(CSV)
    book = load_tariff_book(p)
    r = book.rate(call("+31612345678", 31))
    # groups given out of order are sorted by start; connect fee from the destination row
    assert (r.destination, r.charged_s, r.cost_micros) == ("mobile", 36, m(D("0.01") + D("0.08") * 36 / 60))
    assert book.rate(call("+3197123", 60)).destination == "mobile"
    assert book.rate(call("+31201234567", 61)).cost_micros == m("0.04")
    assert book.rate(call("+31201234567", 61, trunk="t1")).destination == "fixed_t1"
    r = book.rate(call("+31800", 60, direction="inbound", called_type="toll_free", caller_e164="+31201234567"))
    assert r.cost_micros == m("0.03")
    assert book.rate(call("", 0, service="sms")).cost_micros == m("0.05")
    late = int(datetime(2026, 3, 20, 10, tzinfo=timezone.utc).timestamp()) * 1000
    assert book.rate(call("+31201234567", 61, at=late)).tariff_version == "v2"


def _bad(text: str) -> tuple[str, int]:
    text = textwrap.dedent(text)
    lines = text.splitlines()
    row = next(i + 1 for i, ln in enumerate(lines) if "# BAD" in ln)
    return text, row


GOOD_HEAD = """\
plans:
  p:
    timezone: Europe/Amsterdam
    versions:
      - version: "v1"
        effective_from: "2026-01-01T00:00:00+01:00"
"""

BAD_YAML = [
    ("too many decimals", "more than 6 decimals", GOOD_HEAD + """\
        destinations:
          a:
            prefixes: ["31"]
            groups:
              - {start: 0, rate: "0.0000001", unit: 60, increment: 60}  # BAD
"""),
    ("float price", "quoted decimal string", GOOD_HEAD + """\
        destinations:
          a:
            prefixes: ["31"]
            groups:
              - {start: 0, rate: 0.085, unit: 60, increment: 60}  # BAD
"""),
    ("negative price", "negative", GOOD_HEAD + """\
        destinations:
          a:
            prefixes: ["31"]
            connect_fee: "-0.01"  # BAD
            groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]
"""),
    ("duplicate prefix", "prefix '316' is in both a and b", GOOD_HEAD + """\
        destinations:
          a: {prefixes: ["31", "316"], groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]}
          b:
            prefixes: ["316"]  # BAD
            groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]
"""),
    ("empty prefix", "digits", GOOD_HEAD + """\
        destinations:
          a:
            prefixes: [""]  # BAD
            groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]
"""),
    ("plus in prefix", "digits", GOOD_HEAD + """\
        destinations:
          a:
            prefixes: ["+31"]  # BAD
            groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]
"""),
    ("int prefix", "quoted string", GOOD_HEAD + """\
        destinations:
          a:
            prefixes: [31]  # BAD
            groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]
"""),
    ("first group not at 0", "first group must start at 0", GOOD_HEAD + """\
        destinations:
          a:
            prefixes: ["31"]
            groups:
              - {start: 5, rate: "0.01", unit: 60, increment: 60}  # BAD
"""),
    ("starts not increasing", "must increase", GOOD_HEAD + """\
        destinations:
          a:
            prefixes: ["31"]
            groups:
              - {start: 0, rate: "0.01", unit: 60, increment: 60}
              - {start: 0, rate: "0.01", unit: 60, increment: 6}  # BAD
"""),
    ("zero increment", "increment must be >= 1", GOOD_HEAD + """\
        destinations:
          a:
            prefixes: ["31"]
            groups:
              - {start: 0, rate: "0.01", unit: 60, increment: 0}  # BAD
"""),
    ("unknown key", "unknown key 'incremnt'", GOOD_HEAD + """\
        destinations:
          a:
            prefixes: ["31"]
            groups:
              - {start: 0, rate: "0.01", unit: 60, incremnt: 6}  # BAD
"""),
    ("naive effective_from", "no UTC offset", """\
plans:
  p:
    timezone: Europe/Amsterdam
    versions:
      - version: "v1"
        effective_from: "2026-01-01T00:00:00"  # BAD
        services: {sms: "0.05"}
"""),
    ("unknown zone", "unknown time zone", """\
plans:
  p:
    timezone: Europe/Atlantis  # BAD
    versions:
      - {version: "v1", effective_from: "2026-01-01T00:00:00+01:00", services: {sms: "0.05"}}
"""),
    ("decimals", "decimals must be 0..6", GOOD_HEAD + """\
        rounding:
          method: up
          decimals: 7  # BAD
        services: {sms: "0.05"}
"""),
    ("rounding method", "must be up, down or half_even", GOOD_HEAD + """\
        rounding:
          method: bankers  # BAD
        services: {sms: "0.05"}
"""),
    ("overlapping rules", "overlaps", GOOD_HEAD + """\
        schedules:
          s:
            default: off_peak
            rules:
              - {period: peak, days: mon-fri, from: "08:00", to: "19:00"}
              - {period: eve, days: fri, from: "18:00", to: "22:00"}  # BAD
        services: {sms: "0.05"}
"""),
    # A scalar where the rules list belongs is refused like every other list (it once meant "no rules").
    ("rules not a list", "rules must be a list of {period, days, from, to}", GOOD_HEAD + """\
        schedules:
          s:
            default: off_peak
            rules: false  # BAD
        services: {sms: "0.05"}
"""),
    ("unquoted time", "HH:MM", GOOD_HEAD + """\
        schedules:
          s:
            default: off_peak
            rules:
              - {period: peak, days: mon-fri, from: "08:00", to: 19:00}  # BAD
        services: {sms: "0.05"}
"""),
    ("missing period rate", "missing ['off_peak']", GOOD_HEAD + """\
        schedules:
          s:
            default: off_peak
            rules: [{period: peak, days: mon-fri, from: "08:00", to: "19:00"}]
        destinations:
          a:
            prefixes: ["31"]
            schedule: s
            groups:
              - {start: 0, rate: {peak: "0.02"}, unit: 60, increment: 60}  # BAD
"""),
    ("undefined schedule", "schedule 'nope' is not defined", GOOD_HEAD + """\
        destinations:
          a:
            prefixes: ["31"]
            schedule: nope  # BAD
            groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]
"""),
    ("unknown holidays", "holidays", GOOD_HEAD + """\
        schedules:
          s:
            default: off_peak
            holidays: XX  # BAD
            holiday_period: off_peak
        services: {sms: "0.05"}
"""),
    ("versions out of order", "increasing effective_from", """\
plans:
  p:
    timezone: Europe/Amsterdam
    versions:
      - {version: "v1", effective_from: "2026-02-01T00:00:00+01:00", services: {sms: "0.05"}}
      - version: "v2"
        effective_from: "2026-01-01T00:00:00+01:00"  # BAD
        services: {sms: "0.05"}
"""),
    ("extends unknown", "no earlier version", GOOD_HEAD + """\
        extends: "v0"  # BAD
        services: {sms: "0.05"}
"""),
    ("bad applies_to", "applies_to", GOOD_HEAD + """\
        destinations:
          a:
            prefixes: ["31"]
            applies_to: sideways  # BAD
            groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]
"""),
    ("duplicate key", "appears twice", GOOD_HEAD + """\
        destinations:
          a: {prefixes: ["31"], groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]}
          a: {prefixes: ["32"], groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]}  # BAD
"""),
    ("yaml syntax", "not valid YAML", GOOD_HEAD + """\
        destinations:
          a: {prefixes: ["31"], groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]}
          b: x: y  # BAD
"""),
]


@pytest.mark.parametrize("name,problem,text", BAD_YAML, ids=[c[0] for c in BAD_YAML])
def test_invalid_yaml_refused_with_row_and_problem(tmp_path: Path, name, problem, text):
    text, row = _bad(text)
    p = tmp_path / "bad.yaml"
    p.write_text(text)
    with pytest.raises(TariffError) as ei:
        load_tariff_book(p)
    e = ei.value
    assert problem in e.problem, str(e)
    assert e.row == row, str(e)
    assert str(p) in str(e) and f"row {row}" in str(e)


def test_one_bad_plan_refuses_the_whole_file():
    good = load_tariff_book(default_tariff_path())
    bad_plan = (
        "  zz_bad:\n    timezone: Europe/Amsterdam\n    versions:\n"
        "      - {version: v1, effective_from: \"2026-01-01T00:00:00+01:00\", services: {sms: \"0.0000001\"}}\n"
    )
    text = default_tariff_path().read_text().replace("\n  callcentre:\n", "\n" + bad_plan + "  callcentre:\n")
    assert "zz_bad" in text
    assert good.plans
    with pytest.raises(TariffError, match="more than 6 decimals"):
        parse_tariff_text(text, "x.yaml", "yaml")


@pytest.mark.parametrize("name,csv_text,row,problem", [
    ("conflicting destination value", CSV.splitlines()[0] + "\n"
     "default,v1,2026-01-01T00:00:00+01:00,Europe/Amsterdam,m,316,0,0.08,60,30,0.01,,,,,\n"
     "default,v1,,,m,,30,0.08,60,6,0.02,,,,,\n", 3, "differs"),
    ("bad rate", CSV.splitlines()[0] + "\n"
     "default,v1,2026-01-01T00:00:00+01:00,Europe/Amsterdam,m,316,0,0.08,60,30,,,,,,\n"
     "default,v1,,,m,,30,abc,60,6,,,,,,\n", 3, "not a valid price"),
    ("missing column", "plan,version\ndefault,v1\n", 1, "missing columns"),
    ("no rows", CSV.splitlines()[0] + "\n", None, "no rows"),
    ("duplicate prefix", CSV.splitlines()[0] + "\n"
     "default,v1,2026-01-01T00:00:00+01:00,Europe/Amsterdam,a,31,0,0.08,60,30,,,,,,\n"
     "default,v1,,,b,31,0,0.08,60,30,,,,,,\n", 3, "prefix '31' is in both a and b"),
])
def test_invalid_csv_refused(tmp_path: Path, name, csv_text, row, problem):
    p = tmp_path / "bad.csv"
    p.write_text(csv_text)
    with pytest.raises(TariffError) as ei:
        load_tariff_book(p)
    assert problem in ei.value.problem, str(ei.value)
    assert ei.value.row == row, str(ei.value)


def test_missing_file():
    with pytest.raises(TariffError, match="cannot read"):
        load_tariff_book("/nonexistent/tariff.yaml")


def test_core_tariff_imports_no_framework():
    import subprocess
    import sys
    code = ("import sys, streams.core.tariff, streams.core.tariff.bench;"
            "bad = [m for m in ('faust', 'confluent_kafka', 'aiokafka', 'clickhouse_driver', 'chdb') if m in sys.modules];"
            "print(bad); sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _leaves(v, path + (i,))
    yield path


def _junk():
    from hypothesis import strategies as st
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**7), st.floats(allow_nan=False),
                        st.text(max_size=8), st.sampled_from(["0.1", "-1", "31", "", "25:00", "mon-xyz"]))
    return st.recursive(scalars, lambda c: st.one_of(st.lists(c, max_size=3), st.dictionaries(st.text(max_size=5), c, max_size=3)),
                        max_leaves=5)


def test_mutated_tariff_loads_or_is_refused_cleanly():
    # Whatever one value in a valid file is replaced by, the loader either builds a book or
    # raises TariffError: never another exception that would crash the worker at start.
    import copy

    import yaml
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from streams.core.tariff.loader import build_book

    base = yaml.safe_load(default_tariff_path().read_text())
    paths = [p for p in _leaves(base) if p]

    @settings(max_examples=200, deadline=None)
    @given(path=st.sampled_from(paths), value=_junk())
    def check(path, value):
        doc = copy.deepcopy(base)
        node = doc
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
        try:
            build_book(doc, "mutated.yaml")
        except TariffError:
            pass

    check()
