"""cdrflow recycle re-publishes only CDR bytes: a charge-stage reject whose bytes came from
account.control (a control command that failed on its own, reason internal_error) would only be
rejected again on cdr.raw, so it is counted as not recyclable."""
from streams import codecs, topics
from streams.cli import recycle as rc


def _reject(source_topic: str, raw: bytes, n: int) -> bytes:
    return codecs.encode(codecs.REJECTED, {
        "reject_id": f"r{n}", "reason": "internal_error", "detail": "boom", "stage": "charge",
        "source_topic": source_topic, "source_partition": 0, "source_offset": n, "source_index": 0,
        "raw": raw, "cdr_key": None, "account": "A1", "rejected_at_ms": 0})


def test_only_rejects_from_cdr_raw_go_back(monkeypatch):
    framed = b"\x00\x00\x00\x00\x01" + b"body"          # Confluent framing: magic 0 + id
    values = [_reject(topics.RAW, framed + b"1", 1), _reject(topics.CONTROL, framed + b"2", 2)]
    monkeypatch.setattr(rc, "read_rejects", lambda conf, idle_s: iter(values))
    stats = rc.recycle({}, reasons={"internal_error"}, dry_run=True)
    assert (stats.read, stats.matched, stats.recycled, stats.not_recyclable) == (2, 2, 1, 1)
