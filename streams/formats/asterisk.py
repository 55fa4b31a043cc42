"""Asterisk CDRs: Master.csv (cdr_csv / cdr_custom) lines -> cdr.v1.AsteriskCdr -> SwitchCdr.

Mapping decisions (and why):

* **caller vs presented CLI** - ``src`` is the calling party's own number (extension or DID)
  and is the *real* caller; the number inside ``clid`` ('"Name" <num>') is what the dialplan
  presented, and becomes ``presented_cli`` when it differs. Both survive (seed 003).
* **times** - Master.csv holds local wall-clock strings; the zone is the switch's
  ``NumberingContext.timezone`` from the source directory, never the collector's zone.
* **call id** - ``uniqueid`` names one channel; Asterisk 12+ can write several CDRs for one
  channel (transfers, forked CDRs) told apart by ``sequence``, so the call id is
  ``uniqueid:sequence`` when a sequence is present. Re-sent lines keep both, so the CDR key
  stays stable and duplicates are caught.
* **stages** - the stages of one call-centre call (IVR -> agent -> post-processing, seed 001)
  are separate channels/CDRs sharing ``linkedid``; ``linkedid`` is the correlation id and
  the stage becomes the ``leg``: ``stage=<name>`` in ``userfield`` wins, otherwise the
  dialplan context / last application decide (see :func:`stage_of`).
* **direction** - Asterisk does not record it. ``direction=inbound|outbound`` in
  ``userfield`` wins; otherwise a call that entered through a trunk context (from-trunk,
  from-pstn, inbound, did) is inbound, anything else outbound.
* **service user / trunk** - taken from the channel names ('PJSIP/201-0000000a' -> '201'):
  the user's side is ``channel`` on outbound calls and ``dstchannel`` on inbound ones; the
  other side names the trunk.
"""
from __future__ import annotations

import csv
from typing import Iterable, Iterator

from streams.core.reasons import Reason, RejectError
from streams.formats.common import CtxFor, Parsed, as_int, check_local_time, clid_number, local_to_ms, require

NAME = "cdr.v1.AsteriskCdr"

# cdr_csv column order; uniqueid, userfield (loguniqueid/loguserfield) and the Asterisk 12+
# columns are optional at the end. A header row starting with 'accountcode' overrides it
# (cdr_custom templates).
COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
           "start", "answer", "end", "duration", "billsec", "disposition", "amaflags", "uniqueid",
           "userfield", "linkedid", "peeraccount", "sequence")
MIN_COLUMNS = 17  # up to uniqueid: without it a CDR has no identity to deduplicate on

INBOUND_CONTEXT_MARKERS = ("from-trunk", "from-pstn", "from-external", "inbound", "did")
IVR_APPS = frozenset({"background", "read", "playback", "waitexten", "ivr", "voicemailmain"})
AGENT_APPS = frozenset({"queue", "agentlogin", "agentrequest"})


def parse_lines(lines: Iterable[bytes | str]) -> Iterator[Parsed]:
    """Master.csv lines -> Parsed records (AsteriskCdr dicts without switch_id) or rejects."""
    columns = COLUMNS
    for no, line in enumerate(lines, 1):
        raw = line if isinstance(line, bytes) else line.encode()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")  # Asterisk writes caller names in whatever the phone sent
        text = text.rstrip("\r\n")
        if not text.strip():
            continue
        try:
            row = next(csv.reader([text], skipinitialspace=False))
            if no == 1 and row and row[0].strip().lower() == "accountcode":
                columns = tuple(c.strip().lower() for c in row)
                continue
            yield Parsed(no, raw, record=_record(row, columns))
        except RejectError as exc:
            yield Parsed(no, raw, error=exc)
        except csv.Error as exc:
            yield Parsed(no, raw, error=RejectError(Reason.UNSUPPORTED_FORMAT, f"not a CSV line: {exc}"))


def _record(row: list[str], columns: tuple[str, ...]) -> dict:
    if len(row) < min(MIN_COLUMNS, len(columns)) or len(row) > len(columns):
        raise RejectError(Reason.UNSUPPORTED_FORMAT,
                          f"{len(row)} columns, expected {MIN_COLUMNS}..{len(columns)} of Master.csv")
    d = dict(zip(columns, row))
    rec = {k: d.get(k, "") for k in COLUMNS if k not in ("duration", "billsec", "sequence")}
    require(rec, "uniqueid", "start", "end", "disposition")
    rec["duration"] = as_int(d.get("duration", ""), "duration")
    rec["billsec"] = as_int(d.get("billsec", ""), "billsec")
    seq = d.get("sequence", "").strip()
    rec["sequence"] = as_int(seq, "sequence") if seq else None
    check_local_time(rec["start"], "start")
    check_local_time(rec["end"], "end")
    if rec["answer"].strip():
        check_local_time(rec["answer"], "answer")
    return rec


def _userfield(uf: str) -> dict[str, str]:
    out = {}
    for part in uf.replace(",", ";").split(";"):
        k, sep, v = part.partition("=")
        if sep:
            out[k.strip().lower()] = v.strip()
    return out


def peer_of(channel: str) -> str:
    """'PJSIP/201-0000000a' -> '201'; 'SIP/provider-00000002' -> 'provider'; '' -> ''."""
    if not channel or "/" not in channel:
        return ""
    tech, _, rest = channel.partition("/")
    if tech.lower() == "local":  # Local channels are dialplan plumbing, not a device
        return ""
    name, dash, _ = rest.rpartition("-")
    return name if dash else rest


def stage_of(rec: dict, uf: dict[str, str]) -> str:
    if uf.get("stage"):
        return uf["stage"].lower()
    ctx = (rec.get("dcontext") or "").lower()
    app = (rec.get("lastapp") or "").lower()
    if any(m in ctx for m in ("post", "wrap", "acw", "survey")):
        return "post"
    if app in AGENT_APPS or "queue" in ctx or "agent" in ctx:
        return "agent"
    if app in IVR_APPS or "ivr" in ctx:
        return "ivr"
    return "A"


def to_switch_cdr(rec: dict, ctx_for: CtxFor) -> dict:
    uf = _userfield(rec.get("userfield") or "")
    ctx_l = (rec.get("dcontext") or "").lower()
    direction = uf.get("direction", "").lower()
    if direction not in ("inbound", "outbound"):
        direction = "inbound" if any(m in ctx_l for m in INBOUND_CONTEXT_MARKERS) else "outbound"
    if direction == "outbound":
        user, trunk = peer_of(rec.get("channel", "")), peer_of(rec.get("dstchannel", ""))
    else:
        user, trunk = peer_of(rec.get("dstchannel", "")), peer_of(rec.get("channel", ""))
    switch_id = rec.get("switch_id") or ""
    tz = ctx_for(switch_id, trunk or None).timezone
    answer = (rec.get("answer") or "").strip()
    src = rec.get("src") or ""
    shown = clid_number(rec.get("clid") or "")
    uniqueid = rec.get("uniqueid") or ""
    seq = rec.get("sequence")
    return {
        "switch_id": switch_id,
        "call_id": f"{uniqueid}:{seq}" if seq is not None else uniqueid,
        "leg": stage_of(rec, uf),
        "partial_seq": 0,
        "partial_final": True,
        "correlation_id": rec.get("linkedid") or uniqueid,
        "account": rec.get("accountcode") or "",
        "service_user": user or None,
        "direction": direction,
        "caller": src,
        "presented_cli": shown if shown and shown != src else None,
        "called": rec.get("dst") or "",
        "trunk": trunk or None,
        "start_ms": local_to_ms(rec.get("start"), tz, "start"),
        "answer_ms": local_to_ms(answer, tz, "answer") if answer else None,
        "end_ms": local_to_ms(rec.get("end"), tz, "end"),
        "duration_s": rec.get("duration"),
        "billsec_s": rec.get("billsec"),
        "disposition": rec.get("disposition"),
        "service": "voice",
        # Call-centre dialplans tag the agent leg, e.g. userfield "stage=agent;operator=remote;dedicated=1".
        "operator_location": uf.get("operator") or None,
        "operator_dedicated": {"1": True, "yes": True, "true": True, "0": False, "no": False,
                               "false": False}.get(uf.get("dedicated", "").lower()),
    }
