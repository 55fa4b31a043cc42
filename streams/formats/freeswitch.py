"""FreeSWITCH CDRs: mod_json_cdr files and mod_cdr_csv lines -> cdr.v1.FreeswitchCdr -> SwitchCdr.

Read from FreeSWITCH's source (signalwire/freeswitch cc93a683) since it cannot run here:

* **document** - switch_ivr_generate_json_cdr() (src/switch_ivr.c:3335-3560): ``core-uuid``,
  ``switchname``, ``channel_data`` {state, direction, ...}, ``variables`` (every non-empty
  channel variable, URL-encoded unless ``encode-values=false``: switch_ivr.c:3305-3329,
  mod_json_cdr.c:586), ``callflow`` [newest profile first, each with ``caller_profile``
  {username, caller_id_name, ani, caller_id_number, destination_number, uuid, context,
  chan_name, originator/originatee} and ``times``]. Times are the ``*_epoch`` variables
  (switch_channel.c:4670-4731), ``duration``/``billsec`` (4782-4785), ``last_app``/
  ``last_arg`` (4777-4778).
* **caller vs presented CLI** - ``caller_id_number`` of the caller profile is the real
  caller; ``effective_caller_id_number`` (or ``origination_caller_id_number``) is what the
  leg presented, kept as ``presented_cli`` when it differs (seed 003).
* **billing direction** - ``cdr_direction`` (this project's dialplan variable) or
  ``call_direction`` (a dialplan convention, e.g. FusionPBX; FreeSWITCH's core does not set
  it) win when set. Otherwise it is derived from what FreeSWITCH writes by default: the
  ``direction`` variable is the *channel's* direction relative to FreeSWITCH
  (switch_channel.c:437, 473), so a phone calling out is an ``inbound`` channel. An inbound
  channel is an inbound *call* when it came from a gateway (``sip_gateway``, sofia.c:11337)
  or entered an unauthenticated context (``public`` in the vanilla sip_profiles
  internal.xml:87 / external.xml:30; registered users get ``user_context=default``,
  directory/default/1000.xml:10); otherwise the caller is a local user calling out. A
  channel FreeSWITCH originated towards a gateway is outbound.
* **trunk** - ``sip_gateway_name`` (set on a leg sent to a gateway, mod_sofia.c:4884), else
  ``sip_gateway`` (inbound from a gateway), else the gateway named in the A-leg's bridge
  target ``last_arg`` = ``sofia/gateway/<name>/<number>``.
* **legs** - mod_json_cdr writes B-legs too by default (``log-b-leg``, mod_json_cdr.c:582).
  A B-leg (``originating_leg_uuid``, switch_ivr_originate.c:3217) is the same call as its
  A-leg, which carries the account and bills it, so a B-leg without a ``cdr_stage`` is
  rejected (``unsupported_format``) rather than charged twice; set ``log-b-leg=false`` to
  avoid these rejects. A B-leg with ``cdr_stage`` (e.g. a call-centre agent leg) is billed.
* **identity** - each leg is its own CDR keyed by its ``uuid``; ``call_uuid`` correlates
  legs, else ``originating_leg_uuid``, else the leg's own uuid.
* **mod_cdr_csv** - the vanilla ``example`` template (conf/vanilla/autoload_configs/
  cdr_csv.conf.xml, legs="a"): caller_id_name, caller_id_number, destination_number,
  context, start_stamp, answer_stamp, end_stamp, duration, billsec, hangup_cause, uuid,
  bleg_uuid, accountcode, read_codec, write_codec; stamps are local "%Y-%m-%d %T"
  (switch_channel.c:4600) in the switch's zone. See :func:`parse_csv`.
"""
from __future__ import annotations

import csv
import json
import re
from typing import Any, Iterable, Iterator
from urllib.parse import unquote

from streams.core.reasons import Reason, RejectError
from streams.formats.common import CtxFor, Parsed, as_int, check_local_time, local_to_ms, q850_disposition, require

# Contexts a call from outside lands in: vanilla FreeSWITCH's "public", and the usual names.
INBOUND_CONTEXTS = ("public", "from-trunk", "from-pstn", "from-external", "inbound", "did")
_GATEWAY_IN_TARGET = re.compile(r"sofia/gateway/([^/|,\]]+)/")

NAME = "cdr.v1.FreeswitchCdr"


def _s(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v)
    return unquote(s) if "%" in s else s


def _profile(doc: dict) -> dict:
    """The caller profile the call *entered* with: callflow lists the newest profile first
    (switch_ivr.c:3404-3560) and a transfer adds a newer one, so the entry is the last. Its
    caller and destination are the call as dialled (caller_id_number and destination_number
    are profile fields, not channel variables, so mod_json_cdr has them only here)."""
    flow = doc.get("callflow")
    if isinstance(flow, list):
        flow = flow[-1] if flow else {}
    prof = (flow or {}).get("caller_profile") if isinstance(flow, dict) else None
    return prof if isinstance(prof, dict) else {}


def from_json(doc: Any) -> dict:
    """One mod_json_cdr document (or an already flat FreeswitchCdr dict) -> FreeswitchCdr dict."""
    if not isinstance(doc, dict):
        raise RejectError(Reason.UNSUPPORTED_FORMAT, f"FreeSWITCH CDR must be a JSON object, got {type(doc).__name__}")
    v = doc.get("variables")
    if not isinstance(v, dict):
        v = doc  # flat form
    prof = _profile(doc)
    g = lambda *names: next((_s(v[n]) for n in names if v.get(n) not in (None, "")), None)  # noqa: E731
    chan_data = doc.get("channel_data") if isinstance(doc.get("channel_data"), dict) else {}
    chan_dir = (g("direction") or _s(chan_data.get("direction")) or "inbound").lower()
    originator = g("originating_leg_uuid")
    stage = g("cdr_stage", "stage")
    if chan_dir == "outbound" and originator and not stage:
        raise RejectError(Reason.UNSUPPORTED_FORMAT,
                          f"B-leg of call {originator}: its A-leg CDR bills the call (mod_json_cdr log-b-leg=false avoids these)")
    gateway = g("sip_gateway_name", "sip_gateway", "gateway")
    if not gateway:
        m = _GATEWAY_IN_TARGET.search(g("last_arg") or "")
        gateway = m.group(1) if m else None
    rec = {
        "uuid": g("uuid") or _s(prof.get("uuid")),
        "bleg_uuid": g("bleg_uuid"),
        "call_uuid": g("call_uuid") or originator,
        "direction": billing_direction(g("cdr_direction", "call_direction"), chan_dir,
                                       g("sip_gateway_name"), g("sip_gateway"),
                                       _s(prof.get("context")) or g("user_context", "context")),
        "caller_id_name": g("caller_id_name") or _s(prof.get("caller_id_name")) or "",
        "caller_id_number": g("caller_id_number") or _s(prof.get("caller_id_number")),
        "effective_caller_id_number": g("effective_caller_id_number"),
        "origination_caller_id_number": g("origination_caller_id_number"),
        "destination_number": g("destination_number") or _s(prof.get("destination_number")),
        "accountcode": g("accountcode") or "",
        "gateway": gateway,
        "last_app": g("last_app"),
        "stage": stage,
        "hangup_cause": g("hangup_cause"),
    }
    require(rec, "uuid", "caller_id_number", "destination_number", "hangup_cause")
    for k in ("start_epoch", "end_epoch"):
        if v.get(k) in (None, ""):
            raise RejectError(Reason.MISSING_FIELD, f"{k} is absent or empty")
        rec[k] = as_int(v[k], k)
    rec["answer_epoch"] = as_int(v.get("answer_epoch") or 0, "answer_epoch")
    rec["billsec"] = as_int(v.get("billsec") or 0, "billsec")
    rec["duration"] = as_int(v["duration"], "duration") if v.get("duration") not in (None, "") else None
    rec["start_stamp"] = rec["answer_stamp"] = rec["end_stamp"] = None
    return rec


# mod_cdr_csv's vanilla "example" template (conf/vanilla/autoload_configs/cdr_csv.conf.xml,
# signalwire/freeswitch cc93a683), the module's default-template.
CSV_EXAMPLE = ("caller_id_name", "caller_id_number", "destination_number", "context", "start_stamp", "answer_stamp",
               "end_stamp", "duration", "billsec", "hangup_cause", "uuid", "bleg_uuid", "accountcode", "read_codec",
               "write_codec")


def parse_csv(data: bytes | str) -> Iterator[Parsed]:
    """mod_cdr_csv lines of the ``example`` template (A-legs: legs="a" is its default). A first
    line naming the template's variables (e.g. ``caller_id_name,caller_id_number,...``)
    describes another template; lines starting with '#' are comments."""
    data = data.encode() if isinstance(data, str) else data
    columns = CSV_EXAMPLE
    for no, raw in enumerate(data.splitlines(), 1):
        text = raw.decode("utf-8", "replace").strip()
        if not text or text.startswith("#"):
            continue
        try:
            row = next(csv.reader([text]))
            if no == 1 and "uuid" in (c.strip().lower() for c in row) and "start_stamp" in (c.strip().lower() for c in row):
                columns = tuple(c.strip().lower() for c in row)
                continue
            if len(row) != len(columns):
                raise RejectError(Reason.UNSUPPORTED_FORMAT,
                                  f"{len(row)} columns, the template has {len(columns)}")
            yield Parsed(no, raw, record=_from_csv_row(dict(zip(columns, (c.strip() for c in row)))))
        except RejectError as exc:
            yield Parsed(no, raw, error=exc)
        except csv.Error as exc:
            yield Parsed(no, raw, error=RejectError(Reason.UNSUPPORTED_FORMAT, f"not a CSV line: {exc}"))


def _from_csv_row(d: dict) -> dict:
    g = lambda n: (_s(d.get(n)) or None)  # noqa: E731
    rec = {
        "uuid": g("uuid"), "bleg_uuid": g("bleg_uuid"), "call_uuid": g("call_uuid"),
        "direction": billing_direction(g("cdr_direction") or g("call_direction"), (g("direction") or "inbound").lower(),
                                       g("sip_gateway_name"), g("sip_gateway"), g("context")),
        "caller_id_name": g("caller_id_name") or "", "caller_id_number": g("caller_id_number"),
        "effective_caller_id_number": g("effective_caller_id_number"),
        "origination_caller_id_number": g("origination_caller_id_number"),
        "destination_number": g("destination_number"), "accountcode": g("accountcode") or "",
        "gateway": g("sip_gateway_name") or g("sip_gateway"), "last_app": g("last_app"),
        "stage": g("cdr_stage"), "hangup_cause": g("hangup_cause"),
    }
    require(rec, "uuid", "caller_id_number", "destination_number", "hangup_cause")
    require(d, "start_stamp", "end_stamp")
    for k in ("start_stamp", "end_stamp"):
        check_local_time(d[k], k)
    answer = (d.get("answer_stamp") or "").strip()
    if answer:
        check_local_time(answer, "answer_stamp")
    rec.update(start_epoch=0, answer_epoch=0, end_epoch=0, start_stamp=d["start_stamp"], end_stamp=d["end_stamp"],
               answer_stamp=answer or None, billsec=as_int(d.get("billsec") or 0, "billsec"),
               duration=as_int(d["duration"], "duration") if d.get("duration") else None)
    return rec


def billing_direction(explicit: str | None, chan_dir: str, gateway_out: str | None, gateway_in: str | None,
                      context: str | None) -> str:
    """Inbound or outbound *for billing* (see the module doc for the sources)."""
    e = (explicit or "").strip().lower()
    if e in ("inbound", "outbound"):
        return e
    if e == "local":
        return "outbound"  # extension to extension: the caller's call, priced by the tariff (usually free)
    if chan_dir == "outbound":
        # FreeSWITCH originated this channel: towards a gateway it is a call out, towards a
        # local phone it delivers an inbound call.
        return "outbound" if gateway_out else "inbound"
    ctx = (context or "").strip().lower()
    if gateway_in or any(ctx == c or ctx.startswith(c + "-") for c in INBOUND_CONTEXTS):
        return "inbound"
    return "outbound"


def parse_text(text: bytes | str) -> Iterator[Parsed]:
    """A JSON CDR file: one object (mod_json_cdr writes one per call), a JSON array of them,
    or JSON lines. Line numbers point at the object's line (1 for a one-object file)."""
    data = text.encode() if isinstance(text, str) else text
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        doc = None
    except RecursionError:
        # Python's JSON reader recurses per nesting level: a hostile or broken file must not
        # take the caller down, and the records before the deep one are still good.
        yield from _parse_deep(data)
        return
    if isinstance(doc, list):
        for i, d in enumerate(doc, 1):
            yield _one(i, json.dumps(d).encode(), d)
        return
    if isinstance(doc, dict):
        yield _one(1, data, doc)
        return
    yield from parse_lines(data.splitlines())


_RAW_CAP = 256 << 10  # bytes of a damaged tail kept in its reject (a Kafka message must stay small)


def _stop_at(text: str, idx: int, no: int, why: str) -> Parsed:
    """The reject that ends a file at character ``idx``: item ``no``, its line and column."""
    line = text.count("\n", 0, idx) + 1
    col = idx - (text.rfind("\n", 0, idx) + 1) + 1
    return Parsed(no, text[idx:idx + _RAW_CAP].encode(), fatal=True, error=RejectError(
        Reason.UNSUPPORTED_FORMAT, f"line {line} column {col}: {why}; the rest of the file is not read"))


def _parse_deep(data: bytes) -> Iterator[Parsed]:
    """A file whose whole-document parse overflowed the recursion limit: JSON lines are read
    line by line (only the deep line is lost); an array is read element by element up to the
    deep one (its end cannot be found without reading it, so reading stops there)."""
    text = data.decode("utf-8", "replace")
    body = text.strip()
    first = body.split("\n", 1)[0].strip()
    if "\n" in body and first.startswith("{") and first.endswith("}"):
        yield from parse_lines(data.splitlines())
        return
    start = len(text) - len(text.lstrip())
    if not body.startswith("["):
        yield _stop_at(text, start, 1, "JSON nested too deep to read")
        return
    dec = json.JSONDecoder()
    idx, n, ws = start + 1, 0, " \t\r\n"
    while True:
        while idx < len(text) and text[idx] in ws:
            idx += 1
        if idx < len(text) and text[idx] == "]":
            return
        try:
            doc, end = dec.raw_decode(text, idx)
        except RecursionError:
            yield _stop_at(text, idx, n + 1, f"array element {n + 1} is JSON nested too deep to read")
            return
        except ValueError as exc:
            yield _stop_at(text, idx, n + 1, f"array element {n + 1} is not JSON ({exc})")
            return
        n += 1
        yield _one(n, json.dumps(doc).encode(), doc)
        idx = end
        while idx < len(text) and text[idx] in ws:
            idx += 1
        if idx < len(text) and text[idx] == ",":
            idx += 1


def parse_lines(lines: Iterable[bytes]) -> Iterator[Parsed]:
    for no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            d = json.loads(raw)
        except RecursionError:
            yield Parsed(no, raw, error=RejectError(Reason.UNSUPPORTED_FORMAT, "JSON nested too deep to read"))
            continue
        except (ValueError, UnicodeDecodeError) as exc:
            yield Parsed(no, raw, error=RejectError(Reason.UNSUPPORTED_FORMAT, f"not JSON: {exc}"))
            continue
        yield _one(no, raw, d)


def _one(no: int, raw: bytes, doc: Any) -> Parsed:
    try:
        return Parsed(no, raw, record=from_json(doc))
    except RejectError as exc:
        return Parsed(no, raw, error=exc)


def to_switch_cdr(rec: dict, ctx_for: CtxFor) -> dict:
    start, answer, end = rec.get("start_epoch"), rec.get("answer_epoch") or 0, rec.get("end_epoch")
    if rec.get("start_stamp") and rec.get("end_stamp"):
        # mod_cdr_csv local stamps: read in the switch's (or its trunk's) zone
        tz = ctx_for(rec.get("switch_id") or "", rec.get("gateway")).timezone
        start = local_to_ms(rec["start_stamp"], tz, "start_stamp") // 1000
        end = local_to_ms(rec["end_stamp"], tz, "end_stamp") // 1000
        answer = local_to_ms(rec["answer_stamp"], tz, "answer_stamp") // 1000 if rec.get("answer_stamp") else 0
    if not isinstance(start, int) or not isinstance(end, int):
        raise RejectError(Reason.BAD_FIELD_TYPE, "start_epoch and end_epoch must be integers")
    caller = rec.get("caller_id_number") or ""
    shown = rec.get("effective_caller_id_number") or rec.get("origination_caller_id_number")
    uuid = rec.get("uuid") or ""
    stage = rec.get("stage")
    duration = rec.get("duration")
    return {
        "switch_id": rec.get("switch_id") or "",
        "call_id": uuid,
        "leg": stage.lower() if stage else "A",
        "partial_seq": 0,
        "partial_final": True,
        "correlation_id": rec.get("call_uuid") or uuid,
        "account": rec.get("accountcode") or "",
        "service_user": None,
        "direction": rec.get("direction") or "outbound",
        "caller": caller,
        "presented_cli": shown if shown and shown != caller else None,
        "called": rec.get("destination_number") or "",
        "trunk": rec.get("gateway"),
        "start_ms": start * 1000,
        "answer_ms": answer * 1000 if answer > 0 else None,
        "end_ms": end * 1000,
        "duration_s": duration if duration is not None else end - start,
        "billsec_s": rec.get("billsec"),
        "disposition": q850_disposition(rec.get("hangup_cause") or "", answer > 0),
        "service": "voice",
    }
