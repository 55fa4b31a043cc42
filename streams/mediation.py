"""Decode + map + normalise one batch of raw Kafka messages, without Faust.

The normalise agent is a thin wrapper around ``Normalizer.run_safe``; tests and benchmarks call
it directly.

Accepted on ``cdr.raw`` (see streams/formats/__init__.py for the record types):

* one Confluent-framed record of any raw switch type (SwitchCdr, AsteriskCdr, FreeswitchCdr,
  KamailioCdr, Ts32298VoiceRecord);
* a Confluent-framed ``SwitchBatch`` (an array mixing any of them);
* an Avro object container of any of them (a switch's CDR file; the writer schema travels
  in the file, so a newer writer with added fields still reads).

Every record is mapped to a generic SwitchCdr, then validated by
:func:`streams.core.normalize.normalize_batch`. A record whose mapping fails becomes a reject
with its reason, its single-record wire bytes and its source coordinates; it never stops the
batch. Counts balance: ``records_in == normalized + len(rejects)``.

Single-record wire bytes (``raw`` on canonical CDRs and rejects) are what ``cdrflow recycle``
re-publishes: for a single-record message they are the message itself; for an item of a batch
or container they are that item re-encoded on its own with the wire format in use. Either way,
re-publishing them decodes to the same record, so the CDR key - and the charge stage's
duplicate check - is unchanged.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from streams import codecs, formats
from streams.core.charge import make_reject
from streams.core.normalize import Limits, normalize_batch
from streams.core.reasons import Reason, RejectError
from streams.core.sources import NumberingContext, SourceDirectory
from streams.msg import Msg
from streams.partitioning import partition_for
from streams.registry import LocalWire

SWITCH_CDR = codecs.SWITCH_CDR


@dataclass
class NormalizeResult:
    by_partition: dict[int, list[dict]] = field(default_factory=lambda: defaultdict(list))
    rejects: list[dict] = field(default_factory=list)
    records_in: int = 0
    normalized: int = 0


class Normalizer:
    def __init__(self, partitions: int, sources: SourceDirectory | None = None,
                 max_message_bytes: int = 8 << 20, max_batch_records: int = 50_000,
                 limits: Limits | None = None, wire=None):
        self.partitions = partitions
        self.sources = sources or SourceDirectory()
        self.max_message_bytes = max_message_bytes
        self.max_batch_records = max_batch_records
        self.limits = limits
        self.sb = codecs.book()
        # LocalWire (pinned ids) or streams.registry.RegistryWire; see wire_from_settings.
        self.wire = wire or LocalWire(self.sb)
        self._local = isinstance(self.wire, LocalWire)

    def _ctx(self, raw: dict) -> NumberingContext:
        return self.sources.context_for(raw.get("switch_id"), raw.get("trunk"))

    def _encode(self, name: str, rec: dict) -> bytes:
        try:
            if self._local:
                return codecs.encode(name, rec, self.sb)
            return self.wire.encode(name, rec)
        except Exception:  # a container from a newer/older writer may not fit our schema
            return b""

    def run(self, msgs: list[Msg], now_ms: int) -> NormalizeResult:
        res = NormalizeResult()
        raws: list[dict] = []
        origin: list[tuple[Msg, int, bytes]] = []
        ctx_for = self.sources.context_for
        for m in msgs:
            for idx, name, rec, raw_bytes in self._decode(m, res, now_ms):
                if name is not SWITCH_CDR:
                    # Switch-specific record: map to a SwitchCdr first (times need the zone).
                    try:
                        rec = formats.to_switch_cdr(name, rec, ctx_for)
                    except RejectError as err:
                        res.rejects.append(make_reject(err.reason, f"{name}: {err.detail}", "normalize", m.topic,
                                                       m.partition, m.offset, idx, raw_bytes, now_ms,
                                                       account=_account_of(rec)))
                        continue
                raws.append(rec)
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

    def _items(self, name: str, records: list[dict], res: NormalizeResult):
        """(index, type name, record, single-record wire bytes) of a batch or container."""
        if name == SWITCH_CDR:
            res.records_in += len(records)
            enc = self._encode
            for idx, rec in enumerate(records):
                yield idx, SWITCH_CDR, rec, enc(SWITCH_CDR, rec)
            return
        if name == formats.SWITCH_BATCH:
            # A container of batches: flatten, numbering items across the whole message.
            records = [r for b in records for r in (b.get("records") or ())]
            if len(records) > self.max_batch_records:
                raise RejectError(Reason.ARRAY_BOMB, f"batch holds {len(records)} records, limit {self.max_batch_records}")
            kinds = [_kind_or_none(r) for r in records]
        elif name in formats.RAW_TYPES:
            kinds = [name] * len(records)
        else:
            raise RejectError(Reason.UNSUPPORTED_FORMAT, f"{name or 'unnamed'} is not a switch CDR type")
        res.records_in += len(records)
        for idx, (kind, rec) in enumerate(zip(kinds, records)):
            if kind is None:  # unreachable with our schema's union, kept for hostile writers
                yield idx, "", rec, b""
            else:
                # Intern the type name so the hot loop can compare by identity.
                yield idx, (SWITCH_CDR if kind == SWITCH_CDR else kind), rec, self._encode(kind, rec)

    def _decode(self, m: Msg, res: NormalizeResult, now_ms: int):
        """Yield (index, type name, raw record, single-record wire bytes); rejects whole
        messages that fail to decode."""
        data = m.value or b""
        try:
            if len(data) > self.max_message_bytes:
                raise RejectError(Reason.OVERSIZE, f"message of {len(data)} bytes exceeds {self.max_message_bytes}")
            if codecs.is_container(data):
                name, records = codecs.decode_container(data, self.max_batch_records)
                yield from self._items(name, records, res)
                return
            if self._local:
                name, rec = codecs.decode(data, self.sb, self.max_batch_records)
            else:
                name, rec = self.wire.decode(data, self.max_batch_records)
            if name == SWITCH_CDR:
                res.records_in += 1
                yield 0, SWITCH_CDR, rec, data
                return
            if name == formats.SWITCH_BATCH:
                yield from self._items(name, [rec], res)
                return
            if name not in formats.RAW_TYPES:
                raise RejectError(Reason.UNSUPPORTED_FORMAT, f"{name} is not a switch CDR type")
            res.records_in += 1
            yield 0, name, rec, data
        except RejectError as exc:
            res.records_in += 1
            res.rejects.append(make_reject(exc.reason, exc.detail, "normalize", m.topic, m.partition,
                                           m.offset, 0, bytes(data), now_ms))


def _kind_or_none(rec) -> str | None:
    try:
        return formats.kind_of(rec)
    except RejectError:
        return None


def _account_of(rec) -> str | None:
    if not isinstance(rec, dict):
        return None
    return _str_or_none(rec.get("accountcode") or rec.get("account") or rec.get("served_msisdn"))


def _str_or_none(v) -> str | None:
    return v if isinstance(v, str) and v else None


def load_sources(path) -> SourceDirectory:
    """The switch/trunk numbering contexts from a YAML file (see SourceDirectory.from_dict);
    the built-in default (Netherlands, trunk prefix 0, international prefix 00) without one."""
    if not path:
        return SourceDirectory()
    import yaml

    with open(path) as fh:
        return SourceDirectory.from_dict(yaml.safe_load(fh))
