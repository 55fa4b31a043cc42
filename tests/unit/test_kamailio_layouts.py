"""Kamailio's three accounting layouts, read from files the real program wrote.

tests/fixtures/switches/kamailio/real_* were written by Kamailio 5.6.3 (Debian) running
tests/fixtures/switches/kamailio/acc.cfg with SIPp calls (tests/integration/test_kamailio_real.py
produces them afresh on every run; these copies let the unit tests run without Kamailio):
0201234567 -> 0612345678 held 2 s (acct-300), -> 0207654321 held 3 s (acct-301), -> 0301112233
busy (486). Variants below are edits of those real rows, each named in its test.
"""
from __future__ import annotations

from pathlib import Path

from streams import codecs, formats
from streams.core.reasons import Reason
from streams.core.sources import SourceDirectory
from streams.formats import kamailio
from streams.mediation import Normalizer
from streams.msg import Msg

K = Path(__file__).resolve().parents[1] / "fixtures" / "switches" / "kamailio"
NOW = 1_796_005_200_000  # just after the fixture calls (2026-11-30)
SOURCES = SourceDirectory.from_dict({"default": {"country": "NL", "timezone": "Europe/Amsterdam"}})


def run(data: bytes):
    parsed = list(kamailio.parse_text(data))
    recs = [p.record for p in parsed if p.record is not None]
    for r in recs:
        r["switch_id"] = "kam-1"
    res = Normalizer(4, SOURCES).run([Msg("cdr.raw", 0, i, NOW, codecs.encode(formats.KAMAILIO, r))
                                      for i, r in enumerate(recs)], NOW)
    assert res.normalized == len(recs), res.rejects
    cdrs = sorted((c for v in res.by_partition.values() for c in v), key=lambda c: c["source_offset"])
    return parsed, {c["called_e164"]: c for c in cdrs}, cdrs


def summary(by_called: dict) -> dict:
    return {k: (c["account"], c["caller_e164"], c["disposition"], c["billsec_s"]) for k, c in by_called.items()}


def test_dialog_cdr_table_reads_accountcode_and_duration():
    parsed, got, cdrs = run((K / "real_acc_cdrs.dbtext").read_bytes())
    assert len(cdrs) == 3 and not [p for p in parsed if p.error]
    # duration column 2.00 / 3.00 (db_text keeps two decimals); start_time is the 200 OK
    assert summary(got) == {"+31612345678": ("acct-300", "+31201234567", "ANSWERED", 2),
                            "+31207654321": ("acct-301", "+31201234567", "ANSWERED", 3),
                            "+31301112233": ("acct-300", "+31201234567", "BUSY", 0)}
    assert got["+31612345678"]["answer_ms"] == 1796005177_000 and got["+31612345678"]["end_ms"] == 1796005179_000


def test_stock_cdr_table_without_sip_code_extra():
    # The real acc_cdrs with the sip_code column removed: what a cdr_extra without it writes.
    lines = (K / "real_acc_cdrs.dbtext").read_text().splitlines()
    data = "\n".join(line.rsplit(" ", 1)[0] if i == 0 else line.rsplit(":", 1)[0] for i, line in enumerate(lines))
    parsed, got, _ = run(data.encode())
    assert not [p for p in parsed if p.error]
    assert [got[n]["disposition"] for n in ("+31612345678", "+31207654321", "+31301112233")] == ["ANSWERED", "ANSWERED", "FAILED"]
    assert got["+31207654321"]["billsec_s"] == 3


def test_transaction_table_pairs_invite_and_bye():
    parsed, got, cdrs = run((K / "real_acc.dbtext").read_bytes())
    assert not [p for p in parsed if p.error]
    # 5 rows (2 INVITE + 2 BYE + 1 failed INVITE) are 3 calls; talk = BYE time - INVITE time:
    # 1796005179 - 1796005177 = 2, 1796005183 - 1796005180 = 3
    assert summary(got) == {"+31612345678": ("acct-300", "+31201234567", "ANSWERED", 2),
                            "+31207654321": ("acct-301", "+31201234567", "ANSWERED", 3),
                            "+31301112233": ("acct-300", "+31201234567", "BUSY", 0)}
    assert len(cdrs) == 3


def test_long_call_bye_from_callee_is_paired_by_tags():
    # The real 3 s call with its BYE moved to 125 s later and sent by the callee (tags swapped).
    lines = (K / "real_acc.dbtext").read_text().splitlines()
    header, inv = lines[0], next(x for x in lines if ":INVITE:" in x and "0207654321" in x)
    f = inv.split(":")
    bye = ":".join(["9", "BYE", f[3], f[2], f[4], "200", "OK", str(int(f[7]) + 125), "callee", "127.0.0.1",
                    "0201234567", "pbx.example.nl", "acct-301"])
    parsed, got, cdrs = run(f"{header}\n{inv}\n{bye}\n".encode())
    assert [(c["called_e164"], c["billsec_s"], c["disposition"]) for c in cdrs] == [("+31207654321", 125, "ANSWERED")]
    assert parsed[0].raw.count(b"\n") == 1  # the reject/raw keeps both rows of the call


def test_half_calls_are_rejected_not_billed_as_zero():
    lines = (K / "real_acc.dbtext").read_text().splitlines()
    header = lines[0]
    invite_only = [x for x in lines if "1-14735@" in x and ":INVITE:" in x]
    bye_only = [x for x in lines if "1-14803@" in x and ":BYE:" in x]
    parsed = list(kamailio.parse_text("\n".join([header, *invite_only, *bye_only]).encode()))
    assert [(p.record, p.error.reason) for p in parsed] == [(None, Reason.MISSING_FIELD)] * 2
    assert "no BYE in this file" in parsed[1].error.detail or "no BYE in this file" in parsed[0].error.detail


def test_log_lines_every_call_once_and_cdr_line_preferred():
    log = (K / "real_acc.log").read_bytes()
    parsed, got, cdrs = run(log)
    assert not [p for p in parsed if p.error] and len(cdrs) == 3
    # log_write_cdr(): duration=2.003 / 3.004 -> rounded up to whole seconds
    assert summary(got)["+31612345678"] == ("acct-300", "+31201234567", "ANSWERED", 3)
    assert summary(got)["+31207654321"] == ("acct-301", "+31201234567", "ANSWERED", 4)
    assert got["+31612345678"]["answer_ms"] == 1796005177_132
    # the transaction lines alone: 'timestamp', 'call_id', 'code', INVITE + BYE paired
    tx = b"\n".join(x for x in log.splitlines() if b"log_write_cdr" not in x)
    parsed, got, _ = run(tx)
    assert summary(got)["+31612345678"] == ("acct-300", "+31201234567", "ANSWERED", 2)
    assert got["+31301112233"]["disposition"] == "BUSY"


def test_other_log_messages_are_skipped_but_a_file_without_records_is_not_silent():
    noise = (b" 0(14690) INFO: <core> [core/sctp_core.c:74]: sctp_core_check_support(): SCTP API not enabled\n"
             b"Listening on \n")
    parsed = list(kamailio.parse_text(noise + (K / "real_acc.log").read_bytes()))
    assert len([p for p in parsed if p.record]) == 3 and not [p for p in parsed if p.error]
    (only,) = list(kamailio.parse_text(noise))
    assert only.error.reason == Reason.UNSUPPORTED_FORMAT


def test_missed_calls_table_is_the_unanswered_attempt():
    parsed, got, cdrs = run((K / "real_missed_calls.dbtext").read_bytes())
    assert summary(got) == {"+31301112233": ("acct-300", "+31201234567", "BUSY", 0)}
    # the same call as the failed INVITE row of the acc table: one CDR key, so counted once
    _, acc, _ = run((K / "real_acc.dbtext").read_bytes())
    assert cdrs[0]["cdr_key"] == acc["+31301112233"]["cdr_key"]
