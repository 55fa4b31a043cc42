"""Agent: raw switch CDRs -> canonical CDR batches per account partition, or rejects."""
from __future__ import annotations

from streams import codecs, topics
from streams.app import app, settings
from streams.batching import reread_if_skipped, to_msg
from streams.faust_compat import OffsetWatch
from streams.core.charge import utc_now_ms
from streams.metrics import count
from streams.core.normalize import Limits
from streams.mediation import Normalizer, load_sources
from streams.registry import wire_from_settings

raw_topic = app.topic(topics.RAW, partitions=settings.raw_partitions, value_serializer="raw")
normalized_topic = app.topic(topics.NORMALIZED, partitions=settings.partitions, value_serializer="raw")
rejected_topic = app.topic(topics.REJECTED, partitions=settings.partitions, value_serializer="raw")

normalizer = Normalizer(
    settings.partitions, sources=load_sources(settings.sources_file),
    max_message_bytes=settings.max_message_bytes, max_batch_records=settings.max_batch_records,
    # Older calls than the duplicate horizon are refused: a re-sent one could not be recognised.
    limits=Limits(max_age_s=settings.dedup_horizon_days * 86_400),
    wire=wire_from_settings(settings))


offset_watch = OffsetWatch()


@app.agent(raw_topic)
async def normalize(stream):
    async for events in stream.take_events(settings.batch_max, settings.batch_within_s):
        await reread_if_skipped(app, offset_watch, events, "normalize")
        res = normalizer.run_safe([to_msg(e) for e in events], utc_now_ms())
        for part, cdrs in res.by_partition.items():
            await normalized_topic.send(value=codecs.encode_batch(codecs.CANONICAL_BATCH, cdrs), partition=part)
        for rej in res.rejects:
            await rejected_topic.send(key=rej["reject_id"].encode(), value=codecs.encode(codecs.REJECTED, rej))
        count("records_in", res.records_in)
        count("normalized", res.normalized)
        count("rejected_normalize", len(res.rejects))
