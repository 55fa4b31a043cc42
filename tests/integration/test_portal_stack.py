"""The portal on the real local stack, driven in a real browser: served by the sink process (it holds
the chdb path), fed by a real Faust worker, with time zones and thresholds followed from
account.control / account.replies; Debian chromium + chromedriver via Selenium.

One stack run covers (seed 004, issue 14 "Done when"):
* login; the accounts list holds exactly the granted accounts;
* a URL edited to an ungranted account: 403 for its page, service users, itemisation, charts and
  CSV (the CSV fetched with the browser's own session);
* landed spend: each account's itemisation total on the page equals an independent rating of the
  published CDRs with the pure core (tests/support/pipeline.expected_spend);
* an account provisioned with a time zone (ControlCommand, as `cdrflow account create` sends it)
  and thresholds set with the real `cdrflow account set-user-thresholds` CLI show in the portal;
* a threshold change typed into the service-users form reaches the worker: the page shows the
  worker's "applied" reply and the new thresholds only after it (polled by reloading, bounded);
* the pie charts Chart.js drew hold shares equal to a sum computed here by hand: CDRs built in this
  test to German fixed numbers, priced from the tariff text (no rating code imported);
* a screenshot of each page in var/screenshots/portal-stack/.

Bounded: 300 generated + 5 hand-made CDRs, every wait has a timeout; run it under
`flock /tmp/heavy.lock`.
"""
from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

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
from tests.support.portal_browser import fetch_status, open_browser, poll_page, shot

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "var" / "screenshots" / "portal-stack"
CDRFLOW = str(Path(sys.executable).parent / "cdrflow")
PW = "portal stack test password"

# Hand-made calls of the pie account to Berlin fixed numbers (+49 30 ...). Tariff text
# (streams/data/tariff_default.yaml, plan default): `de: {prefixes: ["49"], groups: [{start: 0,
# rate: "0.05", unit: 60, increment: 60}, {start: 60, rate: "0.05", unit: 60, increment: 6}]}`,
# no schedule (same price all day), rounded up per call to 4 decimals. So, by hand:
#   billsec 120 -> 60 + 60        = 120 s x 0.05/60 = 0.10
#   billsec  61 -> 60 + 6         =  66 s x 0.05/60 = 0.055
#   billsec 300 -> 60 + 240       = 300 s           = 0.25
#   billsec  30 -> first 60 whole =  60 s           = 0.05
#   billsec  90 -> 60 + 30        =  90 s           = 0.075
PIE_CALLS = [("ext100", 120), ("ext100", 61), ("ext101", 300), ("ext102", 30), ("ext102", 90)]
PIE_RATE_PER_S = Decimal("0.05") / 60


def hand_cost(billsec: int) -> Decimal:
    charged = 60 if billsec <= 60 else 60 + -(-(billsec - 60) // 6) * 6
    return (charged * PIE_RATE_PER_S).quantize(Decimal("0.0001"), rounding="ROUND_UP")


def pie_cdrs(acct, now_ms: int) -> list[dict]:
    out = []
    for i, (user, billsec) in enumerate(PIE_CALLS):
        k = acct.users.index(user)
        end_ms = now_ms - (10 + i) * 60_000
        start_ms = end_ms - (billsec + 5) * 1000
        out.append({
            "switch_id": "sw-pie-1", "call_id": f"pie-{now_ms}-{i}", "leg": "A", "partial_seq": 0,
            "partial_final": True, "correlation_id": None, "account": acct.account, "service_user": user,
            "direction": "outbound", "caller": acct.numbers[k], "presented_cli": None,
            "called": f"+493055501{i:02d}", "trunk": "kpn-1", "start_ms": start_ms, "answer_ms": start_ms + 5000,
            "end_ms": end_ms, "duration_s": billsec + 5, "billsec_s": billsec, "disposition": "ANSWERED",
            "service": "voice"})
    return out


def cells(d, user: str) -> list[str]:
    """Texts of the service-users table row of ``user`` ([] when absent)."""
    from selenium.webdriver.common.by import By
    for tr in d.find_elements(By.CSS_SELECTOR, "#service-users tbody tr"):
        tds = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        if len(tds) > 2 and tds[1] == user:
            return tds
    return []


def thresholds(d, user: str) -> tuple[str, str] | None:
    # columns: checkbox, name, calls, spend, 1st threshold, 2nd threshold, reached, link
    row = cells(d, user)
    return (row[4], row[5]) if row else None


def outcome(d, command_id: str) -> str | None:
    from selenium.webdriver.common.by import By
    for tr in d.find_elements(By.CSS_SELECTOR, "#recent-changes tbody tr"):
        tds = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        if tds and tds[0] == command_id:
            return tds[2].split(":")[0].split()[0]     # "applied", "pending", "refused: REASON"
    return None


def test_portal_in_the_sink_in_a_real_browser(tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    users = tmp_path / "users.json"
    accounts = make_accounts(4, seed=21, heavy_share=0)
    for a in accounts:
        a.credit_micros = parse_money("1000")     # never barred: every CDR is rated
    accounts[0].timezone = "Asia/Tokyo"
    pie = accounts[3]                             # gets only the hand-made calls
    pie.timezone = "Europe/Amsterdam"
    pie.period_kind = "monthly"
    pie.numbers = ["0205550100", "0205550101", "0205550102"]
    pie.users = ["ext100", "ext101", "ext102"]
    names = [a.account for a in accounts]
    granted = {names[0], names[1], names[3]}
    store = UserStore(users)
    store.add("alice", PW, hash_n=2**12)
    for acc in sorted(granted):
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
        records = CdrGenerator(accounts[:3], now, seed=5, window_s=3600).take(300)
        hand = pie_cdrs(pie, now)
        pub.cdrs(records + hand, "batch", 100)
        pub.flush()
        pub.close()
        total = len(records) + len(hand)
        wait_until(lambda: stack.sink_status()["landed"].get("cdr_rated", 0) >= total, 180,
                   what=f"{total} CDRs to land rated", check=stack.check_alive)

        cfg = {a.account: {"tariff_plan": "default", "timezone": a.timezone, "period_kind": a.period_kind}
               for a in accounts}
        want: dict[str, int] = {}
        for (acc, _period), micros in expected_spend(records, cfg, now).items():
            want[acc] = want.get(acc, 0) + micros

        d = open_browser()
        try:
            # --- login; only the granted accounts are listed ---------------------------------
            d.get(base + "/accounts")                                 # not logged in -> login page
            assert "/login" in d.current_url
            d.find_element(By.ID, "username").send_keys("alice")
            d.find_element(By.ID, "password").send_keys(PW)
            shot(d, SHOTS, "01-login")
            d.find_element(By.ID, "login").click()
            WebDriverWait(d, 20).until(lambda x: x.current_url.endswith("/accounts"))
            listed = {tr.find_element(By.TAG_NAME, "td").text
                      for tr in d.find_elements(By.CSS_SELECTOR, "#accounts tbody tr")}
            assert listed == granted
            assert names[2] not in d.page_source
            shot(d, SHOTS, "02-accounts")

            # --- the time zone came from account.control (the follower), not from a file -----
            poll_page(d, f"{base}/accounts/{names[0]}",
                      lambda x: "Asia/Tokyo" in x.find_element(By.ID, "account-state").text, 60,
                      "the provisioned time zone to be followed", check=stack.check_alive)
            shot(d, SHOTS, "03-account")

            # --- landed spend, read by the sink's own portal over the sink's chdb ------------
            for i, a in enumerate(accounts[:2]):
                today = datetime.now(zone(a.timezone)).date()
                d.get(f"{base}/accounts/{a.account}/items?from={(today - timedelta(days=2)).isoformat()}"
                      f"&to={today.isoformat()}")
                got = Decimal(d.find_element(By.ID, "items-total").text)
                assert got * 1_000_000 == want[a.account], a.account
                if i == 0:
                    shot(d, SHOTS, "04-itemisation")

            # --- URL edited to an account not granted: 403 for every page and the CSV ---------
            other = names[2]
            d.get(f"{base}/accounts/{other}")
            assert "403" in d.find_element(By.TAG_NAME, "h1").text
            assert "Spend" not in d.page_source and "ext10" not in d.page_source
            shot(d, SHOTS, "05-forbidden")
            for path in (f"/accounts/{other}", f"/accounts/{other}/users", f"/accounts/{other}/items",
                         f"/accounts/{other}/items.csv", f"/charts?account={other}"):
                assert fetch_status(d, path) == 403, path
            assert fetch_status(d, f"/accounts/{names[1]}/items.csv") == 200   # the same fetch works when granted

            # --- thresholds set with the real CLI, outside the portal -------------------------
            subprocess.run([CDRFLOW, "account", "set-user-thresholds", names[0], "ext100=2.5,7",
                            "--bootstrap", stack.bootstrap, "--timeout", "60"], check=True, timeout=90,
                           capture_output=True)
            users_url = f"{base}/accounts/{names[0]}/users"
            poll_page(d, users_url, lambda x: thresholds(x, "ext100") == ("2.50", "7.00"), 60,
                      "CLI thresholds to show in the portal", check=stack.check_alive)

            # --- a threshold change typed into the form: pending until the worker's reply ------
            d.find_element(By.CSS_SELECTOR, "#service-users input[name=user][value=ext100]").click()
            d.find_element(By.NAME, "first").send_keys("3")
            d.find_element(By.NAME, "second").send_keys("8.25")
            d.find_element(By.ID, "set-thresholds").click()
            # The click navigates: elements of the old page go stale while the wait polls.
            WebDriverWait(d, 20, ignored_exceptions=(StaleElementReferenceException,)).until(
                lambda x: "as command" in x.find_element(By.TAG_NAME, "main").text)
            flash = d.find_element(By.CSS_SELECTOR, "p.flash").text
            cid = flash.split("as command", 1)[1].split()[0].strip(".,;)")
            assert outcome(d, cid) is not None, "the change is listed at once (pending or already applied)"

            def applied(x) -> bool:
                return outcome(x, cid) == "applied" and thresholds(x, "ext100") == ("3.00", "8.25")
            poll_page(d, users_url, applied, 60, "the form's threshold change to be applied by the worker",
                      check=stack.check_alive)
            shot(d, SHOTS, "06-service-users")

            # --- pie charts: shares equal the hand-derived sums --------------------------------
            expect: dict[str, Decimal] = {}
            for user, billsec in PIE_CALLS:
                expect[user] = expect.get(user, Decimal(0)) + hand_cost(billsec)
            # 0.10 + 0.055 = 0.155 ; 0.25 ; 0.05 + 0.075 = 0.125
            assert expect == {"ext100": Decimal("0.155"), "ext101": Decimal("0.25"), "ext102": Decimal("0.125")}
            today = datetime.now(zone(pie.timezone)).date()
            d.get(f"{base}/charts?account={pie.account}&from={(today - timedelta(days=2)).isoformat()}"
                  f"&to={today.isoformat()}")
            WebDriverWait(d, 20).until(
                lambda x: x.find_element(By.TAG_NAME, "body").get_attribute("data-charts") == "drawn")
            drawn = d.execute_script(
                "var c = Chart.getChart('chart-share'); return [c.data.labels, c.data.datasets[0].data.map(String)];")
            assert {u: Decimal(v) for u, v in zip(*drawn)} == expect       # what Chart.js drew
            sent = d.execute_script("return JSON.parse(document.getElementById('chart-data').textContent).share;")
            assert {u: Decimal(v) for u, v in zip(sent["labels"], sent["values"])} == expect   # exact strings
            assert Decimal(d.find_element(By.ID, "share-total").text) == sum(expect.values())  # 0.53
            # This month's bill pie: the same sums while every hand-made call is in this month.
            tz = zone(pie.timezone)
            months = {datetime.fromtimestamp(c["start_ms"] / 1000, tz).strftime("%Y-%m") for c in hand}
            if months == {datetime.now(tz).strftime("%Y-%m")}:
                bill = d.execute_script(
                    "var c = Chart.getChart('chart-bill-share'); "
                    "return [c.data.labels, c.data.datasets[0].data.map(String)];")
                assert {u: Decimal(v) for u, v in zip(*bill) if Decimal(v)} == expect
            shot(d, SHOTS, "07-charts")
        finally:
            d.quit()

        # Landing went on while the portal was used: the status still answers and nothing was dropped.
        assert stack.sink_status()["landed"]["cdr_rated"] == total
