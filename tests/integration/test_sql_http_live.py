"""Analysts query a live chdb store through the running sink's ClickHouse HTTP interface:
`cdrflow clickhouse sql`, `cdrflow report`, a real clickhouse-connect client, and the analyst
identity that sees masked views only. The sink runs alone (no broker needed to serve SQL)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ANALYST_PW = "analyst-pw-123"
# 3 rated CDRs of acc1 (conftest rated(i, account="acc1")): cost 1_000*i + 7 → 1007 + 2007 + 3007 = 6021 micros.
SEED = textwrap.dedent("""
    import sys
    from sinks.clickhouse import analyst
    from sinks.clickhouse.backend import ChdbBackend
    from sinks.clickhouse.columns import to_columns
    from tests.support.conftest_clickhouse import rated
    b = ChdbBackend(sys.argv[1])
    analyst.migrate(b)
    rows = [rated(i, account="acc1") for i in (1, 2, 3)]
    if sys.argv[2:] == ["acc2"]:   # acc2: one CDR of service user u1, one of u2
        rows += [{**rated(i, account="acc2"), "service_user": su} for i, su in ((4, "u1"), (5, "u2"))]
    names, cols = to_columns("cdr_rated", rows)
    b.insert_columns("default.cdr_rated", names, cols)
    b.close()
""")


@pytest.fixture
def live_sink(tmp_path):
    yield from _live_sink(tmp_path)


@pytest.fixture
def live_sink_two_accounts(tmp_path):
    yield from _live_sink(tmp_path, "acc2")


def _live_sink(tmp_path, *seed_args):
    path = tmp_path / "chdb"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "CDRFLOW_ANALYST_PASSWORD": ANALYST_PW,
           "CDRFLOW_CLICKHOUSE": str(path), "CDRFLOW_PORTAL_USERS_FILE": str(tmp_path / "users.json")}
    subprocess.run([sys.executable, "-c", SEED, str(path), *seed_args], check=True, env=env, cwd=root, timeout=60)
    proc = subprocess.Popen([sys.executable, "-m", "sinks", "--bootstrap", "127.0.0.1:1", "--clickhouse",
                             f"chdb://{path}"], env=env, cwd=root, stdout=subprocess.DEVNULL,
                            stderr=open(tmp_path / "sink.log", "wb"))
    disc = Path(str(path) + ".sql-http.json")
    deadline = time.monotonic() + 60
    while not disc.exists():
        assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "sink.log").read_text()[-2000:]
        time.sleep(0.1)
    try:
        yield env, json.loads(disc.read_text()), disc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    assert not disc.exists()   # a stopped sink takes its announcement away


def cli(env, *args):
    # The installed console script, as a user runs it.
    return subprocess.run([str(Path(sys.executable).parent / "cdrflow"), *args], env=env, capture_output=True,
                          text=True, timeout=60)


def assert_refused(client, queries) -> None:
    """Each query is refused by the server: ACCESS_DENIED (497) or SYNTAX_ERROR (62)."""
    for sql in queries:
        with pytest.raises(Exception) as exc:
            client.query(sql)
        assert "497" in str(exc.value) or "62" in str(exc.value), sql


def test_cli_report_and_clickhouse_connect_against_a_live_sink(live_sink):
    env, info, disc = live_sink
    assert oct(disc.stat().st_mode & 0o777) == "0o600"
    # The CLI would fail with "only one process may open a chdb data path" without the interface.
    r = cli(env, "clickhouse", "sql", "SELECT count(), sum(cost_micros) FROM cdr_rated FINAL")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3\t6021"
    r = cli(env, "report", "summary", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [(a["account"], str(a["total"])) for a in doc["accounts"]] == [("acc1", "0.006021")]
    r = cli(env, "clickhouse", "sql", "SELECT * FROM no_such_table")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "no_such_table" in r.stderr.splitlines()[-1]

    import clickhouse_connect

    host, port = info["url"].split("//")[1].rstrip("/").split(":")
    client = clickhouse_connect.get_client(host=host, port=int(port), username="default",
                                           password=info["password"])
    res = client.query("SELECT account, toInt64(sum(cost_micros)) AS m FROM cdr_rated FINAL GROUP BY account")
    assert res.result_rows == [("acc1", 6021)]
    client.close()

    # The analyst: masked view yes, raw table no (server-side, through the same interface).
    analyst = clickhouse_connect.get_client(host=host, port=int(port), username="analyst", password=ANALYST_PW)
    rows = analyst.query("SELECT called_e164_masked FROM cdr_masked").result_rows
    assert len(rows) == 3 and all("+33142685300" not in r[0] for r in rows)
    assert_refused(analyst, (
        "SELECT called_e164 FROM default.cdr_rated",
        "SELECT * FROM default_analyst.cdr_masked WHERE 1 IN (SELECT 1 FROM default.cdr_rated)",
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        "SELECT 1; DROP TABLE default.cdr_rated"))
    with pytest.raises(Exception):
        clickhouse_connect.get_client(host=host, port=int(port), username="analyst", password="wrong")
    # The raw table is intact after the refused DROP.
    assert cli(env, "clickhouse", "sql", "SELECT count() FROM cdr_rated FINAL").stdout.strip() == "3"


def test_a_portal_user_reads_only_its_granted_accounts_and_cannot_widen_that(live_sink_two_accounts, tmp_path):
    """Seed 004: a customer user sees only the accounts granted to them, at the SQL interface too."""
    import clickhouse_connect

    from streams.portal.users import UserStore

    env, info, _ = live_sink_two_accounts
    store = UserStore(tmp_path / "users.json")
    store.add("alice", "alice-pw-1", hash_n=2 ** 10)
    store.grant("alice", "acc1", ["view"])
    store.add("bob", "bob-pw-1", hash_n=2 ** 10)
    store.grant("bob", "acc2", ["view"], service_users=["u1"])   # a department head: u1 only
    host, port = info["url"].split("//")[1].rstrip("/").split(":")

    def client(user, pw):
        return clickhouse_connect.get_client(host=host, port=int(port), username=user, password=pw)

    alice = client("alice", "alice-pw-1")
    # acc1: 1007 + 2007 + 3007 = 6021 (acc2's 4007 + 5007 must not show).
    q = "SELECT account, count(), toInt64(sum(cost_micros)) FROM cdr_masked GROUP BY account"
    assert alice.query(q).result_rows == [("acc1", 3, 6021)]
    assert alice.query("SELECT account FROM daily_account GROUP BY account").result_rows == [("acc1",)]
    bob = client("bob", "bob-pw-1")
    assert bob.query("SELECT account, service_user, toInt64(cost_micros) FROM cdr_masked").result_rows \
        == [("acc2", "u1", 4007)]
    # Account-wide figures need a whole-account grant: none for bob.
    assert bob.query("SELECT count() FROM period_account").result_rows == [(0,)]
    assert_refused(alice, (
        "SELECT count() FROM default_analyst.cdr_masked",
        "SELECT count() FROM default.cdr_rated",
        "SELECT count() FROM cdr_masked WHERE 1 IN (SELECT 1 FROM default_analyst.cdr_masked)",
        "SELECT * FROM merge('default_analyst', '.*')",
        "SELECT 1; CREATE OR REPLACE VIEW cdr_masked AS SELECT * FROM default_analyst.cdr_masked"))
    with pytest.raises(Exception):   # its own views only, whatever database it asks for
        alice.query("SELECT count() FROM cdr_masked", settings={"database": "default_analyst"})
    # A revocation holds on the next request; a wrong password never gets in.
    store.revoke("alice", "acc1")
    assert alice.query("SELECT count() FROM cdr_masked").result_rows == [(0,)]
    with pytest.raises(Exception):
        client("alice", "wrong")
    alice.close()
    bob.close()
