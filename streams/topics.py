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
TARIFFS = "tariff.plans"         # tariff files, key = plan (compacted)

ACCOUNT_TABLE = "accounts"       # Faust table name; changelog is cdrflow-accounts-changelog


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
    TopicSpec(TARIFFS, False, compacted=True),
]


def partitions_for(spec: TopicSpec, partitions: int, raw_partitions: int) -> int:
    if spec.name == TARIFFS:
        return 1
    return partitions if spec.account_keyed or spec.name == REJECTED else raw_partitions


def changelog_topic(app_id: str) -> str:
    return f"{app_id}-{ACCOUNT_TABLE}-changelog"
