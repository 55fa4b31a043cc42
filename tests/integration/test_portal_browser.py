"""The portal in a real browser: Debian chromium + chromedriver driven by Selenium, against the
real ``cdrflow portal`` process serving a chdb directory with known rows.

Logs in, sees only the granted account, is refused another account's page and CSV, reads the
itemisation rows in the account's time zone, and checks that the pie chart Chart.js drew holds
the independent sums. Screenshots of each page go to var/screenshots/portal/ for reviewers.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta, timezone
from pathlib import Path

import pytest

from sinks.clickhouse import ddl
from streams.portal.users import UserStore
from tests.support.conftest_clickhouse import rated, state
from tests.support.portal_browser import fetch_status, open_browser
from tests.support.portal_browser import shot as save_shot
from tests.unit.test_portal_app import PW, ROWS, land

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "var" / "screenshots" / "portal"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def portal(tmp_path):
    from sinks.clickhouse.backend import ChdbBackend

    chdb_dir = tmp_path / "chdb"
    b = ChdbBackend(str(chdb_dir))
    try:
        ddl.migrate(b)
        recs = []
        for i, (key, acc, user, start, cost, period) in enumerate(ROWS):
            r = rated(i, account=acc, cost_micros=cost)
            start = start.replace(tzinfo=timezone.utc)
            r.update(cdr_key=key, service_user=user, start_ms=start, end_ms=start + timedelta(seconds=61),
                     period=period, called_e164=f"+3314268530{i}")
            recs.append(r)
        land(b, "cdr_rated", recs)
        s1 = state(5, "ACC1")
        s1.update(spend_micros=8_500_000, credit_micros=20_000_000, soft_limit_micros=16_000_000)
        land(b, "account_state_history", [s1])
    finally:
        b.close()   # the portal process opens the chdb path itself
    users = tmp_path / "users.json"
    store = UserStore(users)
    store.add("alice", PW)
    store.grant("alice", "ACC1", ["finance"])
    accounts = tmp_path / "accounts.yaml"
    accounts.write_text('- {account: ACC1, credit: "20", tz: Europe/Amsterdam, '
                        'user_thresholds: {"*": ["3", "4.5"]}}\n- {account: ACC2, credit: "10", tz: UTC}\n')
    port = _free_port()
    log = open(tmp_path / "portal.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "streams.cli.main", "portal", "--users-file", str(users), "serve",
                             "--clickhouse", str(chdb_dir), "--no-kafka", "--accounts-file", str(accounts),
                             "--port", str(port)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/healthz", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("portal did not start: " + (tmp_path / "portal.log").read_text())
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@pytest.fixture
def browser():
    driver = open_browser()
    try:
        yield driver
    finally:
        driver.quit()


def shot(driver, name: str) -> None:
    save_shot(driver, SHOTS, name)


def test_portal_in_a_real_browser(portal, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser
    d.get(portal + "/accounts")                                   # not logged in → login page
    assert "/login" in d.current_url
    d.find_element(By.ID, "username").send_keys("alice")
    d.find_element(By.ID, "password").send_keys(PW)
    shot(d, "01-login")
    d.find_element(By.ID, "login").click()
    WebDriverWait(d, 20).until(lambda x: x.current_url.endswith("/accounts"))
    table = d.find_element(By.ID, "accounts").text
    assert "ACC1" in table and "ACC2" not in table
    assert "8.50" in table and "11.50" in table                   # spend and balance (20.00 - 8.50)
    shot(d, "02-accounts")

    d.get(portal + "/accounts/ACC1")
    assert "Europe/Amsterdam" in d.find_element(By.ID, "account-state").text
    shot(d, "03-account")

    d.get(portal + "/accounts/ACC2")                              # URL edited to another account
    assert "403" in d.find_element(By.TAG_NAME, "h1").text
    assert "9.00" not in d.page_source
    shot(d, "04-forbidden")
    # The CSV of another account, asked for with this browser's session: 403 as well.
    assert fetch_status(d, "/accounts/ACC2/items.csv") == 403

    d.get(portal + "/accounts/ACC1/users?level=1")
    users = d.find_element(By.ID, "service-users").text
    assert "101" in users and "102" in users                      # 3.75 ≥ 3.00 and 4.75 ≥ 4.50
    shot(d, "05-service-users")

    d.get(portal + "/accounts/ACC1/items?from=2026-11-01&to=2026-11-30")
    rows = d.find_elements(By.CSS_SELECTOR, "#items tbody tr.item")
    assert len(rows) == 4
    assert rows[2].text.startswith("2026-11-06 00:30:00")        # k3: 2026-11-05 23:30Z in Amsterdam
    assert d.find_element(By.ID, "items-total").text == "8.50"    # 1.50 + 2.25 + 0.75 + 4.00
    shot(d, "06-itemisation")

    d.get(portal + "/charts?account=ACC1&from=2026-11-01&to=2026-11-30")
    WebDriverWait(d, 20).until(lambda x: x.find_element(By.TAG_NAME, "body").get_attribute("data-charts") == "drawn")
    assert d.find_element(By.ID, "chart-share").tag_name == "canvas"
    pie = d.execute_script("var c = Chart.getChart('chart-share'); "
                           "return [c.data.labels, c.data.datasets[0].data.map(String)];")
    assert dict(zip(pie[0], pie[1])) == {"101": "3.75", "102": "4.75"}   # independent: 1.50+2.25, 0.75+4.00
    bars = d.execute_script("var c = Chart.getChart('chart-daily'); return c.data.labels.length;")
    assert bars == 30                                              # every day of November, empty ones too
    shot(d, "07-charts")
