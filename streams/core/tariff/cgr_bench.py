"""Throughput of the CGRateS-semantics rater (imported plans), one core, in process.

    python -m streams.core.tariff.cgr_bench [--cdrs 20000] [--seed 1] [--digest]

The plan is tests/fixtures/cgrates/shape_tutorial2 (four timings on one destination, a dated
timing, groups, fallbacks) with the Europe/Amsterdam time zone, so calls cross timings, local
midnights and DST. CDRs are random but seeded; ``--digest`` prints a hash of every Rating
(costs and spans) so two versions of the engine can be compared on the same input.
"""
from __future__ import annotations

import argparse
import hashlib
import random
import time
from pathlib import Path

from streams.core.reasons import RejectError

FIXTURES = Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "cgrates"
FIXTURE = FIXTURES / "shape_tutorial2"
PLAN = "lab.test:call:*any"
# --shape: (fixture dir, plan, called numbers); tutorial2 is the default and the measured one.
SHAPES = {
    "tutorial2": ("shape_tutorial2", PLAN, ("301234", "+3020", "401234", "501234", "voicemail")),
    "tutorial2-3001": ("shape_tutorial2", "lab.test:call:3001", ("3002", "301234", "401234", "voicemail")),
    "tutorial": ("shape_tutorial", "shop.test:call:2001", ("2001", "2002", "+2003")),
    "testit": ("shape_testit", "test.lab:call:*any", ("447012", "500512", "0800123", "+31201234")),
}


def make_cdrs(n: int, seed: int, numbers=SHAPES["tutorial2"][2]) -> list[dict]:
    rnd = random.Random(seed)
    t0 = 1591056000000   # 2020-06-02T00:00Z (after every fixture's activation); five years of
    span_s = 5 * 365 * 86400   # start times cover DST changes, leap days and New Year
    out = []
    for _ in range(n):
        at = t0 + rnd.randrange(0, span_s) * 1000
        if rnd.random() < 0.3:   # near a timing boundary or midnight, where spans are cut
            at -= at % 3_600_000
            at += rnd.choice((-90, -30, -1, 0, 1, 30)) * 1000
        billsec = rnd.choice((0, 1, 7, 30, 59, 60, 61, 90, 150, 300, 601, 3700))
        called = rnd.choice(numbers)
        out.append({"called_e164": called, "start_ms": at, "answer_ms": at, "billsec_s": billsec,
                    "answered": billsec > 0, "service": "voice"})
    return out


def load_book(fixture: str = "shape_tutorial2"):
    from streams.core.tariff import parse_tariff_text
    from streams.core.tariff.cgrates import import_cgrates_dir, to_yaml

    doc = import_cgrates_dir(FIXTURES / fixture, timezone="Europe/Amsterdam")
    return parse_tariff_text(to_yaml(doc), f"{fixture}.yaml", "yaml")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cdrs", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--digest", action="store_true", help="print a hash of every Rating")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="tutorial2")
    args = ap.parse_args(argv)
    fixture, plan, numbers = SHAPES[args.shape]
    book = load_book(fixture)
    cdrs = make_cdrs(args.cdrs, args.seed, numbers)
    rate = book.rate
    h = hashlib.blake2b(digest_size=16)
    t = time.perf_counter()
    rejected = 0
    for c in cdrs:
        try:
            r = rate(c, plan)
        except RejectError as e:
            rejected += 1
            if args.digest:
                h.update(str(e).encode())
            continue
        if args.digest:
            h.update(repr(tuple(r)).encode())
    dt = time.perf_counter() - t
    print(f"{args.cdrs} CDRs ({rejected} refused) in {dt:.3f} s: {args.cdrs / dt:,.0f} CDRs/s")
    if args.digest:
        print(f"digest {h.hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
