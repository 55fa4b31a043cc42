"""Helpers for end-to-end tests on the real local stack (tansu + Faust workers + sink on chdb).

Expected money is computed independently of the pipeline: the test normalises and rates the
very records it published with the pure core, once per unique CDR, and sums per account.
"""
from __future__ import annotations

import time
from collections import defaultdict

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams import codecs, topics
from streams.core.normalize import normalize
from streams.core.periods import period_of
from streams.core.sources import NumberingContext
from streams.core.tariff import load_tariff_book
from streams.settings import DATA_DIR


def read_topic(client_conf: dict, topic: str, idle_s: float = 1.5, timeout_s: float = 60) -> list[tuple]:
    """Every message of a topic as (partition, offset, key, schema name, record)."""
    c = Consumer({**client_conf, "group.id": f"test-read-{time.time_ns()}", "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    out = []
    deadline = time.monotonic() + timeout_s
    last = time.monotonic()
    try:
        while time.monotonic() < deadline and time.monotonic() - last < idle_s:
            m = c.poll(0.1)
            if m is None or m.error():
                continue
            last = time.monotonic()
            name, rec = codecs.decode(m.value(), max_items=1 << 30)
            out.append((m.partition(), m.offset(), m.key(), name, rec))
    finally:
        c.close()
    return out


def expected_spend(records: list[dict], accounts: dict[str, dict], now_ms: int) -> dict[tuple[str, str], int]:
    """(account, period) -> micros, by rating each unique record with the pure core."""
    book = load_tariff_book(DATA_DIR / "tariff_default.yaml")
    ctx = NumberingContext()
    out: dict[tuple[str, str], int] = defaultdict(int)
    seen = set()
    for raw in records:
        c = normalize(raw, ctx, now_ms=now_ms)
        if c["cdr_key"] in seen:
            continue
        seen.add(c["cdr_key"])
        cfg = accounts[c["account"]]
        r = book.rate(c, plan=cfg["tariff_plan"])
        out[(c["account"], period_of(c["start_ms"], cfg["timezone"], cfg["period_kind"]))] += r.cost_micros
    return dict(out)


def latest_states(client_conf: dict) -> dict[str, dict]:
    """Latest account.state record per account: an account lives on one partition, so the
    highest offset is the newest."""
    latest: dict[str, tuple[int, dict]] = {}
    for _p, offset, _k, name, rec in read_topic(client_conf, topics.STATE):
        if name == codecs.STATE and offset >= latest.get(rec["account"], (-1, None))[0]:
            latest[rec["account"]] = (offset, rec)
    return {a: rec for a, (_o, rec) in latest.items()}
