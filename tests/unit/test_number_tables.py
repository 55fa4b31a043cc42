"""The compiled number tables give exactly what phonenumbers gives.

Reference: ``numbering._parse_intl_library`` (phonenumbers.parse + number_type +
is_possible_number + E.164 format, the code path used before the tables existed). The fast
path may answer UNDECIDED (the caller then asks the library); every other answer must be
identical: E.164 text, rating class, and validity (None = not a possible number).
"""
from __future__ import annotations

import random

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneNumberType
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

from streams.core import numbering
from streams.core.number_tables import UNDECIDED, NumberTables, _Dfa, _Nfa
from streams.core.sources import NumberingContext

# Countries the project's sources, simulator, bench and default tariff dial (NL home, the
# simulator's INTERNATIONAL list, BE callers, NANP and the shared-code regions of +44/+7).
IN_USE = ["31", "32", "33", "34", "39", "41", "43", "44", "45", "46", "47", "48", "49", "1", "7", "90", "212", "351", "353", "358", "590", "599", "61", "800", "882"]
ALL_CODES = sorted(str(cc) for cc in COUNTRY_CODE_TO_REGION_CODE)

# Text that follows a calling code in real and hostile input: national prefixes that the
# parser may strip (GB's 180020 alternative included), repeated zeros, nothing at all.
AFTER_CC = ["", "0", "00", "1", "180020", "6", "20", "800", "900", "9"]


def reference(digits: str):
    return numbering._parse_intl_library(digits)


def check(tables: NumberTables, digits: str) -> bool:
    """True when the fast path decided (and agreed); False when it deferred to the library."""
    got = tables.parse_intl(digits)
    if got is UNDECIDED:
        assert not 3 <= len(digits) <= 20, f"undecided inside the modelled domain: {digits}"
        return False
    assert got == reference(digits), digits
    return True


@pytest.fixture(scope="module")
def tables() -> NumberTables:
    return NumberTables(numbering._TYPE_MAP)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    cc=st.sampled_from(IN_USE) | st.sampled_from(ALL_CODES) | st.text("0123456789", min_size=0, max_size=3),
    middle=st.sampled_from(AFTER_CC),
    tail=st.text("0123456789", min_size=0, max_size=17),
)
def test_fast_path_equals_phonenumbers(tables, cc, middle, tail):
    check(tables, (cc + middle + tail)[:22])


def _example_numbers(region: str):
    """One example per number type from the library's own metadata, so that every class is hit."""
    for kind in PhoneNumberType.values():
        ex = phonenumbers.example_number_for_type(region, kind)
        if ex is not None:
            yield str(ex.country_code), phonenumbers.national_significant_number(ex)


def test_large_generated_sample_over_every_calling_code(tables):
    """~200k numbers: valid examples of every type for every region, mutated in their last
    digits (stays in range or falls out of it), lengthened, shortened, given a national prefix,
    plus random digits after every calling code."""
    rng = random.Random(16)
    seen_classes: set = set()
    decided = 0
    total = 0
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    samples: list[str] = []
    for region in regions:
        for cc, nsn in _example_numbers(region):
            for _ in range(6):
                cut = rng.randrange(max(1, len(nsn) - 4), len(nsn) + 1)
                body = nsn[:cut] + "".join(rng.choices("0123456789", k=len(nsn) - cut + rng.choice([-1, 0, 0, 0, 1])))
                samples.append(cc + rng.choice(["", "", "", "0"]) + body)
    for cc in ALL_CODES:
        weight = 400 if cc in IN_USE else 40
        for _ in range(weight):
            samples.append(cc + rng.choice(AFTER_CC) + "".join(rng.choices("0123456789", k=rng.randrange(0, 15))))
    for digits in samples:
        total += 1
        decided += check(tables, digits[:22])
        seen_classes.add(None if reference(digits[:22]) is None else reference(digits[:22])[1])
    # The sample exercises every outcome the rating layer distinguishes ...
    assert {None, "fixed", "mobile", "toll_free", "premium", "unknown"} <= seen_classes
    # ... and the fast path decides nearly all of it (only lengths outside 3..20 defer).
    assert decided > 0.95 * total
    # Every calling code's metadata compiled (no construct fell outside the automaton).
    assert [cc for cc, t in tables._codes.items() if t is None] == []


CONTEXTS = [
    NumberingContext(),  # NL
    NumberingContext(country="GB"),
    NumberingContext(country="DE"),
    NumberingContext(country="BE"),
    NumberingContext(country="US", trunk_prefix="1", international_prefix="011"),
]


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ctx=st.sampled_from(CONTEXTS),
    lead=st.sampled_from(["", "+", "0", "00", "011", "1", "+31", "0031", "+44", "+1", "+49 (0)"]),
    body=st.text("0123456789", min_size=0, max_size=15),
    style=st.sampled_from(["{}", "sip:{}@pbx", "tel:{};phone-context=x", "{}-", " {} "]),
)
def test_whole_lookup_is_unchanged_in_every_context_in_use(ctx, lead, body, style):
    """numbering's full lookup (cleaning, prefixes, emergency/short codes, national vs
    international guess) gives the same answer with the tables as with the library alone."""
    raw = style.format(lead + body)
    fast = numbering._lookup.__wrapped__(raw, ctx)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(numbering, "_parse_intl", numbering._parse_intl_library)
        slow = numbering._lookup.__wrapped__(raw, ctx)
    assert fast == slow


def test_undecided_country_falls_back_to_the_library(monkeypatch):
    """Where a calling code's tables cannot be built, the number still gets the library's answer."""
    crippled = NumberTables(numbering._TYPE_MAP)
    crippled._codes["31"] = None
    assert crippled.parse_intl("31201234567") is UNDECIDED
    monkeypatch.setattr(numbering, "_TABLES", crippled)
    assert numbering._parse_intl("31201234567") == ("+31201234567", "fixed")
    assert numbering._parse_intl("31612345678") == ("+31612345678", "mobile")


@pytest.mark.parametrize(
    "digits,want",
    [
        ("31201234567", ("+31201234567", "fixed")),  # NL Amsterdam
        ("310201234567", ("+31201234567", "fixed")),  # "+31 0 20...": the parser strips the trunk 0
        ("31612345678", ("+31612345678", "mobile")),
        ("318001234", ("+318001234", "toll_free")),
        ("31900123456", ("+31900123456", "premium")),
        ("448431234567", ("+448431234567", "premium")),  # UK 0843 shared cost -> premium
        ("12125550123", ("+12125550123", "fixed")),  # NANP FIXED_LINE_OR_MOBILE -> fixed
        ("441481256789", ("+441481256789", "fixed")),  # Guernsey shares +44: region by leading digits
        ("0123", None),  # no calling code starts with 0
        ("99912345", None),  # unassigned calling code
    ],
)
def test_known_numbers(tables, digits, want):
    got = tables.parse_intl(digits)
    assert got == want == reference(digits)


@pytest.mark.parametrize(
    "pattern",
    ["6[1-58]\\d{7}", "(?:1[0-35-9]|2[0-9])\\d{6,7}", "8(?:00|4[2-5])\\d{3,6}", "9\\d*", "[^0-4]\\d?", "(?:0|12)+3"],
)
def test_automaton_accepts_what_fullmatch_accepts(pattern):
    import re

    nfa = _Nfa()
    start = nfa.add(pattern, (0, "x"))
    dfa = _Dfa(nfa, [start])
    rng = random.Random(pattern)
    compiled = re.compile(pattern)
    for _ in range(3000):
        s = "".join(rng.choices("0123456789", k=rng.randrange(0, 12)))
        if rng.random() < 0.5:
            s = rng.choice(["6", "12", "84", "9", "0", "1"]) + s
        assert ((0, "x") in dfa.tags(s)) == bool(compiled.fullmatch(s)), s
