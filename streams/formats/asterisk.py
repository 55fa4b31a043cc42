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
import math
import re
from dataclasses import dataclass
from typing import Iterable, Iterator

from streams.core.reasons import Reason, RejectError
from streams.formats.common import CtxFor, Parsed, as_int, check_local_time, clid_number, local_to_ms, require

NAME = "cdr.v1.AsteriskCdr"

# cdr_csv column order, from Asterisk's cdr/cdr_csv.c build_csv_record() (asterisk/asterisk
# f0c1c1a7, lines 216-256): 16 fixed columns, then uniqueid if ``loguniqueid``, userfield if
# ``loguserfield``, then peeraccount, linkedid, sequence if ``newcdrcolumns`` - in that order.
# All three options default to off in the compiled module (cdr_csv.c:56-59, 113-115); the
# sample cdr.conf turns loguniqueid and loguserfield on (configs/samples/cdr.conf.sample:172-177).
BASE_COLUMNS = ("accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp", "lastdata",
                "start", "answer", "end", "duration", "billsec", "disposition", "amaflags")
NEW_COLUMNS = ("peeraccount", "linkedid", "sequence")
COLUMNS = (*BASE_COLUMNS, "uniqueid", "userfield", *NEW_COLUMNS)  # every option on (21 columns)
MIN_COLUMNS = len(BASE_COLUMNS)
# main/channel_internal_api.c:1276-1284: "{systemname-}epoch.counter" unless an id was assigned.
INBOUND_CONTEXT_MARKERS = ("from-trunk", "from-pstn", "from-external", "inbound", "did")
IVR_APPS = frozenset({"background", "read", "playback", "waitexten", "ivr", "voicemailmain"})
AGENT_APPS = frozenset({"queue", "agentlogin", "agentrequest"})
_UNIQUEID_RE = re.compile(r"^(?:.+-)?\d{9,11}\.\d+$")


def layout_for(row: list[str]) -> tuple[str, ...]:
    """The cdr.conf [csv] options a line was written with, told from its column count.

    17 and 20 columns are ambiguous (loguniqueid or loguserfield alone): a value shaped like
    Asterisk's own uniqueid is read as one, anything else as the userfield."""
    n = len(row)
    extra = n - MIN_COLUMNS
    new = extra >= 3 and _is_int(row[-1])  # sequence is an integer (cdr_csv.c:256)
    optional = extra - (3 if new else 0)
    if optional == 2:
        opt: tuple[str, ...] = ("uniqueid", "userfield")
    elif optional == 1:
        opt = ("uniqueid",) if _UNIQUEID_RE.match(row[MIN_COLUMNS].strip()) else ("userfield",)
    elif optional == 0:
        opt = ()
    else:
        raise RejectError(Reason.UNSUPPORTED_FORMAT,
                          f"{n} columns: cdr_csv writes 16 to 21 (cdr.conf loguniqueid, loguserfield, newcdrcolumns)")
    return (*BASE_COLUMNS, *opt, *(NEW_COLUMNS if new else ()))


def _is_int(v: str) -> bool:
    v = v.strip()
    return v.isdigit() or (v.startswith("-") and v[1:].isdigit())


@dataclass(frozen=True)
class CustomLayout:
    """A cdr_custom (or adaptive) layout: the CDR variable in each column ('' = not read)."""

    columns: tuple[str, ...]
    delimiter: str = ","
    quotechar: str = '"'


_CDR_VAR = re.compile(r"\$\{CDR\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:,[^)]*)?\)\}", re.I)
_TIME_FIELDS = frozenset({"start", "answer", "end"})


def _split_top(text: str, sep: str = ",") -> list[str]:
    """Split on ``sep`` outside ${...} and "..." (cdr_custom templates nest both)."""
    out, cur, depth, quoted = [], [], 0, False
    for i, ch in enumerate(text):
        if ch == '"' and depth == 0:
            quoted = not quoted
        elif not quoted and ch == "{" and i and text[i - 1] == "$":
            depth += 1
        elif not quoted and ch == "}" and depth:
            depth -= 1
        elif ch == sep and depth == 0 and not quoted:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


def layout_from_cdr_custom(text: str, mapping: str | None = None) -> CustomLayout:
    """Read the layout from Asterisk's own cdr_custom.conf, so a custom Master.csv needs a
    mapping file, not code (configs/samples/cdr_custom.conf.sample in asterisk/asterisk):

    * legacy ``[mappings]`` lines ``Master.csv => ${CSV_QUOTE(${CDR(clid)})},...,${CDR(sequence)}``
      (sample lines 38-43): each column's ``CDR(name)``; other columns (``${EPOCH}``) are skipped;
    * advanced sections ``[cdr_master.csv]`` with ``fields = clid,"Literal",src,...``,
      ``separator_character`` and ``quote_character`` (sample lines 49-118); a ``format = json``
      section is not a CSV layout.

    ``mapping`` names the output file to take (default: the first). Timestamps must keep their
    default "%Y-%m-%d %T" form; ``start(int64)`` and the like are refused."""
    section, found = "", []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            found.append([section, {}])
            continue
        if section.lower() == "mappings" and "=>" in line:
            name, _, tpl = line.partition("=>")
            cols = []
            for field in _split_top(tpl.strip()):
                m = _CDR_VAR.search(field)
                if m and "," in field[m.start():m.end()] and m.group(1).lower() in _TIME_FIELDS:
                    raise ValueError(f"{name.strip()}: {m.group(1)} with options is not a 'YYYY-MM-DD HH:MM:SS' time")
                cols.append(m.group(1).lower() if m else "")
            found.append([name.strip(), {"_columns": tuple(cols)}])
        elif found and "=" in line:
            k, _, v = line.partition("=")
            found[-1][1][k.strip().lower()] = v.split(";", 1)[0].strip()
    for name, opts in found:
        if mapping is not None and name != mapping:
            continue
        if "_columns" in opts:
            return CustomLayout(opts["_columns"])
        if "fields" in opts:
            if opts.get("format", "dsv").lower() != "dsv":
                raise ValueError(f"[{name}] format={opts['format']} is not a CSV layout")
            cols = []
            for field in _split_top(opts["fields"]):
                f = field.strip()
                if f.startswith('"'):
                    cols.append("")  # a literal column
                    continue
                fname, _, qual = f.partition("(")
                fname = fname.strip().lower()
                quals = {q.strip().lower() for q in qual.rstrip(")").split("^") if q.strip()}
                if fname in _TIME_FIELDS and quals - {"quote", "noquote"}:
                    raise ValueError(f"[{name}] {f}: only the default 'YYYY-MM-DD HH:MM:SS' times are read")
                cols.append("" if "uservar" in quals else fname)
            sep = opts.get("separator_character", ",")
            sep = "\t" if sep == "\\t" else (sep or ",")
            return CustomLayout(tuple(cols), sep[:1], (opts.get("quote_character") or '"')[:1])
    raise ValueError(f"no cdr_custom mapping {mapping!r}" if mapping else "no cdr_custom mapping in the file")


def parse_lines(lines: Iterable[bytes | str], layout: CustomLayout | None = None) -> Iterator[Parsed]:
    """Master.csv lines -> Parsed records (AsteriskCdr dicts without switch_id) or rejects.

    ``layout`` (from :func:`layout_from_cdr_custom`) names the columns of a cdr_custom file.
    Without it, a header row starting with 'accountcode' names them, else the column count
    tells the cdr_csv options. Lines starting with '#' are comments (cdr_csv quotes every
    text field, so no record starts so)."""
    columns: tuple[str, ...] | None = layout.columns if layout else None
    delim, quote = (layout.delimiter, layout.quotechar) if layout else (",", '"')
    for no, line in enumerate(lines, 1):
        raw = line if isinstance(line, bytes) else line.encode()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")  # Asterisk writes caller names in whatever the phone sent
        text = text.rstrip("\r\n")
        if not text.strip() or text.startswith("#"):
            continue
        try:
            row = next(csv.reader([text], delimiter=delim, quotechar=quote, skipinitialspace=False))
            if columns is None and row and row[0].strip().lower() == "accountcode":
                columns = tuple(c.strip().lower() for c in row)
                continue
            yield Parsed(no, raw, record=_record(row, columns))
        except RejectError as exc:
            yield Parsed(no, raw, error=exc)
        except csv.Error as exc:
            yield Parsed(no, raw, error=RejectError(Reason.UNSUPPORTED_FORMAT, f"not a CSV line: {exc}"))


def _record(row: list[str], header: tuple[str, ...] | None) -> dict:
    if header is not None:
        if len(row) != len(header):
            raise RejectError(Reason.UNSUPPORTED_FORMAT, f"{len(row)} columns, the header names {len(header)}")
        columns = header
    else:
        if len(row) < MIN_COLUMNS:
            raise RejectError(Reason.UNSUPPORTED_FORMAT,
                              f"{len(row)} columns, cdr_csv writes at least {MIN_COLUMNS}")
        columns = layout_for(row)
    d = {k: v for k, v in zip(columns, row) if k}
    rec = {k: d.get(k, "") for k in COLUMNS if k not in ("duration", "billsec", "sequence")}
    require(rec, "start", "end", "disposition")
    if "uniqueid" in columns:
        require(rec, "uniqueid")  # the column is there but empty: the line lost its identity
    rec["duration"] = _seconds(d.get("duration", ""), "duration")
    rec["billsec"] = _seconds(d.get("billsec", ""), "billsec")
    seq = d.get("sequence", "").strip()
    rec["sequence"] = as_int(seq, "sequence") if seq else None
    check_local_time(rec["start"], "start")
    check_local_time(rec["end"], "end")
    if rec["answer"].strip():
        check_local_time(rec["answer"], "answer")
    return rec


def _seconds(v: str, field: str) -> int:
    """Whole seconds; cdr_custom's high-resolution ``CDR(billsec,f)`` ("65.120") rounds up."""
    s = (v or "").strip()
    if "." in s:
        try:
            f = float(s)
        except ValueError:
            raise RejectError(Reason.BAD_FIELD_TYPE, f"{field} {s[:30]!r} is not a number") from None
        if f != f or f in (float("inf"), float("-inf")):
            raise RejectError(Reason.BAD_FIELD_TYPE, f"{field} {s[:30]!r} is not a number")
        return math.ceil(f - 1e-9)
    return as_int(s, field)


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
    linkedid = rec.get("linkedid") or ""
    if uniqueid:
        call_id = f"{uniqueid}:{seq}" if seq is not None else uniqueid
    elif linkedid and seq is not None:
        call_id = f"{linkedid}:{seq}"  # sequence: a global counter (main/cdr.c:453, 1161)
    else:
        # Compiled defaults write no id at all: a channel name is unique while Asterisk runs and
        # its start second separates restarts; a re-sent line gives the same id again.
        call_id = f"{rec.get('channel') or ''}@{rec.get('start') or ''}"
        if call_id == "@":
            raise RejectError(Reason.MISSING_FIELD, "neither uniqueid, linkedid+sequence nor channel to identify the CDR")
    return {
        "switch_id": switch_id,
        "call_id": call_id,
        "leg": stage_of(rec, uf),
        "partial_seq": 0,
        "partial_final": True,
        "correlation_id": linkedid or uniqueid or call_id,
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
