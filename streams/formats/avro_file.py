"""An Avro object container *file* (what ``cdrflow publish --format avro`` reads), block by block.

Unlike :func:`streams.codecs.read_container`, which decides a whole Kafka message at once, a
file is read up to its damage: every block whose sync marker checks out yields its records,
and the first damaged block (truncated, corrupt sync marker, undecodable) ends the file with
one ``fatal`` reject naming the byte offset. The records before it are good and are kept; the
CDR keys make re-publishing the repaired file harmless.
"""
from __future__ import annotations

import io
from typing import Iterator

from fastavro import schemaless_reader

from streams.codecs import _HEADER_SCHEMA, SYNC_SIZE, _inflate, _read_long, _writer
from streams.core.reasons import HINTS, Reason, RejectError
from streams.formats.common import Parsed

RAW_CAP = 256 << 10          # bytes of a damaged tail kept in its reject (a Kafka message must stay small)
MAX_BLOCK_BYTES = 64 << 20   # one decompressed block; a switch writes blocks of a few hundred KiB


def read_header(data: bytes) -> tuple[str, object, bytes, bytes, int]:
    """(writer schema full name, parsed schema, codec, sync marker, offset of the first block)."""
    try:
        buf = io.BytesIO(data)
        header = schemaless_reader(buf, _HEADER_SCHEMA, None)
        if header["magic"] != b"Obj\x01":
            raise ValueError("no Avro magic")
        schema_json = header["meta"].get("avro.schema")
        if not schema_json:
            raise ValueError("header has no avro.schema")
        parsed, name, _ = _writer(bytes(schema_json))
    except Exception as exc:  # noqa: BLE001 - fastavro raises many types on garbage
        raise RejectError(Reason.UNDECODABLE, f"not an Avro container: {type(exc).__name__}: {exc}") from None
    return name, parsed, header["meta"].get("avro.codec") or b"null", header["sync"], buf.tell()


def iter_records(data: bytes, parsed, codec: bytes, sync: bytes, pos: int) -> Iterator[Parsed]:
    """Records numbered from 1 (``Parsed.line``); the damage, if any, as a last fatal Parsed."""
    n, end = 0, len(data)
    while pos < end:
        block_at = pos
        try:
            count, pos = _read_long(data, pos)
            size, pos = _read_long(data, pos)
            if count < 0 or size < 0:
                raise RejectError(Reason.UNDECODABLE, f"block header claims {count} records / {size} bytes")
            if pos + size + SYNC_SIZE > end:
                raise RejectError(Reason.UNDECODABLE, f"file ends inside a block of {size} bytes (truncated)")
            if data[pos + size:pos + size + SYNC_SIZE] != sync:
                raise RejectError(Reason.UNDECODABLE, "block is not followed by the file's sync marker (corrupt)")
            block = _inflate(data[pos:pos + size], codec, MAX_BLOCK_BYTES)
            bbuf = io.BytesIO(block)
            # Decode the whole block before yielding any of it: a block is good or damaged as one.
            recs = [schemaless_reader(bbuf, parsed, None) for _ in range(count)]
            if bbuf.tell() != len(block):
                raise RejectError(Reason.UNDECODABLE, f"block holds {len(block) - bbuf.tell()} bytes after its {count} records")
        except RejectError as exc:
            yield _damage(data, block_at, n, exc)
            return
        except Exception as exc:  # noqa: BLE001 - EOFError, ValueError, MemoryError... all mean damage
            yield _damage(data, block_at, n, RejectError(Reason.UNDECODABLE,
                                                          f"block does not decode: {type(exc).__name__}: {exc}"))
            return
        pos += size + SYNC_SIZE
        for rec in recs:
            n += 1
            yield Parsed(n, b"", record=rec)


def _damage(data: bytes, at: int, good: int, exc: RejectError) -> Parsed:
    why = exc.detail.removesuffix(f" ({HINTS[exc.reason]})")
    return Parsed(good + 1, data[at:at + RAW_CAP], fatal=True, error=RejectError(
        exc.reason, f"byte {at}, after record {good}: {why}; the rest of the file is not read"))
