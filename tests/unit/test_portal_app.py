"""The self-care portal over a chdb backend with a few known rows: pages, grants (403), CSRF,
session expiry, itemisation in the account's time zone, CSV and chart data.

Known rows (cost in micros; Europe/Amsterdam is UTC+1 in Oct 25 – Mar 29):

  ACC1 (Europe/Amsterdam, monthly, credit 20.00, thresholds * = 3.00 / 4.50)
    k1 2026-11-01 10:00Z user 101  1_500_000   local 11-01 11:00
    k2 2026-11-03 09:00Z user 101  2_250_000   local 11-03 10:00
    k3 2026-11-05 23:30Z user 102    750_000   local 11-06 00:30  (another day than in UTC)
    k4 2026-11-09 08:00Z user 102  4_000_000   local 11-09 09:00
    k5 2026-10-31 22:30Z user 101  1_000_000   local 10-31 23:30  (October's bill)
  ACC2 (UTC): k6 2026-11-04 12:00Z user 201 9_000_000

  ACC1 November: 1.50 + 2.25 + 0.75 + 4.00 = 8.50; user 101: 3.75 (first threshold reached),
  user 102: 4.75 (second reached). Now = 2026-11-10 12:00Z.
"""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from starlette.testclient import TestClient

from sinks.clickhouse import ddl
from sinks.clickhouse.columns import to_columns
from streams.portal.app import PortalConfig, create_app
from streams.portal.directory import Directory
from streams.portal.sessions import Sessions
from streams.portal.users import UserStore
from tests.support.conftest_clickhouse import barring, rated, state

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=timezone.utc)
PW = "correct horse battery staple"

ROWS = [  # key, account, user, start (UTC), cost micros, period
    ("k1", "ACC1", "101", datetime(2026, 11, 1, 10, 0), 1_500_000, "2026-11"),
    ("k2", "ACC1", "101", datetime(2026, 11, 3, 9, 0), 2_250_000, "2026-11"),
    ("k3", "ACC1", "102", datetime(2026, 11, 5, 23, 30), 750_000, "2026-11"),
    ("k4", "ACC1", "102", datetime(2026, 11, 9, 8, 0), 4_000_000, "2026-11"),
    ("k5", "ACC1", "101", datetime(2026, 10, 31, 22, 30), 1_000_000, "2026-10"),
    ("k6", "ACC2", "201", datetime(2026, 11, 4, 12, 0), 9_000_000, "2026-11"),
]


def land(backend, table, records):
    names, cols = to_columns(table, records)
    backend.insert_columns(f"{backend.database}.{table}", names, cols,
                           settings=ddl.insert_settings(backend.version()))


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module", params=["chdb", "native"])
def backend(request, tmp_path_factory):
    """Every portal test on chdb 26.x and on the Debian clickhouse-server 18.16 (native protocol)."""
    from sinks.clickhouse.backend import ChdbBackend, NativeBackend
    from tests.support.conftest_clickhouse import _fresh_database_url

    if request.param == "chdb":
        b = ChdbBackend(str(tmp_path_factory.mktemp("portal") / "chdb"))
    else:
        b = NativeBackend(_fresh_database_url(request.getfixturevalue("clickhouse_url")))
    ddl.migrate(b)
    recs = []
    for i, (key, acc, user, start, cost, period) in enumerate(ROWS):
        r = rated(i, account=acc, cost_micros=cost)
        start = start.replace(tzinfo=timezone.utc)
        r.update(cdr_key=key, service_user=user, start_ms=start, end_ms=start + timedelta(seconds=61), period=period,
                 called_e164=f"+3314268530{i}")
        recs.append(r)
    land(b, "cdr_rated", recs)
    s1 = state(5, "ACC1")
    s1.update(spend_micros=8_500_000, credit_micros=20_000_000, soft_limit_micros=16_000_000)
    s_old = state(4, "ACC1")   # an older snapshot: the latest seq must win
    s_old.update(spend_micros=1, credit_micros=2)
    s2 = state(2, "ACC2")
    s2.update(spend_micros=9_000_000, credit_micros=10_000_000, soft_limit_micros=8_000_000, profile="low_credit")
    land(b, "account_state_history", [s_old, s1, s2])
    land(b, "barring_events", [barring(3, "ACC2")])
    yield b
    b.close()


@pytest.fixture
def env(backend, tmp_path):
    store = UserStore(tmp_path / "users.json")
    for name in ("alice", "bob", "carol"):
        store.add(name, PW, hash_n=2**12)   # a cheaper cost in tests; the format and KDF are the same
    store.grant("alice", "ACC1", ["manage", "finance"])
    store.grant("bob", "ACC1", ["finance"], ["101"])
    store.grant("carol", "ACC2", [])
    directory = Directory()
    directory.apply({"account": "ACC1", "action": "provision", "timezone": "Europe/Amsterdam",
                     "period_kind": "monthly", "user_thresholds": {"*": [3_000_000, 4_500_000]}})
    directory.apply({"account": "ACC2", "action": "provision", "timezone": "UTC", "period_kind": "monthly"})
    clock = Clock(NOW.timestamp())
    sent: list[dict] = []
    cfg = PortalConfig(currency="EUR", clock=clock, send_command=sent.append,
                       sessions=Sessions(idle_s=900, max_s=3600, clock=clock))
    app = create_app(backend, store, directory, cfg)
    return {"app": app, "store": store, "clock": clock, "sent": sent, "directory": directory}


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def login(env, name: str) -> TestClient:
    c = TestClient(env["app"], follow_redirects=False)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"username": name, "password": PW, "csrf": token})
    assert r.status_code == 303, r.text
    return c


def test_accounts_page_shows_granted_state_and_forecast(env):
    c = login(env, "alice")
    html = c.get("/accounts").text
    assert "ACC1" in html and "ACC2" not in html
    # balance 20.00 - 8.50 = 11.50; the older snapshot (spend 0.000001) must not show
    assert ">8.50<" in html and ">11.50<" in html and ">20.00<" in html
    # forecast: spend in [11-03 12:00Z, 11-10 12:00Z) = k3 + k4 = 4_750_000 over 604_800 s;
    # time left = ceil(11_500_000 * 604_800 / 4_750_000) s, shown in Amsterdam time
    secs = -(-11_500_000 * 604_800 // 4_750_000)
    at = (NOW + timedelta(seconds=secs)).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Amsterdam"))
    assert at.strftime("%Y-%m-%d %H:%M CET") in html
    assert "0.678571/day" in html   # 4_750_000 * 86_400 // 604_800 = 678_571


def test_url_edited_to_another_account_is_refused(env):
    c = login(env, "alice")
    for path in ("/accounts/ACC2", "/accounts/ACC2/users", "/accounts/ACC2/items", "/accounts/ACC2/items.csv",
                 "/charts?account=ACC2", "/accounts/NOPE/items.csv?from=2026-11-01&to=2026-11-30"):
        r = c.get(path)
        assert r.status_code == 403, path
        assert "9.00" not in r.text and "201" not in r.text
    assert c.get("/accounts/ACC1").status_code == 200


def test_service_user_grant_sees_only_its_user(env):
    c = login(env, "bob")
    assert c.get("/accounts/ACC1").status_code == 403          # account-wide data needs a whole grant
    assert c.get("/accounts/ACC1/items?user=102").status_code == 403
    assert c.get("/accounts/ACC1/items.csv?user=102").status_code == 403
    html = c.get("/accounts/ACC1/items").text                 # this month so far: only 101's calls
    assert html.count('class="item"') == 2 and ">3.75<" in html   # 1.50 + 2.25
    users = c.get("/accounts/ACC1/users").text
    assert "102" not in users.replace("2026-11", "") and "101" in users


def test_view_only_grant_has_no_csv(env):
    c = login(env, "carol")
    assert c.get("/accounts/ACC2/items").status_code == 200
    assert c.get("/accounts/ACC2/items.csv").status_code == 403
    assert c.get("/charts").status_code == 403


def test_itemisation_uses_the_account_time_zone(env):
    c = login(env, "alice")
    html = c.get("/accounts/ACC1/items?from=2026-11-06&to=2026-11-06").text
    # k3 started 2026-11-05 23:30Z = 2026-11-06 00:30 in Amsterdam
    assert html.count('class="item"') == 1 and "2026-11-06 00:30:00" in html and ">0.75<" in html
    assert c.get("/accounts/ACC1/items?from=2026-11-05&to=2026-11-05").text.count('class="item"') == 0


def test_csv_export_is_exact(env):
    c = login(env, "alice")
    r = c.get("/accounts/ACC1/items.csv?from=2026-10-01&to=2026-11-30")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [x["cdr_key"] for x in rows] == ["k5", "k1", "k2", "k3", "k4"]
    assert sum(Decimal(x["cost"]) for x in rows) == Decimal("9.500000")   # 8.50 + October's 1.00
    assert rows[0]["start_local"] == "2026-10-31T23:30:00+01:00" and rows[0]["currency"] == "EUR"


def test_service_users_thresholds_and_search(env):
    c = login(env, "alice")
    html = c.get("/accounts/ACC1/users").text
    assert 'class="level1"' in html and 'class="level2"' in html   # 101: 3.75 ≥ 3.00; 102: 4.75 ≥ 4.50
    second = c.get("/accounts/ACC1/users?level=2").text
    assert ">4.75<" in second and ">3.75<" not in second
    assert ">3.75<" in c.get("/accounts/ACC1/users?q=01").text


def test_post_without_csrf_is_refused_and_with_it_sends_a_command(env):
    c = login(env, "alice")
    r = c.post("/accounts/ACC1/users/thresholds", data={"user": ["101", "102"], "first": "5", "second": "9"})
    assert r.status_code == 403 and env["sent"] == []
    token = csrf_of(c.get("/accounts/ACC1/users").text)
    r = c.post("/accounts/ACC1/users/thresholds",
               data={"user": ["101", "102"], "first": "5", "second": "9", "csrf": token})
    assert r.status_code == 303
    (cmd,) = env["sent"]
    assert cmd["action"] == "set_user_thresholds" and cmd["account"] == "ACC1"
    assert cmd["user_thresholds"] == {"101": [5_000_000, 9_000_000], "102": [5_000_000, 9_000_000]}
    html = c.get("/accounts/ACC1/users").text
    assert cmd["command_id"] in html and 'class="level1"' not in html   # 3.75 and 4.75 < 5.00 now


def test_manage_is_needed_to_change(env):
    c = login(env, "bob")
    token = csrf_of(c.get("/accounts/ACC1/users").text)
    r = c.post("/accounts/ACC1/users/thresholds", data={"user": ["101"], "first": "1", "second": "2", "csrf": token})
    assert r.status_code == 403 and env["sent"] == []
    c = login(env, "alice")
    token = csrf_of(c.get("/accounts/ACC1").text)
    assert c.post("/accounts/ACC2/credit", data={"credit": "99", "csrf": token}).status_code == 403
    assert c.post("/accounts/ACC1/credit", data={"credit": "25.5", "csrf": token}).status_code == 303
    assert env["sent"][-1]["credit_micros"] == 25_500_000 and env["sent"][-1]["action"] == "set_credit"


def test_login_needs_csrf_and_right_password(env):
    c = TestClient(env["app"], follow_redirects=False)
    c.get("/login")
    assert c.post("/login", data={"username": "alice", "password": PW}).status_code == 403
    token = csrf_of(c.get("/login").text)
    assert c.post("/login", data={"username": "alice", "password": "wrong", "csrf": token}).status_code == 401
    assert c.get("/accounts").status_code == 303


def test_sessions_expire_idle_and_absolute(env):
    c = login(env, "alice")
    env["clock"].t += 899
    assert c.get("/accounts").status_code == 200
    env["clock"].t += 901                                    # idle longer than 900 s
    r = c.get("/accounts")
    assert r.status_code == 303 and r.headers["location"] == "/login"
    c = login(env, "alice")
    for _ in range(5):                                       # active, but past the 3600 s maximum
        env["clock"].t += 800
        last = c.get("/accounts").status_code
    assert last == 303


def test_revoked_grant_applies_on_the_next_request(env):
    c = login(env, "alice")
    assert c.get("/accounts/ACC1/items").status_code == 200
    env["store"].revoke("alice", "ACC1")
    assert c.get("/accounts/ACC1/items").status_code == 403


def test_chart_data_matches_independent_sums(env):
    c = login(env, "alice")
    html = c.get("/charts?account=ACC1&from=2026-11-01&to=2026-11-10").text
    data = json.loads(re.search(r'<script type="application/json" id="chart-data">(.*?)</script>', html, re.S).group(1))
    share = dict(zip(data["share"]["labels"], map(Decimal, data["share"]["values"])))
    assert share == {"101": Decimal("3.75"), "102": Decimal("4.75")}
    daily = data["daily"]
    assert len(daily["labels"]) == 10 and daily["labels"][0] == "2026-11-01"   # every day, also empty ones
    assert Decimal(daily["series"]["102"][5]) == Decimal("0.75")               # k3 on local 11-06
    assert Decimal(daily["series"]["101"][1]) == 0                             # 11-02: no calls, still there
    bills = data["bills"]
    assert bills["labels"] == ["2026-10", "2026-11"]
    assert [Decimal(x) for x in bills["series"]["ACC1"]] == [Decimal("1"), Decimal("8.5")]
    assert '<canvas id="chart-share">' in html and "/static/chart.umd.min.js" in html


def test_followed_change_is_pending_until_the_worker_replies(env):
    """With a follower, a threshold change shows as pending and the old thresholds stay until the
    worker's reply (fed here as the follower would) says it was applied."""
    env["app"].state.cfg.followed = True
    d = env["directory"]
    c = login(env, "alice")
    token = csrf_of(c.get("/accounts/ACC1/users").text)
    c.post("/accounts/ACC1/users/thresholds", data={"user": ["101"], "first": "5", "second": "9", "csrf": token})
    (cmd,) = env["sent"]
    html = c.get("/accounts/ACC1/users").text
    assert re.search(rf"<td>{cmd['command_id']}</td><td>set_user_thresholds</td>\s*<td>pending", html)
    assert 'class="level1"' in html                   # 101 still judged against 3.00 / 4.50
    d.on_command(cmd)
    d.on_reply({**{k: cmd[k] for k in ("command_id", "account", "action")}, "outcome": "applied",
                "reason": None, "detail": None})
    html = c.get("/accounts/ACC1/users").text
    assert re.search(rf"<td>{cmd['command_id']}</td><td>set_user_thresholds</td>\s*<td>applied", html)
    assert 'class="level1"' not in html               # 3.75 < 5.00 now
