"""SQL the portal runs: pure functions returning strings, over the same FINAL reads as the reports.

Every query names its accounts (``account = ...`` / ``IN (...)``) from the caller's grant, so the
server-side grant check in the app and the SQL filter are two separate guards. Money leaves as
Int64 micros (see sinks/reports/queries.py); days leave as 'YYYY-MM-DD' strings in the account's
time zone so chdb and clickhouse-driver hand back the same thing.
"""
from __future__ import annotations

import re
from datetime import date

from sinks.clickhouse.ddl import table_ref
from sinks.reports.queries import ITEM_COLUMNS, barring_history_select, lit, lit_list, rated_final

_TZ = re.compile(r"^[A-Za-z0-9_+\-/]{1,64}$")

STATE_COLUMNS = ("account", "period", "profile", "spend_micros", "credit_micros", "soft_limit_micros", "seq",
                 "updated_s")


def tz_lit(tz: str) -> str:
    # Validated as well as quoted: a time zone also reaches toDate()/toDateTime() arguments.
    if not _TZ.match(tz):
        raise ValueError(f"bad time zone name {tz!r}")
    return lit(tz)


def local_midnight(day: date, tz: str) -> str:
    return f"toDateTime({lit(day.isoformat() + ' 00:00:00')}, {tz_lit(tz)})"


def states_sql(db: str, accounts: list[str]) -> str:
    """Latest account.state snapshot per account (highest seq), as landed by the sink."""
    return (f"SELECT account, argMax(period, seq), argMax(profile, seq), argMax(spend_micros, seq), "
            f"argMax(credit_micros, seq), argMax(soft_limit_micros, seq), max(seq), "
            f"toInt64(toUnixTimestamp(argMax(updated_time, seq))) "
            f"FROM {table_ref(db, 'account_state_history')} FINAL "
            f"WHERE account IN {lit_list(accounts)} GROUP BY account ORDER BY account")


def spend_since_sql(db: str, account: str, since_s: int, until_s: int) -> str:
    """Spend of the calls that started in [since, until): the recent spend rate of the forecast."""
    return (f"SELECT toInt64(sum(cost_micros)), count() FROM {rated_final(db)} "
            f"WHERE account = {lit(account)} AND start_time >= toDateTime({int(since_s)}, 'UTC') "
            f"AND start_time < toDateTime({int(until_s)}, 'UTC')")


def period_spend_sql(db: str, account: str, period: str) -> str:
    return (f"SELECT toInt64(sum(cost_micros)) FROM {rated_final(db)} "
            f"WHERE account = {lit(account)} AND period = {lit(period)}")


def _users_cond(users: frozenset[str] | None) -> str:
    return "" if users is None else f" AND service_user IN {lit_list(sorted(users)) if users else '(NULL)'}"


def user_month_sql(db: str, account: str, tz: str, yyyymm: int, users: frozenset[str] | None = None) -> str:
    """Each service user's spend in one calendar month of the account's time zone (thresholds are monthly)."""
    return (f"SELECT service_user, count() AS calls, toInt64(sum(cost_micros)) AS cost_micros "
            f"FROM {rated_final(db)} WHERE account = {lit(account)} "
            f"AND toYYYYMM(start_time, {tz_lit(tz)}) = {int(yyyymm)}{_users_cond(users)} "
            f"GROUP BY service_user ORDER BY service_user")


def _range(account: str, tz: str, first: date, after_last: date) -> str:
    return (f"account = {lit(account)} AND start_time >= {local_midnight(first, tz)} "
            f"AND start_time < {local_midnight(after_last, tz)}")


def items_sql(db: str, account: str, tz: str, first: date, after_last: date,
              users: frozenset[str] | None = None) -> str:
    """Itemisation: the calls that started in [first, after_last) local days, latest rating each."""
    return (f"SELECT {', '.join(ITEM_COLUMNS)} FROM {rated_final(db)} "
            f"WHERE {_range(account, tz, first, after_last)}{_users_cond(users)} ORDER BY start_time, cdr_key")


def daily_user_sql(db: str, account: str, tz: str, first: date, after_last: date,
                   users: frozenset[str] | None = None) -> str:
    return (f"SELECT toString(toDate(start_time, {tz_lit(tz)})) AS day, service_user, "
            f"toInt64(sum(cost_micros)) AS cost_micros FROM {rated_final(db)} "
            f"WHERE {_range(account, tz, first, after_last)}{_users_cond(users)} "
            f"GROUP BY day, service_user ORDER BY day, service_user")


def bills_sql(db: str, accounts: list[str]) -> str:
    """Bill amount per account and credit period (the period label is the bill)."""
    return (f"SELECT account, period, toInt64(sum(cost_micros)) AS cost_micros FROM {rated_final(db)} "
            f"WHERE account IN {lit_list(accounts)} GROUP BY account, period ORDER BY account, period")


def barring_sql(db: str, account: str, limit: int = 100) -> str:
    return (f"SELECT at_time, period, seq, old_profile, new_profile, reason, spend_micros, credit_micros, "
            f"correction FROM ({barring_history_select(db)}) WHERE account = {lit(account)} "
            f"ORDER BY seq DESC LIMIT {int(limit)}")


__all__ = ["ITEM_COLUMNS", "STATE_COLUMNS", "states_sql", "spend_since_sql", "period_spend_sql", "user_month_sql",
           "items_sql", "daily_user_sql", "bills_sql", "barring_sql", "tz_lit"]
