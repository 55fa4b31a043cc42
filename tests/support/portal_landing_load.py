"""Does serving the portal inside the sink slow landing? Measure it (not a test: timings).

Runs the local stack twice — portal off, then portal on with a client requesting the heaviest
pages (accounts with forecast, itemisation, charts) back to back — and, each time, publishes the
same CDRs and times publish → every CDR landed. Bounded: CDR count and every wait.

    flock /tmp/heavy.lock .venv/bin/python -m tests.support.portal_landing_load [--cdrs 4000]
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from streams.core.charge import utc_now_ms
from streams.local.procs import free_port
from streams.local.stack import LocalStack, wait_until
from streams.portal.users import UserStore
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts

PW = "load test password"


def hammer(base: str, accounts: list[str], stop: threading.Event, lat: list[float]) -> None:
    c = httpx.Client(base_url=base, follow_redirects=False, timeout=30)
    token = re.search(r'name="csrf" value="([^"]+)"', c.get("/login").text).group(1)
    c.post("/login", data={"username": "load", "password": PW, "csrf": token})
    pages = [p for a in accounts for p in ("/accounts", f"/accounts/{a}", f"/accounts/{a}/items",
                                           f"/charts?account={a}")]
    i = 0
    while not stop.is_set():
        t = time.monotonic()
        r = c.get(pages[i % len(pages)])
        assert r.status_code == 200, (r.status_code, pages[i % len(pages)])
        lat.append(time.monotonic() - t)
        i += 1
    c.close()


def one_run(cdrs: int, portal: bool) -> dict:
    work = Path(tempfile.mkdtemp(prefix="portal-load-"))
    users = work / "users.json"
    accounts = make_accounts(100, seed=3, heavy_share=0)
    store = UserStore(users)
    store.add("load", PW, hash_n=2**12)
    for a in accounts[:2]:
        store.grant("load", a.account, ["manage", "finance"])
    port = free_port() if portal else 0
    stack = LocalStack(work / "stack", workers=1, portal_port=port, extra_env={"CDRFLOW_PORTAL_USERS_FILE": str(users)})
    lat: list[float] = []
    with stack:
        stack.wait_workers_ready(120)
        stack.wait_balanced(180)
        pub = Publisher(stack.client_conf)
        now = utc_now_ms()
        stack.provision(pub, accounts, now)
        records = CdrGenerator(accounts, now, seed=9).take(cdrs)
        # Some data first, so the portal's queries have rows to read.
        pub.cdrs(records[:500], "batch", 250)
        pub.flush()
        wait_until(lambda: stack.sink_status()["landed"].get("cdr_rated", 0) >= 500, 120, check=stack.check_alive)
        stop = threading.Event()
        th = None
        if portal:
            th = threading.Thread(target=hammer, args=(f"http://127.0.0.1:{port}", [a.account for a in accounts[:2]],
                                                       stop, lat), daemon=True)
            th.start()
            time.sleep(2)
        t0 = time.monotonic()
        pub.cdrs(records[500:], "single")
        pub.flush()
        wait_until(lambda: stack.sink_status()["landed"].get("cdr_rated", 0) + stack.sink_status()["landed"].get(
            "cdr_rejected", 0) >= cdrs, 300, check=stack.check_alive)
        landing_s = time.monotonic() - t0
        stop.set()
        if th:
            th.join(30)
        pub.close()
    out = {"portal": portal, "cdrs_timed": cdrs - 500, "landing_s": round(landing_s, 2)}
    if lat:
        out.update(requests=len(lat), req_p50_ms=round(statistics.median(lat) * 1000, 1),
                   req_max_ms=round(max(lat) * 1000, 1))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--cdrs", type=int, default=4000)
    args = p.parse_args()
    for portal in (False, True):
        print(json.dumps(one_run(args.cdrs, portal)), flush=True)


if __name__ == "__main__":
    main()
