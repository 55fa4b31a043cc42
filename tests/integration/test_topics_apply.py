"""`cdrflow topics apply|verify` against the real tansu broker, and a worker that refuses to
start on topics that do not match streams/topics.py (what a real Kafka's auto-create gives)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from streams import topics

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def bare_tansu(tmp_path: Path):
    """A broker with no topics at all: what a fresh production cluster looks like."""
    from streams.local.broker import start_tansu

    child, bootstrap = start_tansu(tmp_path / "logs")
    try:
        yield bootstrap
    finally:
        child.stop()


def _cli(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    # The installed console script, as operators run it.
    return subprocess.run([str(Path(sys.executable).parent / "cdrflow"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})


def _state(bootstrap: str) -> dict[str, tuple[int, str]]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    meta = admin.list_topics(timeout=10).topics
    names = [n for n in meta if not n.startswith("__")]
    cfgs = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names])
    out = {}
    for res, fut in cfgs.items():
        policy = fut.result().get("cleanup.policy")
        out[res.name] = (len(meta[res.name].partitions), policy.value if policy else "delete")
    return out


def test_apply_creates_every_topic_with_its_partitions_and_compaction_then_is_a_no_op(bare_tansu):
    r = _cli("topics", "apply", "--bootstrap", bare_tansu, "--partitions", "6", "--raw-partitions", "3", "--json")
    assert r.returncode == 0, r.stderr
    first = json.loads(r.stdout.splitlines()[-1])
    # Written out by hand, not computed by streams/topics.py: the topics this issue is about.
    expected = {
        "cdr.raw": (3, "delete"), "cdr.normalized": (6, "delete"), "account.control": (6, "delete"),
        "cdr.rated": (6, "delete"), "cdr.rejected": (6, "delete"), "account.barring": (6, "delete"),
        "account.state": (6, "compact"), "tariff.plans": (1, "compact"),
        "cdrflow-accounts-changelog": (6, "compact"),
    }
    state = _state(bare_tansu)
    assert {k: state[k] for k in expected} == expected
    # Every other planned topic exists as planned, and nothing else was created.
    plans = {p.name: (p.partitions, p.config["cleanup.policy"]) for p in topics.plan(6, 3)}
    assert sorted(first["created"]) == sorted(plans) and first["problems"] == []
    assert state == plans

    again = _cli("topics", "apply", "--bootstrap", bare_tansu, "--partitions", "6", "--raw-partitions", "3", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout.splitlines()[-1]) == {"created": [], "altered": [], "problems": []}
    ok = _cli("topics", "verify", "--bootstrap", bare_tansu, "--partitions", "6", "--raw-partitions", "3")
    assert ok.returncode == 0 and f"{len(plans)} topics match" in ok.stdout


def _auto_created(bootstrap: str) -> None:
    """What a real Kafka's auto.create.topics.enable leaves: one partition, no compaction."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for fut in admin.create_topics([NewTopic(topics.NORMALIZED, 1, 1), NewTopic(topics.STATE, 8, 1)]).values():
        fut.result()


def test_verify_and_apply_report_a_wrong_partition_count_and_fix_compaction(bare_tansu):
    _auto_created(bare_tansu)
    v = _cli("topics", "verify", "--bootstrap", bare_tansu)
    assert v.returncode == 2
    err = v.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "cdr.normalized: 1 partitions, expected 8" in err
    assert "account.state: cleanup.policy=delete, expected compact" in err
    assert "cdr.raw: missing" in err
    assert _state(bare_tansu)[topics.STATE] == (8, "delete")          # verify changes nothing

    a = _cli("topics", "apply", "--bootstrap", bare_tansu)
    # Compaction is corrected in place; a partition count is never changed (accounts would move).
    assert a.returncode == 2
    assert "cdr.normalized: 1 partitions, expected 8" in a.stderr and "account.state" not in a.stderr
    state = _state(bare_tansu)
    assert state[topics.STATE] == (8, "compact")
    assert state[topics.NORMALIZED] == (1, "delete")
    assert state[topics.RAW] == (4, "delete")


def test_worker_refuses_to_start_on_mismatched_topics(bare_tansu, tmp_path):
    _auto_created(bare_tansu)
    r = subprocess.run([sys.executable, "-m", "streams.worker"], cwd=ROOT, capture_output=True, text=True,
                       timeout=90, env={**os.environ, "CDRFLOW_KAFKA_BOOTSTRAP": bare_tansu,
                                        "CDRFLOW_DATA_DIR": str(tmp_path / "data"),
                                        "CDRFLOW_WEB_PORT": "0"})
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("cdrflow worker: topics do not match streams/topics.py (run `cdrflow topics apply`)")
    assert "cdr.normalized: 1 partitions, expected 8" in lines[0]
