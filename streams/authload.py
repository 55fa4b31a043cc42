"""Load generator for the authorisation endpoint: latency percentiles as seen by a client.

Each simulated call asks /authorize and reports /call-end right away, so reservations do not
pile up and every request does the full decision work.
"""
from __future__ import annotations

import asyncio
import random
import time

import httpx

DESTINATIONS = ["0201234567", "0612345678", "+442071234567", "+4930123456", "0101234567", "+12125551234"]


def percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    k = min(len(sorted_ms) - 1, max(0, int(round(q * (len(sorted_ms) - 1)))))
    return sorted_ms[k]


async def run_load(url: str, accounts: list[str], requests: int, concurrency: int, seed: int = 1,
                   max_seconds: float = 120) -> dict:
    rnd = random.Random(seed)
    latencies: list[float] = []
    outcomes: dict[str, int] = {}
    errors = 0
    todo = iter(range(requests))
    deadline = time.monotonic() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as client:
        async def worker():
            nonlocal errors
            for _ in todo:
                if time.monotonic() > deadline:
                    return
                acct = rnd.choice(accounts)
                t0 = time.perf_counter()
                try:
                    r = await client.get("/authorize", params={"account": acct, "destination": rnd.choice(DESTINATIONS)})
                    latencies.append((time.perf_counter() - t0) * 1000)
                    body = r.json()
                    outcomes[body.get("reason", "?")] = outcomes.get(body.get("reason", "?"), 0) + 1
                    if body.get("reservation"):
                        await client.get("/call-end", params={"account": acct, "reservation": body["reservation"],
                                                              "duration": 0})
                except (httpx.HTTPError, ValueError):
                    errors += 1
        t_start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t_start
    lat = sorted(latencies)
    return {"requests": len(lat), "errors": errors, "concurrency": concurrency,
            "requests_per_s": round(len(lat) / wall, 1) if wall else None,
            "latency_ms": {"p50": round(percentile(lat, 0.50), 2), "p90": round(percentile(lat, 0.90), 2),
                           "p99": round(percentile(lat, 0.99), 2), "max": round(lat[-1], 2) if lat else None},
            "outcomes": outcomes}
