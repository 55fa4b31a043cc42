"""Real switch CDR formats: file parsers and the mapping of each raw record type to the
generic ``cdr.v1.SwitchCdr`` dict that :mod:`streams.core.normalize` validates.

Pure code: no Kafka client is imported here, so every mapping is unit-testable.

Raw record types (Avro, schemas/cdr.v1.<Name>.avsc, pinned ids in schemas/registry.json):

=========================  ==  ==========================================================
cdr.v1.SwitchCdr            1  generic; passes through unchanged
cdr.v1.AsteriskCdr         10  Master.csv line (local time strings in the switch zone)
cdr.v1.FreeswitchCdr       11  mod_json_cdr variables (epoch seconds) or mod_cdr_csv (local stamps)
cdr.v1.KamailioCdr         12  acc / dialog CDR (db_text, JSON, syslog key=value)
cdr.v1.Ts32298VoiceRecord  13  3GPP MO/MT call record, partial records of long calls
cdr.v1.SwitchBatch         14  array of any of the above (mixed types allowed)
=========================  ==  ==========================================================
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

from streams.core.reasons import Reason, RejectError
from streams.formats import asterisk, freeswitch, kamailio, ts32298
from streams.formats.common import CtxFor, Parsed

SWITCH_CDR = "cdr.v1.SwitchCdr"
SWITCH_BATCH = "cdr.v1.SwitchBatch"
ASTERISK = asterisk.NAME
FREESWITCH = freeswitch.NAME
KAMAILIO = kamailio.NAME
TS32298 = ts32298.NAME

MAPPERS: dict[str, Callable[[dict, CtxFor], dict]] = {
    ASTERISK: asterisk.to_switch_cdr,
    FREESWITCH: freeswitch.to_switch_cdr,
    KAMAILIO: kamailio.to_switch_cdr,
    TS32298: ts32298.to_switch_cdr,
}
RAW_TYPES = frozenset({SWITCH_CDR, *MAPPERS})

# A field only that type has: SwitchBatch items decode to plain dicts (fastavro does not say
# which union branch it read), so the type is told from its fields. Checked in this order.
_MARKERS = (("call_id", SWITCH_CDR), ("uniqueid", ASTERISK), ("destination_number", FREESWITCH),
            ("callid", KAMAILIO), ("served_msisdn", TS32298))

# `cdrflow publish --format` -> (record type, file parser).
FILE_FORMATS: dict[str, tuple[str, Callable[[bytes], Iterator[Parsed]]]] = {
    "asterisk-csv": (ASTERISK, lambda data: asterisk.parse_lines(data.splitlines())),
    "freeswitch-json": (FREESWITCH, freeswitch.parse_text),
    "freeswitch-csv": (FREESWITCH, freeswitch.parse_csv),
    "kamailio-acc": (KAMAILIO, kamailio.parse_text),
}


def kind_of(rec: dict) -> str:
    for field, name in _MARKERS:
        if field in rec:
            return name
    raise RejectError(Reason.UNSUPPORTED_FORMAT, "batch item is of no known switch record type")


def to_switch_cdr(name: str, rec: dict, ctx_for: CtxFor) -> dict:
    """Map one raw record of type ``name`` to a SwitchCdr dict. Raises RejectError only."""
    if name == SWITCH_CDR:
        return rec
    mapper = MAPPERS.get(name)
    if mapper is None:
        raise RejectError(Reason.UNSUPPORTED_FORMAT, f"{name or 'unnamed'} is not a switch CDR type")
    try:
        return mapper(rec, ctx_for)
    except RejectError:
        raise
    except Exception as exc:  # noqa: BLE001 - a mapping bug must become a reject, not a crash
        raise RejectError(Reason.BAD_FIELD_TYPE, f"{name} record does not map: {type(exc).__name__}: {str(exc)[:160]}") from None


def parse_file(fmt: str, path: str | Path, switch_id: str, layout: asterisk.CustomLayout | None = None,
               carry: kamailio.Carry | None = None) -> Iterator[Parsed]:
    """Parse a switch file; every record gets ``switch_id`` (the file does not carry it).
    ``layout`` (asterisk-csv only) gives the columns of a cdr_custom file; ``carry``
    (kamailio-acc only) holds half calls over from file to file (streams/formats/kamailio.py)."""
    try:
        _, parser = FILE_FORMATS[fmt]
    except KeyError:
        raise ValueError(f"unknown format {fmt!r}; one of {sorted(FILE_FORMATS)}") from None
    if layout is not None:
        if fmt != "asterisk-csv":
            raise ValueError(f"a layout file applies to asterisk-csv, not {fmt}")
        parser = lambda data: asterisk.parse_lines(data.splitlines(), layout)  # noqa: E731
    if carry is not None and fmt == "kamailio-acc":
        parser = lambda data: kamailio.parse_text(data, carry, Path(path).name)  # noqa: E731
    data = Path(path).read_bytes()
    for p in parser(data):
        if p.record is not None:
            p.record["switch_id"] = switch_id
        yield p


__all__ = ["ASTERISK", "FREESWITCH", "KAMAILIO", "TS32298", "SWITCH_CDR", "SWITCH_BATCH", "RAW_TYPES",
           "MAPPERS", "FILE_FORMATS", "Parsed", "kind_of", "to_switch_cdr", "parse_file"]
