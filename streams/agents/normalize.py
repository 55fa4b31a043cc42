"""Agent: raw switch CDRs -> canonical CDR batches per account partition, or rejects."""
from __future__ import annotations

import asyncio

from streams import codecs, topics
from streams.app import app, settings
from streams.batching import (OUTPUT_MARGIN, check_rereads, encoded_chunks, fitted_reject, reread_if_skipped,
                              to_msg)
from streams.faust_compat import OffsetWatch
from streams.core.charge import utc_now_ms
from streams.metrics import count, count_rejects
from streams.core.normalize import Limits
from streams.mediation import Normalizer, load_sources
from streams.registry import wire_from_settings
from streams.supervise import die

raw_topic = app.topic(topics.RAW, partitions=settings.raw_partitions, value_serializer="raw")
normalized_topic = app.topic(topics.NORMALIZED, partitions=settings.partitions, value_serializer="raw")
rejected_topic = app.topic(topics.REJECTED, partitions=settings.partitions, value_serializer="raw")

normalizer = Normalizer(
    settings.partitions, sources=load_sources(settings.sources_file),
    max_message_bytes=settings.max_message_bytes, max_batch_records=settings.max_batch_records,
    # Older calls than the duplicate horizon are refused: a re-sent one could not be recognised.
    limits=Limits(max_age_s=settings.dedup_horizon_days * 86_400),
    wire=wire_from_settings(settings),
    max_decoded_bytes=settings.max_decoded_bytes, max_field_chars=settings.max_field_chars)

# Every canonical batch message fits one producer request, and holds a bounded number of CDRs so
# the charge stage's work per message is bounded too.
MAX_OUTPUT_BYTES = settings.producer_max_request_bytes - OUTPUT_MARGIN
CHUNK = max(1, settings.normalize_chunk_records)


def _encode_canonical(cdrs) -> bytes:
    return codecs.encode_batch(codecs.CANONICAL_BATCH, cdrs)


def _encode_reject(rej: dict) -> bytes:
    return codecs.encode(codecs.REJECTED, rej)


offset_watch = OffsetWatch()


@app.agent(raw_topic)
async def normalize(stream):
    async for events in stream.take_events(settings.batch_max, settings.batch_within_s):
        await reread_if_skipped(app, offset_watch, events, "normalize")
        # A big file is normalised and sent a bounded chunk at a time, yielding to the event
        # loop in between: heartbeats, other partitions and sends keep moving meanwhile.
        for res in normalizer.iter_results([to_msg(e) for e in events], utc_now_ms(), CHUNK):
            for part, cdrs in res.by_partition.items():
                for value, _n in encoded_chunks(_encode_canonical, cdrs, MAX_OUTPUT_BYTES, CHUNK):
                    await normalized_topic.send(value=value, partition=part)
            for rej in res.rejects:
                await rejected_topic.send(key=rej["reject_id"].encode(),
                                          value=fitted_reject(rej, _encode_reject, MAX_OUTPUT_BYTES))
            count("records_in", res.records_in)
            count("normalized", res.normalized)
            count("rejected_normalize", len(res.rejects))
            count_rejects("normalize", res.rejects)
            await asyncio.sleep(0)


@app.timer(interval=5.0)
async def normalize_rereads() -> None:
    check_rereads(offset_watch, "normalize", die)
