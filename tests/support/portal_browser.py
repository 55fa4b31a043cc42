"""Headless Debian chromium + chromedriver for the portal's browser tests (Selenium).

No browser can be downloaded here, so Selenium is pointed at the system binaries; under CI=true a
missing browser fails the test instead of skipping it (deploy/install-system-deps.sh installs it).
"""
from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

CHROMEDRIVER = "/usr/bin/chromedriver"


def browser_missing() -> str | None:
    if not shutil.which("chromium") or not os.access(CHROMEDRIVER, os.X_OK):
        return "Debian chromium / chromium-driver not installed (deploy/install-system-deps.sh)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (pip install -e .[test])"
    return None


def open_browser():
    """A headless chromium driven by chromedriver; the caller quits it."""
    missing = browser_missing()
    if missing:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(f"CI=true and {missing}", pytrace=False)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"):
        opts.add_argument(a)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    # Every page load and script is bounded, so a hung portal fails the test instead of the CI job.
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


def shot(driver, shots: Path, name: str) -> Path:
    shots.mkdir(parents=True, exist_ok=True)
    # Full page height, so the tables under the charts are in the picture too.
    for _ in range(2):     # the window's own bars take height too: measure again once resized
        need = driver.execute_script("return document.documentElement.scrollHeight + "
                                     "(window.outerHeight - window.innerHeight)")
        driver.set_window_size(1280, max(1000, min(int(need) + 20, 4000)))
    path = shots / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    return path


def fetch_status(driver, path: str) -> int:
    """HTTP status of ``path`` fetched by the page with the browser's own session cookie, as a
    user who types the URL of an export would get it (no redirects followed)."""
    return driver.execute_async_script(
        "var done = arguments[arguments.length - 1]; "
        "fetch(arguments[0], {redirect: 'manual'}).then(function (r) { done(r.status); }, "
        "function (e) { done(-1); });", path)


def poll_page(driver, url: str, pred, timeout_s: float, what: str, check=None, interval_s: float = 1.0):
    """Reload ``url`` until ``pred(driver)`` is true; bounded by ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        driver.get(url)
        if pred(driver):
            return
        if check:
            check()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; page:\n"
                                 + driver.find_element("tag name", "body").text[:3000])
        time.sleep(interval_s)
