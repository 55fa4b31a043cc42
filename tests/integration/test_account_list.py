"""`cdrflow account list` and `GET /accounts` (issue 10, "missing that operators expect") against a
real local stack: tansu + two Faust workers, so the HTTP answer must gather both workers' partitions."""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from streams.core.charge import utc_now_ms
from streams.core.periods import period_of
from streams.local.stack import LocalStack, wait_until
from streams.publisher import Publisher
from tests.support.pipeline import latest_states

pytestmark = pytest.mark.integration
NOW = utc_now_ms()
ACCOUNTS = [f"LIST-{i:02d}" for i in range(12)]        # 12 accounts: spread over both workers' partitions


def provision(account: str, credit: int) -> dict:
    return {"command_id": f"prov-{account}", "account": account, "action": "provision", "credit_micros": credit,
            "profile": None, "timezone": "UTC", "period_kind": "monthly", "soft_limit_pct": 80,
            "tariff_plan": "default", "always_allowed": [], "issued_ms": NOW}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    st = LocalStack(tmp_path_factory.mktemp("list"), workers=2, extra_env={"CDRFLOW_PERIOD_CHECK_S": "3600"})
    st.start(sink=False)
    try:
        st.wait_workers_ready(120)
        parts = st.wait_balanced(180)
        assert all(parts.values()), parts          # both workers own partitions: the fan-out is exercised
        pub = Publisher(st.client_conf)
        # Credit 10.00 each; LIST-00 forced blocked, LIST-01 forced low_credit; LIST-02 at 0 credit.
        pub.commands([provision(a, 0 if a == "LIST-02" else 10_000_000) for a in ACCOUNTS])
        pub.commands([{"command_id": "blk", "account": "LIST-00", "action": "set_profile", "profile": "blocked",
                       "issued_ms": NOW},
                      {"command_id": "low", "account": "LIST-01", "action": "set_profile", "profile": "low_credit",
                       "issued_ms": NOW}])
        pub.flush()

        def ready() -> bool:
            st_ = latest_states(st.client_conf)
            return (all(a in st_ for a in ACCOUNTS) and st_["LIST-00"]["profile"] == "blocked"
                    and st_["LIST-01"]["profile"] == "low_credit")
        wait_until(ready, 90, 0.5, what="12 accounts provisioned", check=st.check_alive)
        yield st
    finally:
        st.stop()


def _get(port: int, query: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts{query}", timeout=30) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_account_list_filters_and_json(env, capsys):
    from streams.cli.main import main

    boot = ["--bootstrap", env.client_conf["bootstrap.servers"]]
    month = period_of(NOW, "UTC", "monthly")
    assert main(["account", "list", "--json", *boot]) == 0
    rows = json.loads(capsys.readouterr().out)
    mine = [r for r in rows if r["account"].startswith("LIST-")]
    assert [r["account"] for r in mine] == ACCOUNTS
    assert {r["credit"] for r in mine if r["account"] != "LIST-02"} == {"10.000000"}
    assert main(["account", "list", "--profile", "blocked", "--json", *boot]) == 0
    # LIST-02: spend 0 has reached a credit of 0, so it is blocked too.
    assert [r["account"] for r in json.loads(capsys.readouterr().out)] == ["LIST-00", "LIST-02"]
    # Over 1 %: spend 0 of 10.00 is not; spend 0 of credit 0 is (0 * 100 >= 1 * 0).
    assert main(["account", "list", "--over-pct", "1", "--json", *boot]) == 0
    assert [r["account"] for r in json.loads(capsys.readouterr().out)] == ["LIST-02"]
    assert main(["account", "list", "--period", month, "--profile", "low_credit", *boot]) == 0
    out = capsys.readouterr().out
    assert "LIST-01" in out and "LIST-00" not in out and "1 account(s)" in out
    assert main(["account", "list", "--period", "1999-01", "--json", *boot]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["account", "list", "--over-pct", "eighty", *boot]) == 2
    assert "whole percentage" in capsys.readouterr().err


def test_http_accounts_gathers_every_worker(env):
    month = period_of(NOW, "UTC", "monthly")
    for name, port in env.worker_ports.items():          # the same answer from either worker
        status, body = _get(port, "")
        assert status == 200 and body["workers"] == 2, (name, body)
        assert [r["account"] for r in body["accounts"] if r["account"].startswith("LIST-")] == ACCOUNTS
        status, body = _get(port, f"?profile=blocked&period={month}&over_pct=0")
        assert status == 200 and [r["account"] for r in body["accounts"]] == ["LIST-00", "LIST-02"]
        assert body["accounts"][0]["spend"] == "0.000000" and body["accounts"][0]["used_pct"] == "0.0"
    port = next(iter(env.worker_ports.values()))
    status, body = _get(port, "?over_pct=1")
    assert status == 200 and [r["account"] for r in body["accounts"]] == ["LIST-02"]
    status, body = _get(port, "?profile=vip")
    assert status == 400 and "profile must be one of" in body["error"]


def test_account_load_waits_for_every_reply(env, capsys, tmp_path):
    """Issue 10 hole 9 for bulk loads: `account load` printed "sent" without any outcome."""
    from streams.cli.main import main

    boot = ["--bootstrap", env.client_conf["bootstrap.servers"]]
    f = tmp_path / "load.csv"
    f.write_text("account,credit\nLOAD-1,1.00\nLOAD-2,2.50\nLOAD-3,3\nLOAD-4,4\nLOAD-5,5\n")
    assert main(["account", "load", str(f), "--json", *boot]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["sent"], out["applied"], out["refused"], out["no_reply"]) == (5, 5, [], [])
    # The replies were read, so the state is there (no waiting needed for the answer itself).
    states = latest_states(env.client_conf)
    assert {a: states[a]["credit_micros"] for a in ("LOAD-1", "LOAD-2", "LOAD-5")} == {
        "LOAD-1": 1_000_000, "LOAD-2": 2_500_000, "LOAD-5": 5_000_000}


def test_currency_is_stored_on_the_account_and_a_mismatch_is_refused(env, capsys):
    """Issue 10 (currency): the default tariff prices in EUR (streams/data/tariff_default.yaml)."""
    from streams.cli.main import main

    boot = ["--bootstrap", env.client_conf["bootstrap.servers"]]
    assert main(["account", "create", "CUR-USD", "--credit", "1", "--currency", "USD", *boot]) == 1
    assert "refused: provision for CUR-USD: invalid_command (plan 'default' prices in EUR, the account is " \
           "billed in USD)" in capsys.readouterr().err
    assert main(["account", "create", "CUR-EUR", "--credit", "1", *boot]) == 0
    assert "credit 1.000000 EUR" in capsys.readouterr().out
    assert main(["account", "list", "--json", *boot]) == 0
    rows = {r["account"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["CUR-EUR"]["currency"] == "EUR" and "CUR-USD" not in rows
