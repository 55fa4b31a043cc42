"""Create or verify the pipeline's topics on any Kafka (``cdrflow topics apply``).

The plan comes from :func:`streams.topics.plan`. Partition counts are never changed on an
existing topic: account-keyed topics are co-partitioned and an account must stay on its
partition, so a wrong count is reported for an operator to decide (it needs a migration),
while a wrong topic config (e.g. ``cleanup.policy``) is corrected in place.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic,
                                   ResourceType)

from streams.topics import TopicPlan

# What a broker means when a topic does not list the key (tansu lists only explicit settings).
BROKER_DEFAULTS = {"cleanup.policy": "delete"}
TIMEOUT_S = 15


@dataclass
class TopicReport:
    created: list[str] = field(default_factory=list)
    altered: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)   # what apply could not (or verify did not) fix

    @property
    def ok(self) -> bool:
        return not self.problems


def _describe(admin: AdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    if not names:
        return {}
    futs = admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in names],
                                  request_timeout=TIMEOUT_S)
    return {res.name: {k: e.value for k, e in fut.result().items()} for res, fut in futs.items()}


def config_diff(plan: TopicPlan, actual: dict[str, str]) -> dict[str, tuple[str | None, str]]:
    """key -> (actual, wanted) for every planned config the topic does not have."""
    out = {}
    for key, want in plan.config.items():
        got = actual.get(key, BROKER_DEFAULTS.get(key))
        if got != want:
            out[key] = (got, want)
    return out


def check(admin_conf: dict, plans: list[TopicPlan], fix: bool = False) -> TopicReport:
    """Verify (``fix=False``) or apply (``fix=True``) the plan. Never raises for a mismatch;
    connection problems raise ``KafkaException``."""
    # Quiet librdkafka's informational lines (e.g. "Purging ... background queue" on close): the
    # commands print one line on a mismatch, and warnings and errors still come through.
    admin = AdminClient({"log_level": 4, **admin_conf})
    report = TopicReport()
    meta = admin.list_topics(timeout=TIMEOUT_S).topics
    missing = [p for p in plans if p.name not in meta]
    if missing and fix:
        futs = admin.create_topics([NewTopic(p.name, p.partitions, p.replication, config=dict(p.config))
                                    for p in missing], request_timeout=TIMEOUT_S)
        for name, fut in futs.items():
            try:
                fut.result()
                report.created.append(name)
            except Exception as exc:  # a concurrent apply may have won the race: verified below
                if "exist" not in str(exc).lower():
                    report.problems.append(f"{name}: cannot create: {exc}")
        meta = admin.list_topics(timeout=TIMEOUT_S).topics
    elif missing:
        report.problems += [f"{p.name}: missing" for p in missing]
    present = [p for p in plans if p.name in meta and p.name not in report.created]
    for p in present:
        n = len(meta[p.name].partitions)
        if n != p.partitions:
            report.problems.append(f"{p.name}: {n} partitions, expected {p.partitions}")
        reps = {len(part.replicas) for part in meta[p.name].partitions.values()}
        if reps and min(reps) < p.replication:
            report.problems.append(f"{p.name}: replication factor {min(reps)}, expected {p.replication}")
    actual = _describe(admin, [p.name for p in present])
    to_alter = []
    for p in present:
        diff = config_diff(p, actual.get(p.name, {}))
        if not diff:
            continue
        if fix:
            to_alter.append(ConfigResource(ResourceType.TOPIC, p.name, incremental_configs=[
                ConfigEntry(k, want, incremental_operation=AlterConfigOpType.SET) for k, (_, want) in diff.items()]))
        else:
            report.problems += [f"{p.name}: {k}={got or 'unset'}, expected {want}" for k, (got, want) in diff.items()]
    if to_alter:
        for res, fut in admin.incremental_alter_configs(to_alter, request_timeout=TIMEOUT_S).items():
            try:
                fut.result()
                report.altered.append(res.name)
            except Exception as exc:
                report.problems.append(f"{res.name}: cannot alter configs: {exc}")
    return report


def apply(admin_conf: dict, plans: list[TopicPlan]) -> TopicReport:
    return check(admin_conf, plans, fix=True)


def verify(admin_conf: dict, plans: list[TopicPlan]) -> TopicReport:
    return check(admin_conf, plans, fix=False)
