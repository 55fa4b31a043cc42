"""Financial periods: open, closed, or partially closed (closed up to an instant), per account or
for every account ("*"), and the adjustment views that rerating with ``--adjust`` relies on.

Tables (migration 6 in ``ddl.MIGRATIONS``):

* ``financial_periods`` — the current decision per (period, account): ReplacingMergeTree(version),
  where ``version`` is the decision time in epoch milliseconds (made strictly increasing per
  writer). Read with FINAL; the newest decision wins.
* ``financial_period_log`` — every close / reopen / partial close, append-only (plain MergeTree),
  with who and when: the audit trail the ReplacingMergeTree collapses away.

Which decision applies to an account: the newer (by version) of its own row and the "*" row of
the same period. "Close everything, then reopen account A" leaves A open; closing "*" again later
closes A too — the latest decision that names the account (or all accounts) wins.

A CDR is *locked* (its landed rows may not change) when its period is ``closed``, or is
``partial`` and the CDR started before ``closed_until``.

Adjustments (``cdrflow rerate --adjust``): a locked CDR keeps its landed row; the difference goes
into ``cdr_rated`` as an adjustment row with key ``<cdr_key>#adj@<adjustment period>``, dated at
the start of the (open) adjustment period, with ``disposition = 'ADJUSTMENT'``,
``period = <adjustment period>`` and only the money delta in ``cost_micros``. Living in
``cdr_rated`` means every report and view that reads ``cdr_rated FINAL`` (sinks/reports, the
v_* views, the sink's money total) includes the adjustment without a change. ``v_adjustments``
lists them with ``adjustment_of`` (the original cdr_key), and ``v_period_account_billed`` separates
call counts from adjustment money, for reports that want to show them apart.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Iterable

from sinks.clickhouse.ddl import table_ref

if TYPE_CHECKING:
    from sinks.clickhouse.backend import Backend

Version = tuple[int, int, int]

OPEN, CLOSED, PARTIAL = "open", "closed", "partial"
STATUSES = (OPEN, CLOSED, PARTIAL)
ALL = "*"
ADJ_SEP = "#adj@"
ADJ_DISPOSITION = "ADJUSTMENT"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

COLUMNS = ("account", "period", "status", "closed_until", "changed_by", "changed_at", "version", "note")


def _table_sql(db: str, name: str, engine: str, order: str) -> str:
    # DateTime (seconds), not DateTime64: 18.16 has no DateTime64, and a close instant to the
    # second is what an accountant types.
    return (f"CREATE TABLE IF NOT EXISTS {table_ref(db, name)} (\n"
            "    account String,\n    period String,\n    status String,\n"
            "    closed_until DateTime('UTC'),\n    changed_by String,\n    changed_at DateTime('UTC'),\n"
            "    version UInt64,\n    note String\n"
            f") ENGINE = {engine}\nORDER BY {order}")


def create_financial_periods(db: str) -> str:
    # ORDER BY (period, account): one row per decision target; "what is closed in 2026-10" is a
    # prefix scan. version = decision time in ms, so the newest decision survives the merge.
    return _table_sql(db, "financial_periods", "ReplacingMergeTree(version)", "(period, account)")


def create_financial_period_log(db: str) -> str:
    return _table_sql(db, "financial_period_log", "MergeTree", "(period, account, version)")


def adjustments_view(db: str) -> str:
    return (f"CREATE VIEW IF NOT EXISTS {table_ref(db, 'v_adjustments')} AS "
            f"SELECT account, period, splitByString('{ADJ_SEP}', cdr_key)[1] AS adjustment_of, cdr_key, "
            f"start_time, cost_micros, charged_s, tariff_plan, tariff_version, rating_version "
            f"FROM {table_ref(db, 'cdr_rated')} FINAL WHERE disposition = '{ADJ_DISPOSITION}'")


def period_account_billed_view(db: str) -> str:
    # Sums over an inner alias: an outer alias named like the column would nest the aggregates.
    adj = f"d = '{ADJ_DISPOSITION}'"
    return (f"CREATE VIEW IF NOT EXISTS {table_ref(db, 'v_period_account_billed')} AS "
            f"SELECT account, period, countIf(NOT ({adj})) AS calls, "
            f"toInt64(sumIf(c, NOT ({adj}))) AS calls_cost_micros, "
            f"toInt64(sumIf(c, {adj})) AS adjustments_micros, toInt64(sum(c)) AS cost_micros "
            f"FROM (SELECT account, period, disposition AS d, cost_micros AS c "
            f"FROM {table_ref(db, 'cdr_rated')} FINAL) GROUP BY account, period")


def migration_sql(db: str, version: Version) -> list[str]:
    return [create_financial_periods(db), create_financial_period_log(db), adjustments_view(db),
            period_account_billed_view(db)]


# ------------------------------------------------------------------------------ pure model

@dataclass(frozen=True)
class Decision:
    account: str
    period: str
    status: str
    closed_until_ms: int      # PARTIAL: CDRs starting before this are locked; else 0
    changed_by: str
    changed_at_ms: int
    version: int
    note: str = ""


def effective(decisions: Iterable[Decision], account: str, period: str) -> Decision | None:
    """The decision that applies to ``account`` in ``period``: newest of its own and the "*" one."""
    best = None
    for d in decisions:
        if d.period == period and d.account in (account, ALL):
            if best is None or (d.version, d.account != ALL) > (best.version, best.account != ALL):
                best = d
    return best


def is_locked(decision: Decision | None, start_ms: int) -> bool:
    if decision is None or decision.status == OPEN:
        return False
    if decision.status == CLOSED:
        return True
    return start_ms < decision.closed_until_ms


def was_ever_closed(log: Iterable[Decision], account: str, period: str) -> bool:
    return any(d.period == period and d.account in (account, ALL) and d.status != OPEN for d in log)


# ------------------------------------------------------------------------------ backend I/O

def _ms(dt) -> int:
    if isinstance(dt, datetime):
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(dt.timestamp()) * 1000
    return int(dt) * 1000


def _select(db: str, table: str, final: bool, period: str | None, account: str | None) -> str:
    conds = []
    if period is not None:
        conds.append(f"period = '{_esc(period)}'")
    if account is not None:
        conds.append(f"account IN ('{_esc(account)}', '*')")
    where = (" WHERE " + " AND ".join(conds)) if conds else ""
    return (f"SELECT account, period, status, toInt64(toUInt32(closed_until)), changed_by, "
            f"toInt64(toUInt32(changed_at)), toInt64(version), note FROM {table_ref(db, table)}"
            f"{' FINAL' if final else ''}{where} ORDER BY period, account, version")


def _esc(s: str) -> str:
    return s.replace("\\", "\\\\").replace("'", "\\'")


def _rows(backend: "Backend", sql: str) -> list[Decision]:
    return [Decision(a, p, s, int(cu) * 1000, by, int(at) * 1000, int(v), note)
            for a, p, s, cu, by, at, v, note in backend.query(sql)]


def current(backend: "Backend", period: str | None = None, account: str | None = None) -> list[Decision]:
    return _rows(backend, _select(backend.database, "financial_periods", True, period, account))


def history(backend: "Backend", period: str | None = None, account: str | None = None) -> list[Decision]:
    return _rows(backend, _select(backend.database, "financial_period_log", False, period, account))


def _next_version(backend: "Backend", now_ms: int) -> int:
    rows = backend.query(f"SELECT toInt64(max(version)) FROM {table_ref(backend.database, 'financial_period_log')}")
    last = int(rows[0][0] or 0) if rows else 0
    return max(now_ms, last + 1)


def record(backend: "Backend", *, account: str, period: str, status: str, by: str,
           closed_until_ms: int = 0, note: str = "", now_ms: int | None = None) -> Decision:
    """Write one decision to the current-state table and to the log (log first: the audit trail
    must never miss a decision that took effect)."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, not {status!r}")
    if status == PARTIAL and closed_until_ms <= 0:
        raise ValueError("a partial close needs the instant it closes up to")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    d = Decision(account, period, status, closed_until_ms if status == PARTIAL else 0, by,
                 now_ms, _next_version(backend, now_ms), note)
    cols = [[d.account], [d.period], [d.status],
            [datetime.fromtimestamp(d.closed_until_ms // 1000, timezone.utc)], [d.changed_by],
            [datetime.fromtimestamp(d.changed_at_ms // 1000, timezone.utc)], [d.version], [d.note]]
    for table in ("financial_period_log", "financial_periods"):
        backend.insert_columns(f"{backend.database}.{table}", list(COLUMNS), [list(c) for c in cols])
    return d
