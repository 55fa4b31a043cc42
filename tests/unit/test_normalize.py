"""normalize(): one test per reject reason, keys, defaults, and the batch contract."""
from __future__ import annotations

import pytest

from streams.core.keys import cdr_key
from streams.core.normalize import DEFAULT_LIMITS, Limits, normalize, normalize_batch
from streams.core.reasons import Reason, RejectError
from streams.core.sources import NumberingContext, SourceDirectory

NOW = 1_760_000_000_000
NL = NumberingContext()
CANONICAL_FIELDS = {
    "cdr_key", "switch_id", "call_id", "leg", "partial_seq", "partial_final", "correlation_id", "account",
    "service_user", "direction", "caller_e164", "presented_cli", "called_e164", "called_type", "trunk",
    "start_ms", "answer_ms", "end_ms", "duration_s", "billsec_s", "answered", "disposition", "service",
    "stage", "operator_location", "operator_dedicated",
}


def raw(**over):
    start = NOW - 3_600_000
    r = {
        "switch_id": "sw-ams-1",
        "call_id": "call-1",
        "leg": "A",
        "partial_seq": 0,
        "partial_final": True,
        "correlation_id": None,
        "account": "acct-1",
        "service_user": None,
        "direction": "outbound",
        "caller": "020-1234567",
        "presented_cli": None,
        "called": "06-12345678",
        "trunk": None,
        "start_ms": start,
        "answer_ms": start + 5_000,
        "end_ms": start + 65_000,
        "duration_s": 65,
        "billsec_s": 60,
        "disposition": "ANSWERED",
        "service": "voice",
    }
    r.update(over)
    return r


def norm(r, ctx=NL, **kw):
    return normalize(r, ctx, now_ms=NOW, **kw)


def reason_of(r, **kw):
    with pytest.raises(RejectError) as info:
        norm(r, **kw)
    assert info.value.detail
    return info.value.reason


def test_happy_path():
    out = norm(raw())
    assert set(out) == CANONICAL_FIELDS
    assert out["caller_e164"] == "+31201234567"
    assert out["called_e164"] == "+31612345678"
    assert out["called_type"] == "mobile"
    assert out["presented_cli"] == "+31201234567"
    assert out["correlation_id"] == "call-1"
    assert out["service_user"] == "" and out["trunk"] == ""
    assert out["answered"] is True
    assert out["cdr_key"] == cdr_key("sw-ams-1", "call-1", "A", 0)


def test_schema_defaults_when_optional_fields_absent():
    r = raw()
    for k in ("leg", "partial_seq", "partial_final", "correlation_id", "service_user", "presented_cli", "trunk", "answer_ms", "service"):
        del r[k]
    out = norm(r)
    assert (out["leg"], out["partial_seq"], out["partial_final"], out["service"]) == ("A", 0, True, "voice")
    assert out["answer_ms"] is None
    assert out["answered"] is True  # ANSWERED with billsec > 0


def test_presented_cli_kept_separate_from_real_caller():
    # Virtual PBX: the extension's real number calls out, the company number is shown.
    out = norm(raw(caller="0201234567", presented_cli="088-1234567", service_user="ext-12"))
    assert out["caller_e164"] == "+31201234567"
    assert out["presented_cli"] == "+31881234567"
    assert out["service_user"] == "ext-12"


def test_presented_cli_withheld():
    assert norm(raw(presented_cli="anonymous"))["presented_cli"] == "anonymous"


def test_inbound_international_caller():
    out = norm(raw(direction="inbound", caller="0044 20 7123 4567", called="0800-1234"))
    assert out["caller_e164"] == "+442071234567"
    assert (out["called_e164"], out["called_type"]) == ("+318001234", "toll_free")
    assert out["direction"] == "inbound"


def test_inbound_withheld_caller_is_kept():
    out = norm(raw(direction="inbound", caller="Anonymous"))
    assert out["caller_e164"] == "anonymous"
    assert out["presented_cli"] == "anonymous"


def test_enumerations_are_canonicalised():
    out = norm(raw(direction="OUTBOUND", disposition="no_answer", billsec_s=0, answer_ms=None, service="Voice"))
    assert (out["direction"], out["disposition"], out["service"]) == ("outbound", "NO ANSWER", "voice")
    assert out["answered"] is False


def test_context_changes_meaning():
    us = NumberingContext(country="US", trunk_prefix="1", international_prefix="011")
    out = norm(raw(caller="212-555-1234", called="011 31 20 123 4567"), ctx=us)
    assert (out["caller_e164"], out["called_e164"]) == ("+12125551234", "+31201234567")


def test_emergency_and_short_code():
    assert norm(raw(called="112"))["called_type"] == "emergency"
    out = norm(raw(called="1233"))
    assert (out["called_e164"], out["called_type"]) == ("1233", "short_code")


# --- keys --------------------------------------------------------------------------------


def test_same_call_resent_same_key():
    assert norm(raw())["cdr_key"] == norm(raw())["cdr_key"]
    # Formatting differences in the resend do not change the identity.
    assert norm(raw(caller="+31201234567", leg=None))["cdr_key"] == norm(raw())["cdr_key"]


@pytest.mark.parametrize("change", [{"leg": "B"}, {"partial_seq": 1}, {"call_id": "call-2"}, {"switch_id": "sw-ams-2"}])
def test_different_item_different_key(change):
    assert norm(raw(**change))["cdr_key"] != norm(raw())["cdr_key"]


# --- rejects, one per reason --------------------------------------------------------------


_STRINGS = ["switch_id", "call_id", "account", "direction", "caller", "called", "disposition"]
_INTS = ["start_ms", "end_ms", "duration_s", "billsec_s"]


@pytest.mark.parametrize(
    ("field", "how"),
    # account is not here: a record without one is mapped or unmapped_account (test_account_map.py).
    [(f, h) for f in _STRINGS + _INTS if f != "account" for h in ("absent", "none")]
    + [(f, "empty") for f in _STRINGS if f != "account"],
)
def test_missing_field(field, how):
    r = raw()
    if how == "absent":
        del r[field]
    else:
        r[field] = None if how == "none" else ""
    assert reason_of(r) is Reason.MISSING_FIELD


@pytest.mark.parametrize("field", ["switch_id", "caller", "called"])
def test_blank_string_is_missing(field):
    assert reason_of(raw(**{field: "   "})) is Reason.MISSING_FIELD


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("duration_s", "65"),
        ("duration_s", 65.0),
        ("duration_s", True),
        ("billsec_s", False),
        ("start_ms", str(NOW)),
        ("end_ms", float(NOW)),
        ("answer_ms", "x"),
        ("partial_seq", "0"),
        ("partial_seq", -1),
        ("partial_seq", 2**31),
        ("partial_final", 1),
        ("switch_id", 17),
        ("call_id", b"call-1"),
        ("caller", 201234567),
        ("called", ["0612345678"]),
        ("presented_cli", 31),
        ("leg", 1),
        ("correlation_id", 5),
        ("service_user", 5),
        ("trunk", {"a": 1}),
        ("service", 1),
        ("direction", 1),
    ],
)
def test_bad_field_type(field, value):
    assert reason_of(raw(**{field: value})) is Reason.BAD_FIELD_TYPE


def test_not_a_mapping():
    assert reason_of(["not", "a", "dict"]) is Reason.BAD_FIELD_TYPE


@pytest.mark.parametrize(("field", "value"), [("caller", "garbage"), ("called", "0123"), ("called", "anonymous"), ("presented_cli", "n/a")])
def test_invalid_number(field, value):
    with pytest.raises(RejectError) as info:
        norm(raw(**{field: value}))
    assert info.value.reason is Reason.INVALID_NUMBER
    assert info.value.detail.startswith(field)


@pytest.mark.parametrize(
    "change",
    [
        {"duration_s": -1},
        {"billsec_s": -1},
        {"billsec_s": 67},                                   # > duration + 1 s tolerance
        {"duration_s": 10, "billsec_s": 5},                  # end - start is 65 s
        {"duration_s": 3 * 86_400, "end_ms": NOW - 3_600_000 + 3 * 86_400_000},  # over max_call_s
    ],
)
def test_bad_duration(change):
    r = raw(**change)
    if "end_ms" in change:
        r["start_ms"] = NOW - 3 * 86_400_000 - 10_000
        r["end_ms"] = r["start_ms"] + 3 * 86_400_000
        r["answer_ms"] = None
    assert reason_of(r) is Reason.BAD_DURATION


def test_duration_tolerances():
    # Rounding on either side is tolerated; billsec one over duration is clamped.
    out = norm(raw(duration_s=64, billsec_s=65))
    assert out["billsec_s"] == 64
    assert norm(raw(duration_s=67))["duration_s"] == 67
    assert reason_of(raw(duration_s=68)) is Reason.BAD_DURATION


def test_end_before_start():
    r = raw()
    r["end_ms"] = r["start_ms"] - 1
    r["answer_ms"] = None
    r["duration_s"] = r["billsec_s"] = 0
    assert reason_of(r) is Reason.END_BEFORE_START


@pytest.mark.parametrize(
    "start",
    [NOW - DEFAULT_LIMITS.max_age_s * 1000 - 1, NOW + DEFAULT_LIMITS.max_future_s * 1000 + 1, 0, -5],
)
def test_time_out_of_range(start):
    r = raw(start_ms=start, end_ms=start + 65_000, answer_ms=start + 5_000)
    assert reason_of(r) is Reason.TIME_OUT_OF_RANGE


def test_answer_outside_call_is_out_of_range():
    r = raw()
    assert reason_of(raw(answer_ms=r["start_ms"] - 10_000)) is Reason.TIME_OUT_OF_RANGE
    assert reason_of(raw(answer_ms=r["end_ms"] + 10_000)) is Reason.TIME_OUT_OF_RANGE


def test_limits_are_configurable():
    tight = Limits(max_call_s=60)
    assert reason_of(raw(), limits=tight) is Reason.BAD_DURATION
    with pytest.raises(ValueError):
        Limits(max_call_s=-1)
    with pytest.raises(ValueError):
        Limits(max_call_s=2**31)


@pytest.mark.parametrize(("field", "value"), [("direction", "sideways"), ("disposition", "MAYBE"), ("service", "pigeon")])
def test_unsupported_format(field, value):
    assert reason_of(raw(**{field: value})) is Reason.UNSUPPORTED_FORMAT


# --- answered ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("disposition", "billsec", "answer", "answered"),
    [
        ("ANSWERED", 60, True, True),
        ("ANSWERED", 60, False, True),
        ("ANSWERED", 0, True, False),      # zero billable seconds is never an answered call
        ("NO ANSWER", 0, False, False),
        ("BUSY", 0, False, False),
    ],
)
def test_answered(disposition, billsec, answer, answered):
    r = raw(disposition=disposition, billsec_s=billsec)
    if not answer:
        r["answer_ms"] = None
    assert norm(r)["answered"] is answered


# --- batch ---------------------------------------------------------------------------------


def test_batch_orders_and_indexes():
    directory = SourceDirectory.from_dict({"switches": {"nyc": {"country": "US", "trunk_prefix": "1", "international_prefix": "011"}}})
    raws = [
        raw(call_id="a"),
        raw(called="garbage"),
        raw(call_id="c", switch_id="nyc", caller="212 555 1234", called="011 31 6 12345678"),
        None,
        "text",
        raw(account=None),
    ]
    ok, rejected = normalize_batch(raws, directory.for_raw, NOW)  # type: ignore[arg-type]
    assert [o["call_id"] for o in ok] == ["a", "c"]
    assert ok[1]["caller_e164"] == "+12125551234"
    assert [(i, e.reason) for i, e in rejected] == [
        (1, Reason.INVALID_NUMBER),
        (3, Reason.BAD_FIELD_TYPE),
        (4, Reason.BAD_FIELD_TYPE),
        (5, Reason.UNMAPPED_ACCOUNT),
    ]


def test_batch_turns_unexpected_errors_into_rejects():
    def broken_ctx(_raw):
        raise KeyError("no such switch")

    ok, rejected = normalize_batch([raw()], broken_ctx, NOW)
    assert ok == []
    (i, err), = rejected
    assert i == 0 and err.reason is Reason.BAD_FIELD_TYPE and "KeyError" in err.detail


def test_batch_empty():
    assert normalize_batch([], lambda r: NL, NOW) == ([], [])


# --- wire compatibility ------------------------------------------------------------------


def test_round_trips_through_the_avro_schemas():
    # Decode a real SwitchCdr, normalise, add the agent's source fields, and encode as
    # CanonicalCdr: the output must match the schema field for field.
    from streams import codecs

    wire = codecs.encode(codecs.SWITCH_CDR, raw(presented_cli="0881234567", trunk="kpn-1", service_user="ext-1"))
    name, decoded = codecs.decode(wire)
    assert name == codecs.SWITCH_CDR
    out = norm(decoded)
    out.update(source_topic="cdr.raw", source_partition=0, source_offset=7, source_index=0, ingest_ms=NOW, raw=wire)
    name, back = codecs.decode(codecs.encode(codecs.CANONICAL, out))
    assert name == codecs.CANONICAL
    assert back == out


def test_call_centre_stage_and_operator_pass_through():
    out = normalize(raw(leg="Agent", operator_location="remote", operator_dedicated=True), NL, now_ms=NOW)
    assert (out["stage"], out["operator_location"], out["operator_dedicated"]) == ("agent", "remote", True)
    plain = normalize(raw(), NL, now_ms=NOW)
    assert (plain["stage"], plain["operator_location"], plain["operator_dedicated"]) == ("", None, None)
    with pytest.raises(RejectError) as exc:
        normalize(raw(operator_dedicated="yes"), NL, now_ms=NOW)
    assert exc.value.reason is Reason.BAD_FIELD_TYPE
