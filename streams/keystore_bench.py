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


def call_centre(cdrs: int, accounts: int, parts: int, now: int) -> dict:
    """The call-centre scenario in-process: simulator CDRs of ``accounts`` accounts over 30 call
    days, normalised and charged in 2,000-CDR containers; per part, normalise and charge µs/CDR
    and the key-store node writes and bytes per CDR (why the live run's cost rises, then levels
    off: the node writes per CDR grow towards one as each day's keys spread over more leaves)."""
    from collections import defaultdict

    from streams import topics
    from streams.core.normalize import Limits
    from streams.mediation import Normalizer, load_sources
    from streams.partitioning import partition_for
    from streams.simulator import CdrGenerator, make_accounts

    partitions = 8
    book = load_tariff_book(DATA_DIR / "tariff_default.yaml")

    def rate(cdr, plan):
        return book.rate(cdr, plan=plan)

    sim = make_accounts(accounts, seed=7, heavy_share=0.0)
    store: dict = {}
    nodes: dict[bytes, bytes] = {}
    for i, a in enumerate(sim):
        part = partition_for(a.account, partitions)
        msg = Msg(topics.CONTROL, part, i, now, codecs.encode(codecs.CONTROL, a.provision_command(now)))
        res, states = charge_partition([msg], store.get, rate, now, 35)
        store.update((acct, states[acct]) for acct in res.touched)
    gen = CdrGenerator(sim, now, seed=8, window_s=30 * 86_400)
    norm = Normalizer(partitions, sources=load_sources(None), limits=Limits(max_age_s=35 * 86_400))
    offsets: dict[int, int] = defaultdict(int)
    per_part = max(2_000, cdrs // parts)
    out = []
    for k in range(max(1, cdrs // per_part)):
        recs = gen.take(per_part)
        t_norm = t_charge = 0.0
        writes = written = 0
        for i in range(0, per_part, 2_000):
            value = codecs.encode_container(codecs.SWITCH_CDR, recs[i:i + 2_000])
            t = time.perf_counter()
            r = norm.run([Msg(topics.RAW, 0, i, now, value)], now)
            msgs = []
            for part, batch_cdrs in r.by_partition.items():
                offsets[part] += 1
                msgs.append(Msg(topics.NORMALIZED, part, offsets[part], now,
                                codecs.encode_batch(codecs.CANONICAL_BATCH, batch_cdrs)))
            t2 = time.perf_counter()
            t_norm += t2 - t
            for m in msgs:
                res, states = charge_partition([m], store.get, rate, now, 35, keys=nodes.get)
                for nk, v in res.key_writes.items():
                    if v is None:
                        nodes.pop(nk, None)
                    else:
                        nodes[nk] = v
                    writes += 1
                    written += len(nk) + len(v or b"")
                store.update((acct, states[acct]) for acct in res.touched)
            t_charge += time.perf_counter() - t2
        out.append({"part": k + 1, "normalize_us_per_cdr": round(t_norm * 1e6 / per_part, 1),
                    "charge_us_per_cdr": round(t_charge * 1e6 / per_part, 1),
                    "key_node_writes_per_cdr": round(writes / per_part, 2),
                    "key_node_bytes_per_cdr": round(written / per_part), "key_nodes": len(nodes)})
    return {"cdrs": per_part * len(out), "accounts": accounts, "parts": out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--history", type=int, nargs="+", default=[25_000, 125_000])
    p.add_argument("--call-centre", type=int, metavar="CDRS", default=0,
                   help="instead: the call-centre scenario in-process with this many CDRs")
    p.add_argument("--accounts", type=int, default=20, help="accounts of --call-centre")
    p.add_argument("--segments", type=int, default=10, help="parts of --call-centre reported")
    args = p.parse_args()
    now = int(time.time() * 1000)
    if args.call_centre:
        print(json.dumps(call_centre(args.call_centre, args.accounts, args.segments, now), indent=1))
    else:
        print(json.dumps(run(args.history, now), indent=1))


if __name__ == "__main__":
    main()
