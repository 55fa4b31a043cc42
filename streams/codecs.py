"""Wire formats: Confluent framing (magic 0 + 4-byte schema id + schemaless Avro) and Avro
object containers (batches of CDRs in one message, as switches write CDR files).

Without a Schema Registry, ids come from ``schemas/registry.json`` (pinned). With one,
``RegistrySchemaBook`` resolves ids through ``confluent_kafka.schema_registry``.
Decoding checks everything a hostile or broken producer can get wrong and raises
``RejectError`` with the matching reason code; it never lets an exception of another kind out.
"""
from __future__ import annotations

import io
import struct
from typing import Any, Iterable

import fastavro
from fastavro import parse_schema, schemaless_reader, schemaless_writer

import schemas
from streams.core.reasons import Reason, RejectError

MAGIC = 0
HEADER = struct.Struct(">bI")
OCF_MAGIC = b"Obj\x01"

# Names used across the code base, so a typo is an AttributeError rather than a silent miss.
SWITCH_CDR = "cdr.v1.SwitchCdr"
CANONICAL = "cdr.v1.CanonicalCdr"
CANONICAL_BATCH = "cdr.v1.CanonicalBatch"
RATED = "cdr.v1.RatedCdr"
RATED_BATCH = "cdr.v1.RatedBatch"
REJECTED = "cdr.v1.RejectedCdr"
BARRING = "account.v1.BarringEvent"
STATE = "account.v1.AccountState"
CONTROL = "account.v1.ControlCommand"
NOTIFICATION = "account.v1.Notification"
REPLY = "account.v1.CommandReply"

# Batch types and the record type they carry.
BATCH_OF = {CANONICAL_BATCH: CANONICAL, RATED_BATCH: RATED}


class SchemaBook:
    """Parsed schemas by full name (what we write and read into) and by local wire id.

    An id names one exact schema version forever (schemas/registry.json): a message written
    under an older version keeps its id, so decoding resolves that id's writer schema against
    our current reader schema - added fields come back with their defaults, during a rolling
    upgrade and for whatever already sits on a topic."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}
        self.parsed: dict[str, Any] = {}
        # Parse referenced record types before the batches that use them.
        order = sorted(schemas.all_names(), key=lambda n: n.endswith("Batch"))
        for name in order:
            self.parsed[name] = parse_schema(schemas.load_raw(name), named_schemas=self.named)
        # Write ids: the id pinned for each type's current schema.
        self.id_of: dict[str, int] = dict(schemas.pinned_ids())
        self.versions = schemas.pinned_versions()
        self.name_of: dict[int, str] = {i: v["name"] for i, v in self.versions.items()}
        # Current versions decode straight; older ones are parsed on first sight.
        self.by_id: dict[int, Any] = {i: self.parsed[n] for n, i in self.id_of.items()}
        self._resolving: dict[int, tuple[Any, Any]] = {}

    def schema_id(self, name: str) -> int:
        sid = self.id_of.get(name)
        if sid is None:
            if name in self.parsed:
                raise KeyError(f"{name}: its current schema has no pinned wire id (it changed); run "
                               f"`python -m streams.registry pin` and commit schemas/registry.json and schemas/history/wire/")
            raise KeyError(name)
        return sid

    def writer(self, schema_id: int):
        """The parsed writer schema of ``schema_id`` (None when the id was never given out)."""
        hit = self.by_id.get(schema_id)
        if hit is None and schema_id in self.versions:
            hit = self._older(schema_id)[0]
        return hit

    def reader_for(self, schema_id: int):
        """The reader schema to resolve ``schema_id``'s writer against: None when the id is the
        current version (no resolution needed), else our current schema of that name (None
        too if we no longer have the type: read it as written)."""
        if schema_id in self.by_id or schema_id not in self.versions:
            return None
        return self._older(schema_id)[1]

    def _older(self, schema_id: int) -> tuple[Any, Any]:
        hit = self._resolving.get(schema_id)
        if hit is None:
            name = self.name_of[schema_id]
            writer = parse_schema(schemas.load_pinned(schema_id), _write_hint=False)
            reader = (parse_schema(schemas.inline_schema(name), _write_hint=False)
                      if name in self.parsed else None)
            hit = self._resolving[schema_id] = (writer, reader)
        return hit


_BOOK: SchemaBook | None = None


def book() -> SchemaBook:
    global _BOOK
    if _BOOK is None:
        _BOOK = SchemaBook()
    return _BOOK


_UNSET = object()
_wire: Any = _UNSET


def registry_wire():
    """The process's Schema Registry serializer when ``CDRFLOW_SCHEMA_REGISTRY_URL`` is set,
    else None (pinned ids). Every encode/decode without an explicit SchemaBook goes through it,
    so publisher, agents, sink and controllers all write and read one id space."""
    global _wire
    if _wire is _UNSET:
        from streams.registry import wire_from_settings

        w = wire_from_settings()
        _wire = w if getattr(w, "kind", "local") == "registry" else None
    return _wire


def reset_wire() -> None:
    """Forget the serializer (tests that change CDRFLOW_SCHEMA_REGISTRY_URL)."""
    global _wire
    _wire = _UNSET


def encode(name: str, record: dict, sb: SchemaBook | None = None) -> bytes:
    if sb is None and (w := registry_wire()) is not None:
        return w.encode(name, record)
    sb = sb or book()
    buf = io.BytesIO()
    buf.write(HEADER.pack(MAGIC, sb.schema_id(name)))
    schemaless_writer(buf, sb.parsed[name], record)
    return buf.getvalue()


def encode_batch(batch_name: str, records: list[dict], sb: SchemaBook | None = None) -> bytes:
    return encode(batch_name, {"records": records}, sb)


def encode_container(name: str, records: Iterable[dict], codec: str = "null",
                     sb: SchemaBook | None = None) -> bytes:
    """An Avro object container file in memory: how a switch ships a CDR file."""
    sb = sb or book()
    buf = io.BytesIO()
    fastavro.writer(buf, sb.parsed[name], records, codec=codec)
    return buf.getvalue()


def decode(data: bytes, sb: SchemaBook | None = None, max_items: int = 100_000) -> tuple[str, dict]:
    """Decode one Confluent-framed record. Raises RejectError with the reason code."""
    if sb is None and (w := registry_wire()) is not None:
        return w.decode(data, max_items)
    sb = sb or book()
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < HEADER.size:
        raise RejectError(Reason.BAD_MAGIC, f"message of {len(data or b'')} bytes is too short for a wire header")
    magic, schema_id = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise RejectError(Reason.BAD_MAGIC, f"first byte is {data[0]:#04x}, expected 0x00")
    schema = sb.writer(schema_id)
    if schema is None:
        raise RejectError(Reason.UNKNOWN_SCHEMA, f"schema id {schema_id} is not registered")
    name = sb.name_of[schema_id]
    buf = io.BytesIO(data)
    buf.seek(HEADER.size)
    record = _read(buf, schema, name, len(data), max_items, sb.reader_for(schema_id))
    if buf.tell() != len(data):
        raise RejectError(Reason.TRAILING_BYTES, f"{len(data) - buf.tell()} bytes after the {name} record")
    return name, record


def _read(buf: io.BytesIO, schema: Any, name: str, size: int, max_items: int, reader: Any = None) -> dict:
    try:
        record = schemaless_reader(buf, schema, reader)
    except (EOFError, StopIteration) as exc:
        raise RejectError(Reason.UNDECODABLE, f"{name} body ends early: {exc or 'truncated'}") from None
    except MemoryError:
        raise RejectError(Reason.ARRAY_BOMB, f"{name} claims an impossible number of items") from None
    except Exception as exc:  # fastavro raises many types on garbage; all mean the same thing here
        raise RejectError(Reason.UNDECODABLE, f"{name} body does not decode: {type(exc).__name__}: {exc}") from None
    if name in BATCH_OF and len(record.get("records", ())) > max_items:
        raise RejectError(Reason.ARRAY_BOMB, f"{name} holds {len(record['records'])} records, limit {max_items}")
    return record


def is_container(data: bytes) -> bool:
    return data[:4] == OCF_MAGIC


# Decompressed bytes one container message may expand to (the agent passes the setting).
DEFAULT_MAX_DECODED_BYTES = 32 << 20
SYNC_SIZE = 16
_HEADER_SCHEMA = parse_schema({
    "type": "record", "name": "org.apache.avro.file.Header",
    "fields": [{"name": "magic", "type": {"type": "fixed", "name": "Magic", "size": 4}},
               {"name": "meta", "type": {"type": "map", "values": "bytes"}},
               {"name": "sync", "type": {"type": "fixed", "name": "Sync", "size": SYNC_SIZE}}]})
_WRITER_CACHE: dict[bytes, tuple[Any, str, bool]] = {}
_WRITER_CACHE_MAX = 64


class ContainerItems:
    """The records of one Avro container with each item's exact Avro body (under the writer
    schema), so every item can be handed on or rejected with the bytes it came from."""

    __slots__ = ("name", "records", "bodies", "schema_json", "same_as_local", "_one_header")

    def __init__(self, name: str, schema_json: bytes, same_as_local: bool):
        self.name = name
        self.records: list[dict] = []
        self.bodies: list[bytes] = []
        self.schema_json = schema_json
        # True when the writer schema encodes exactly like our pinned schema of that name, so
        # an item's body framed with our id is its single-record wire form, with no re-encode.
        self.same_as_local = same_as_local
        self._one_header: bytes | None = None

    def single(self, i: int) -> bytes:
        """Item ``i`` alone as an uncompressed container with the writer schema: inspectable
        and re-publishable to cdr.raw even when the schema is not ours."""
        if self._one_header is None:
            meta = {"avro.schema": self.schema_json, "avro.codec": b"null"}
            buf = io.BytesIO()
            schemaless_writer(buf, _HEADER_SCHEMA, {"magic": OCF_MAGIC, "meta": meta, "sync": _ONE_SYNC})
            self._one_header = buf.getvalue()
        body = self.bodies[i]
        return b"".join((self._one_header, _long(1), _long(len(body)), body, _ONE_SYNC))


_ONE_SYNC = b"cdrflow-1-record"   # any 16 bytes: the sync marker only has to repeat after each block


def _long(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n & ~0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _read_long(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data):
            raise RejectError(Reason.UNDECODABLE, "Avro container ends inside a block header")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return (n >> 1) ^ -(n & 1), pos
        shift += 7
        if shift > 63:
            raise RejectError(Reason.UNDECODABLE, "Avro container block header holds an over-long varint")


def _writer(schema_json: bytes) -> tuple[Any, str, bool]:
    """(parsed writer schema, full name, same encoding as our schema of that name), cached:
    a switch sends the same header with every file."""
    hit = _WRITER_CACHE.get(schema_json)
    if hit is not None:
        return hit
    import json

    from fastavro.schema import to_parsing_canonical_form

    raw = json.loads(schema_json)
    parsed = parse_schema(raw)
    name = raw.get("name", "") if isinstance(raw, dict) else ""
    if isinstance(raw, dict) and raw.get("namespace") and "." not in name:
        name = f"{raw['namespace']}.{name}"
    same = False
    if name in schemas.all_names():
        same = to_parsing_canonical_form(raw) == to_parsing_canonical_form(schemas.load_raw(name))
    if len(_WRITER_CACHE) >= _WRITER_CACHE_MAX:
        _WRITER_CACHE.clear()
    hit = _WRITER_CACHE[schema_json] = (parsed, name, same)
    return hit


def _inflate(block: bytes, codec: bytes, budget: int) -> bytes:
    """A block's decompressed bytes, never producing more than ``budget + 1`` of them."""
    if codec == b"null":
        out = block
    elif codec == b"deflate":
        import zlib

        d = zlib.decompressobj(-15)
        try:
            # max_length stops inflating at the cap: a 1 MiB bomb never allocates its 1 GiB.
            out = d.decompress(block, budget + 1)
        except zlib.error as exc:
            raise RejectError(Reason.UNDECODABLE, f"deflate block does not inflate: {exc}") from None
        if len(out) <= budget and not d.eof:
            raise RejectError(Reason.UNDECODABLE, "deflate block is truncated")
    else:
        raise RejectError(Reason.UNSUPPORTED_FORMAT,
                          f"container codec {codec.decode(errors='replace')[:20]!r} is not accepted (use null or deflate)")
    if len(out) > budget:
        raise RejectError(Reason.OVERSIZE, "container decompresses to more than the per-message maximum")
    return out


def read_container(data: bytes, max_items: int = 100_000,
                   max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> ContainerItems:
    """Decode an Avro object container (the writer schema travels in its header), block by
    block, bounding what the message may cost before paying it: the declared record count
    (``array_bomb``) and the decompressed size (``oversize``, checked while inflating)."""
    try:
        buf = io.BytesIO(data)
        header = schemaless_reader(buf, _HEADER_SCHEMA, None)
        meta, sync = header["meta"], header["sync"]
        schema_json = meta.get("avro.schema")
        if not schema_json:
            raise RejectError(Reason.UNDECODABLE, "Avro container header has no avro.schema")
        codec = meta.get("avro.codec") or b"null"
        parsed, name, same = _writer(bytes(schema_json))
        items = ContainerItems(name, bytes(schema_json), same)
        records, bodies = items.records, items.bodies
        pos, end, budget, count_total = buf.tell(), len(data), max_decoded_bytes, 0
        while pos < end:
            count, pos = _read_long(data, pos)
            size, pos = _read_long(data, pos)
            if count < 0 or size < 0 or pos + size + SYNC_SIZE > end:
                raise RejectError(Reason.UNDECODABLE, f"container block of {count} records / {size} bytes is malformed")
            count_total += count
            if count_total > max_items:
                raise RejectError(Reason.ARRAY_BOMB, f"container holds more than {max_items} records")
            block = _inflate(data[pos:pos + size], codec, budget)
            budget -= len(block)
            pos += size
            if data[pos:pos + SYNC_SIZE] != sync:
                raise RejectError(Reason.UNDECODABLE, "container block is not followed by the sync marker")
            pos += SYNC_SIZE
            bbuf = io.BytesIO(block)
            start = 0
            for _ in range(count):
                records.append(schemaless_reader(bbuf, parsed, None))
                stop = bbuf.tell()
                bodies.append(block[start:stop])
                start = stop
        return items
    except RejectError:
        raise
    except MemoryError:
        raise RejectError(Reason.ARRAY_BOMB, "container block claims an impossible number of records") from None
    except (EOFError, StopIteration):
        raise RejectError(Reason.UNDECODABLE, "Avro container ends early") from None
    except Exception as exc:  # fastavro raises many types on garbage; all mean the same thing here
        raise RejectError(Reason.UNDECODABLE, f"Avro container does not decode: {type(exc).__name__}: {exc}") from None


def decode_container(data: bytes, max_items: int = 100_000,
                     max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES) -> tuple[str, list[dict]]:
    """(writer schema's full name, records) of an Avro object container; see read_container."""
    items = read_container(data, max_items, max_decoded_bytes)
    return items.name, items.records
