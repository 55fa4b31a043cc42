"""The portal on the real local stack: served by the sink process (it holds the chdb path), fed by
real workers, with time zones and thresholds followed from account.control / account.replies.

* lands CDRs and reads each account's itemisation total from the portal page; the expected
  totals are rated independently with the pure core (tests/support/pipeline.expected_spend);
* an account provisioned with a time zone and thresholds from outside the portal (the same
  ControlCommand `cdrflow account create` sends), and thresholds changed with the real
  `cdrflow account set-user-thresholds` CLI, show in the portal;
* a threshold change made in the portal reaches the worker: its reply ("applied") is what the
  page shows, and the new thresholds appear only after it.

Bounded: at most 300 CDRs, every wait has a timeout; run it under `flock /tmp/heavy.lock`.
"""
from __future__ import annotations

import re
import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from streams.core.charge import utc_now_ms
from streams.core.money import parse_money
from streams.core.periods import zone
from streams.local.procs import free_port
from streams.local.stack import LocalStack, wait_until
from streams.portal.users import UserStore
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts
from tests.support.pipeline import expected_spend

pytestmark = pytest.mark.integration
CDRFLOW = str(Path(sys.executable).parent / "cdrflow")
PW = "portal stack test password"


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def login(base: str, name: str) -> httpx.Client:
    c = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    token = csrf_of(c.get("/login").text)
    r = c.post("/login", data={"username": name, "password": PW, "csrf": token})
    assert r.status_code == 303, r.text
    return c


def items_total(c: httpx.Client, account: str, tz: str) -> Decimal:
    today = datetime.now(zone(tz)).date()
    html = c.get(f"/accounts/{account}/items",
                 params={"from": (today - timedelta(days=2)).isoformat(), "to": today.isoformat()}).text
    return Decimal(re.search(r'id="items-total">([0-9.]+)<', html).group(1))


def thresholds_row(html: str, user: str) -> tuple[str, str] | None:
    # cells after the name: calls, spend, 1st threshold, 2nd threshold
    m = re.search(rf'value="{re.escape(user)}"></td>\s*<td>{re.escape(user)}</td>'
                  r'<td class="num">[^<]*</td><td class="num">[^<]*</td>\s*'
                  r'<td class="num">([^<]*)</td><td class="num">([^<]*)</td>', html, re.S)
    return (m.group(1), m.group(2)) if m else None


def test_portal_in_the_sink_shows_landed_spend_and_followed_thresholds(tmp_path):
    users = tmp_path / "users.json"
    accounts = make_accounts(3, seed=21, heavy_share=0)
    for a in accounts:
        a.credit_micros = parse_money("1000")     # never barred: every CDR is rated
    accounts[0].timezone = "Asia/Tokyo"
    names = [a.account for a in accounts]
    store = UserStore(users)
    store.add("alice", PW, hash_n=2**12)
    for acc in names[:2]:
        store.grant("alice", acc, ["manage", "finance"])

    port = free_port()
    stack = LocalStack(tmp_path / "stack", workers=1, portal_port=port,
                       extra_env={"CDRFLOW_PORTAL_USERS_FILE": str(users)})
    with stack:
        stack.wait_workers_ready(120)
        stack.wait_balanced(180)
        base = f"http://127.0.0.1:{port}"
        pub = Publisher(stack.client_conf)
        now = utc_now_ms()
        stack.provision(pub, accounts, now)
        records = CdrGenerator(accounts, now, seed=5, window_s=3600).take(300)
        pub.cdrs(records, "batch", 100)
        pub.flush()
        pub.close()
        wait_until(lambda: stack.sink_status()["landed"].get("cdr_rated", 0) >= len(records), 180,
                   what="300 CDRs to land rated", check=stack.check_alive)

        cfg = {a.account: {"tariff_plan": "default", "timezone": a.timezone, "period_kind": a.period_kind}
               for a in accounts}
        want: dict[str, int] = {}
        for (acc, _period), micros in expected_spend(records, cfg, now).items():
            want[acc] = want.get(acc, 0) + micros
        c = login(base, "alice")

        # Landed spend, read by the sink's own portal over the sink's chdb.
        for a in accounts[:2]:
            assert items_total(c, a.account, a.timezone) * 1_000_000 == want[a.account], a.account
        assert c.get(f"/accounts/{names[2]}").status_code == 403

        # The time zone came from account.control (the follower), not from any file given to the portal.
        wait_until(lambda: "Asia/Tokyo" in c.get(f"/accounts/{names[0]}").text, 60,
                   what="the provisioned time zone to be followed", check=stack.check_alive)

        # Thresholds set with the real CLI, outside the portal.
        subprocess.run([CDRFLOW, "account", "set-user-thresholds", names[0], "ext100=2.5,7",
                        "--bootstrap", stack.bootstrap, "--timeout", "60"], check=True, timeout=90,
                       capture_output=True)
        wait_until(lambda: thresholds_row(c.get(f"/accounts/{names[0]}/users").text, "ext100") == ("2.50", "7.00"),
                   60, what="CLI thresholds to show in the portal", check=stack.check_alive)

        # A change made in the portal: pending until the worker's reply, then applied and shown.
        html = c.get(f"/accounts/{names[0]}/users").text
        r = c.post(f"/accounts/{names[0]}/users/thresholds",
                   data={"user": ["ext100"], "first": "3", "second": "8.25", "csrf": csrf_of(html)})
        assert r.status_code == 303
        cid = re.search(r"as command ([0-9a-f-]{8,})", c.get(f"/accounts/{names[0]}/users").text).group(1)

        def applied() -> bool:
            page = c.get(f"/accounts/{names[0]}/users").text
            row = re.search(rf"<td>{cid}</td><td>set_user_thresholds</td>\s*<td>([a-z]+)", page)
            return bool(row) and row.group(1) == "applied" and thresholds_row(page, "ext100") == ("3.00", "8.25")
        wait_until(applied, 60, what="the portal's threshold change to be applied by the worker",
                   check=stack.check_alive)

        # Landing went on while the portal was used: the status still answers and nothing was dropped.
        assert stack.sink_status()["landed"]["cdr_rated"] == len(records)
        c.close()
