"""cdrflow topics apply | verify | list: the pipeline's topics on any Kafka."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("topics", help="create or verify the pipeline's topics (partitions, compaction)")
    tsub = p.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    a = tsub.add_parser("apply", help="create missing topics and correct their configs; report what cannot be fixed")
    _common(a)
    a.set_defaults(func=cmd_apply)
    v = tsub.add_parser("verify", help="check the topics without changing anything (what a worker does at start)")
    _common(v)
    v.set_defaults(func=cmd_verify)
    s = tsub.add_parser("list", help="print the planned topics")
    _common(s)
    s.set_defaults(func=cmd_list)


def _common(p) -> None:
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default CDRFLOW_KAFKA_BOOTSTRAP; TLS/SASL from CDRFLOW_KAFKA_*)")
    p.add_argument("--partitions", type=int, help="partitions of account-keyed topics (default CDRFLOW_PARTITIONS)")
    p.add_argument("--raw-partitions", type=int, help="partitions of cdr.raw (default CDRFLOW_RAW_PARTITIONS)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _plans_and_conf(args):
    from streams import topics
    from streams.kafka_config import librdkafka_config
    from streams.settings import get_settings

    s = get_settings()
    conf = librdkafka_config(s)
    if args.bootstrap:
        conf["bootstrap.servers"] = args.bootstrap
    plans = topics.plan(args.partitions or s.partitions, args.raw_partitions or s.raw_partitions,
                        s.topic_replication_factor, s.topic_min_insync_replicas)
    return plans, conf


def _run(args, fix: bool) -> int:
    from confluent_kafka import KafkaException

    from streams import topic_admin
    from streams.cli.main import UserError

    plans, conf = _plans_and_conf(args)
    try:
        report = topic_admin.check(conf, plans, fix=fix)
    except KafkaException as exc:
        raise UserError(f"cannot reach Kafka at {conf['bootstrap.servers']}: {exc.args[0].str() if exc.args else exc}")
    if args.json:
        print(json.dumps({"created": report.created, "altered": report.altered, "problems": report.problems}))
    else:
        for name in report.created:
            print(f"created {name}")
        for name in report.altered:
            print(f"altered {name}")
        if report.ok:
            print(f"{len(plans)} topics match streams/topics.py")
    if not report.ok:
        raise UserError("topics do not match streams/topics.py: " + "; ".join(report.problems))
    return 0


def cmd_apply(args) -> int:
    return _run(args, fix=True)


def cmd_verify(args) -> int:
    return _run(args, fix=False)


def cmd_list(args) -> int:
    plans, _ = _plans_and_conf(args)
    if args.json:
        print(json.dumps([p.__dict__ for p in plans]))
    else:
        for p in plans:
            cfg = ",".join(f"{k}={v}" for k, v in p.config.items())
            print(f"{p.name}\tpartitions={p.partitions}\treplication={p.replication}\t{cfg}")
    return 0
