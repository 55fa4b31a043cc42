"""In-process measure of the charge stage on one account with a long history (issue 16).

``python -m streams.keystore_bench --history 25000 125000`` builds the history in batches of
1,000 CDRs spread over 30 call days, then measures, at each history size, µs per CDR for
single-CDR batches (steady traffic) and for 100-CDR batches, and the bytes one single-CDR batch
writes to the table changelogs (account value + key nodes). No Kafka, no Faust: what the worker
does per batch (``charge_partition``, then the state's JSON encoding as the agent stores it).
"""
from __future__ import annotations

import argparse
import inspect
import json
import time
from hashlib import blake2b

import orjson

from streams import codecs
from streams.core.normalize import normalize
from streams.core.sources import NumberingContext
from streams.core.tariff import load_tariff_book
from streams.msg import Msg
from streams.pipeline import charge_partition
from streams.settings import DATA_DIR

DAY = 86_400_000


def _template(now: int) -> dict:
    start = now - 3_600_000
    raw = {"switch_id": "sw", "call_id": "t", "leg": "A", "partial_seq": 0, "partial_final": True,
           "correlation_id": None, "account": "HEAVY", "service_user": "agent1", "direction": "outbound",
           "caller": "0201234567", "presented_cli": None, "called": "0612345678", "trunk": "t1",
           "start_ms": start, "answer_ms": start + 5_000, "end_ms": start + 65_000, "duration_s": 65,
           "billsec_s": 60, "disposition": "ANSWERED", "service": "voice"}
    c = normalize(raw, NumberingContext(), now_ms=now)
    c.update(source_topic="cdr.raw", source_partition=0, source_offset=1, source_index=0, ingest_ms=now, raw=b"x")
    return c


def run(histories: list[int], now: int) -> dict:
    book = load_tariff_book(DATA_DIR / "tariff_default.yaml")
    base = _template(now)
    has_keys = "keys" in inspect.signature(charge_partition).parameters
    accounts: dict[str, dict] = {}
    nodes: dict[bytes, bytes] = {}
    offset = 0

    def rate(cdr, plan):
        return book.rate(cdr, plan=plan)

    def cdr(i: int) -> dict:
        day = i % 30
        return dict(base, call_id=f"c{i}", cdr_key=blake2b(f"c{i}".encode(), digest_size=16).hexdigest(),
                    start_ms=base["start_ms"] - day * DAY, answer_ms=base["answer_ms"] - day * DAY,
                    end_ms=base["end_ms"] - day * DAY)

    def batch(cdrs: list[dict]) -> int:
        nonlocal offset
        offset += 1
        msg = Msg("cdr.normalized", 0, offset, now, codecs.encode_batch(codecs.CANONICAL_BATCH, cdrs))
        kw = {"keys": nodes.get} if has_keys else {}
        res, states = charge_partition([msg], accounts.get, rate, now, 35, **kw)
        written = 0
        for nk, v in getattr(res, "key_writes", {}).items():
            if v is None:
                nodes.pop(nk, None)
            else:
                nodes[nk] = v
            written += len(nk) + len(v or b"")
        for a in res.touched:
            value = orjson.dumps(states[a])          # what the agent stores and the changelog carries
            accounts[a] = states[a]
            written += len(a) + len(value)
        return written

    cmd = {"command_id": "p", "account": "HEAVY", "action": "provision", "credit_micros": 10 ** 15,
           "profile": None, "timezone": "UTC", "period_kind": "monthly", "soft_limit_pct": 80,
           "tariff_plan": "default", "always_allowed": None, "issued_ms": now - 40 * DAY}
    res, states = charge_partition([Msg("account.control", 0, 0, now, codecs.encode(codecs.CONTROL, cmd))],
                                   accounts.get, rate, now, 35)
    accounts["HEAVY"] = states["HEAVY"]

    out = {"key_store": has_keys, "results": []}
    n = 0
    for h in sorted(histories):
        while n < h:
            k = min(1_000, h - n)
            batch([cdr(i) for i in range(n, n + k)])
            n += k
        singles = 200
        t = time.perf_counter()
        written = 0
        for i in range(n, n + singles):
            written += batch([cdr(i)])
        single_us = (time.perf_counter() - t) * 1e6 / singles
        n += singles
        t = time.perf_counter()
        for j in range(10):
            batch([cdr(i) for i in range(n + j * 100, n + (j + 1) * 100)])
        batch_us = (time.perf_counter() - t) * 1e6 / 1_000
        n += 1_000
        out["results"].append({"history_cdrs": h, "us_per_cdr_single": round(single_us, 1),
                               "us_per_cdr_batch100": round(batch_us, 1),
                               "bytes_written_per_single_cdr": written // singles,
                               "largest_key_node": max((len(v) for v in nodes.values()), default=0),
                               "account_value_bytes": len(orjson.dumps(accounts["HEAVY"]))})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--history", type=int, nargs="+", default=[25_000, 125_000])
    args = p.parse_args()
    now = int(time.time() * 1000)
    print(json.dumps(run(args.history, now), indent=1))


if __name__ == "__main__":
    main()
