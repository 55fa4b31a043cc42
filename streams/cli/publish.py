"""cdrflow publish: switch CDR files -> cdr.raw; bad lines -> cdr.rejected (never stop the run).

    cdrflow publish --format asterisk-csv|freeswitch-json|freeswitch-csv|kamailio-acc|avro \\
                    [--mode single|batch] [--batch-size N] [--switch-id ID] [--layout CONF[:MAPPING]] FILE...

* ``single``: one Confluent-framed record per message (pinned ids, or Schema Registry ids
  when CDRFLOW_SCHEMA_REGISTRY_URL is set), keyed by account.
* ``batch``: Avro object containers of up to ``--batch-size`` records (a CDR file per
  message, the writer schema inside), which is how switches deliver and the fast path.

A line that does not parse is printed as ``file:line: reason: detail`` and published to
cdr.rejected as a RejectedCdr (stage ``publish``, source_topic ``file:<name>``,
source_offset = line number, raw = the line's bytes).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import fastavro

from streams import codecs, formats, topics
from streams.core.charge import make_reject, utc_now_ms
from streams.core.reasons import Reason, RejectError
from streams.formats.common import Parsed
from streams.publisher import Publisher

FORMATS = [*formats.FILE_FORMATS, "avro"]


@dataclass
class PublishStats:
    records: int = 0          # good records published
    messages: int = 0         # Kafka messages carrying them
    rejected: int = 0         # bad lines published to cdr.rejected
    by_reason: dict[str, int] = field(default_factory=dict)
    bad_lines: list[str] = field(default_factory=list)
    # One line per file that could not be read to its end (``file:position: reason: detail``);
    # the records before the damage were published, the damaged rest went to cdr.rejected.
    damaged: list[str] = field(default_factory=list)


def parse_avro(path: Path, switch_id: str | None) -> tuple[str, Iterator[Parsed]]:
    """An Avro container file of any raw switch type; records numbered from 1, read block by
    block so a damaged block ends the file with a fatal reject instead of an exception."""
    from streams.formats.avro_file import iter_records, read_header

    data = path.read_bytes()
    name, parsed, codec, sync, pos = read_header(data)
    if name not in formats.RAW_TYPES:
        raise RejectError(Reason.UNSUPPORTED_FORMAT, f"container of {name or 'unnamed'} records")

    def gen():
        for p in iter_records(data, parsed, codec, sync, pos):
            if p.record is not None and switch_id and not p.record.get("switch_id"):
                p.record["switch_id"] = switch_id
            yield p

    return name, gen()


def _guarded(items: Iterator[Parsed], last) -> Iterator[Parsed]:
    """The parser's items; an exception a parser did not foresee ends the file with a fatal
    reject after the last good item, so the items before it are still published."""
    it = iter(items)
    while True:
        try:
            p = next(it)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - one broken file must not stop the run
            yield Parsed(last() + 1, b"", fatal=True, error=RejectError(
                Reason.UNSUPPORTED_FORMAT, f"reading stopped after item {last()}: {type(exc).__name__}: "
                                           f"{str(exc)[:160]}; the rest of the file is not read"))
            return
        yield p


def publish_files(client_conf: dict, fmt: str, paths: list[Path], mode: str = "batch", switch_id: str | None = None,
                  batch_size: int = 500, wire=None, progress=None, err=sys.stderr, layout=None,
                  sender: Publisher | None = None, carry=None) -> PublishStats:
    """Publish files; returns once the broker acknowledged every message (``sender``: reuse
    one producer across calls, as ``cdrflow collect`` does). kamailio-acc: half calls pair
    across the files of one call, in the order given; ``carry`` (a kamailio.Carry that
    ``cdrflow collect`` keeps in its manifest) holds them across calls instead."""
    if mode not in ("single", "batch"):
        raise ValueError(f"mode must be single or batch, not {mode!r}")
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}")
    if wire is None:
        from streams.registry import wire_from_settings

        wire = wire_from_settings()
    sender = sender or Publisher(client_conf)
    stats = PublishStats()
    now = utc_now_ms()
    own_carry = None
    if carry is None and fmt == "kamailio-acc":
        from streams.formats.kamailio import Carry

        carry = own_carry = Carry()
    for i, path in enumerate(paths):
        path = Path(path)
        if own_carry is not None:
            own_carry.final = i == len(paths) - 1   # nothing after the last file: reject what is open
        topic = f"file:{path.name}"

        def reject(line: int, reason: Reason, detail: str, raw: bytes, fatal: bool = False) -> None:
            msg = f"{path}:{line}: {reason.value}: {detail}"
            stats.bad_lines.append(msg)
            if fatal:
                stats.damaged.append(msg)
            print(msg, file=err)
            rej = make_reject(reason, f"{path.name}:{line}: {detail}", "publish", topic, 0, line, 0, raw, now)
            sender.send(topics.REJECTED, codecs.encode(codecs.REJECTED, rej), rej["reject_id"].encode())
            stats.rejected += 1
            stats.by_reason[reason.value] = stats.by_reason.get(reason.value, 0) + 1

        try:
            if fmt == "avro":
                rtype, items = parse_avro(path, switch_id)
            else:
                rtype = formats.FILE_FORMATS[fmt][0]
                items = formats.parse_file(fmt, path, switch_id or fmt.split("-")[0], layout=layout, carry=carry)
        except RejectError as exc:
            # Nothing of the file is readable (no container header, unknown record type).
            reject(0, exc.reason, exc.detail, b"", fatal=True)
            continue
        except OSError as exc:
            reject(0, Reason.UNSUPPORTED_FORMAT, f"cannot read: {exc}", b"", fatal=True)
            continue
        chunk: list[dict] = []

        def flush_chunk():
            if chunk:
                sender.send(topics.RAW, codecs.encode_container(rtype, chunk, codec="deflate"))
                stats.messages += 1
                chunk.clear()

        last = 0
        for p in _guarded(items, lambda: last):
            last = p.line
            if p.error is not None:
                reject(p.line, p.error.reason, p.error.detail, p.raw, p.fatal)
            else:
                try:
                    if mode == "single":
                        value = wire.encode(rtype, p.record)
                        acct = p.record.get("accountcode") or p.record.get("account") or ""
                        sender.send(topics.RAW, value, str(acct).encode() or None)
                        stats.messages += 1
                    else:
                        # Validate now: one bad record must not make the whole container unwritable.
                        fastavro.validate(p.record, codecs.book().parsed[rtype], raise_errors=True)
                        chunk.append(p.record)
                        if len(chunk) >= batch_size:
                            flush_chunk()
                except Exception as exc:  # schema validation of a record the parser let through
                    reject(p.line, Reason.BAD_FIELD_TYPE, f"does not fit {rtype}: {str(exc)[:200]}", p.raw)
                    continue
                stats.records += 1
            if progress is not None:
                progress(1)
        flush_chunk()
    sender.flush()
    return stats


def register(sub) -> None:
    p = sub.add_parser("publish", help="publish switch CDR files (Asterisk, FreeSWITCH, Kamailio, Avro) to cdr.raw")
    add_file_options(p)
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.set_defaults(func=cmd_publish)


def add_file_options(p) -> None:
    """The options of every command that reads switch CDR files (publish, collect): one
    vocabulary for both."""
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--mode", choices=["single", "batch"], default="batch",
                   help="one record per message, or Avro containers of --batch-size records")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--switch-id", default=None,
                   help="switch identity stamped on every record (selects numbering and time zone); "
                        "default: the format name")
    p.add_argument("--layout", default=None, metavar="CDR_CUSTOM_CONF[:MAPPING]",
                   help="asterisk-csv written by cdr_custom: the Asterisk cdr_custom.conf naming its columns "
                        "(MAPPING: the output file's name in it; default the first mapping)")
    add_bootstrap(p)


def add_bootstrap(p) -> None:
    p.add_argument("--bootstrap", default=None,
                   help="Kafka bootstrap servers (default CDRFLOW_KAFKA_BOOTSTRAP; TLS/SASL from CDRFLOW_KAFKA_*)")


def client_conf(bootstrap: str | None) -> dict:
    from streams.settings import get_settings

    conf = get_settings().kafka_client_config()
    if bootstrap:
        conf["bootstrap.servers"] = bootstrap
    return conf


def layout_arg(args):
    """The cdr_custom layout named by --layout (publish and collect), or None."""
    from streams.cli.main import UserError

    if not args.layout:
        return None
    if args.format != "asterisk-csv":
        raise UserError("--layout applies to --format asterisk-csv only")
    from streams.formats.asterisk import layout_from_cdr_custom

    conf, _, mapping = args.layout.partition(":")
    try:
        return layout_from_cdr_custom(Path(conf).read_text(errors="replace"), mapping or None)
    except (OSError, ValueError) as exc:
        raise UserError(f"--layout {args.layout}: {exc}") from None


def cmd_publish(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streams.cli.main import UserError

    missing = [str(f) for f in args.files if not f.is_file()]
    if missing:
        raise UserError(f"no such file: {', '.join(missing)}")
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    layout = layout_arg(args)
    console = Console(stderr=True)
    total = sum(f.read_bytes().count(b"\n") or 1 for f in args.files) if args.format != "avro" else None
    with Progress(TextColumn("[bold]publishing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("publish", total=total)
        try:
            stats = publish_files(client_conf(args.bootstrap), args.format, args.files, args.mode,
                                  args.switch_id, args.batch_size, progress=lambda n: progress.advance(task, n),
                                  err=console.file, layout=layout)
        except (TimeoutError, RuntimeError) as exc:   # broker unreachable or refusing: Publisher.flush
            raise UserError(str(exc)) from None
    reasons = ", ".join(f"{k}={v}" for k, v in sorted(stats.by_reason.items()))
    console.print(f"published {stats.records} records in {stats.messages} messages to {topics.RAW}; "
                  f"{stats.rejected} bad lines to {topics.REJECTED}" + (f" ({reasons})" if reasons else ""),
                  highlight=False, soft_wrap=True)
    if stats.damaged:
        # Non-zero so a script notices: part of a file was not read (its lines above say where).
        console.print(f"{len(stats.damaged)} file(s) damaged, read up to the damage only", highlight=False, soft_wrap=True)
        return 1
    return 0
