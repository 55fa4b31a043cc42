"""FreeSWITCH mod_json_cdr and mod_cdr_csv as FreeSWITCH writes them by default.

FreeSWITCH is not installable here: tests/fixtures/switches/freeswitch/ is built from its
source (README.md there cites the files and lines). Expected values are read off the fixtures."""
from __future__ import annotations

import json
from pathlib import Path

from streams import codecs, formats
from streams.core.reasons import Reason
from streams.core.sources import SourceDirectory
from streams.mediation import Normalizer
from streams.msg import Msg

F = Path(__file__).resolve().parents[1] / "fixtures" / "switches" / "freeswitch"
A_OUT = F / "a_6b0c7f52-0001-4a5b-9c0d-00000000000a.cdr.json"
B_OUT = F / "6b0c7f52-0002-4a5b-9c0d-00000000000b.cdr.json"
A_0800 = F / "a_6b0c7f52-0003-4a5b-9c0d-00000000000c.cdr.json"
NOW = 1_760_000_000_000
SOURCES = SourceDirectory.from_dict({"default": {"country": "NL", "timezone": "Europe/Amsterdam"}})


def normalized(fmt: str, *paths: Path):
    parsed = [p for path in paths for p in formats.parse_file(fmt, path, "fs-ams-1")]
    recs = [p.record for p in parsed if p.record is not None]
    res = Normalizer(4, SOURCES).run([Msg("cdr.raw", 0, 0, NOW, codecs.encode_container(formats.FREESWITCH, recs))], NOW)
    assert res.normalized == len(recs), res.rejects
    return parsed, sorted((c for v in res.by_partition.values() for c in v), key=lambda c: c["source_index"])


def test_json_has_no_caller_or_destination_variables_the_profile_gives_them():
    doc = json.loads(A_OUT.read_text())
    assert "destination_number" not in doc["variables"] and doc["callflow"][-1]["caller_profile"]["destination_number"]


def test_outbound_a_leg_direction_and_trunk_from_freeswitch_defaults():
    _, (c,) = normalized("freeswitch-json", A_OUT)
    # no cdr_direction: a registered user (context default) calling out; trunk from last_arg
    # "sofia/gateway/kpn/0612345678" (URL-encoded in the file)
    assert (c["direction"], c["trunk"], c["account"]) == ("outbound", "kpn", "acct-200")
    assert (c["caller_e164"], c["presented_cli"], c["called_e164"]) == ("+31201234567", "+31207654321", "+31612345678")
    assert (c["billsec_s"], c["start_ms"], c["answer_ms"]) == (125, 1759910400_000, 1759910405_000)


def test_inbound_0800_call_from_a_gateway_is_inbound():
    _, (c,) = normalized("freeswitch-json", A_0800)
    # entered in context "public" from gateway kpn (sip_gateway); later transferred to 1001,
    # but the call as dialled (the entry profile) is the 0800 number
    assert (c["direction"], c["trunk"], c["called_e164"], c["called_type"]) == ("inbound", "kpn", "+31800" "1234", "toll_free")
    assert c["caller_e164"] == "+31612345678" and c["billsec_s"] == 300


def test_b_leg_is_not_billed_twice():
    parsed, cdrs = normalized("freeswitch-json", A_OUT, B_OUT)
    assert len(cdrs) == 1 and cdrs[0]["call_id"].endswith("00000000000a")
    (bad,) = [p for p in parsed if p.error]
    assert bad.error.reason == Reason.UNSUPPORTED_FORMAT and "B-leg" in bad.error.detail


def test_mod_cdr_csv_example_template():
    parsed, cdrs = normalized("freeswitch-csv", F / "Master.csv")
    assert not [p for p in parsed if p.error]
    out, inb, busy = cdrs
    # local stamps in the switch's zone: 10:00 in Amsterdam (summer) is 08:00Z
    assert (out["start_ms"], out["answer_ms"], out["billsec_s"]) == (1759910400_000, 1759910405_000, 125)
    assert (out["direction"], out["account"], out["called_e164"]) == ("outbound", "acct-200", "+31612345678")
    assert (inb["direction"], inb["called_type"]) == ("inbound", "toll_free")  # context "public"
    assert (busy["disposition"], busy["answer_ms"], busy["billsec_s"]) == ("BUSY", None, 0)
    # the same calls as the JSON files: one CDR key per call whichever module wrote it
    _, json_cdrs = normalized("freeswitch-json", A_OUT, A_0800)
    assert [c["cdr_key"] for c in json_cdrs] == [out["cdr_key"], inb["cdr_key"]]
