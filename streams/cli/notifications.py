"""``cdrflow notifications``: see and deliver partner notifications.

    cdrflow notifications watch   [--from-beginning] [--account A ...] [--json] [--max-seconds S] [--bootstrap B]
    cdrflow notifications deliver --webhooks partners.yaml [--max-attempts N] [--keep-trying] [--max-seconds S]
                                  [--bootstrap B]

``cdrflow up`` starts ``deliver --keep-trying`` itself when ``CDRFLOW_WEBHOOKS_FILE`` is set.

``watch`` prints every notification of ``account.notifications`` (soft/hard limit, service-user
thresholds) as it arrives. ``deliver`` is the long-running webhook sender: each notification is
POSTed, signed, to its partner's URL (streams/notifications.py documents the format).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from streams.cli.main import UserError
from streams.core.money import format_micros


def register(subparsers) -> None:
    p = subparsers.add_parser("notifications", help="watch partner notifications or deliver them as webhooks")
    sub = p.add_subparsers(dest="notifications_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
    w = sub.add_parser("watch", help="print account.notifications as they arrive")
    w.add_argument("--from-beginning", action="store_true", help="from the topic's start")
    w.add_argument("--account", action="append", default=[], metavar="ACCOUNT", help="only this account (repeatable)")
    w.add_argument("--json", action="store_true", help="JSON lines instead of text")
    w.add_argument("--max-seconds", type=float, default=None, help="stop after this many seconds")
    w.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
    w.set_defaults(func=cmd_watch)
    d = sub.add_parser("deliver", help="POST each notification to its partner's webhook (long-running)")
    d.add_argument("--webhooks", type=Path, default=None,
                   help="partners YAML (default: CDRFLOW_WEBHOOKS_FILE)")
    d.add_argument("--max-attempts", type=int, default=8, help="tries per notification (default 8)")
    d.add_argument("--max-seconds", type=float, default=None, help="stop after this many seconds")
    d.add_argument("--first-backoff", type=float, default=1.0, metavar="S",
                   help="wait before the first retry; doubles per retry (default 1)")
    d.add_argument("--max-backoff", type=float, default=60.0, metavar="S", help="longest wait between tries (default 60)")
    d.add_argument("--keep-trying", action="store_true",
                   help="after --max-attempts, pause and try the same notification again instead of stopping "
                        "(what `cdrflow up` runs)")
    d.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
    d.set_defaults(func=cmd_deliver)


def _conf(bootstrap: str | None) -> dict:
    from streams.settings import get_settings

    conf = get_settings().kafka_client_config()
    if bootstrap:
        conf["bootstrap.servers"] = bootstrap
    return conf


def describe(n: dict) -> str:
    who = n["account"] + (f" user {n['service_user']}" if n.get("service_user") else "")
    return (f"{who} {n['kind']} in {n['period']}: spend {format_micros(n['spend_micros'])} reached "
            f"{format_micros(n['threshold_micros'])}" + (" (correction)" if n.get("correction") else "")
            + (f", cause CDR {n['cause_cdr_key']}" if n.get("cause_cdr_key") else "")
            + f" [{n['notification_id']}]")


def cmd_watch(args) -> int:
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    from streams import codecs, topics
    from streams.controllers import Stopper, _partitions

    if args.max_seconds is not None and args.max_seconds <= 0:
        raise UserError("--max-seconds must be positive")
    stopper = Stopper(args.max_seconds)
    consumer = Consumer({**_conf(args.bootstrap), "group.id": "cdrflow-notifications-watch",
                         "enable.auto.commit": False})
    seen: set[str] = set()
    wanted = set(args.account)
    shown = 0
    try:
        try:
            parts = _partitions(consumer, topics.NOTIFICATIONS, wanted)
        except RuntimeError as exc:
            raise UserError(str(exc)) from None
        start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
        consumer.assign([TopicPartition(topics.NOTIFICATIONS, p, start) for p in parts])
        while not stopper.stopped():
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            try:
                _, n = codecs.decode(msg.value())
            except Exception:
                continue
            # At-least-once topic: a notification id is shown once.
            if (wanted and n["account"] not in wanted) or n["notification_id"] in seen:
                continue
            seen.add(n["notification_id"])
            shown += 1
            print(json.dumps({"type": "notification", **n}) if args.json else describe(n), flush=True)
    finally:
        consumer.close()
        stopper.restore()
    if args.json:
        print(json.dumps({"type": "summary", "notifications": shown}))
    else:
        print(f"stopped: {shown} notifications", file=sys.stderr)
    return 0


def cmd_deliver(args) -> int:
    from streams.controllers import Stopper
    from streams.notifications import GAVE_UP, Deliverer, load_partners, run_delivery
    from streams.settings import get_settings

    path = args.webhooks or get_settings().webhooks_file
    if path is None:
        raise UserError("no partners file: pass --webhooks FILE or set CDRFLOW_WEBHOOKS_FILE")
    try:
        partners = load_partners(path)
        if args.first_backoff <= 0 or args.max_backoff < args.first_backoff:
            raise ValueError("--first-backoff must be positive and at most --max-backoff")
        deliverer = Deliverer(partners, max_attempts=args.max_attempts, base_backoff_s=args.first_backoff,
                              max_backoff_s=args.max_backoff)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    gave_up: list[str] = []

    def on_result(note, res) -> None:
        if res is not None and res.outcome == GAVE_UP:
            gave_up.append(note["notification_id"])

    stopper = Stopper(args.max_seconds)
    try:
        n = run_delivery(_conf(args.bootstrap), deliverer, stopper, on_result, keep_trying=args.keep_trying)
    finally:
        stopper.restore()
    if gave_up and not args.keep_trying:
        raise UserError(f"notification {gave_up[0]} could not be delivered after {args.max_attempts} attempts; "
                        f"stopped on it (restart to retry; nothing is skipped)")
    print(f"delivered {n} notifications")
    return 0
