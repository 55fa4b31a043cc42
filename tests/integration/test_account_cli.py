"""``cdrflow account`` and ``cdrflow barring watch`` against a real tansu broker (127.0.0.1).

The account commands' ControlCommands are consumed back and checked; ``barring watch`` runs as
a real process and prints the transitions of events this test publishes itself.
"""
from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams import codecs, topics
from streams.cli.main import main
from streams.partitioning import partition_for, producer_config
from tests.support.broker import broker  # noqa: F401 - module-scoped fixture

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CDRFLOW = str(Path(sys.executable).parent / "cdrflow")   # the console script, as users run it




class Reader:
    """Assigns every partition of a topic from the beginning; hands out records as they come."""

    def __init__(self, conf: dict, topic: str):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.c = Consumer({**conf, "group.id": f"test-{topic}", "enable.auto.commit": False})
        parts = self.c.list_topics(topic, timeout=10).topics[topic].partitions
        self.c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])

    def take(self, n: int, timeout_s: float = 20) -> list[tuple[int, bytes, dict]]:
        out = []
        deadline = time.monotonic() + timeout_s
        while len(out) < n and time.monotonic() < deadline:
            m = self.c.poll(0.2)
            if m is not None and not m.error():
                out.append((m.partition(), m.key(), codecs.decode(m.value())[1]))
        return out

    def close(self):
        self.c.close()


def cli(broker, *argv) -> int:
    return main([*argv, "--bootstrap", broker["bootstrap.servers"]])


def cli_nowait(broker, *argv) -> int:
    # No worker runs here: the commands are checked as published, not waited for.
    return cli(broker, *argv, "--no-wait")


def test_account_commands_publish_control_commands(broker, capsys, tmp_path):
    r = Reader(broker, topics.CONTROL)
    try:
        assert cli_nowait(broker, "account", "create", "ACME", "--credit", "50.00", "--period", "weekly", "--tz",
                          "Europe/Amsterdam", "--soft-pct", "75", "--allow", "+31800", "0900", "--user-threshold",
                          "*=10,20.5", "--user-threshold", "101=1.25,2") == 0
        assert cli_nowait(broker, "account", "set-credit", "ACME", "80.000001") == 0
        assert cli_nowait(broker, "account", "raise-credit", "ACME", "5") == 0
        assert cli_nowait(broker, "account", "unbar", "ACME") == 0
        assert cli_nowait(broker, "account", "set-profile", "ACME", "low_credit") == 0
        assert cli_nowait(broker, "account", "set-user-thresholds", "ACME", "102=3,4", "103=") == 0
        out = capsys.readouterr().out
        assert "sent provision for ACME to account.control" in out and "credit 50.000000" in out
        got = r.take(6)
        assert len(got) == 6
        part = partition_for("ACME", 8)
        assert {p for p, _, _ in got} == {part} and {k for _, k, _ in got} == {b"ACME"}
        cmds = [c for _, _, c in got]
        assert [c["action"] for c in cmds] == ["provision", "set_credit", "raise_credit", "unbar", "set_profile",
                                                "set_user_thresholds"]
        prov = cmds[0]
        assert (prov["credit_micros"], prov["period_kind"], prov["timezone"], prov["soft_limit_pct"]) == (
            50_000_000, "weekly", "Europe/Amsterdam", 75)
        assert prov["always_allowed"] == ["+31800", "0900"]     # the '+' marks a number range
        assert prov["user_thresholds"] == {"*": [10_000_000, 20_500_000], "101": [1_250_000, 2_000_000]}
        assert cmds[1]["credit_micros"] == 80_000_001 and cmds[2]["credit_micros"] == 5_000_000
        assert cmds[3]["credit_micros"] is None and cmds[4]["profile"] == "low_credit"
        assert cmds[5]["user_thresholds"] == {"102": [3_000_000, 4_000_000], "103": []}
        assert len({c["command_id"] for c in cmds}) == 6

        # bad amounts are refused before anything is sent
        for bad in ("1e3", "0.1234567", "-5", "abc"):
            assert cli(broker, "account", "set-credit", "ACME", bad) == 2
        assert "more than 6 decimals" in capsys.readouterr().err

        # bulk load: CSV and YAML; a bad file publishes nothing
        csvf = tmp_path / "accts.csv"
        csvf.write_text("account,credit,period,tz,soft_pct,plan,allow,user_thresholds\n"
                        "C1,10.00,monthly,UTC,80,default,112 31800,\"*=1,2\"\n"
                        "C2,20,weekly,Europe/Amsterdam,,,,\n")
        assert cli_nowait(broker, "account", "load", str(csvf)) == 0
        yml = tmp_path / "accts.yaml"
        yml.write_text('accounts:\n  - {account: Y1, credit: "7.5", allow: ["0800"], '
                       'user_thresholds: {"*": ["1", "2"]}}\n')
        assert cli_nowait(broker, "account", "load", str(yml)) == 0
        bad = tmp_path / "bad.yaml"
        bad.write_text("- {account: B1, credit: 7.5}\n- {account: B2, credit: \"1\"}\n")
        assert cli(broker, "account", "load", str(bad)) == 2
        assert "bad.yaml: account #1: credit 7.5 is a float" in capsys.readouterr().err
        got = {c["account"]: c for _, _, c in r.take(3)}
        assert got["C1"]["credit_micros"] == 10_000_000 and got["C1"]["user_thresholds"] == {"*": [1_000_000, 2_000_000]}
        assert got["C2"]["period_kind"] == "weekly" and got["C2"]["soft_limit_pct"] == 80
        assert got["Y1"]["credit_micros"] == 7_500_000 and got["Y1"]["always_allowed"] == ["0800"]
        assert r.take(1, timeout_s=1.5) == []       # nothing from the refused file
    finally:
        r.close()


def test_account_load_without_a_worker_says_no_reply_and_exits_2(broker, capsys, tmp_path):
    """`account load` waits for the outcomes (issue 10 hole 9); no worker runs here."""
    f = tmp_path / "one.csv"
    f.write_text("account,credit\nNOREPLY-1,1.00\n")
    assert cli(broker, "account", "load", str(f), "--timeout", "2") == 2
    assert "no reply for 1 of 1 accounts within 2 s" in capsys.readouterr().err


def _producer(broker):
    from confluent_kafka import Producer

    return Producer(producer_config(broker))


def _state(account, seq, profile, rate, spend=0):
    return {"account": account, "period": "2026-11", "profile": profile, "spend_micros": spend,
            "credit_micros": 10_000_000, "soft_limit_micros": 8_000_000, "seq": seq, "updated_ms": 1_763_000_000_000,
            "max_rate_micros_per_min": rate, "allowed_destinations": ["112", "911", "999"]}


def _event(account, seq, old, new, rate, reason):
    return {"event_id": f"{account}:{seq}", "account": account, "seq": seq, "period": "2026-11",
            "old_profile": old, "new_profile": new, "spend_micros": 9_000_000, "credit_micros": 10_000_000,
            "soft_limit_micros": 8_000_000, "reason": reason, "cause_cdr_key": "k", "at_ms": seq,
            "cause_ingest_ms": None, "max_rate_micros_per_min": rate,
            "allowed_destinations": ["112", "911", "999"], "correction": False}


def _send(p, topic, name, recs):
    for rec in recs:
        p.produce(topic, key=rec["account"].encode(), value=codecs.encode(name, rec))
    assert p.flush(15) == 0


def test_account_show_reads_the_latest_state(broker, capsys):
    p = _producer(broker)
    _send(p, topics.STATE, codecs.STATE, [_state("SHOW1", 1, "low_credit", 400_000, 8_100_000),
                                          _state("SHOW1", 2, "blocked", -1, 10_000_000)])
    assert cli(broker, "account", "show", "SHOW1", "--json") == 0
    rec = json.loads(capsys.readouterr().out)
    assert (rec["seq"], rec["profile"], rec["spend_micros"]) == (2, "blocked", 10_000_000)
    assert cli(broker, "account", "show", "SHOW1") == 0
    out = capsys.readouterr().out
    assert "blocked" in out and "10.000000" in out
    assert cli(broker, "account", "show", "NOBODY", "--timeout", "3") == 2


class Lines:
    """Non-blocking line reader over a child's stdout, with deadlines."""

    def __init__(self, proc):
        self.proc, self.buf, self.lines = proc, b"", []

    def until(self, pred, timeout_s: float) -> dict | None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for i, line in enumerate(self.lines):
                if pred(line):
                    return line
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                chunk = os.read(self.proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                self.buf += chunk
                *done, self.buf = self.buf.split(b"\n")
                self.lines += [json.loads(d) for d in done if d.strip()]
        return next((line for line in self.lines if pred(line)), None)


def _watch(broker, *extra) -> subprocess.Popen:
    return subprocess.Popen([CDRFLOW, "barring", "watch", "--json",
                             "--bootstrap", broker["bootstrap.servers"], *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_barring_watch_bootstraps_then_follows_and_ignores_replays(broker):
    p = _producer(broker)
    _send(p, topics.STATE, codecs.STATE, [_state("W1", 1, "low_credit", 400_000), _state("W2", 0, "normal", 800_000)])
    proc = _watch(broker, "--max-seconds", "15", "--account", "W1", "--account", "W2")
    try:
        lines = Lines(proc)
        boot = lines.until(lambda line: line["type"] == "bootstrap", 12)
        assert boot is not None, proc.stderr.read1().decode() if proc.poll() is not None else "no bootstrap line"
        assert boot["profiles"] == {"W1": "low_credit", "W2": "normal"}
        time.sleep(0.5)
        _send(p, topics.BARRING, codecs.BARRING, [
            _event("W1", 1, "normal", "low_credit", 400_000, "soft_limit"),     # after its snapshot: still shown
            _event("W1", 2, "low_credit", "blocked", -1, "hard_limit"),
            _event("W1", 2, "low_credit", "blocked", -1, "hard_limit"),         # redelivered
            _event("W2", 1, "normal", "low_credit", 400_000, "soft_limit"),
            _event("OTHER", 1, "normal", "blocked", -1, "hard_limit"),          # not watched
        ])
        summary = lines.until(lambda line: line["type"] == "summary", 20)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    trans = [(t["account"], t["seq"], t["new_profile"]) for t in lines.lines if t["type"] == "transition"]
    # Issue 10 hole 6: a snapshot read before its event no longer hides the transition.
    assert trans == [("W1", 1, "low_credit"), ("W1", 2, "blocked"), ("W2", 1, "low_credit")]
    assert all(t["cause_cdr_key"] == "k" for t in lines.lines if t["type"] == "transition")
    assert summary["replays_ignored"] == 1 and summary["accounts"] == 2


def test_barring_watch_from_beginning_shows_history(broker):
    p = _producer(broker)
    _send(p, topics.BARRING, codecs.BARRING, [_event("H1", 1, "normal", "low_credit", 400_000, "soft_limit"),
                                              _event("H1", 1, "normal", "low_credit", 400_000, "soft_limit"),
                                              _event("H1", 2, "low_credit", "blocked", -1, "hard_limit")])
    proc = _watch(broker, "--max-seconds", "6", "--account", "H1", "--from-beginning")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()
    lines = [json.loads(x) for x in out.decode().splitlines() if x.strip()]
    trans = [(t["seq"], t["applied"]) for t in lines if t["type"] == "transition"]
    assert trans == [(1, True), (2, True)]          # the repeat of seq 1 is not shown twice
    assert lines[-1]["type"] == "summary"


def test_barring_watch_text_output_and_sigterm(broker):
    import signal

    proc = subprocess.Popen([CDRFLOW, "barring", "watch", "--from-beginning",
                             "--account", "H1", "--bootstrap", broker["bootstrap.servers"]],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "COLUMNS": "200"})
    time.sleep(5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert "H1 #2 low_credit -> blocked (hard_limit)" in text and "stopped:" in text
