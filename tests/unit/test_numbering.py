"""Table-driven numbering: switch spellings -> (E.164, number type)."""
from __future__ import annotations

import pickle

import phonenumbers
import pytest

from streams.core import numbering
from streams.core.numbering import NUMBER_TYPES, caller_to_e164, clean_number, to_e164
from streams.core.reasons import Reason, RejectError
from streams.core.sources import NumberingContext, SourceDirectory

NL = NumberingContext()
US = NumberingContext(country="US", trunk_prefix="1", international_prefix="011", timezone="America/New_York")
GB = NumberingContext(country="GB")

VALID = [
    # (raw, context, e164, type)
    ("020-1234567", NL, "+31201234567", "fixed"),
    ("0201234567", NL, "+31201234567", "fixed"),
    ("020 123 45 67", NL, "+31201234567", "fixed"),
    ("(020) 1234567", NL, "+31201234567", "fixed"),
    ("+31 (0)20 123 4567", NL, "+31201234567", "fixed"),
    ("0031201234567", NL, "+31201234567", "fixed"),
    ("+31201234567", NL, "+31201234567", "fixed"),
    ("201234567", NL, "+31201234567", "fixed"),            # national significant number only
    ("31201234567", NL, "+31201234567", "fixed"),          # international without '+'
    ("06-12345678", NL, "+31612345678", "mobile"),
    ("0612345678", NL, "+31612345678", "mobile"),
    ("0800-1234", NL, "+318001234", "toll_free"),
    ("0900-123456", NL, "+31900123456", "premium"),
    ("0851234567", NL, "+31851234567", "fixed"),           # VOIP -> fixed
    ("0881234567", NL, "+31881234567", "fixed"),           # UAN -> fixed
    ("00441234567890", NL, "+441234567890", "fixed"),
    ("+44 7400 123456", NL, "+447400123456", "mobile"),
    ("+1 212 555 1234", NL, "+12125551234", "fixed"),      # FIXED_LINE_OR_MOBILE -> fixed
    ("+800 1234 5678", NL, "+80012345678", "toll_free"),   # non-geographic country code
    ("112", NL, "112", "emergency"),
    ("911", US, "911", "emergency"),
    ("999", GB, "999", "emergency"),
    ("1233", NL, "1233", "short_code"),
    ("14020", NL, "14020", "short_code"),
    ("118", NL, "118", "short_code"),
    ("sip:0201234567@host", NL, "+31201234567", "fixed"),
    ("sips:+31612345678@pbx.example.nl;user=phone", NL, "+31612345678", "mobile"),
    ('"Reception" <sip:020-1234567@pbx.example.nl>', NL, "+31201234567", "fixed"),
    ("tel:+31-20-123-4567;phone-context=example.nl", NL, "+31201234567", "fixed"),
    ("TEL:0201234567", NL, "+31201234567", "fixed"),
    ("  0201234567  ", NL, "+31201234567", "fixed"),
    ("2125551234", US, "+12125551234", "fixed"),
    ("1 (212) 555-1234", US, "+12125551234", "fixed"),
    ("011 44 20 7123 4567", US, "+442071234567", "fixed"),
    ("+31201234567", US, "+31201234567", "fixed"),         # E.164 is context-free
]


@pytest.mark.parametrize(("raw", "ctx", "e164", "kind"), VALID)
def test_to_e164(raw, ctx, e164, kind):
    assert to_e164(raw, ctx) == (e164, kind)


@pytest.mark.parametrize(("raw", "ctx", "e164", "kind"), VALID)
def test_idempotent_on_output(raw, ctx, e164, kind):
    # Canonical output fed back in (a recycled record) must come out unchanged.
    assert to_e164(e164, ctx) == (e164, kind)


INVALID = [
    "garbage",
    "abc123",
    "12",
    "1",
    "+",
    "++31201234567",
    "+0123456789",
    "0123",                 # trunk prefix + too few digits
    "+31 1",
    "020-12345678901234567890",
    "sip:alice@example.com",
    "+31 20 ABC 4567",
    "١٢٣٤٥٦٧",              # non-ASCII digits are not dialled digits
    "0" * 300,
]


@pytest.mark.parametrize("raw", INVALID)
def test_invalid_number_rejected(raw):
    with pytest.raises(RejectError) as info:
        to_e164(raw, NL)
    assert info.value.reason is Reason.INVALID_NUMBER
    assert info.value.detail  # says what and why


@pytest.mark.parametrize("value", [None, 201234567, b"0201234567", ["020"]])
def test_non_string_is_bad_field_type(value):
    with pytest.raises(RejectError) as info:
        to_e164(value, NL)  # type: ignore[arg-type]
    assert info.value.reason is Reason.BAD_FIELD_TYPE


def test_reject_is_cached_and_repeatable():
    numbering.cache_clear()
    for _ in range(3):
        with pytest.raises(RejectError):
            to_e164("garbage!", NL)
    info = numbering.cache_info()
    assert info.misses == 1 and info.hits == 2


def test_cache_is_keyed_by_context():
    # The same digits mean different numbers behind different switches.
    assert to_e164("2125551234", US)[0] == "+12125551234"
    # Behind a Dutch switch the same digits are no valid number in any reading (invalid_number).
    got = numbering.lookup("2125551234", NL)
    assert isinstance(got, str) or got[0] != "+12125551234"


def test_cache_is_bounded():
    assert numbering.cache_info().maxsize == numbering.CACHE_SIZE


@pytest.mark.parametrize("token", ["anonymous", "Anonymous", " RESTRICTED ", "private"])
def test_withheld_caller_kept(token):
    assert caller_to_e164(token, NL) == (token.strip().lower(), "unknown")
    with pytest.raises(RejectError):
        to_e164(token, NL)  # a called number must be a number


def test_caller_to_e164_still_parses_numbers():
    assert caller_to_e164("06-12345678", NL) == ("+31612345678", "mobile")


def test_unknown_but_possible_range_is_kept_as_unknown():
    # Metadata lags number plan changes; a plausible number is kept for rating to decide.
    e164, kind = to_e164("+3112345678", NL)
    assert (e164, kind) == ("+3112345678", "unknown")


@pytest.mark.parametrize(
    "raw",
    ["+31201234567", "+31612345678", "+318001234", "+31900123456", "+12125551234", "+447400123456", "+3112345678", "+80012345678"],
)
def test_number_type_unknown_iff_invalid(raw):
    # _classify_parsed relies on this to skip is_valid_number.
    n = phonenumbers.parse(raw, None)
    assert (phonenumbers.number_type(n) != phonenumbers.PhoneNumberType.UNKNOWN) == phonenumbers.is_valid_number(n)


def test_types_are_the_documented_set():
    kinds = {to_e164(raw, ctx)[1] for raw, ctx, _, _ in VALID}
    assert kinds <= set(NUMBER_TYPES)
    assert kinds >= {"fixed", "mobile", "toll_free", "premium", "emergency", "short_code"}


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("sip:+31 20-123 4567@pbx;user=phone", "+31201234567"),
        ("<tel:0201234567>", "0201234567"),
        ("+31 (0)20 1234567", "+31201234567"),
        ("020/1234567", "0201234567"),
    ],
)
def test_clean_number(raw, clean):
    assert clean_number(raw) == clean


# --- sources -----------------------------------------------------------------------------


def test_context_validation():
    with pytest.raises(ValueError):
        NumberingContext(country="XX")
    with pytest.raises(ValueError):
        NumberingContext(trunk_prefix="a")
    with pytest.raises(ValueError):
        NumberingContext(international_prefix="")
    with pytest.raises(ValueError):
        NumberingContext(timezone="Mars/Olympus")
    assert NumberingContext(country="nl").country == "NL"


def test_context_hash_eq_and_pickle():
    a, b = NumberingContext(), NumberingContext()
    assert a == b and hash(a) == hash(b)
    assert a != US
    again = pickle.loads(pickle.dumps(US))
    assert again == US and hash(again) == hash(US)


def test_source_directory_from_dict():
    d = SourceDirectory.from_dict(
        {
            "default": {"country": "NL"},
            "switches": {
                "ams-1": {},
                "nyc-1": {
                    "country": "US",
                    "trunk_prefix": "1",
                    "international_prefix": "011",
                    "timezone": "America/New_York",
                    "trunks": {"eu-gw": {"country": "DE", "trunk_prefix": "0", "international_prefix": "00"}},
                },
            },
        }
    )
    assert d.context_for("ams-1") == NL
    assert d.context_for("unknown-switch") == NL
    nyc = d.context_for("nyc-1")
    assert nyc.country == "US" and nyc.timezone == "America/New_York"
    assert d.context_for("nyc-1", "other-trunk") == nyc
    gw = d.context_for("nyc-1", "eu-gw")
    assert gw.country == "DE" and gw.timezone == "America/New_York"  # inherits the switch
    assert d.for_raw({"switch_id": "nyc-1", "trunk": "eu-gw"}) == gw
    assert d.for_raw({"switch_id": ["unhashable"], "trunk": {}}) == d.default
    assert d.for_raw("not a dict") == d.default  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {"switches": {"x": {"country": "ZZ"}}},
        {"switches": {"x": {"colour": "red"}}},
        {"defaults": {}},
        {"default": {"trunks": {}}},
        {"switches": {"x": {"trunks": {"t": {"trunks": {}}}}}},
    ],
)
def test_source_directory_rejects_bad_config(bad):
    with pytest.raises(ValueError):
        SourceDirectory.from_dict(bad)
