"""Kamailio half calls carried over across files (issue 11): the proxy rotates its transaction
file while a call is up, so the INVITE row is in one file and the BYE row in the next. Both
files are cut from tests/fixtures/switches/kamailio/real_acc.dbtext, rows Kamailio 5.6 wrote
(see test_kamailio_layouts.py); only the split into files is ours. Before, each half was
rejected missing_field and the call was never billed."""
from __future__ import annotations

from pathlib import Path

from streams import codecs, formats
from streams.collect import Collector
from streams.core.reasons import Reason
from streams.formats import kamailio
from streams.formats.kamailio import Carry
from streams.mediation import Normalizer
from streams.msg import Msg
from tests.unit.test_kamailio_layouts import K, NOW, SOURCES

LINES = (K / "real_acc.dbtext").read_text().splitlines()
HEADER, ROWS = LINES[0], LINES[1:]
INVITES = "\n".join([HEADER, *(r for r in ROWS if ":INVITE:" in r)]) + "\n"   # 2 answered + 1 busy
BYES = "\n".join([HEADER, *(r for r in ROWS if ":BYE:" in r)]) + "\n"


def answered(parsed) -> dict[str, tuple[float, str]]:
    return {p.record["dst_user"]: (p.record["duration"], p.record["account"]) for p in parsed
            if p.record is not None and p.record["sip_code"] == "200"}


def billed(parsed) -> dict[str, tuple[str, int]]:
    recs = [{**p.record, "switch_id": "kam-1"} for p in parsed if p.record is not None]
    res = Normalizer(4, SOURCES).run([Msg("cdr.raw", 0, i, NOW, codecs.encode(formats.KAMAILIO, r))
                                      for i, r in enumerate(recs)], NOW)
    assert res.normalized == len(recs), res.rejects
    return {c["called_e164"]: (c["disposition"], c["billsec_s"]) for v in res.by_partition.values() for c in v}


def test_without_a_carry_each_half_is_still_rejected():
    first = list(kamailio.parse_text(INVITES))
    second = list(kamailio.parse_text(BYES))
    assert [p.error.reason for p in first if p.error] == [Reason.MISSING_FIELD] * 2
    assert [p.error.reason for p in second if p.error] == [Reason.MISSING_FIELD] * 2


def test_invite_in_one_file_bye_in_the_next_is_one_call():
    carry = Carry()
    first = list(kamailio.parse_text(INVITES, carry, "acc.1"))
    # The busy attempt is complete in the first file; the two answered INVITEs wait.
    assert not [p for p in first if p.error] and billed(first) == {"+31301112233": ("BUSY", 0)}
    assert len(carry.rows) == 2 and {o for _, _, o in carry.rows} == {"acc.1:3", "acc.1:4"}   # line 2 is the busy INVITE
    # Through JSON, as cdrflow collect keeps it in its manifest between files.
    carry = Carry.from_json(carry.to_json())
    second = list(kamailio.parse_text(BYES, carry, "acc.2"))
    assert not [p for p in second if p.error] and carry.rows == []
    # By hand from the rows: BYE 1796005179 - INVITE 1796005177 = 2 s; 1796005183 - 1796005180 = 3 s.
    assert billed(second) == {"+31612345678": ("ANSWERED", 2), "+31207654321": ("ANSWERED", 3)}
    # The record carries both rows as its raw bytes, and sits at its first row in this file.
    call = next(p for p in second if p.record["dst_user"] == "0612345678")
    assert call.raw.count(b"\n") == 1 and b":INVITE:" in call.raw and b":BYE:" in call.raw
    assert call.line in (2, 3)


def test_a_bye_read_before_its_invite_pairs_too():
    carry = Carry()
    assert list(kamailio.parse_text(BYES, carry, "late")) == [] and len(carry.rows) == 2
    after = list(kamailio.parse_text(INVITES, carry, "early"))
    assert not [p for p in after if p.error] and carry.rows == []
    assert answered(after) == {"0612345678": (2, "acct-300"), "0207654321": (3, "acct-301")}


def test_a_half_that_no_file_completes_within_the_hold_is_rejected_with_its_bytes():
    carry = Carry()
    list(kamailio.parse_text(INVITES, carry, "acc.1"))
    # A later file of the next day, without those BYEs: the busy row moved 86,401 s on.
    busy = next(r for r in ROWS if ":486:" in r).replace(":1796005183:", f":{1796005183 + 86_401}:")
    later = list(kamailio.parse_text("\n".join([HEADER, busy.replace("1-14857@", "9-99999@")]) + "\n", carry, "acc.9"))
    errs = [p for p in later if p.error]
    assert [p.error.reason for p in errs] == [Reason.MISSING_FIELD] * 2 and carry.rows == []
    assert {p.raw for p in errs} == {r.encode() for r in ROWS if ":INVITE:" in r and ":200:" in r}
    assert all("held from acc.1:" in p.error.detail for p in errs)


def test_the_last_file_rejects_what_is_still_open():
    carry = Carry()
    list(kamailio.parse_text(INVITES, carry, "acc.1"))
    carry.final = True
    last = list(kamailio.parse_text(HEADER + "\n", carry, "acc.2"))
    assert [p.error.reason for p in last] == [Reason.MISSING_FIELD] * 2
    assert all("the last file given" in p.error.detail for p in last)


def test_a_file_whose_rows_are_all_held_is_not_taken_for_an_empty_one():
    carry = Carry()
    one = "\n".join([HEADER, next(r for r in ROWS if ":INVITE:" in r and ":200:" in r)]) + "\n"
    assert list(kamailio.parse_text(one, carry, "a")) == [] and len(carry.rows) == 1
    # Without a carry that file is one half call, not "no Kamailio accounting record".
    assert [p.error.reason for p in kamailio.parse_text(one)] == [Reason.MISSING_FIELD]


def test_publish_pairs_halves_across_the_files_of_one_command(tmp_path):
    from streams.cli.publish import publish_files

    (tmp_path / "acc.1").write_text(INVITES)
    (tmp_path / "acc.2").write_text(BYES)
    sent = FakeSender()
    stats = publish_files({}, "kamailio-acc", [tmp_path / "acc.1", tmp_path / "acc.2"], switch_id="kam-1",
                          sender=sent, wire=object(), err=open("/dev/null", "w"))
    assert (stats.records, stats.rejected) == (3, 0)
    # Alone, the second file's BYEs are the last file's open halves: rejected.
    stats = publish_files({}, "kamailio-acc", [tmp_path / "acc.2"], switch_id="kam-1", sender=FakeSender(),
                          wire=object(), err=open("/dev/null", "w"))
    assert (stats.records, stats.rejected, stats.by_reason) == (0, 2, {"missing_field": 2})


class FakeSender:
    def __init__(self):
        self.sent = []

    def send(self, topic, value, key=None):
        self.sent.append((topic, value))

    def flush(self):
        pass


def test_collect_holds_halves_in_its_manifest_across_restarts(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    got: list[dict] = []

    def publish(path: Path, carry: Carry):
        parsed = list(formats.parse_file("kamailio-acc", path, "kam-1", carry=carry))
        got.extend(p.record for p in parsed if p.record is not None)
        return len([p for p in parsed if p.record]), len([p for p in parsed if p.error]), []

    def collector():
        return Collector(spool, publish, settle_s=0, carry_key="kam-1", carry_from_json=Carry.from_json)

    (spool / "acc.1").write_text(INVITES)
    c = collector()
    st = c.run_once()
    c.close()
    assert (st.published, st.records, st.rejected) == (1, 1, 0)
    # A new process (cron, restart) finds the held rows in the manifest.
    (spool / "acc.2").write_text(BYES)
    c = collector()
    st = c.run_once()
    assert (st.published, st.records, st.rejected) == (1, 2, 0)
    assert sorted(r["dst_user"] for r in got) == ["0207654321", "0301112233", "0612345678"]
    assert Carry.from_json(c.manifest.carry("kam-1")).rows == []
    c.close()


def test_a_crash_before_the_file_is_done_rereads_it_against_the_same_carry(tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    calls: list[list[str]] = []

    def publish(path: Path, carry: Carry):
        parsed = list(formats.parse_file("kamailio-acc", path, "kam-1", carry=carry))
        calls.append(sorted(p.record["dst_user"] for p in parsed if p.record))
        if path.name == "acc.2" and len(calls) == 2:
            raise RuntimeError("broker did not acknowledge")      # dies after sending, before done
        return len(calls[-1]), 0, []

    (spool / "acc.1").write_text(INVITES)
    Collector(spool, publish, settle_s=0, carry_key="k", carry_from_json=Carry.from_json).run_once()
    (spool / "acc.2").write_text(BYES)
    c = Collector(spool, publish, settle_s=0, carry_key="k", carry_from_json=Carry.from_json)
    try:
        c.run_once()
    except RuntimeError:
        pass
    c.close()
    c = Collector(spool, publish, settle_s=0, carry_key="k", carry_from_json=Carry.from_json)
    c.run_once()
    # The retry pairs the same two calls again (same CDR keys downstream: duplicates, not charges).
    assert calls == [["0301112233"], ["0207654321", "0612345678"], ["0207654321", "0612345678"]]
    assert Carry.from_json(c.manifest.carry("k")).rows == []
    c.close()
