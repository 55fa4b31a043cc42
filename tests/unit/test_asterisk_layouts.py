"""Asterisk cdr_csv layouts as Asterisk's own source writes them (fixtures cite cdr/cdr_csv.c).

Asterisk is not installable here, so tests/fixtures/switches/asterisk/*.csv are built from
build_csv_record() in asterisk/asterisk cdr/cdr_csv.c; each file's header comment names the
cdr.conf options and the source lines. Expected values are read off the fixture lines."""
from __future__ import annotations

from pathlib import Path

from streams import codecs, formats
from streams.core.sources import SourceDirectory
from streams.formats import asterisk
from streams.mediation import Normalizer
from streams.msg import Msg

A = Path(__file__).resolve().parents[1] / "fixtures" / "switches" / "asterisk"
NOW = 1_760_000_000_000
SOURCES = SourceDirectory.from_dict({"default": {"country": "NL", "timezone": "Europe/Amsterdam"}})


def run(name: str):
    parsed = list(formats.parse_file("asterisk-csv", A / name, "ast-1"))
    assert not [p for p in parsed if p.error], [p.error for p in parsed if p.error]
    recs = [p.record for p in parsed]
    res = Normalizer(4, SOURCES).run([Msg("cdr.raw", 0, 0, NOW, codecs.encode_container(formats.ASTERISK, recs))], NOW)
    assert res.normalized == len(recs), res.rejects
    return recs, sorted((c for v in res.by_partition.values() for c in v), key=lambda c: c["source_index"])


def test_compiled_default_16_columns_are_read():
    recs, cdrs = run("master_compiled_default.csv")
    assert [r["uniqueid"] for r in recs] == ["", ""]
    a, b = cdrs
    assert (a["account"], a["caller_e164"], a["called_e164"], a["billsec_s"], a["disposition"]) == (
        "acct-100", "+31201234567", "+31612345678", 125, "ANSWERED")
    assert a["trunk"] == "kpn-trunk" and b["disposition"] == "BUSY" and b["answer_ms"] is None
    # no uniqueid: the channel and its start identify the CDR, so a re-sent line keys the same
    assert a["call_id"] == "PJSIP/201-00000001@2025-10-08 10:00:00"
    _, again = run("master_compiled_default.csv")
    assert [c["cdr_key"] for c in again] == [c["cdr_key"] for c in cdrs]


def test_sample_conf_uniqueid_and_userfield():
    recs, cdrs = run("master_sample_conf.csv")
    assert [r["uniqueid"] for r in recs] == ["pbx1-1759910400.5", "pbx1-1759910700.7"]
    assert recs[1]["userfield"] == "direction=outbound" and recs[0]["amaflags"] == "BILLING"
    assert [c["call_id"] for c in cdrs] == ["pbx1-1759910400.5", "pbx1-1759910700.7"]


def test_newcdrcolumns_order_peeraccount_linkedid_sequence_and_stages_correlate():
    recs, cdrs = run("master_newcdrcolumns.csv")
    assert [(r["peeraccount"], r["linkedid"], r["sequence"]) for r in recs] == [
        ("", "1759917600.10", 20), ("agents-nl", "1759917600.10", 21), ("", "1759917600.10", 22)]
    assert [c["leg"] for c in cdrs] == ["ivr", "agent", "post"]
    assert {c["correlation_id"] for c in cdrs} == {"1759917600.10"}
    assert [c["billsec_s"] for c in cdrs] == [40, 300, 30] and cdrs[1]["service_user"] == "agent7"
    assert len({c["cdr_key"] for c in cdrs}) == 3


def test_newcdrcolumns_without_uniqueid():
    recs, (c,) = run("master_newcdrcolumns_only.csv")
    assert (recs[0]["linkedid"], recs[0]["sequence"], recs[0]["userfield"]) == ("1759910400.9", 31, "")
    assert c["call_id"] == "1759910400.9:31" and c["correlation_id"] == "1759910400.9"


def test_ambiguous_17_columns_told_by_the_uniqueid_shape():
    base = list(asterisk.BASE_COLUMNS)
    row = ["x"] * len(base)
    assert asterisk.layout_for([*row, "1759910400.5"])[-1] == "uniqueid"
    assert asterisk.layout_for([*row, "pbx1-1759910400.5"])[-1] == "uniqueid"
    assert asterisk.layout_for([*row, "stage=agent"])[-1] == "userfield"
    assert asterisk.layout_for([*row, "1759910400.5", "", "1759910400.5", "7"])[-4:] == (
        "uniqueid", "peeraccount", "linkedid", "sequence")


def test_cdr_custom_layouts_from_the_operators_mapping_file():
    conf = (A / "cdr_custom.conf").read_text()
    legacy = asterisk.layout_from_cdr_custom(conf)  # the first mapping: [mappings] Master.csv
    assert legacy.columns[:3] == ("clid", "src", "dst") and legacy.columns[-1] == "sequence"
    parsed = list(formats.parse_file("asterisk-csv", A / "custom_Master.csv", "ast-1", layout=legacy))
    (rec,) = [p.record for p in parsed]
    assert (rec["accountcode"], rec["uniqueid"], rec["sequence"], rec["billsec"], rec["duration"]) == (
        "acct-100", "1759910400.17", 41, 126, 131)  # 125.120 and 130.402 s round up

    dsv = asterisk.layout_from_cdr_custom(conf, "billing.dsv")
    assert (dsv.delimiter, dsv.quotechar, dsv.columns[0], dsv.columns[-1]) == ("|", "'", "", "")
    (p,) = list(formats.parse_file("asterisk-csv", A / "billing.dsv", "ast-1", layout=dsv))
    assert (p.record["accountcode"], p.record["dst"], p.record["disposition"], p.record["linkedid"]) == (
        "acct-100", "0301112233", "BUSY", "1759914000.21")


def test_cdr_custom_layouts_refused_when_not_readable():
    import pytest

    with pytest.raises(ValueError, match="int64"):
        asterisk.layout_from_cdr_custom("[x.csv]\nfields = src, dst, start(int64), end, disposition\n")
    with pytest.raises(ValueError, match="json"):
        asterisk.layout_from_cdr_custom("[x.json]\nformat = json\nfields = src, dst\n")
    with pytest.raises(ValueError, match="no cdr_custom mapping"):
        asterisk.layout_from_cdr_custom("[general]\nusegmtime=yes\n")
