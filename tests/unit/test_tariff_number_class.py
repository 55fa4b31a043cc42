"""Issue 15 finding 5: a dialled short code is not an international number.

A called ``1234`` was priced as ``nanp`` (prefix 1) and ``4444`` as ``uk`` (prefix 44): the
lookup matched digits whatever the number's type. Short codes, emergency numbers and unknown-type
numbers without an E.164 form match only destinations declared for their class."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from streams.core.numbering import to_e164
from streams.core.reasons import Reason, RejectError
from streams.core.sources import NumberingContext
from streams.core.tariff import load_tariff_book, parse_tariff_text
from streams.settings import DATA_DIR

T0 = int(datetime(2026, 3, 10, 10, 0, tzinfo=timezone.utc).timestamp()) * 1000


def cdr(dialled: str, billsec: int = 60, ctx: NumberingContext = NumberingContext()) -> dict:
    e164, kind = to_e164(dialled, ctx)          # the normaliser's classification, as in the pipeline
    return {"direction": "outbound", "called_e164": e164, "called_type": kind, "caller_e164": "+31201234567",
            "trunk": "", "stage": "", "start_ms": T0, "answer_ms": T0, "end_ms": T0 + billsec * 1000,
            "billsec_s": billsec, "duration_s": billsec, "answered": True, "service": "voice", "account": "a"}


@pytest.fixture(scope="module")
def default_book():
    return load_tariff_book(DATA_DIR / "tariff_default.yaml")


@pytest.mark.parametrize("dialled", ["1234", "4444", "3180", "999"])
def test_short_codes_are_not_priced_as_international_destinations(default_book, dialled):
    c = cdr(dialled)
    assert c["called_type"] == "short_code"
    with pytest.raises(RejectError) as exc:                # old code: nanp / uk / nl_national / world
        default_book.rate(c, "default")
    assert exc.value.reason == Reason.NO_TARIFF


def test_emergency_matches_only_its_declared_destination(default_book):
    assert default_book.rate(cdr("112"), "default").destination == "emergency"
    assert default_book.rate(cdr("911"), "default").destination == "emergency"


def test_international_numbers_still_match_by_prefix(default_book):
    assert default_book.rate(cdr("+12125551234"), "default").destination == "nanp"
    assert default_book.rate(cdr("00442071234567"), "default").destination == "uk"


def test_unknown_type_without_e164_form_matches_only_declared_destinations():
    book = parse_tariff_text(SHORT_YAML, "short.yaml", "yaml")
    c = {**cdr("+12125551234"), "called_e164": "1234", "called_type": "unknown"}
    with pytest.raises(RejectError):
        book.rate(c, "p")


SHORT_YAML = """
plans:
  p:
    timezone: UTC
    versions:
      - version: "v1"
        effective_from: "2026-01-01T00:00:00+00:00"
        destinations:
          nanp: {prefixes: ["1"], groups: [{start: 0, rate: "0.03", unit: 60, increment: 60}]}
          uk: {prefixes: ["44"], groups: [{start: 0, rate: "0.06", unit: 60, increment: 60}]}
          service_12xx:
            when: {called_type: short_code}
            prefixes: ["12"]
            connect_fee: "0.25"
            groups: [{start: 0, rate: "0", unit: 60, increment: 60}]
"""


def test_a_destination_declared_for_short_codes_prices_them():
    book = parse_tariff_text(SHORT_YAML, "short.yaml", "yaml")
    r = book.rate(cdr("1234"), "p")
    assert (r.destination, r.cost_micros) == ("service_12xx", 250_000)   # the 0.25 fee, free minutes
    with pytest.raises(RejectError):
        book.rate(cdr("4444"), "p")                        # a short code no destination declares
    assert book.rate(cdr("+12125551234"), "p").destination == "nanp"    # '+1…' is NANP, not the service
