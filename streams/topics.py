"""Every topic name, partition rule and codec in one place.

Account-keyed topics (normalised CDRs, control commands, barring, state) share one partition
count, and every producer that writes them hashes keys with murmur2 (Java/aiokafka default), so
an account lives on exactly one partition whichever client produced its records.
"""
from __future__ import annotations

from dataclasses import dataclass

RAW = "cdr.raw"                  # switch CDRs: single records or Avro containers (any key)
NORMALIZED = "cdr.normalized"    # CanonicalBatch per account partition (explicit partition)
CONTROL = "account.control"      # ControlCommand, key = account
RATED = "cdr.rated"              # RatedBatch per account partition
COMMISSIONS = "cdr.commissions"  # RatedBatch of partner commissions (never part of a bill)
REJECTED = "cdr.rejected"        # RejectedCdr, key = reject id
BARRING = "account.barring"      # BarringEvent, key = account
STATE = "account.state"          # AccountState, key = account (compacted)
NOTIFICATIONS = "account.notifications"  # Notification (partner limits, service-user thresholds)
REPLIES = "account.replies"      # CommandReply: the outcome of each ControlCommand, key = account
TARIFFS = "tariff.plans"         # tariff files, key = plan (compacted)
PERIODS = "financial.periods"    # financial-period decisions, key = account|period (compacted)

ACCOUNT_TABLE = "accounts"       # Faust table name; changelog is cdrflow-accounts-changelog
KEYS_TABLE = "cdrkeys"           # applied CDR keys per (account, day, hash prefix); cdrflow-cdrkeys-changelog
RESERVATIONS_TABLE = "reservations"  # authorize agent's open reservations; cdrflow-reservations-changelog
# Every Faust table (tests/unit/test_changelog_topics.py compares this with the app's tables).
TABLES = (ACCOUNT_TABLE, KEYS_TABLE, RESERVATIONS_TABLE)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    account_keyed: bool
    compacted: bool = False


SPECS = [
    TopicSpec(RAW, False),
    TopicSpec(NORMALIZED, True),
    TopicSpec(CONTROL, True),
    TopicSpec(RATED, True),
    TopicSpec(COMMISSIONS, True),
    TopicSpec(REJECTED, False),
    TopicSpec(BARRING, True),
    TopicSpec(STATE, True, compacted=True),
    TopicSpec(NOTIFICATIONS, True),
    TopicSpec(REPLIES, True),
    TopicSpec(TARIFFS, False, compacted=True),
    TopicSpec(PERIODS, False, compacted=True),
]


def partitions_for(spec: TopicSpec, partitions: int, raw_partitions: int) -> int:
    if spec.name in (TARIFFS, PERIODS):
        return 1
    return partitions if spec.account_keyed or spec.name == REJECTED else raw_partitions


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-{ACCOUNT_TABLE}-changelog"


def changelog_topics(app_id: str) -> list[str]:
    """Every Faust table's changelog (each co-partitioned with the account topics)."""
    return [f"{app_id}-{table}-changelog" for table in TABLES]


@dataclass(frozen=True)
class TopicPlan:
    """What one topic must look like on the cluster (``cdrflow topics apply`` makes it so)."""
    name: str
    partitions: int
    replication: int
    config: dict


def plan(partitions: int, raw_partitions: int, replication: int = 1, min_insync: int | None = None,
         app_id: str = "cdrflow") -> list[TopicPlan]:
    """Every topic the pipeline uses, with the Faust table's changelog (compacted, one
    partition per account partition: Faust requires the table to be co-partitioned)."""
    def cfg(compacted: bool) -> dict:
        c = {"cleanup.policy": "compact" if compacted else "delete"}
        if min_insync:
            c["min.insync.replicas"] = str(min_insync)
        return c

    out = [TopicPlan(s.name, partitions_for(s, partitions, raw_partitions), replication, cfg(s.compacted))
           for s in SPECS]
    out += [TopicPlan(name, partitions, replication, cfg(True)) for name in changelog_topics(app_id)]
    return out


def plan_from_settings(settings) -> list[TopicPlan]:
    return plan(settings.partitions, settings.raw_partitions, settings.topic_replication_factor,
                settings.topic_min_insync_replicas)
