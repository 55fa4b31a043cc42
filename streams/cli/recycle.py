"""cdrflow recycle: re-publish rejected records once their cause is fixed.

Reads cdr.rejected from the beginning by *assigning* every partition (no consumer-group join:
tansu's joins take half the session timeout, and recycling needs no committed position),
keeps the rejects whose reason matches, and re-publishes their stored raw bytes to cdr.raw.

Why recycling twice does not double count: the raw bytes are the single-record wire bytes
of the original record (see streams/mediation.py), so a recycled record normalises to the
same CDR key, and the charge stage drops a key it has already applied. Within one run,
identical raw bytes are sent once even when they were rejected several times.

The end of the topic is found by partition EOF, or after ``--idle-s`` seconds without a
message (tansu's high watermark is unreliable, so lag cannot be trusted).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from hashlib import blake2b

from streams import codecs, topics
from streams.cli.main import UserError
from streams.core.reasons import RECYCLABLE, Reason, RejectError


@dataclass
class RecycleStats:
    read: int = 0
    matched: int = 0
    recycled: int = 0
    duplicates: int = 0        # same raw bytes already re-published in this run
    not_recyclable: int = 0    # no wire bytes (file-line rejects, whole bad messages)
    undecodable: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


def read_rejects(client_conf: dict, idle_s: float = 3.0, max_s: float = 300.0):
    """Yield the raw values of cdr.rejected from the start of every partition (nothing when the
    topic does not exist yet); a read that runs out of ``max_s`` is an error, not a short list."""
    from streams.topic_scan import ScanTimeout, TopicMissing, values_to_end

    try:
        yield from values_to_end(client_conf, topics.REJECTED, "cdrflow-recycle", idle_s=idle_s, max_s=max_s)
    except TopicMissing:
        return
    except ScanTimeout as exc:
        raise UserError(f"{exc}; what was read before the limit is done, run recycle again for the rest") from None


def recycle(client_conf: dict, reasons: set[str] | None = None, dry_run: bool = False, idle_s: float = 3.0,
            stage: str | None = None) -> RecycleStats:
    reasons = reasons or {r.value for r in RECYCLABLE}
    stats = RecycleStats()
    sent: set[bytes] = set()
    producer = None
    if not dry_run:
        from confluent_kafka import Producer

        from streams.partitioning import producer_config

        producer = Producer(producer_config(client_conf))
    for value in read_rejects(client_conf, idle_s):
        stats.read += 1
        try:
            name, rej = codecs.decode(value or b"")
            if name != codecs.REJECTED:
                raise RejectError(Reason.UNSUPPORTED_FORMAT, name)
        except RejectError:
            stats.undecodable += 1
            continue
        if rej["reason"] not in reasons or (stage and rej["stage"] != stage):
            continue
        stats.matched += 1
        raw = rej["raw"]
        # Only a Confluent-framed record or an Avro container can go back on cdr.raw;
        # a file line or a message rejected as a whole would just be rejected again.
        if not raw or not (raw[:1] == b"\x00" or codecs.is_container(raw)):
            stats.not_recyclable += 1
            continue
        # A reject whose bytes came from another topic (a control command that failed in the
        # charge stage, source account.control) is not a CDR: on cdr.raw it would only be
        # rejected again, so it is counted and left alone.
        if rej.get("source_topic") == topics.CONTROL:
            stats.not_recyclable += 1
            continue
        digest = blake2b(raw, digest_size=16).digest()
        if digest in sent:
            stats.duplicates += 1
            continue
        sent.add(digest)
        stats.recycled += 1
        stats.by_reason[rej["reason"]] = stats.by_reason.get(rej["reason"], 0) + 1
        if producer is not None:
            key = rej["account"].encode() if rej.get("account") else None
            while True:
                try:
                    producer.produce(topics.RAW, value=raw, key=key)
                    producer.poll(0)
                    break
                except BufferError:
                    producer.poll(0.05)
    if producer is not None and producer.flush(60) > 0:
        raise TimeoutError("Kafka did not acknowledge all recycled records in time")
    return stats


def register(sub) -> None:
    p = sub.add_parser("recycle", help="re-publish rejected CDRs to cdr.raw once their cause is fixed")
    p.add_argument("--reason", action="append", choices=[r.value for r in Reason],
                   help=f"reason to recycle (repeatable); default: {', '.join(sorted(r.value for r in RECYCLABLE))}")
    p.add_argument("--stage", choices=["normalize", "charge"], help="only rejects of this stage")
    p.add_argument("--dry-run", action="store_true", help="count what would be recycled, publish nothing")
    p.add_argument("--idle-s", type=float, default=3.0, help="stop after this many seconds without a reject")
    p.set_defaults(func=cmd_recycle)


def cmd_recycle(args) -> int:
    from rich.console import Console

    from streams.settings import get_settings

    console = Console(stderr=True)
    with console.status("reading cdr.rejected"):
        s = recycle(get_settings().kafka_client_config(), set(args.reason or ()) or None, args.dry_run,
                    args.idle_s, args.stage)
    verb = "would re-publish" if args.dry_run else "re-published"
    reasons = ", ".join(f"{k}={v}" for k, v in sorted(s.by_reason.items()))
    console.print(f"read {s.read} rejects, {s.matched} matched; {verb} {s.recycled} to {topics.RAW}"
                  + (f" ({reasons})" if reasons else "")
                  + f"; {s.duplicates} duplicates, {s.not_recyclable} without wire bytes, {s.undecodable} undecodable")
    return 0
