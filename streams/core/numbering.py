"""Switch-format phone numbers -> E.164 plus a rating class.

Switches write numbers however their dial plan does ("020-1234567", "0031 20 1234567",
"sip:0201234567@pbx", "+31 (0)20 1234567"). Rating needs one spelling, so every number
becomes E.164 and gets a number type:

``fixed | mobile | toll_free | premium | emergency | short_code | unknown``

How phonenumbers' types map, and why:

* FIXED_LINE -> fixed; MOBILE, PAGER -> mobile.
* FIXED_LINE_OR_MOBILE -> fixed. NANP does not distinguish the two and carriers rate such
  ranges as geographic, so "fixed unless known mobile".
* TOLL_FREE -> toll_free; PREMIUM_RATE -> premium.
* SHARED_COST -> premium: the caller pays a service-rate surcharge above a geographic call
  (UK 084x/087x), so a bill-shock profile must not treat it as an ordinary fixed call.
* VOIP, UAN -> fixed: nomadic (NL 085/091) and company (NL 088) numbers are rated as
  national geographic calls.
* PERSONAL_NUMBER, VOICEMAIL -> mobile: they follow a person and terminate on mobile
  networks, and are priced like mobile destinations.
* Anything else, and numbers whose range phonenumbers does not know but whose length is
  possible for the country -> unknown. Number plans change faster than metadata releases,
  so a plausible number is kept and rating decides (NO_TARIFF is recyclable; a lost call
  is not).

Emergency numbers (112, 911 in a US context, ...) and 3-6 digit service numbers dialled
without a prefix keep their digits as-is, typed emergency / short_code: they have no E.164
form.

Performance: phonenumbers costs ~30 µs a number, far over the ~10 µs a record the batch
normaliser may spend. Subscribers repeat, so results (rejects included) are memoised in a
bounded LRU keyed by (raw text, context); the context hashes from a precomputed value.
"""
from __future__ import annotations

from functools import lru_cache

import phonenumbers
from phonenumbers import PhoneNumberType as _T

from streams.core.number_tables import UNDECIDED as _UNDECIDED
from streams.core.number_tables import NumberTables
from streams.core.reasons import Reason, RejectError
from streams.core.sources import NumberingContext

__all__ = [
    "NUMBER_TYPES",
    "WITHHELD",
    "to_e164",
    "lookup",
    "caller_to_e164",
    "clean_number",
    "cache_info",
    "cache_clear",
    "CACHE_SIZE",
]

NUMBER_TYPES = ("fixed", "mobile", "toll_free", "premium", "emergency", "short_code", "unknown")

# ~200 bytes an entry: 128k entries cap the cache near 25 MB, several times the distinct
# numbers a busy switch sees in an hour, so steady-state hit rates stay high.
CACHE_SIZE = 131_072

# CLI-withheld markers switches put in the caller field. They are not numbers, yet the call
# is real and billable, so the caller side keeps them (lower-cased) instead of rejecting.
WITHHELD = frozenset({"anonymous", "restricted", "private", "unknown", "unavailable", "withheld"})

_TYPE_MAP = {
    _T.FIXED_LINE: "fixed",
    _T.MOBILE: "mobile",
    _T.FIXED_LINE_OR_MOBILE: "fixed",
    _T.TOLL_FREE: "toll_free",
    _T.PREMIUM_RATE: "premium",
    _T.SHARED_COST: "premium",
    _T.VOIP: "fixed",
    _T.PERSONAL_NUMBER: "mobile",
    _T.PAGER: "mobile",
    _T.UAN: "fixed",
    _T.VOICEMAIL: "mobile",
}
_TABLES = NumberTables(_TYPE_MAP)

# E.164 allows 15 digits; an exit code of up to 4 digits on top is the most a real
# dialled string carries. Anything longer is garbage and is not worth a parse.
_MAX_DIGITS = 19
# Longest text worth a cache entry: a SIP URI with a display name fits easily. Longer input
# is rejected before the cache, so hostile records cannot fill it with megabyte keys.
MAX_RAW = 160
_FORMATTING = str.maketrans("", "", " \t-.()/[]")


def clean_number(raw: str) -> str:
    """Strip URI wrapping and formatting: "sip:+31 (0)20-123 4567@pbx;user=phone" -> "+31201234567"."""
    s = raw.strip()
    lt = s.find("<")
    if lt >= 0:
        # '"Alice" <sip:...>' display-name form: only the URI counts.
        gt = s.find(">", lt)
        s = s[lt + 1 : gt if gt > 0 else len(s)].strip()
    head = s[:5].lower()
    if head.startswith("sips:"):
        s = s[5:]
    elif head.startswith(("sip:", "tel:")):
        s = s[4:]
    s = s.split(";", 1)[0]  # URI / tel parameters (user=phone, phone-context=...)
    at = s.find("@")
    if at >= 0:
        s = s[:at]
    # "+31 (0)20 ..." is how people write the optional trunk prefix; it is not dialled.
    s = s.replace("(0)", "")
    return s.translate(_FORMATTING)


def _classify_parsed(n: phonenumbers.PhoneNumber) -> str | None:
    # number_type() is UNKNOWN exactly when is_valid_number() is False (both match the
    # national number against the region's ranges), so one call does the work of both and
    # halves the cost of a cache miss.
    kind = phonenumbers.number_type(n)
    if kind != _T.UNKNOWN:
        return _TYPE_MAP.get(kind, "unknown")
    if phonenumbers.is_possible_number(n):
        return "unknown"
    return None


def _parse_intl(digits: str) -> tuple[str, str] | None:
    """Digits after '+' (country code first) -> (E.164, type), or None. phonenumbers' metadata
    compiled to digit automata answers first (same result, no regexes; see number_tables)."""
    got = _TABLES.parse_intl(digits)
    return _parse_intl_library(digits) if got is _UNDECIDED else got


def _parse_intl_library(digits: str) -> tuple[str, str] | None:
    """The reference: phonenumbers itself (number_tables falls back here, tests compare with it)."""
    try:
        n = phonenumbers.parse("+" + digits, None)
    except Exception:  # NumberParseException, and anything odd inside the library
        return None
    kind = _classify_parsed(n)
    if kind is None:
        return None
    return phonenumbers.format_number(n, phonenumbers.PhoneNumberFormat.E164), kind


def lookup(raw: str, ctx: NumberingContext) -> tuple[str, str] | str:
    """(E.164, type), or the reason the text is not a number. ``raw`` must be a str; this is
    the no-exception form that :func:`streams.core.normalize.normalize` uses on its hot path."""
    if len(raw) > MAX_RAW:
        return f"number text is {len(raw)} characters long, more than {MAX_RAW}"
    return _lookup(raw, ctx)


@lru_cache(maxsize=CACHE_SIZE)
def _lookup(raw: str, ctx: NumberingContext) -> tuple[str, str] | str:
    """(E.164, type) on success, or the reject detail string. Rejects are cached too: a
    misconfigured switch repeats the same bad number, and re-parsing it each time would turn
    a bad source into a slow one."""
    s = clean_number(raw)
    if not s:
        return f"number {raw!r} has no digits"
    plus = s[0] == "+"
    digits = s[1:] if plus else s
    if not (digits.isascii() and digits.isdigit()):
        return f"number {raw!r} contains characters other than digits after formatting is removed"
    if len(digits) > _MAX_DIGITS:
        return f"number {raw!r} has {len(digits)} digits, more than any dialled number"

    if plus:
        got = _parse_intl(digits)
        return got if got else f"{raw!r} is not a possible international number"

    intl = ctx.international_prefix
    if digits.startswith(intl):
        got = _parse_intl(digits[len(intl) :])
        return got if got else f"{raw!r} is not a possible number after the international prefix {intl!r}"

    cc = str(ctx.country_code)
    trunk = ctx.trunk_prefix
    if len(digits) <= 6:
        # Emergency numbers first: some begin with what is elsewhere a prefix.
        try:
            emergency = phonenumbers.is_emergency_number(digits, ctx.country)
        except Exception:
            emergency = False
        if emergency:
            return digits, "emergency"
        # Service numbers are dialled bare; one that starts with the trunk prefix is a
        # truncated national number instead, and fails below as one.
        if len(digits) >= 3 and not (trunk and digits.startswith(trunk)):
            return digits, "short_code"
        if len(digits) < 3:
            return f"{raw!r} is too short to be a number or a service code"

    if trunk and digits.startswith(trunk):
        got = _parse_intl(cc + digits[len(trunk) :])
        return got if got else f"{raw!r} is not a possible {ctx.country} national number"

    # No prefix at all: either the national significant number (switches that send
    # nature-of-address "national") or an international number without its exit code
    # ("31201234567" from trunks that send "international" without a '+'). Prefer whichever
    # is a valid number, national first. A number valid in neither reading is refused: taking
    # the merely possible national reading billed "3320123456" (from a switch that writes
    # international without '+') as Dutch fixed. ``accept_possible_numbers`` relaxes that
    # per source, for switches whose ranges phonenumbers does not know yet.
    national = _parse_intl(cc + digits)
    if national and national[1] != "unknown":
        return national
    international = _parse_intl(digits)
    if international and international[1] != "unknown":
        return international
    if national and ctx.accept_possible_numbers:
        return national
    return f"{raw!r} is a valid number neither as a {ctx.country} national number nor as an international one"


def to_e164(number: str, ctx: NumberingContext) -> tuple[str, str]:
    """Normalise one number in ``ctx``'s dial plan -> (e164, number_type).

    Raises ``RejectError(Reason.INVALID_NUMBER)`` when the text is not a number, and
    ``RejectError(Reason.BAD_FIELD_TYPE)`` when it is not a string at all.
    """
    if type(number) is not str:
        if not isinstance(number, str):
            raise RejectError(Reason.BAD_FIELD_TYPE, f"number must be a string, got {type(number).__name__}")
        number = str(number)  # str subclasses: normalise so the cache key is a plain str
    got = lookup(number, ctx)
    if type(got) is str:
        raise RejectError(Reason.INVALID_NUMBER, got)
    return got  # type: ignore[return-value]


def caller_to_e164(number: str, ctx: NumberingContext) -> tuple[str, str]:
    """Like :func:`to_e164`, but a withheld-CLI marker ("anonymous", ...) is kept as text,
    typed unknown: a call from a withheld number is still a real, billable call."""
    if type(number) is str:
        got = lookup(number, ctx)
        if type(got) is not str:
            return got  # type: ignore[return-value]
        token = number.strip().lower()
        if token in WITHHELD:
            return token, "unknown"
        raise RejectError(Reason.INVALID_NUMBER, got)
    return to_e164(number, ctx)


def cache_info():
    return _lookup.cache_info()


def cache_clear() -> None:
    _lookup.cache_clear()
