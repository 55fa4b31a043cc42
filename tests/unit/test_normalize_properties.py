"""Properties of normalisation over generated inputs."""
from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from streams.core.normalize import normalize, normalize_batch
from streams.core.numbering import caller_to_e164, to_e164
from streams.core.reasons import Reason, RejectError
from streams.core.sources import NumberingContext

NOW = 1_760_000_000_000
NL = NumberingContext()
US = NumberingContext(country="US", trunk_prefix="1", international_prefix="011")
SCHEMA_FIELDS = [
    "switch_id", "call_id", "leg", "partial_seq", "partial_final", "correlation_id", "account", "service_user",
    "direction", "caller", "presented_cli", "called", "trunk", "start_ms", "answer_ms", "end_ms", "duration_s",
    "billsec_s", "disposition", "service",
]

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=NOW - 10**10, max_value=NOW + 10**9),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.text(alphabet="0123456789+-() ", max_size=20),
    st.sampled_from(["outbound", "inbound", "ANSWERED", "NO ANSWER", "voice", "sms", "112", "0201234567", "anonymous", ""]),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)

arbitrary_record = st.dictionaries(st.sampled_from(SCHEMA_FIELDS + ["extra"]), anything, max_size=len(SCHEMA_FIELDS) + 1)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(arbitrary_record)
def test_normalize_raises_only_reject_error(record):
    try:
        out = normalize(record, NL, now_ms=NOW)
    except RejectError as exc:
        assert isinstance(exc.reason, Reason)
    else:
        assert isinstance(out["cdr_key"], str)


@settings(max_examples=200)
@given(st.lists(st.one_of(arbitrary_record, anything), max_size=5))
def test_batch_never_raises_and_accounts_for_every_record(records):
    ok, rejected = normalize_batch(records, lambda r: NL, NOW)
    assert len(ok) + len(rejected) == len(records)
    assert all(isinstance(e, RejectError) for _, e in rejected)


# --- valid inputs ------------------------------------------------------------------------

digits = lambda n: st.text(alphabet="0123456789", min_size=n, max_size=n)  # noqa: E731
nl_national = st.one_of(
    st.builds(lambda a, s: "0" + a + s, st.sampled_from(["20", "10", "30", "70", "40", "50"]), digits(7)),
    st.builds(lambda a, s: "06" + a + s, st.sampled_from("12345"), digits(7)),
)


@st.composite
def spelled(draw):
    """An NL number in one of the spellings switches emit."""
    national = draw(nl_national)
    nsn = national[1:]
    return draw(
        st.sampled_from(
            [national, f"{national[:3]}-{national[3:]}", "+31" + nsn, "0031" + nsn, f"+31 (0){nsn}", f"sip:{national}@pbx.example"]
        )
    )


@st.composite
def valid_record(draw):
    # Ends at most a day after NOW even for the longest call drawn, inside the future limit.
    start = draw(st.integers(min_value=NOW - 300 * 86_400_000, max_value=NOW - 1_000))
    duration = draw(st.integers(min_value=0, max_value=86_400))
    billsec = draw(st.integers(min_value=0, max_value=duration))
    disposition = "ANSWERED" if billsec else draw(st.sampled_from(["ANSWERED", "NO ANSWER", "BUSY", "FAILED"]))
    return {
        "switch_id": draw(st.text(min_size=1, max_size=10).filter(lambda s: not s.isspace())),
        "call_id": draw(st.text(min_size=1, max_size=20).filter(lambda s: not s.isspace())),
        "leg": draw(st.sampled_from(["A", "B", "ivr", "agent", None])),
        "partial_seq": draw(st.integers(min_value=0, max_value=100)),
        "account": "acct",
        "direction": draw(st.sampled_from(["outbound", "inbound"])),
        "caller": draw(spelled()),
        "presented_cli": draw(st.one_of(st.none(), spelled())),
        "called": draw(spelled()),
        "start_ms": start,
        "answer_ms": start + (duration - billsec) * 1000 if billsec else None,
        "end_ms": start + duration * 1000 + draw(st.integers(min_value=0, max_value=999)),
        "duration_s": duration,
        "billsec_s": billsec,
        "disposition": disposition,
    }


def _is_e164(s: str) -> bool:
    return s.startswith("+") and s[1:].isascii() and s[1:].isdigit() and 2 <= len(s) - 1 <= 15


@settings(max_examples=300)
@given(valid_record())
def test_valid_records_normalise_to_e164(record):
    out = normalize(record, NL, now_ms=NOW)
    assert _is_e164(out["caller_e164"])
    assert _is_e164(out["called_e164"])
    assert _is_e164(out["presented_cli"])
    assert out["called_type"] in {"fixed", "mobile", "unknown"}
    if out["answered"]:
        assert out["billsec_s"] > 0
    assert 0 <= out["billsec_s"] <= out["duration_s"]


@settings(max_examples=300)
@given(valid_record(), st.integers(min_value=0, max_value=10))
def test_answered_implies_billsec(record, billsec):
    record["billsec_s"] = min(billsec, record["duration_s"])
    record["disposition"] = "ANSWERED"
    out = normalize(record, NL, now_ms=NOW)
    assert out["answered"] == (out["billsec_s"] > 0)


@settings(max_examples=300)
@given(spelled(), st.sampled_from([NL, US]))
def test_e164_is_idempotent(number, ctx):
    e164, kind = to_e164(number, NL)
    # Once E.164, a number reads the same in any context and normalises to itself.
    assert to_e164(e164, ctx) == (e164, kind)
    assert caller_to_e164(e164, ctx) == (e164, kind)


@settings(max_examples=200)
@given(valid_record())
def test_key_ignores_number_spelling(record):
    first = normalize(record, NL, now_ms=NOW)
    respelled = dict(record, caller=first["caller_e164"], called=first["called_e164"])
    second = normalize(respelled, NL, now_ms=NOW)
    assert second == first


@settings(max_examples=300)
@given(st.text(max_size=25))
def test_to_e164_total_on_text(text):
    assume(text.strip().lower() not in {"anonymous"})
    try:
        e164, kind = to_e164(text, NL)
    except RejectError as exc:
        assert exc.reason is Reason.INVALID_NUMBER
    else:
        assert kind in {"fixed", "mobile", "toll_free", "premium", "emergency", "short_code", "unknown"}
        assert _is_e164(e164) or (e164.isdigit() and kind in {"emergency", "short_code"})


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(valid_record(), st.dictionaries(st.sampled_from(SCHEMA_FIELDS), anything, min_size=1, max_size=3), st.lists(st.sampled_from(SCHEMA_FIELDS), max_size=2))
def test_corrupted_valid_record_raises_only_reject_error(record, overrides, dropped):
    # Arbitrary dicts mostly fail on the first field; corrupting a valid record reaches the
    # later checks (times, durations, numbers) with hostile values too.
    record.update(overrides)
    for name in dropped:
        record.pop(name, None)
    try:
        out = normalize(record, NL, now_ms=NOW)
    except RejectError as exc:
        assert isinstance(exc.reason, Reason)
    else:
        assert not out["answered"] or out["billsec_s"] > 0
        assert isinstance(out["duration_s"], int) and 0 <= out["duration_s"] < 2**31
