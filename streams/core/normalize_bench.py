"""Throughput of :func:`streams.core.normalize.normalize_batch` on one core.

    python -m streams.core.normalize_bench [--records N] [--batch B] [--cold-share F] [--path tables|library|both]

The input imitates a Dutch switch estate: ~5000 subscribers behind a few switches that
each spell numbers their own way (national, dashed, E.164, 00-prefixed, SIP URIs), called
numbers drawn with a skew (people call the same numbers again), international, toll-free,
premium, short-code and emergency calls, a share of never-seen "cold" numbers that miss the
cache, and ~1% bad records that must be rejected. The cache is warmed with a different
sample first, as a long-running worker's would be; the timed run then still meets cold
numbers at ``--cold-share``. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import time
from itertools import islice

from streams.core import numbering
from streams.core.normalize import normalize_batch
from streams.core.sources import SourceDirectory

NOW_MS = 1_760_000_000_000
SUBSCRIBERS = 5000


def _nl_fixed(rng: random.Random) -> str:
    area = rng.choice(["20", "10", "30", "70", "40", "50", "43", "73"])
    return area + "".join(rng.choices("0123456789", k=9 - len(area)))


def _nl_mobile(rng: random.Random) -> str:
    return "6" + rng.choice("12345") + "".join(rng.choices("0123456789", k=7))


def _spell(nsn: str, rng: random.Random, style: int) -> str:
    """One NL national significant number in one of the formats switches emit."""
    if style == 0:
        return "0" + nsn
    if style == 1:
        return f"0{nsn[:2]}-{nsn[2:]}"
    if style == 2:
        return "+31" + nsn
    if style == 3:
        return "0031" + nsn
    return f"sip:0{nsn}@pbx{rng.randint(1, 3)}.example.nl"


def _international(rng: random.Random) -> str:
    digits = lambda k: "".join(rng.choices("0123456789", k=k))  # noqa: E731
    return rng.choice([
        lambda: "0044207" + digits(7),
        lambda: "+4930" + digits(8),
        lambda: "001212" + rng.choice("23456789") + digits(6),
        lambda: "+3314" + digits(7),
        lambda: "0032 2 " + digits(7),
    ])()


def _destination(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.40:
        return _spell(_nl_mobile(rng), rng, rng.randrange(5))
    if roll < 0.75:
        return _spell(_nl_fixed(rng), rng, rng.randrange(5))
    if roll < 0.87:
        return _international(rng)
    if roll < 0.92:
        return "0800-" + "".join(rng.choices("0123456789", k=4))
    if roll < 0.96:
        return "0900-" + "".join(rng.choices("0123456789", k=6))
    if roll < 0.99:
        return rng.choice(["1233", "1200", "14020", "118"])
    return "112"


def build(records: int, seed: int, cold_share: float) -> list[dict]:
    return list(generate(records, seed, cold_share))


def generate(records: int, seed: int, cold_share: float):
    rng = random.Random(seed)
    # Subscriber numbers are fixed across samples (seed 0): they are the same customers.
    srng = random.Random(0)
    subs = []
    for i in range(SUBSCRIBERS):
        nsn = _nl_mobile(srng) if srng.random() < 0.5 else _nl_fixed(srng)
        subs.append((f"acct-{i % 500:04d}", nsn, srng.randrange(5), f"ext-{i}"))
    popular = [_destination(random.Random(10_000 + k)) for k in range(20_000)]
    weights = [1.0 / (k + 1) ** 0.8 for k in range(len(popular))]
    called_hot = rng.choices(popular, weights=weights, k=records)
    for i in range(records):
        account, nsn, style, ext = subs[rng.randrange(SUBSCRIBERS)]
        inbound = rng.random() < 0.2
        called = _destination(rng) if rng.random() < cold_share else called_hot[i]
        caller = _spell(nsn, rng, style)
        if inbound:
            caller, called = called, caller
        dur = rng.randrange(0, 900)
        answered = dur > 0 and rng.random() < 0.8
        bill = max(0, dur - rng.randrange(0, 15)) if answered else 0
        start = NOW_MS - rng.randrange(0, 30 * 86_400_000)
        raw = {
            "switch_id": f"sw-ams-{i % 3}",
            "call_id": f"c{seed}-{i}",
            "leg": "A",
            "partial_seq": 0,
            "partial_final": True,
            "correlation_id": None,
            "account": account,
            "service_user": ext if rng.random() < 0.5 else None,
            "direction": "inbound" if inbound else "outbound",
            "caller": caller,
            "presented_cli": "+31880001234" if rng.random() < 0.1 else None,
            "called": called,
            "trunk": rng.choice([None, "kpn-1", "tele2-2"]),
            "start_ms": start,
            "answer_ms": start + (dur - bill) * 1000 if bill else None,
            "end_ms": start + dur * 1000,
            "duration_s": dur,
            "billsec_s": bill,
            "disposition": "ANSWERED" if bill else rng.choice(["NO ANSWER", "BUSY", "FAILED"]),
            "service": "voice",
        }
        bad = rng.random()
        if bad < 0.004:
            raw["called"] = "not-a-number"
        elif bad < 0.007:
            raw["account"] = None
        elif bad < 0.01:
            raw["end_ms"] = start - 1000
        yield raw


def _pin_one_core() -> str:
    if hasattr(os, "sched_setaffinity"):
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"cpu{cpu}"
    return "unpinned"


def _timed_run(records: int, batch: int, seed: int, cold_share: float, ctx_for) -> tuple[float, int, int]:
    """Time only normalize_batch. Each batch is generated just before it is timed, so its
    dicts are as fresh in the CPU cache as ones fastavro has just decoded; timing a list of
    200k pre-built dicts would mostly measure memory stalls the agent never sees."""
    gen = generate(records, seed, cold_share)
    seconds = 0.0
    ok = rejected = 0
    clock = time.perf_counter
    while True:
        chunk = list(islice(gen, batch))
        if not chunk:
            break
        t0 = clock()
        good, bad = normalize_batch(chunk, ctx_for, NOW_MS)
        seconds += clock() - t0
        ok += len(good)
        rejected += len(bad)
    return seconds, ok, rejected


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=200_000)
    ap.add_argument("--batch", type=int, default=500, help="records per normalize_batch call (one Kafka poll)")
    ap.add_argument("--cold-share", type=float, default=0.02, help="share of calls to never-seen numbers")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs (fresh records each); the median is reported")
    ap.add_argument("--no-warmup", action="store_true", help="time from an empty cache")
    ap.add_argument(
        "--path",
        choices=("tables", "library", "both"),
        default="tables",
        help="number parsing: compiled tables (production), phonenumbers alone (the reference), or both in turn",
    )
    args = ap.parse_args(argv)
    if args.path == "both":
        # Same process, same machine state: the ratio is what to quote on a noisy box.
        out = {p: _measure(args, p) for p in ("library", "tables", "library", "tables")}
        result = {"library": out["library"], "tables": out["tables"]}
        result["speedup"] = round(out["tables"]["records_per_s"] / out["library"]["records_per_s"], 2)
        print(json.dumps(result))
        return result
    result = _measure(args, args.path)
    print(json.dumps(result))
    return result


def _measure(args, path: str) -> dict:
    original = numbering._parse_intl
    if path == "library":
        numbering._parse_intl = numbering._parse_intl_library
    try:
        return _measure_path(args, path)
    finally:
        numbering._parse_intl = original


def _measure_path(args, path: str) -> dict:

    pinned = _pin_one_core()
    directory = SourceDirectory.from_dict({"default": {"country": "NL"}})
    ctx_for = directory.for_raw
    numbering.cache_clear()
    if not args.no_warmup:
        # A running worker's cache already holds its subscribers; warm it with another sample.
        _timed_run(min(args.records, 100_000), args.batch, 1, args.cold_share, ctx_for)
    before = numbering.cache_info()
    runs = []
    for r in range(max(1, args.repeat)):
        runs.append(_timed_run(args.records, args.batch, 2 + r, args.cold_share, ctx_for))
    after = numbering.cache_info()

    rates = sorted(args.records / sec for sec, _, _ in runs)
    median = rates[len(rates) // 2]
    seconds, ok, rejected = min(runs, key=lambda run: abs(args.records / run[0] - median))
    hits, misses = after.hits - before.hits, after.misses - before.misses
    result = {
        "records": args.records,
        "seconds": round(seconds, 4),
        "records_per_s": round(median),
        "runs_records_per_s": [round(x) for x in rates],
        "normalized": ok,
        "rejected": rejected,
        "cache_hit_rate": round(hits / max(1, hits + misses), 4),
        "cache_entries": after.currsize,
        "warmup": not args.no_warmup,
        "core": pinned,
        "path": path,
        "cold_share": args.cold_share,
    }
    return result


if __name__ == "__main__":
    main()
