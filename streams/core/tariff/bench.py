"""Micro-benchmark: rate N canonical CDR dicts against a synthetic large tariff on one core.

    python -m streams.core.tariff.bench [--cdrs N] [--prefixes 50000] [--seed 1]

Prints one JSON line: {"cdrs", "prefixes", "destinations", "seconds", "cdrs_per_s", ...}.
Only the rating loop is timed; building the tariff and the CDRs is not.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time

from streams.core.tariff.loader import build_book
from streams.core.tariff.rating import TariffBook

BASE_MS = 1_780_000_000_000  # mid-2026, an arbitrary fixed instant


def synthetic_book(n_prefixes: int, seed: int = 1, per_destination: int = 25) -> tuple[TariffBook, list[str]]:
    rnd = random.Random(seed)
    prefixes: set[str] = set()
    while len(prefixes) < n_prefixes:
        # Country code 1..999 then 1..6 more digits: the spread of lengths of a real A-Z list.
        prefixes.add(str(rnd.randint(1, 999)) + "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 6))))
    plist = sorted(prefixes)
    rnd.shuffle(plist)
    dests: dict = {}
    for i in range(0, len(plist), per_destination):
        rate = f"0.{rnd.randint(1, 9999):04d}"
        shape = rnd.choice(([(0, 60), (60, 6)], [(0, 30), (30, 6)], [(0, 60)], [(0, 1)]))
        dests[f"d{i // per_destination}"] = {
            "prefixes": plist[i:i + per_destination],
            "groups": [{"start": s, "rate": rate, "unit": 60, "increment": inc} for s, inc in shape],
            "connect_fee": rnd.choice(("0", "0", "0.05")),
        }
    raw = {"plans": {"default": {"timezone": "Europe/Amsterdam", "versions": [{
        "version": "bench", "effective_from": "2000-01-01T00:00:00+00:00",
        "rounding": {"method": "half_even", "decimals": 4}, "destinations": dests}]}}}
    return build_book(raw, "<synthetic>"), plist


def synthetic_cdrs(n: int, prefixes: list[str], seed: int = 2) -> list[dict]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        p = rnd.choice(prefixes)
        called = "+" + p + "".join(rnd.choice("0123456789") for _ in range(max(0, 11 - len(p))))
        billsec = rnd.choice((0, rnd.randint(1, 60), rnd.randint(1, 600), rnd.randint(1, 3600)))
        start = BASE_MS + i * 1000
        out.append({
            "direction": "outbound", "called_e164": called, "caller_e164": "+31201234567",
            "called_type": "fixed", "trunk": "", "start_ms": start,
            "answer_ms": start + 5000 if billsec else None, "end_ms": start + 5000 + billsec * 1000,
            "duration_s": billsec + 5, "billsec_s": billsec, "answered": billsec > 0,
            "service": "voice", "stage": "", "account": f"acc{i % 500}",
        })
    return out


def run(n_cdrs: int, n_prefixes: int, seed: int = 1) -> dict:
    book, plist = synthetic_book(n_prefixes, seed)
    cdrs = synthetic_cdrs(n_cdrs, plist, seed + 1)
    rate = book.rate
    total = 0
    t0 = time.perf_counter()
    for c in cdrs:
        total += rate(c).cost_micros
    secs = time.perf_counter() - t0
    return {"cdrs": n_cdrs, "prefixes": len(plist), "destinations": -(-len(plist) // 25),
            "seconds": round(secs, 4), "cdrs_per_s": int(n_cdrs / secs) if secs > 0 else None,
            "total_cost_micros": total}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cdrs", type=int, default=200_000)
    ap.add_argument("--prefixes", type=int, default=50_000)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    print(json.dumps(run(a.cdrs, a.prefixes, a.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
