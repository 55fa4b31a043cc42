"""Outputs fit the producer's request limit (issue 16.2): split canonical batches, cut rejects,
and an agent that crashes takes its worker down with a reason."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from streams import codecs
from streams.batching import OutputTooLarge, encoded_chunks, fitted_reject
from streams.core.charge import make_reject
from streams.core.reasons import Reason


def canon(i: int, pad: int = 0) -> dict:
    return {"cdr_key": f"{i:032x}", "switch_id": "sw", "call_id": f"c{i}" + "x" * pad, "leg": "A", "partial_seq": 0,
            "partial_final": True, "correlation_id": f"c{i}", "account": "acct-1", "service_user": "",
            "direction": "outbound", "caller_e164": "+31201234567", "presented_cli": "+31201234567",
            "called_e164": "+31612345678", "called_type": "mobile", "trunk": "", "start_ms": 1_760_000_000_000,
            "answer_ms": None, "end_ms": 1_760_000_030_000, "duration_s": 30, "billsec_s": 30, "answered": True,
            "disposition": "ANSWERED", "service": "voice", "stage": "", "operator_location": None,
            "operator_dedicated": None, "source_topic": "cdr.raw", "source_partition": 0, "source_offset": i,
            "source_index": 0, "ingest_ms": 0, "raw": b"r" * 200}


def enc(cdrs):
    return codecs.encode_batch(codecs.CANONICAL_BATCH, cdrs)


def test_a_batch_over_the_limit_is_split_in_order_and_each_part_fits():
    cdrs = [canon(i) for i in range(3000)]
    whole = enc(cdrs)
    limit = 100_000
    assert len(whole) > 10 * limit
    parts = list(encoded_chunks(enc, cdrs, limit))
    assert all(len(v) <= limit for v, _ in parts) and len(parts) > 10
    back = [r for v, _ in parts for r in codecs.decode(v)[1]["records"]]
    assert [r["cdr_key"] for r in back] == [c["cdr_key"] for c in cdrs]
    assert sum(n for _, n in parts) == 3000


def test_small_batches_are_encoded_once_and_counts_are_bounded():
    cdrs = [canon(i) for i in range(25)]
    calls = []

    def counting(x):
        calls.append(len(x))
        return enc(x)

    assert [n for _, n in encoded_chunks(counting, cdrs, 16 << 20)] == [25] and calls == [25]
    assert [n for _, n in encoded_chunks(enc, cdrs, 16 << 20, max_records=10)] == [10, 10, 5]
    assert list(encoded_chunks(enc, [], 1000)) == []


def test_one_record_over_the_limit_cannot_be_split():
    with pytest.raises(OutputTooLarge):
        list(encoded_chunks(enc, [canon(1, pad=5000)], 2000))


def test_reject_over_the_limit_keeps_its_leading_bytes_and_says_so():
    raw = bytes(range(256)) * 4096            # 1 MiB
    rej = make_reject(Reason.OVERSIZE, "message too big", "normalize", "cdr.raw", 0, 9, 0, raw, 0)
    encode = lambda r: codecs.encode(codecs.REJECTED, r)   # noqa: E731
    assert fitted_reject(rej, encode, 2 << 20) == encode(rej)
    v = fitted_reject(rej, encode, 512 * 1024)
    assert len(v) <= 512 * 1024
    back = codecs.decode(v)[1]
    assert raw.startswith(back["raw"]) and len(back["raw"]) > 400 * 1024
    assert f"of {len(raw)} bytes" in back["detail"] and back["reason"] == "oversize"


CRASH = textwrap.dedent('''
    import asyncio, logging
    logging.basicConfig(level=logging.INFO)
    from streams import supervise
    from streams.app import app
    assert isinstance(app, supervise.App)
    agent = app.agents["streams.agents.normalize.normalize"]

    async def failing_send():
        # What the agent met in issue 16: a send the producer refuses.
        raise RuntimeError("MessageSizeTooLargeError: The message is 17400000 bytes when serialized")

    async def main():
        # Faust's own actor runner: the path an agent exception takes in a live worker.
        await agent._execute_actor(failing_send(), None)
        print("still alive")

    asyncio.run(main())
''')


def test_a_crashed_agent_ends_the_worker_with_a_reason(tmp_path):
    out = subprocess.run([sys.executable, "-c", CRASH], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, env={**__import__("os").environ, "CDRFLOW_DATA_DIR": str(tmp_path)})
    assert out.returncode == 70, (out.returncode, out.stderr[-3000:])
    assert "still alive" not in out.stdout
    assert "event=agent_crashed agent=streams.agents.normalize.normalize" in out.stderr
    assert "MessageSizeTooLargeError" in out.stderr
