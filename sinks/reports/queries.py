"""SQL for the analyst views and the reports: pure functions returning strings.

Every query reads ``cdr_rated FINAL`` (or a view defined over it). FINAL keeps one row per
sorting key (account, start_time, cdr_key), the one with the highest rating_version, so a
retried batch and a rerated CDR both count once. That is what makes these correct on
clickhouse-server 18.16 as well, which has no insert-dedup window: a materialised rollup there
would add a retried batch twice, a view over FINAL cannot.

Money leaves ClickHouse as Int64 micro-units (``cost_micros``); Python turns it into Decimal.
That avoids depending on how each client maps ClickHouse Decimal sums (Decimal128 scale, Arrow).

The view bodies (``*_select``) are also used as sub-queries by the reports, so a report never
depends on whether the analyst migrations have been applied to the target.
"""
from __future__ import annotations

from typing import Iterable

from sinks.clickhouse.ddl import table_ref


def lit(value: str) -> str:
    """A ClickHouse string literal. Backslash first, or the quote's escape would be doubled."""
    if not isinstance(value, str):
        raise TypeError(f"expected a string literal, got {type(value).__name__}")
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def lit_list(values: Iterable[str]) -> str:
    return "(" + ", ".join(lit(v) for v in values) + ")"


def rated_final(db: str) -> str:
    return f"{table_ref(db, 'cdr_rated')} FINAL"


# Columns of an itemised bill line. Money stays integer micros here (see module doc).
ITEM_COLUMNS = (
    "account", "service_user", "period", "cdr_key", "start_time", "end_time", "direction",
    "caller_e164", "presented_cli", "called_e164", "called_type", "destination", "prefix",
    "service", "disposition", "duration_s", "billsec_s", "charged_s", "rate_micros",
    "connect_fee_micros", "cost_micros", "tariff_plan", "tariff_version", "rating_version",
)
# The itemised bill also shows each row's currency (migration 9); the analyst views and the portal
# keep ITEM_COLUMNS as their views were created with.
ITEMIZED_COLUMNS = ITEM_COLUMNS + ("currency",)

# Phone-number columns; never exposed raw to the analyst database.
NUMBER_COLUMNS = ("caller_e164", "presented_cli", "called_e164")

# Barring transitions that mean a threshold was crossed (soft limit → low credit, hard → blocked).
BREACH_REASONS = ("soft_limit", "hard_limit")

BARRING_COLUMNS = (
    "account", "period", "seq", "old_profile", "new_profile", "reason", "spend_micros",
    "credit_micros", "soft_limit_micros", "max_rate_micros_per_min", "cause_cdr_key", "at_time",
    "correction",
)


# ------------------------------------------------------------------------------ view bodies

def itemized_select(db: str) -> str:
    return f"SELECT {', '.join(ITEM_COLUMNS)} FROM {rated_final(db)}"


def daily_account_select(db: str) -> str:
    return (f"SELECT account, toDate(start_time) AS day, count() AS calls, "
            f"toInt64(sum(charged_s)) AS charged_s, toInt64(sum(cost_micros)) AS cost_micros "
            f"FROM {rated_final(db)} GROUP BY account, day")


def daily_user_select(db: str) -> str:
    return (f"SELECT account, service_user, toDate(start_time) AS day, count() AS calls, "
            f"toInt64(sum(charged_s)) AS charged_s, toInt64(sum(cost_micros)) AS cost_micros "
            f"FROM {rated_final(db)} GROUP BY account, service_user, day")


def period_account_select(db: str) -> str:
    return (f"SELECT account, period, count() AS calls, toInt64(sum(charged_s)) AS charged_s, "
            f"toInt64(sum(cost_micros)) AS cost_micros "
            f"FROM {rated_final(db)} GROUP BY account, period")


def period_user_select(db: str) -> str:
    return (f"SELECT account, service_user, period, count() AS calls, "
            f"toInt64(sum(charged_s)) AS charged_s, toInt64(sum(cost_micros)) AS cost_micros "
            f"FROM {rated_final(db)} GROUP BY account, service_user, period")


def _latest_period_filter(db: str) -> str:
    # "Current" = the latest period an account has rated calls in. Period labels ('2026-11',
    # '2026-W47') sort as strings in time order, and an account has one period kind.
    return (f"(account, period) IN (SELECT account, max(period) FROM {table_ref(db, 'cdr_rated')} "
            f"GROUP BY account)")


def current_spend_account_select(db: str) -> str:
    return f"SELECT * FROM ({period_account_select(db)}) WHERE {_latest_period_filter(db)}"


def current_spend_user_select(db: str) -> str:
    return f"SELECT * FROM ({period_user_select(db)}) WHERE {_latest_period_filter(db)}"


def top_destinations_select(db: str) -> str:
    return (f"SELECT period, destination, count() AS calls, toInt64(sum(charged_s)) AS charged_s, "
            f"toInt64(sum(cost_micros)) AS cost_micros "
            f"FROM {rated_final(db)} GROUP BY period, destination")


def barring_history_select(db: str) -> str:
    # FINAL: a replayed transition (same account, seq) counts once.
    return (f"SELECT {', '.join(BARRING_COLUMNS)} "
            f"FROM {table_ref(db, 'barring_events')} FINAL")


def threshold_breaches_select(db: str) -> str:
    return f"SELECT * FROM ({barring_history_select(db)}) WHERE reason IN {lit_list(BREACH_REASONS)}"


def mask_number_expr(col: str) -> str:
    """Keep the country/area prefix, hide the last four digits; short numbers are fully hidden."""
    return (f"multiIf(length({col}) = 0, '', length({col}) > 6, "
            f"concat(substring({col}, 1, length({col}) - 4), '****'), '****')")


def keyed_hash_expr(col: str, salt: str) -> str:
    # A salted hash lets analysts count and group by number without seeing it. Empty stays 0 so
    # "no presented CLI" is not mistaken for one very busy number.
    return f"if(length({col}) = 0, toUInt64(0), sipHash64(concat({lit(salt)}, {col})))"


def masked_cdr_select(db: str, salt: str) -> str:
    cols = []
    for c in ITEM_COLUMNS:
        if c in NUMBER_COLUMNS:
            cols.append(f"{mask_number_expr(c)} AS {c}_masked")
            cols.append(f"{keyed_hash_expr(c, salt)} AS {c}_id")
        else:
            cols.append(c)
    return f"SELECT {', '.join(cols)} FROM {rated_final(db)}"


# --------------------------------------------------------------------------- report queries

def _where(conds: list[str]) -> str:
    return (" WHERE " + " AND ".join(conds)) if conds else ""


def itemized_sql(db: str, account: str, period: str, service_user: str | None = None) -> str:
    # The account prefix of ORDER BY (account, start_time, cdr_key) makes this a range scan.
    conds = [f"account = {lit(account)}", f"period = {lit(period)}"]
    if service_user is not None:
        conds.append(f"service_user = {lit(service_user)}")
    return (f"SELECT {', '.join(ITEMIZED_COLUMNS)} FROM {rated_final(db)}{_where(conds)} "
            f"ORDER BY start_time, cdr_key")


def user_totals_sql(db: str, period: str | None = None) -> str:
    conds = [f"period = {lit(period)}"] if period is not None else []
    return (f"SELECT account, period, service_user, calls, charged_s, cost_micros "
            f"FROM ({period_user_select(db)}){_where(conds)} "
            f"ORDER BY account, period, service_user")


def spend_by_account_sql(db: str, period: str | None = None, limit: int = 30) -> str:
    conds = [f"period = {lit(period)}"] if period is not None else []
    return (f"SELECT account, toInt64(sum(cost_micros)) AS cost_micros, toInt64(sum(calls)) AS calls "
            f"FROM ({period_account_select(db)}){_where(conds)} "
            f"GROUP BY account ORDER BY cost_micros DESC, account LIMIT {int(limit)}")


def spend_over_time_sql(db: str, bucket: str = "hour", period: str | None = None) -> str:
    fn = {"hour": "toStartOfHour", "day": "toStartOfDay"}[bucket]
    conds = [f"period = {lit(period)}"] if period is not None else []
    # Epoch seconds, not a DateTime: chdb hands a bucketed DateTime64 back as a bare integer
    # through Arrow while clickhouse-driver returns a datetime; an integer is the same on both.
    return (f"SELECT toInt64(toUnixTimestamp({fn}(start_time))) AS t, count() AS calls, "
            f"toInt64(sum(cost_micros)) AS cost_micros "
            f"FROM {rated_final(db)}{_where(conds)} GROUP BY t ORDER BY t")


def top_destinations_sql(db: str, period: str | None = None, limit: int = 10) -> str:
    conds = [f"period = {lit(period)}"] if period is not None else []
    return (f"SELECT destination, toInt64(sum(calls)) AS calls, toInt64(sum(charged_s)) AS charged_s, "
            f"toInt64(sum(cost_micros)) AS cost_micros FROM ({top_destinations_select(db)}){_where(conds)} "
            f"GROUP BY destination ORDER BY cost_micros DESC, destination LIMIT {int(limit)}")


def barring_history_sql(db: str, period: str | None = None, breaches_only: bool = False) -> str:
    conds = [f"period = {lit(period)}"] if period is not None else []
    if breaches_only:
        conds.append(f"reason IN {lit_list(BREACH_REASONS)}")
    return (f"SELECT {', '.join(BARRING_COLUMNS)} FROM ({barring_history_select(db)}){_where(conds)} "
            f"ORDER BY at_time, account, seq")


def rejects_by_reason_sql(db: str) -> str:
    return (f"SELECT reason, stage, count() AS n FROM {table_ref(db, 'cdr_rejected')} FINAL "
            f"GROUP BY reason, stage ORDER BY n DESC, reason, stage")


def totals_sql(db: str, period: str | None = None) -> str:
    conds = [f"period = {lit(period)}"] if period is not None else []
    return (f"SELECT count() AS calls, toInt64(sum(cost_micros)) AS cost_micros "
            f"FROM {rated_final(db)}{_where(conds)}")
