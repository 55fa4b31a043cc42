"""Decode + map + normalise one batch of raw Kafka messages, without Faust.

The normalise agent is a thin wrapper around ``Normalizer.iter_results``; tests and benchmarks call
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
from streams.core.account_map import AccountMap
from streams.core.sources import NumberingContext, SourceDirectory
from streams.msg import Msg
from streams.partitioning import partition_for
from streams.registry import LocalWire

SWITCH_CDR = codecs.SWITCH_CDR
DEFAULT_MAX_FIELD_CHARS = 512


@dataclass
class NormalizeResult:
    by_partition: dict[int, list[dict]] = field(default_factory=lambda: defaultdict(list))
    rejects: list[dict] = field(default_factory=list)
    records_in: int = 0
    normalized: int = 0

    def merge(self, other: "NormalizeResult") -> None:
        for part, cdrs in other.by_partition.items():
            self.by_partition[part].extend(cdrs)
        self.rejects.extend(other.rejects)
        self.records_in += other.records_in
        self.normalized += other.normalized


class _Pending:
    """Mapped records of one or more messages waiting for normalize_batch, with where each
    came from and its raw bytes: ``raw`` (compact single-record wire bytes, None where our
    schema cannot hold the item) and ``exact`` ((container, index) to rebuild the item exactly
    as the writer sent it, for a reject)."""

    __slots__ = ("raws", "origin")

    def __init__(self) -> None:
        self.raws: list[dict] = []
        self.origin: list[tuple] = []


def _reject_raw(raw: bytes | None, exact) -> bytes:
    if exact is not None:
        return exact[0].single(exact[1])
    return raw or b""


class Normalizer:
    def __init__(self, partitions: int, sources: SourceDirectory | None = None,
                 max_message_bytes: int = 8 << 20, max_batch_records: int = 50_000,
                 limits: Limits | None = None, wire=None,
                 max_decoded_bytes: int = codecs.DEFAULT_MAX_DECODED_BYTES,
                 max_field_chars: int = DEFAULT_MAX_FIELD_CHARS, account_map: AccountMap | None = None):
        self.partitions = partitions
        self.sources = sources or SourceDirectory()
        # The sources file's account_map section travels with the directory (see load_sources).
        self.account_map = account_map if account_map is not None else getattr(self.sources, "account_map", None)
        self.max_message_bytes = max_message_bytes
        self.max_batch_records = max_batch_records
        self.max_decoded_bytes = max_decoded_bytes
        self.max_field_chars = max_field_chars
        self.limits = limits
        self.sb = codecs.book()
        # LocalWire (pinned ids) or streams.registry.RegistryWire; see wire_from_settings.
        self.wire = wire or LocalWire(self.sb)
        self._local = isinstance(self.wire, LocalWire)

    def _ctx(self, raw: dict) -> NumberingContext:
        return self.sources.context_for(raw.get("switch_id"), raw.get("trunk"))

    def _encode(self, name: str, rec: dict) -> bytes | None:
        try:
            if self._local:
                return codecs.encode(name, rec, self.sb)
            return self.wire.encode(name, rec)
        except Exception:  # a container from a newer/older writer may not fit our schema
            return None

    def run(self, msgs: list[Msg], now_ms: int) -> NormalizeResult:
        res = NormalizeResult()
        for part in self.iter_results(msgs, now_ms, 0):
            res.merge(part)
        return res

    def run_safe(self, msgs: list[Msg], now_ms: int) -> NormalizeResult:
        """``run``; kept as the agent-facing name. Input can no longer make ``run`` fail: a
        message that breaks decoding or mapping is rejected on its own (see iter_results)."""
        return self.run(msgs, now_ms)

    def iter_results(self, msgs: list[Msg], now_ms: int, chunk_records: int = 0):
        """Normalise ``msgs`` and yield results of at most ``chunk_records`` CDRs each (0: one
        result). Bounding the work between yields lets the agent send, and the event loop
        heartbeat and serve other partitions, while a 50,000-record file is being processed.

        A message is decoded and mapped whole before any of its records is handed on, so a
        message that breaks the normaliser is rejected whole and none of it is output."""
        res = NormalizeResult()
        pend = _Pending()
        for m in msgs:
            mark = (len(res.rejects), res.records_in, len(pend.raws))
            try:
                self._message(m, res, pend, now_ms)
            except Exception as exc:  # noqa: BLE001 - one poisonous input must never stop the agent
                del res.rejects[mark[0]:]
                res.records_in = mark[1] + 1
                del pend.raws[mark[2]:], pend.origin[mark[2]:]
                res.rejects.append(make_reject(
                    Reason.UNDECODABLE, f"input broke the normaliser ({type(exc).__name__}: {str(exc)[:200]}); "
                    "please report it with the raw bytes", "normalize", m.topic, m.partition, m.offset, 0,
                    bytes(m.value or b""), now_ms))
                continue
            while chunk_records and len(pend.raws) >= chunk_records:
                self._flush(pend, res, now_ms, chunk_records)
                yield res
                res = NormalizeResult()
        self._flush(pend, res, now_ms, len(pend.raws))
        yield res

    def _flush(self, pend: _Pending, res: NormalizeResult, now_ms: int, n: int) -> None:
        raws, origin = pend.raws[:n], pend.origin[:n]
        del pend.raws[:n], pend.origin[:n]
        if not raws:
            return
        kwargs = {"limits": self.limits} if self.limits else {}
        canon, rejected = normalize_batch(raws, self._ctx, now_ms, account_map=self.account_map, **kwargs)
        bad = {i: err for i, err in rejected}
        ok_iter = iter(canon)
        for i, (m, idx, raw_bytes, exact) in enumerate(origin):
            err = bad.get(i)
            if err is not None:
                res.rejects.append(make_reject(err.reason, err.detail, "normalize", m.topic, m.partition,
                                               m.offset, idx, _reject_raw(raw_bytes, exact), now_ms,
                                               account=_str_or_none(raws[i].get("account"))))
                continue
            c = next(ok_iter)
            c["source_topic"] = m.topic
            c["source_partition"] = m.partition
            c["source_offset"] = m.offset
            c["source_index"] = idx
            c["ingest_ms"] = m.timestamp_ms
            c["raw"] = raw_bytes if raw_bytes is not None else exact[0].single(exact[1])
            res.by_partition[partition_for(c["account"], self.partitions)].append(c)
            res.normalized += 1

    def _message(self, m: Msg, res: NormalizeResult, pend: _Pending, now_ms: int) -> None:
        """Decode and map one message into ``pend``; its rejects go to ``res``."""
        ctx_for = self.sources.context_for
        cap = self.max_field_chars
        for idx, name, rec, raw_bytes, exact in self._decode(m, res, now_ms):
            big = _oversize_field(rec, cap)
            if big is not None:
                res.rejects.append(make_reject(
                    Reason.OVERSIZE_FIELD, f"{name or 'record'}.{big[0]} holds {big[1]} characters, limit {cap}",
                    "normalize", m.topic, m.partition, m.offset, idx, _reject_raw(raw_bytes, exact), now_ms,
                    account=_short_account(rec, cap)))
                continue
            if name is not SWITCH_CDR:
                # Switch-specific record: map to a SwitchCdr first (times need the zone).
                try:
                    rec = formats.to_switch_cdr(name, rec, ctx_for)
                except RejectError as err:
                    res.rejects.append(make_reject(err.reason, f"{name}: {err.detail}", "normalize", m.topic,
                                                   m.partition, m.offset, idx, _reject_raw(raw_bytes, exact), now_ms,
                                                   account=_account_of(rec)))
                    continue
            pend.raws.append(rec)
            pend.origin.append((m, idx, raw_bytes, exact))

    def _items(self, batches: list[dict], res: NormalizeResult, fallback):
        """(index, type name, record, compact wire bytes, exact) of SwitchBatch records,
        numbering items across the whole message; an item our schema cannot re-encode keeps
        the bytes of the batch that held it (``fallback(batch index)`` -> (raw, exact))."""
        flat = [(b, r) for b, batch in enumerate(batches) for r in (batch.get("records") or ())]
        if len(flat) > self.max_batch_records:
            raise RejectError(Reason.ARRAY_BOMB, f"batch holds {len(flat)} records, limit {self.max_batch_records}")
        res.records_in += len(flat)
        for idx, (b, rec) in enumerate(flat):
            kind = _kind_or_none(rec)
            raw = None if kind is None else self._encode(kind, rec)
            if raw is not None:
                # Intern the type name so the hot loop can compare by identity.
                yield idx, (SWITCH_CDR if kind == SWITCH_CDR else kind), rec, raw, None
            else:  # kind None is unreachable with our schema's union, kept for hostile writers
                yield idx, kind or "", rec, *fallback(b)

    def _container(self, data: bytes, res: NormalizeResult):
        items = codecs.read_container(data, self.max_batch_records, self.max_decoded_bytes)
        name, records = items.name, items.records
        if name == formats.SWITCH_BATCH:
            yield from self._items(records, res, lambda b: (None, (items, b)))
            return
        if name not in formats.RAW_TYPES:
            raise RejectError(Reason.UNSUPPORTED_FORMAT, f"{name or 'unnamed'} is not a switch CDR type")
        res.records_in += len(records)
        kind = SWITCH_CDR if name == SWITCH_CDR else name
        if items.same_as_local and self._local:
            # The writer's bytes of an item are exactly our single-record body: frame, don't re-encode.
            head = codecs.HEADER.pack(codecs.MAGIC, self.sb.schema_id(name))
            for idx, (rec, body) in enumerate(zip(records, items.bodies)):
                yield idx, kind, rec, head + body, None
            return
        enc = self._encode
        for idx, rec in enumerate(records):
            # A foreign writer schema: the compact form for records we hand on, and the
            # writer's own bytes for any reject, so nothing is lost or silently coerced.
            yield idx, kind, rec, enc(name, rec), (items, idx)

    def _decode(self, m: Msg, res: NormalizeResult, now_ms: int):
        """Yield (index, type name, raw record, compact wire bytes, exact); rejects whole
        messages that fail to decode."""
        data = m.value or b""
        try:
            if len(data) > self.max_message_bytes:
                raise RejectError(Reason.OVERSIZE, f"message of {len(data)} bytes exceeds {self.max_message_bytes}")
            if codecs.is_container(data):
                # Decoded whole before the first yield: a bad block rejects the whole message.
                yield from list(self._container(data, res))
                return
            if self._local:
                name, rec = codecs.decode(data, self.sb, self.max_batch_records)
            else:
                name, rec = self.wire.decode(data, self.max_batch_records)
            if name == SWITCH_CDR:
                res.records_in += 1
                yield 0, SWITCH_CDR, rec, data, None
                return
            if name == formats.SWITCH_BATCH:
                whole = bytes(data)
                yield from list(self._items([rec], res, lambda b: (whole, None)))
                return
            if name not in formats.RAW_TYPES:
                raise RejectError(Reason.UNSUPPORTED_FORMAT, f"{name} is not a switch CDR type")
            res.records_in += 1
            yield 0, name, rec, data, None
        except RejectError as exc:
            res.records_in += 1
            res.rejects.append(make_reject(exc.reason, exc.detail, "normalize", m.topic, m.partition,
                                           m.offset, 0, bytes(data), now_ms))


def _oversize_field(rec, cap: int) -> tuple[str, int] | None:
    """The first string field longer than ``cap`` characters (switch records are flat)."""
    if not isinstance(rec, dict):
        return None
    for k, v in rec.items():
        if type(v) is str and len(v) > cap:
            return k, len(v)
    return None


def _short_account(rec, cap: int) -> str | None:
    acct = _account_of(rec)
    return acct if acct is not None and len(acct) <= cap else None


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
        data = yaml.safe_load(fh) or {}
    # account_map is not numbering: the directory is built without it and carries it along.
    rules = data.pop("account_map", None) if isinstance(data, dict) else None
    sources = SourceDirectory.from_dict(data)
    sources.account_map = AccountMap.from_list(rules)
    return sources
