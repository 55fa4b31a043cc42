"""Decode + normalise one batch of raw Kafka messages, without Faust.

The normalise agent is a thin wrapper around ``Normalizer.run_safe``; tests and benchmarks call
it directly.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from streams import codecs
from streams.core.charge import make_reject
from streams.core.normalize import Limits, normalize_batch
from streams.core.reasons import Reason, RejectError
from streams.core.sources import NumberingContext, SourceDirectory
from streams.msg import Msg
from streams.partitioning import partition_for


@dataclass
class NormalizeResult:
    by_partition: dict[int, list[dict]] = field(default_factory=lambda: defaultdict(list))
    rejects: list[dict] = field(default_factory=list)
    records_in: int = 0
    normalized: int = 0


class Normalizer:
    def __init__(self, partitions: int, sources: SourceDirectory | None = None,
                 max_message_bytes: int = 8 << 20, max_batch_records: int = 50_000,
                 limits: Limits | None = None):
        self.partitions = partitions
        self.sources = sources or SourceDirectory()
        self.max_message_bytes = max_message_bytes
        self.max_batch_records = max_batch_records
        self.limits = limits
        self.sb = codecs.book()

    def _ctx(self, raw: dict) -> NumberingContext:
        return self.sources.context_for(raw.get("switch_id"), raw.get("trunk"))

    def run(self, msgs: list[Msg], now_ms: int) -> NormalizeResult:
        res = NormalizeResult()
        raws: list[dict] = []
        origin: list[tuple[Msg, int, bytes]] = []
        for m in msgs:
            for idx, raw, raw_bytes in self._decode(m, res, now_ms):
                raws.append(raw)
                origin.append((m, idx, raw_bytes))
        if not raws:
            return res
        kwargs = {"limits": self.limits} if self.limits else {}
        canon, rejected = normalize_batch(raws, self._ctx, now_ms, **kwargs)
        bad = {i: err for i, err in rejected}
        ok_iter = iter(canon)
        for i, (m, idx, raw_bytes) in enumerate(origin):
            err = bad.get(i)
            if err is not None:
                res.rejects.append(make_reject(err.reason, err.detail, "normalize", m.topic, m.partition,
                                               m.offset, idx, raw_bytes, now_ms,
                                               account=_str_or_none(raws[i].get("account"))))
                continue
            c = next(ok_iter)
            c["source_topic"] = m.topic
            c["source_partition"] = m.partition
            c["source_offset"] = m.offset
            c["source_index"] = idx
            c["ingest_ms"] = m.timestamp_ms
            c["raw"] = raw_bytes
            res.by_partition[partition_for(c["account"], self.partitions)].append(c)
            res.normalized += 1
        return res

    def run_safe(self, msgs: list[Msg], now_ms: int) -> NormalizeResult:
        """``run`` that cannot fail: on an unexpected error, retry message by message and reject
        a message that still fails, so one poisonous input never stops the agent."""
        try:
            return self.run(msgs, now_ms)
        except Exception:
            merged = NormalizeResult()
            for m in msgs:
                try:
                    r = self.run([m], now_ms)
                except Exception as exc:
                    merged.records_in += 1
                    merged.rejects.append(make_reject(
                        Reason.UNDECODABLE, f"input broke the normaliser ({type(exc).__name__}: {exc}); "
                        "please report it with the raw bytes", "normalize", m.topic, m.partition, m.offset, 0,
                        bytes(m.value or b""), now_ms))
                    continue
                for part, cdrs in r.by_partition.items():
                    merged.by_partition[part].extend(cdrs)
                merged.rejects.extend(r.rejects)
                merged.records_in += r.records_in
                merged.normalized += r.normalized
            return merged

    def _decode(self, m: Msg, res: NormalizeResult, now_ms: int):
        """Yield (index, raw record, single-record wire bytes); rejects whole messages that fail."""
        data = m.value or b""
        try:
            if len(data) > self.max_message_bytes:
                raise RejectError(Reason.OVERSIZE, f"message of {len(data)} bytes exceeds {self.max_message_bytes}")
            if codecs.is_container(data):
                name, records = codecs.decode_container(data, self.max_batch_records)
                if name != codecs.SWITCH_CDR:
                    raise RejectError(Reason.UNSUPPORTED_FORMAT, f"container of {name or 'unnamed'} records")
                res.records_in += len(records)
                for idx, rec in enumerate(records):
                    try:
                        wire = codecs.encode(codecs.SWITCH_CDR, rec, self.sb)
                    except Exception:  # a container from a newer writer may not fit our schema
                        wire = b""
                    yield idx, rec, wire
                return
            name, rec = codecs.decode(data, self.sb, self.max_batch_records)
            if name != codecs.SWITCH_CDR:
                raise RejectError(Reason.UNSUPPORTED_FORMAT, f"{name} is not a switch CDR type")
            res.records_in += 1
            yield 0, rec, data
        except RejectError as exc:
            res.records_in += 1
            res.rejects.append(make_reject(exc.reason, exc.detail, "normalize", m.topic, m.partition,
                                           m.offset, 0, bytes(data), now_ms))


def _str_or_none(v) -> str | None:
    return v if isinstance(v, str) else None
