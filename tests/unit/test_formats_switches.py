"""Switch fixtures (written from the field specs) -> Normalizer -> canonical CDRs.

Checks E.164, UTC times from the switch's zone, caller vs presented CLI, stages, partials,
and that every bad line ends as a reject with the right reason (counts balance)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams import codecs, formats
from streams.core.reasons import Reason
from streams.core.sources import SourceDirectory
from streams.formats.common import clid_number, local_to_ms
from streams.mediation import Normalizer
from streams.msg import Msg

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "switches"
NOW = 1_760_000_000_000  # 2025-10-09T08:53:20Z
SOURCES = SourceDirectory.from_dict({"default": {"country": "NL", "timezone": "Europe/Amsterdam"},
                                     "switches": {"ast-tokyo": {"country": "JP", "timezone": "Asia/Tokyo"}}})


def run_file(fmt: str, name: str, switch_id: str = "sw-ams-1"):
    """Publish-side parse, then one framed message per record, through the Normalizer."""
    rtype = formats.FILE_FORMATS[fmt][0]
    parsed = list(formats.parse_file(fmt, FIX / name, switch_id))
    msgs = [Msg("cdr.raw", 0, i, NOW, codecs.encode(rtype, p.record)) for i, p in enumerate(parsed) if p.record]
    res = Normalizer(4, SOURCES).run(msgs, NOW)
    assert res.records_in == len(msgs) == res.normalized + len(res.rejects)
    cdrs = sorted((c for v in res.by_partition.values() for c in v), key=lambda c: c["source_offset"])
    return parsed, cdrs, res


def utc(s: str) -> int:
    from datetime import datetime
    return int(datetime.fromisoformat(s).timestamp() * 1000)


def test_asterisk_master_csv():
    parsed, cdrs, res = run_file("asterisk-csv", "asterisk_Master.csv")
    assert not res.rejects and len(cdrs) == 6
    out = cdrs[0]
    # Summer: Europe/Amsterdam is UTC+2, so 10:00 local is 08:00Z.
    assert out["start_ms"] == utc("2025-10-08T08:00:00+00:00")
    assert out["answer_ms"] == utc("2025-10-08T08:00:05+00:00")
    assert (out["caller_e164"], out["presented_cli"]) == ("+31201234567", "+31207654321")
    assert out["called_e164"] == "+31612345678" and out["called_type"] == "mobile"
    assert (out["account"], out["trunk"], out["service_user"], out["direction"]) == ("acct-100", "kpn-trunk", "201", "outbound")
    # Winter: UTC+1.
    assert cdrs[1]["start_ms"] == utc("2025-01-15T09:00:00+00:00") and cdrs[1]["disposition"] == "NO ANSWER"
    assert cdrs[2]["disposition"] == "BUSY" and cdrs[2]["presented_cli"] == cdrs[2]["caller_e164"]


def test_asterisk_multi_stage_call_centre():
    _, cdrs, _ = run_file("asterisk-csv", "asterisk_Master.csv")
    stages = [c for c in cdrs if c["account"] == "cc-800"]
    assert [c["leg"] for c in stages] == ["ivr", "agent", "post"]
    assert {c["correlation_id"] for c in stages} == {"1759917600.10"}
    assert len({c["cdr_key"] for c in stages}) == 3          # each stage its own billable item
    assert all(c["direction"] == "inbound" and c["called_type"] == "toll_free" for c in stages)
    assert stages[1]["service_user"] == "agent7" and stages[1]["billsec_s"] == 300


def test_asterisk_local_time_zone_of_the_source():
    rec = next(formats.parse_file("asterisk-csv", FIX / "asterisk_Master.csv", "ast-tokyo")).record
    s = formats.to_switch_cdr(formats.ASTERISK, rec, SOURCES.context_for)
    assert s["start_ms"] == utc("2025-10-08T01:00:00+00:00")  # Tokyo is UTC+9


def test_dst_overlap_takes_the_earlier_instant():
    assert local_to_ms("2025-10-26 02:30:00", "Europe/Amsterdam", "t") == utc("2025-10-26T00:30:00+00:00")


def test_clid_parsing():
    assert clid_number('"Sales Desk" <0207654321>') == "0207654321"
    assert clid_number("Bob <201>") == "201"
    assert clid_number("") is None and clid_number('"Name only"') is None


def test_asterisk_bad_lines_end_as_rejects():
    parsed, cdrs, res = run_file("asterisk-csv", "asterisk_bad.csv")
    parse_errors = {p.line: p.error.reason for p in parsed if p.error}
    assert parse_errors == {1: Reason.UNSUPPORTED_FORMAT, 2: Reason.BAD_FIELD_TYPE, 3: Reason.BAD_FIELD_TYPE,
                            4: Reason.MISSING_FIELD}
    reasons = sorted(r["reason"] for r in res.rejects)
    assert reasons == sorted(["invalid_number", "end_before_start", "unmapped_account", "unsupported_format",
                              "bad_duration"])
    assert [c["call_id"] for c in cdrs] == ["good.10:10"]
    assert len(parsed) == len(parse_errors) + len(res.rejects) + len(cdrs)   # every line ends somewhere


def test_freeswitch_json():
    parsed, cdrs, res = run_file("freeswitch-json", "freeswitch_call.json")
    (c,) = cdrs
    assert (c["caller_e164"], c["presented_cli"], c["trunk"]) == ("+31201234567", "+31207654321", "kpn")
    assert c["start_ms"] == 1_759_910_400_000 and c["billsec_s"] == 60 and c["answered"]
    assert c["correlation_id"] == "a1b2c3d4-0001-4000-8000-000000000001"
    parsed, cdrs, res = run_file("freeswitch-json", "freeswitch_calls.jsonl")
    assert [c["disposition"] for c in cdrs] == ["BUSY", "NO ANSWER", "ANSWERED"]
    assert cdrs[2]["leg"] == "agent" and cdrs[2]["direction"] == "inbound"
    assert {p.line: p.error.reason for p in parsed if p.error} == {
        4: Reason.UNSUPPORTED_FORMAT, 5: Reason.MISSING_FIELD, 6: Reason.BAD_FIELD_TYPE}


def test_kamailio_dbtext_and_json():
    parsed, cdrs, res = run_file("kamailio-acc", "kamailio_acc.dbtext")
    c = cdrs[0]
    # PAI is the real caller; From is what the caller presented.
    assert (c["caller_e164"], c["presented_cli"]) == ("+31201234567", "+31207654321")
    assert c["start_ms"] == utc("2025-10-08T08:00:00+00:00") and c["answer_ms"] == utc("2025-10-08T08:00:05.250+00:00")
    assert c["billsec_s"] == 60 and c["trunk"] == "kpn" and c["account"] == "acct-300"
    assert [x["disposition"] for x in cdrs[1:]] == ["BUSY", "NO ANSWER"]
    assert cdrs[2]["account"] == "0201234567"  # no acc extra: the subscriber is billed
    assert {p.line: p.error.reason for p in parsed if p.error} == {5: Reason.BAD_FIELD_TYPE, 6: Reason.UNSUPPORTED_FORMAT}
    parsed, cdrs, res = run_file("kamailio-acc", "kamailio_acc.jsonl")
    assert [c["disposition"] for c in cdrs] == ["ANSWERED", "FAILED", "ANSWERED"]
    assert cdrs[2]["billsec_s"] == 11  # 10.2 s of talk rounds up
    assert [p.line for p in parsed if p.error] == [4]


def ts_records():
    return json.loads((FIX / "ts32298_records.json").read_text())


def test_ts32298_partials_rate_as_deltas():
    data = codecs.encode_container(formats.TS32298, ts_records())
    res = Normalizer(4, SOURCES).run([Msg("cdr.raw", 1, 7, NOW, data)], NOW)
    assert res.records_in == 4 and res.normalized == 4, res.rejects
    cdrs = sorted((c for v in res.by_partition.values() for c in v), key=lambda c: c["source_index"])
    p1, p2, p3, mt = cdrs
    assert [c["partial_seq"] for c in (p1, p2, p3)] == [1, 2, 3]
    assert [c["partial_final"] for c in (p1, p2, p3)] == [False, False, True]
    assert [c["billsec_s"] for c in (p1, p2, p3)] == [1800, 1800, 600]        # each its own slice
    # every partial carries the call's start and answer; end_ms is the end of its slice, so
    # the seconds before a slice are end - answer - billsec (partials.seconds_before)
    assert {c["start_ms"] for c in (p1, p2, p3)} == {utc("2025-10-08T10:00:00+00:00")}
    assert {c["answer_ms"] for c in (p1, p2, p3)} == {utc("2025-10-08T10:00:10+00:00")}
    assert [c["end_ms"] for c in (p1, p2, p3)] == [utc("2025-10-08T10:30:10+00:00"), utc("2025-10-08T11:00:10+00:00"),
                                                   utc("2025-10-08T11:10:10+00:00")]
    assert len({c["cdr_key"] for c in (p1, p2, p3)}) == 3 and {c["call_id"] for c in (p1, p2, p3)} == {"0a1b2c"}
    assert p1["caller_e164"] == "+31612345678" and p1["account"] == "+31612345678" and p1["trunk"] == "tg-ams"
    assert (mt["direction"], mt["caller_e164"], mt["presented_cli"], mt["called_e164"]) == (
        "inbound", "+31201234567", "+31209999999", "+31612345678")


@pytest.mark.parametrize("order", [[2, 0, 1], [1, 2, 0, 1]])
def test_ts32298_out_of_order_and_duplicate_partials(order):
    recs = ts_records()
    msgs = [Msg("cdr.raw", 0, i, NOW, codecs.encode(formats.TS32298, recs[j])) for i, j in enumerate(order)]
    res = Normalizer(4, SOURCES).run(msgs, NOW)
    keys = [c["cdr_key"] for v in res.by_partition.values() for c in v]
    assert res.normalized == len(order) and len(set(keys)) == 3   # the duplicate shares its key
