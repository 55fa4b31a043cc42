"""Real Kamailio, real SIPp calls: what Kamailio itself writes is read by the cdrflow reader.

Kamailio 5.6 (Debian ``kamailio``; acc, dialog and db_text are in the main package) runs on
127.0.0.1 with tests/fixtures/switches/kamailio/acc.cfg, accounting each call three ways:
dialog CDRs (``acc_cdrs``), transaction rows (``acc`` INVITE + BYE, ``missed_calls``) and
``ACC:`` / ``log_write_cdr()`` log lines on stderr. SIPp (Debian ``sip-tester``) places calls
of known hold times through it: two answered (the callee rings 1 s first), one busy (486),
one cancelled by the caller while ringing (487). Kamailio's own files then go through the
same path as ``cdrflow publish --format kamailio-acc`` (formats.parse_file, the Avro
container) and the Normalizer, are priced with a small tariff, and are published for real
through publish_files to a tansu broker and read back. Last, the same files are dropped into a
spool and collected by the real ``cdrflow collect --once`` process (then dropped in again, and
not published twice).

Expected values are read independently from Kamailio's files (plain text parsing here) and
from the SIPp hold times; nothing is computed with the code under test.
Bounded: every process has a timeout and is killed by its PID; about 10 s in all.
"""
from __future__ import annotations

import io
import math
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from streams import codecs, formats, topics
from streams.cli.publish import publish_files
from streams.core.sources import SourceDirectory
from streams.mediation import Normalizer
from streams.msg import Msg
from streams.registry import LocalWire
from tests.support.broker import broker  # noqa: F401 - module-scoped fixture

pytestmark = pytest.mark.integration

KFIX = Path(__file__).resolve().parents[1] / "fixtures" / "switches" / "kamailio"
DBTEXT_SCHEMA = Path("/usr/share/kamailio/dbtext/kamailio")
SOURCES = SourceDirectory.from_dict({"default": {"country": "NL", "timezone": "Europe/Amsterdam"}})
SWITCH = "kam-ams-1"
CALLER = "0201234567"
# (called, account, hold ms, uac scenario): acc.cfg routes 0301... to the busy callee, 0302... to
# one that rings until the caller cancels (hold = ring time then), anything else to one that answers
CALLS = [("0612345678", "acct-300", 2000, "uac.xml"), ("0207654321", "acct-301", 3000, "uac.xml"),
         ("0301112233", "acct-300", 1000, "uac.xml"), ("0302223344", "acct-302", 1000, "uac_cancel.xml")]
HOLD = {called: hold for called, _, hold, _ in CALLS}
EXTRA_TX = "src_user(string) src_domain(string) dst_user(string) dst_domain(string) accountcode(string)"
CDR_COLS = ("id(int,auto) start_time(int) end_time(int) duration(double) callid(string) from_tag(string) "
            "src_user(string) dst_user(string) accountcode(string) sip_code(string)")


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_sip(port: int, deadline_s: float) -> None:
    """An OPTIONS probe until the proxy answers (acc.cfg replies 405)."""
    end = time.monotonic() + deadline_s
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        lport = s.bind(("127.0.0.1", 0)) or s.getsockname()[1]
        while time.monotonic() < end:
            msg = (f"OPTIONS sip:probe@127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lport};branch=z9hG4bKprobe{time.monotonic_ns()}\r\n"
                   f"From: <sip:probe@127.0.0.1>;tag=p\r\nTo: <sip:probe@127.0.0.1>\r\nCall-ID: probe-{time.monotonic_ns()}\r\n"
                   "CSeq: 1 OPTIONS\r\nMax-Forwards: 5\r\nContent-Length: 0\r\n\r\n")
            s.sendto(msg.encode(), ("127.0.0.1", port))
            try:
                if s.recv(4096).startswith(b"SIP/2.0"):
                    return
            except OSError:
                pass
        raise AssertionError(f"kamailio did not answer on 127.0.0.1:{port} within {deadline_s} s")


def _dbtext_rows(path: Path) -> list[dict]:
    """Independent reading of a db_text table: header name(type) columns, ':' fields, '\\' escapes."""
    lines = path.read_text().splitlines()
    cols = [c.split("(")[0] for c in lines[0].split()]
    rows = []
    for line in lines[1:]:
        if line.strip():
            vals = line.replace("\\:", "\0").split(":")
            rows.append(dict(zip(cols, (v.replace("\0", ":") for v in vals))))
    return rows


@pytest.fixture(scope="module")
def kamailio_output(tmp_path_factory):
    for tool in ("kamailio", "sipp"):
        assert shutil.which(tool), f"{tool} is not installed: apt-get install kamailio sip-tester (deploy/install-system-deps.sh)"
    d = tmp_path_factory.mktemp("kamailio")
    db = d / "db"
    db.mkdir()
    shutil.copy(DBTEXT_SCHEMA / "version", db / "version")
    # The operator adds a column per db_extra / cdr_extra entry (acc README "Extra accounting").
    for t in ("acc", "missed_calls"):
        (db / t).write_text((DBTEXT_SCHEMA / t).read_text().split("\n")[0].rstrip() + " " + EXTRA_TX + "\n")
    (db / "acc_cdrs").write_text(CDR_COLS + "\n")
    port, uas, busy, ring = _free_udp_port(), _free_udp_port(), _free_udp_port(), _free_udp_port()
    cfg = (KFIX / "acc.cfg").read_text()
    for k, v in {"@DBDIR@": str(db), "@PORT@": str(port), "@UAS_PORT@": str(uas), "@BUSY_PORT@": str(busy),
                 "@RING_PORT@": str(ring)}.items():
        cfg = cfg.replace(k, v)
    (d / "kamailio.cfg").write_text(cfg)
    log = (d / "kamailio.log").open("wb")
    procs: list[subprocess.Popen] = []
    sipp_common = ["-i", "127.0.0.1", "-nostdin", "-timeout", "20", "-trace_err"]
    try:
        kam = subprocess.Popen(["kamailio", "-f", str(d / "kamailio.cfg"), "-DD", "-E", "-m", "32", "-M", "8"],
                               stdout=log, stderr=subprocess.STDOUT, cwd=d)
        procs.append(kam)
        for scen, p in (("uas_answer.xml", uas), ("uas_busy.xml", busy), ("uas_ring.xml", ring)):
            procs.append(subprocess.Popen(["sipp", "-sf", str(KFIX / scen), "-p", str(p), *sipp_common],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d))
        _wait_sip(port, 10)
        for called, account, hold, scenario in CALLS:
            r = subprocess.run(["timeout", "25", "sipp", f"127.0.0.1:{port}", "-sf", str(KFIX / scenario), "-m", "1",
                                "-d", str(hold), "-s", called, "-key", "caller", CALLER, "-key", "account", account,
                                "-p", str(_free_udp_port()), *sipp_common], capture_output=True, cwd=d)
            assert r.returncode == 0, f"sipp call to {called} failed ({r.returncode}): {r.stdout[-2000:]!r}"
        # db_text writes its tables when Kamailio shuts down (db_text README 1. Overview).
        kam.send_signal(signal.SIGTERM)
        kam.wait(timeout=15)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)
        log.close()
    return d


def normalize(path: Path) -> tuple[list, list[dict]]:
    """The cdrflow publish path (parse_file + Avro container as batch mode writes it) + the Normalizer."""
    parsed = list(formats.parse_file("kamailio-acc", path, SWITCH))
    recs = [p.record for p in parsed if p.record is not None]
    now = int(time.time() * 1000)
    res = Normalizer(4, SOURCES).run([Msg("cdr.raw", 0, 0, now, codecs.encode_container(formats.KAMAILIO, recs))], now)
    assert res.records_in == len(recs) == res.normalized, res.rejects
    return parsed, sorted((c for v in res.by_partition.values() for c in v), key=lambda c: c["source_index"])


E164 = {"0612345678": "+31612345678", "0207654321": "+31207654321", "0301112233": "+31301112233",
        "0302223344": "+31302223344"}


def _by_called(cdrs: list[dict]) -> dict[str, dict]:
    out = {}
    for c in cdrs:
        assert c["called_e164"] not in out, f"call to {c['called_e164']} twice"
        out[c["called_e164"]] = c
    return out


def _common_checks(cdrs: list[dict], switch: str = SWITCH) -> dict[str, dict]:
    got = _by_called(cdrs)
    assert set(got) == set(E164.values())
    for called, account, _, _ in CALLS:
        c = got[E164[called]]
        assert c["caller_e164"] == "+31201234567" and c["account"] == account and c["switch_id"] == switch
    assert got["+31301112233"]["disposition"] == "BUSY" and got["+31301112233"]["billsec_s"] == 0
    assert got["+31302223344"]["disposition"] == "NO ANSWER" and got["+31302223344"]["billsec_s"] == 0
    check_costs(got)
    return got


TARIFF = """format: cdrflow-tariff/1
currency: EUR
plans:
  default:
    timezone: Europe/Amsterdam
    versions:
      - version: "t1"
        effective_from: "2000-01-01T00:00:00+01:00"
        rounding: {method: up, decimals: 6, per_increment: false}
        destinations:
          nl_mobile: {prefixes: ["316"], connect_fee: "0.10", groups: [{start: 0, rate: "0.60", unit: 60, increment: 1}]}
          nl_other: {prefixes: ["31"], groups: [{start: 0, rate: "0.30", unit: 60, increment: 1}]}
"""


def check_costs(got: dict[str, dict]) -> None:
    """Price each call; expected by hand: mobile 0.10 + 0.60/60 per second, other +31 0.30/60
    per second, unanswered calls free (no charge_unanswered)."""
    from decimal import Decimal

    from streams.core.tariff.loader import parse_tariff_text

    book = parse_tariff_text(TARIFF, "kamailio-test.yaml", "yaml")
    for called, c in got.items():
        secs = c["billsec_s"]
        if c["disposition"] != "ANSWERED":
            want = Decimal(0)
        elif called.startswith("+316"):
            want = Decimal("0.10") + Decimal("0.60") * secs / 60
        else:
            want = Decimal("0.30") * secs / 60
        assert book.rate(c).cost_micros == int(want * 1_000_000), (called, secs)


def test_dialog_cdr_table(kamailio_output):
    path = kamailio_output / "db" / "acc_cdrs"
    rows = _dbtext_rows(path)
    assert len(rows) == 4, path.read_text()
    parsed, cdrs = normalize(path)
    assert not [p for p in parsed if p.error]
    got = _common_checks(cdrs)
    for row in rows:
        c = got[E164[row["dst_user"]]]
        assert c["call_id"] == row["callid"]
        if row["sip_code"] == "200":
            hold = HOLD[row["dst_user"]] / 1000
            dur = float(row["duration"])
            # cdr_start_on_confirmed=1: talk time only, the 1 s of ringing is not in it
            assert hold <= dur < hold + 0.5, row
            # rounding rule: talk seconds round up to whole seconds
            assert c["disposition"] == "ANSWERED" and c["billsec_s"] == math.ceil(dur)
            assert c["answer_ms"] == int(row["start_time"]) * 1000


def test_transaction_tables_pair_invite_and_bye(kamailio_output):
    acc = kamailio_output / "db" / "acc"
    rows = _dbtext_rows(acc)
    assert sorted(r["method"] for r in rows) == ["BYE", "BYE", "INVITE", "INVITE", "INVITE", "INVITE"], acc.read_text()
    parsed, cdrs = normalize(acc)
    assert not [p for p in parsed if p.error]
    got = _common_checks(cdrs)
    for inv in (r for r in rows if r["method"] == "INVITE" and r["sip_code"] == "200"):
        bye = next(r for r in rows if r["method"] == "BYE" and r["callid"] == inv["callid"])
        talk = int(bye["time"]) - int(inv["time"])  # whole seconds: the table's resolution
        hold = HOLD[inv["dst_user"]] // 1000
        assert hold - 1 <= talk <= hold + 1
        c = got[E164[inv["dst_user"]]]
        assert (c["disposition"], c["billsec_s"], c["answer_ms"]) == ("ANSWERED", talk, int(inv["time"]) * 1000)
    # missed_calls: the failed attempts alone, the same calls (same call id -> same CDR key) as in acc
    parsed, missed = normalize(kamailio_output / "db" / "missed_calls")
    assert sorted((c["called_e164"], c["disposition"], c["billsec_s"]) for c in missed) == [
        ("+31301112233", "BUSY", 0), ("+31302223344", "NO ANSWER", 0)]
    assert {c["cdr_key"] for c in missed} == {got["+31301112233"]["cdr_key"], got["+31302223344"]["cdr_key"]}


def test_log_lines(kamailio_output):
    log = kamailio_output / "kamailio.log"
    text = log.read_text()
    # 2 answered INVITEs + 2 BYEs + 2 failed INVITEs (failed_transaction_flag); 486 and 487 missed
    assert text.count("ACC: transaction answered: timestamp=") == 6 and text.count("ACC: call missed: ") == 2
    assert text.count("log_write_cdr(): start_time=") == 4
    parsed, cdrs = normalize(log)
    assert not [p for p in parsed if p.error]
    got = _common_checks(cdrs)  # every call once: the CDR line wins over the transaction lines
    cdr_lines = [line.split("log_write_cdr(): ", 1)[1] for line in text.splitlines() if "log_write_cdr(): " in line]
    for line in cdr_lines:
        kv = dict(p.strip().split("=", 1) for p in line.split(";"))
        c = got[E164[kv["dst_user"]]]
        if kv["sip_code"] == "200":
            assert c["answer_ms"] == round(float(kv["start_time"]) * 1000)
            assert c["billsec_s"] == math.ceil(float(kv["duration"]))
    # transaction lines alone (a proxy without cdr_enable) read as paired calls too
    tx_only = kamailio_output / "tx-only.log"
    tx_only.write_text("\n".join(line for line in text.splitlines() if "log_write_cdr" not in line) + "\n")
    parsed, cdrs = normalize(tx_only)
    assert not [p for p in parsed if p.error]
    got = _common_checks(cdrs)
    assert got["+31612345678"]["disposition"] == got["+31207654321"]["disposition"] == "ANSWERED"


def test_published_through_the_broker(kamailio_output, broker):  # noqa: F811 - pytest fixture
    """`cdrflow publish --format kamailio-acc` of every file Kamailio wrote: each call is
    published once per layout, and all copies of a call carry one CDR key, so the charge
    stage counts the re-reads as duplicates."""
    from tests.integration.test_publish import consume_all

    files = [kamailio_output / "db" / n for n in ("acc_cdrs", "acc", "missed_calls")] + [kamailio_output / "kamailio.log"]
    err = io.StringIO()
    stats = publish_files(broker, "kamailio-acc", files, mode="batch", switch_id=SWITCH, wire=LocalWire(), err=err)
    assert (stats.records, stats.messages, stats.rejected) == (4 + 4 + 2 + 4, 4, 0), err.getvalue()
    raw = consume_all(broker, topics.RAW, 4)
    now = int(time.time() * 1000)
    res = Normalizer(8, SOURCES).run_safe(raw, now)
    assert res.records_in == 14 == res.normalized, res.rejects
    cdrs = [c for v in res.by_partition.values() for c in v]
    by_key: dict[str, set] = {}
    for c in cdrs:
        by_key.setdefault(c["cdr_key"], set()).add((c["called_e164"], c["account"], c["disposition"]))
    assert len(by_key) == 4 and all(len(v) == 1 for v in by_key.values())


def _answered_by_layout(out: Path) -> list[dict[str, tuple[int, int]]]:
    """Per file Kamailio wrote, {called E.164: (billsec, answer_ms)} of its answered calls, read
    independently from the file (the rounding rules of the module docstring and the tests above)."""
    cdr = {E164[r["dst_user"]]: (math.ceil(float(r["duration"])), int(r["start_time"]) * 1000)
           for r in _dbtext_rows(out / "db" / "acc_cdrs") if r["sip_code"] == "200"}
    rows = _dbtext_rows(out / "db" / "acc")
    tx = {}
    for inv in (r for r in rows if r["method"] == "INVITE" and r["sip_code"] == "200"):
        bye = next(r for r in rows if r["method"] == "BYE" and r["callid"] == inv["callid"])
        tx[E164[inv["dst_user"]]] = (int(bye["time"]) - int(inv["time"]), int(inv["time"]) * 1000)
    log = {}
    for line in (out / "kamailio.log").read_text().splitlines():
        if "log_write_cdr(): " in line:
            kv = dict(p.strip().split("=", 1) for p in line.split("log_write_cdr(): ", 1)[1].split(";"))
            if kv["sip_code"] == "200":
                log[E164[kv["dst_user"]]] = (math.ceil(float(kv["duration"])), round(float(kv["start_time"]) * 1000))
    return [cdr, tx, log]


def test_collected_from_a_spool_by_the_cdrflow_collect_process(kamailio_output, broker, tmp_path):  # noqa: F811
    """`cdrflow collect --once` (the real CLI process) over a spool holding every file Kamailio
    wrote: each file published once, moved to done/ unchanged, and every call rated as above;
    the same files dropped in again are recognised and not published a second time."""
    import os
    import sys

    from tests.integration.test_collect_kill import drain

    collect_switch = "kam-ams-collect"   # tells this test's records from the publish test's on cdr.raw
    names = {"acc_cdrs": kamailio_output / "db" / "acc_cdrs", "acc": kamailio_output / "db" / "acc",
             "missed_calls": kamailio_output / "db" / "missed_calls", "kamailio.log": kamailio_output / "kamailio.log"}
    spool = tmp_path / "spool"
    spool.mkdir()
    for name, src in names.items():
        shutil.copy(src, spool / name)
    root = Path(__file__).resolve().parents[2]
    cmd = [str(Path(sys.executable).parent / "cdrflow"), "collect", str(spool), "--format", "kamailio-acc",
           "--switch-id", collect_switch, "--settle", "0", "--once", "--bootstrap", broker["bootstrap.servers"]]
    env = {**os.environ, "PYTHONPATH": str(root)}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=root)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert "collected 4 files (0 to failed/)" in r.stderr, r.stderr[-3000:]
    assert sorted(p.name for p in spool.iterdir() if not p.name.startswith(".")) == ["done"]
    for name, src in names.items():
        assert (spool / "done" / name).read_bytes() == src.read_bytes()

    def collected() -> list[list[dict]]:
        values = drain(broker, topics.RAW, quiet_s=2.0, limit_s=30)
        now = int(time.time() * 1000)
        res = Normalizer(4, SOURCES).run_safe([Msg(topics.RAW, 0, i, now, v) for i, v in enumerate(values)], now)
        assert not res.rejects, res.rejects
        groups: dict[int, list[dict]] = {}
        for c in (c for v in res.by_partition.values() for c in v if c["switch_id"] == collect_switch):
            groups.setdefault(c["source_offset"], []).append(c)
        return list(groups.values())

    groups = collected()
    # One message per file (batch mode): dialog CDRs 4, transaction pairs 4, missed_calls 2, log 4.
    assert sorted(len(g) for g in groups) == [2, 4, 4, 4]
    assert len({c["cdr_key"] for g in groups for c in g}) == 4     # each call one key across layouts
    missed = next(g for g in groups if len(g) == 2)
    assert sorted((c["called_e164"], c["disposition"], c["billsec_s"]) for c in missed) == [
        ("+31301112233", "BUSY", 0), ("+31302223344", "NO ANSWER", 0)]
    answered = []
    for g in (g for g in groups if len(g) == 4):
        got = _common_checks(g, collect_switch)   # E.164 numbers, accounts, dispositions, costs
        answered.append({k: (c["billsec_s"], c["answer_ms"]) for k, c in got.items() if c["disposition"] == "ANSWERED"})
    want = _answered_by_layout(kamailio_output)
    assert [len(w) for w in want] == [2, 2, 2]                      # the 2 s and the 3 s call
    assert sorted(answered, key=repr) == sorted(want, key=repr)
    for layout in want:
        for called, (billsec, _) in layout.items():
            hold = HOLD[next(k for k, v in E164.items() if v == called)] // 1000
            assert hold - 1 <= billsec <= hold + 1, (called, billsec)

    # Dropped in again (a switch re-sending its files): recognised by path, size and hash.
    for name, src in names.items():
        shutil.copy(src, spool / name)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=root)
    assert r.returncode == 0 and "collected 0 files" in r.stderr, r.stderr[-3000:]
    assert sorted(p.name for p in (spool / "done").iterdir()) == sorted([*names, *(f"{n}.1" for n in names)])
    assert sorted(len(g) for g in collected()) == [2, 4, 4, 4]


def test_half_calls_across_a_rotation_are_paired_by_collect(kamailio_output, broker, tmp_path):  # noqa: F811
    """Kamailio's real ``acc`` table cut where a rotation would cut it: the INVITE rows in one
    file, the BYE rows in the next. `cdrflow collect` holds the answered INVITEs in its
    manifest and pairs them with the next file's BYEs: every call billed, nothing rejected."""
    import os
    import sys

    from tests.integration.test_collect_kill import drain

    switch = "kam-ams-rotated"
    lines = (kamailio_output / "db" / "acc").read_text().splitlines()
    spool = tmp_path / "spool"
    spool.mkdir()
    for n, (name, method) in enumerate((("acc.1", ":INVITE:"), ("acc.2", ":BYE:"))):
        f = spool / name
        f.write_text("\n".join([lines[0], *(x for x in lines[1:] if method in x)]) + "\n")
        os.utime(f, (1_700_000_000 + n, 1_700_000_000 + n))   # collected oldest first, as rotated
    root = Path(__file__).resolve().parents[2]
    cmd = [str(Path(sys.executable).parent / "cdrflow"), "collect", str(spool), "--format", "kamailio-acc",
           "--switch-id", switch, "--settle", "0", "--once", "--bootstrap", broker["bootstrap.servers"]]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(root)},
                       cwd=root)
    assert r.returncode == 0 and "collected 2 files (0 to failed/)" in r.stderr, r.stderr[-3000:]
    values = drain(broker, topics.RAW, quiet_s=2.0, limit_s=30)
    rejected = drain(broker, topics.REJECTED, quiet_s=1.0, limit_s=10)
    now = int(time.time() * 1000)
    res = Normalizer(4, SOURCES).run_safe([Msg(topics.RAW, 0, i, now, v) for i, v in enumerate(values)], now)
    cdrs = [c for v in res.by_partition.values() for c in v if c["switch_id"] == switch]
    got = _common_checks(cdrs, switch)
    rows = _dbtext_rows(kamailio_output / "db" / "acc")
    for inv in (x for x in rows if x["method"] == "INVITE" and x["sip_code"] == "200"):
        bye = next(x for x in rows if x["method"] == "BYE" and x["callid"] == inv["callid"])
        c = got[E164[inv["dst_user"]]]
        assert (c["disposition"], c["billsec_s"]) == ("ANSWERED", int(bye["time"]) - int(inv["time"]))
    assert not [v for v in rejected if b"acc.1" in v or b"acc.2" in v]   # no half rejected
