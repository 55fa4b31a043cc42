"""Reads for the portal pages over the ClickHouse backend interface (chdb or a server).

Every function takes the accounts / service users the caller may see; the app checks the grant
first, and these filter the SQL by the same values.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

from sinks.reports import money, utc
from streams.core.periods import period_bounds, zone
from streams.portal import forecast as F
from streams.portal import queries as Q
from streams.portal.directory import AccountInfo

FORECAST_WINDOW_DAYS = 7


@dataclass
class AccountView:
    account: str
    info: AccountInfo
    period: str | None = None
    profile: str | None = None
    spend_micros: int = 0
    credit_micros: int | None = None
    soft_limit_micros: int | None = None
    seq: int | None = None
    updated_s: int | None = None
    forecast: F.Forecast | None = None

    @property
    def balance_micros(self) -> int | None:
        return None if self.credit_micros is None else self.credit_micros - self.spend_micros


def _int(v) -> int:
    return int(v or 0)


def states(backend, accounts: list[str]) -> dict[str, dict]:
    if not accounts:
        return {}
    rows = backend.query(Q.states_sql(backend.database, accounts))
    return {r[0]: dict(zip(Q.STATE_COLUMNS, r)) for r in rows}


def account_views(backend, directory, accounts: list[str], now_s: int, with_forecast: bool = True
                  ) -> list[AccountView]:
    st = states(backend, accounts)
    out = []
    for acc in accounts:
        info = directory.get(acc)
        v = AccountView(acc, info)
        s = st.get(acc)
        if s is not None:
            v.period, v.profile = s["period"], s["profile"]
            v.spend_micros, v.credit_micros = _int(s["spend_micros"]), _int(s["credit_micros"])
            v.soft_limit_micros, v.seq, v.updated_s = _int(s["soft_limit_micros"]), _int(s["seq"]), _int(s["updated_s"])
            if with_forecast:
                v.forecast = account_forecast(backend, v, now_s)
        out.append(v)
    return out


def account_forecast(backend, v: AccountView, now_s: int) -> F.Forecast:
    window_s = FORECAST_WINDOW_DAYS * 86_400
    row = backend.query(Q.spend_since_sql(backend.database, v.account, now_s - window_s, now_s))[0]
    end_s = None
    if v.period:
        try:
            end_s = period_bounds(v.period, v.info.timezone)[1] // 1000
        except (ValueError, KeyError):
            end_s = None
    return F.disconnection(v.spend_micros, v.credit_micros or 0, v.profile or "", _int(row[0]), window_s, now_s,
                           end_s)


def barring_history(backend, account: str) -> list[dict]:
    cols = ("at_time", "period", "seq", "old_profile", "new_profile", "reason", "spend_micros", "credit_micros",
            "correction")
    out = []
    for r in backend.query(Q.barring_sql(backend.database, account)):
        d = dict(zip(cols, r))
        d["at_time"] = utc(d["at_time"])
        out.append(d)
    return out


def month_of(now_s: int, tz: str) -> int:
    local = datetime.fromtimestamp(now_s, zone(tz))
    return local.year * 100 + local.month


@dataclass
class ServiceUserRow:
    service_user: str
    calls: int
    spend_micros: int
    thresholds: tuple[int, int] | None

    @property
    def level(self) -> int:
        """0: below both thresholds, 1: first reached, 2: second reached (reached = spend >= threshold)."""
        if not self.thresholds:
            return 0
        return 2 if self.spend_micros >= self.thresholds[1] else 1 if self.spend_micros >= self.thresholds[0] else 0


def service_users(backend, info: AccountInfo, yyyymm: int, visible: frozenset[str] | None) -> list[ServiceUserRow]:
    rows = backend.query(Q.user_month_sql(backend.database, info.account, info.timezone, yyyymm, visible))
    seen = {}
    for user, calls, cost in rows:
        seen[user] = ServiceUserRow(user, _int(calls), _int(cost), info.thresholds_for(user))
    # Users with thresholds but no calls this month are service users too.
    for user in info.user_thresholds:
        if user != "*" and user not in seen and (visible is None or user in visible):
            seen[user] = ServiceUserRow(user, 0, 0, info.thresholds_for(user))
    return [seen[k] for k in sorted(seen)]


def search_users(rows: list[ServiceUserRow], text: str = "", level: int = 0) -> list[ServiceUserRow]:
    """Search by number (substring) and by threshold reached (1: first or more, 2: second)."""
    text = text.strip()
    return [r for r in rows if (not text or text in r.service_user) and r.level >= level]


def items(backend, info: AccountInfo, first: date, after_last: date, visible: frozenset[str] | None,
          service_user: str | None = None) -> list[dict]:
    users = visible
    if service_user is not None:
        users = frozenset({service_user}) if visible is None or service_user in visible else frozenset()
    sql = Q.items_sql(backend.database, info.account, info.timezone, first, after_last, users)
    tz = zone(info.timezone)
    out = []
    for values in backend.query(sql):
        row = dict(zip(Q.ITEM_COLUMNS, values))
        row["start_local"] = utc(row["start_time"]).astimezone(tz)
        row["cost"] = money(int(row["cost_micros"]))
        row["rate"] = money(int(row["rate_micros"]))
        out.append(row)
    return out


def daily_by_user(backend, info: AccountInfo, first: date, after_last: date, visible: frozenset[str] | None
                  ) -> tuple[list[str], dict[str, list[int]]]:
    """Continuous day axis and, per service user, micros per day (zero on days without calls)."""
    axis = [d.isoformat() for d in F.days(first, after_last)]
    index = {d: i for i, d in enumerate(axis)}
    series: dict[str, list[int]] = {}
    for day, user, cost in backend.query(Q.daily_user_sql(backend.database, info.account, info.timezone, first,
                                                           after_last, visible)):
        series.setdefault(user, [0] * len(axis))[index[day]] += _int(cost)
    return axis, dict(sorted(series.items()))


def bills(backend, accounts: list[str]) -> tuple[list[str], dict[str, list[int]]]:
    rows = backend.query(Q.bills_sql(backend.database, accounts)) if accounts else []
    axis = F.month_labels(sorted({r[1] for r in rows}))
    index = {p: i for i, p in enumerate(axis)}
    series = {a: [0] * len(axis) for a in accounts}
    for acc, period, cost in rows:
        series[acc][index[period]] += _int(cost)
    return axis, series


def as_decimal(micros: int) -> Decimal:
    return money(int(micros))


def default_range(now_s: int, tz: str) -> tuple[date, date]:
    """This month so far in the account's zone: [first of month, tomorrow)."""
    today = datetime.fromtimestamp(now_s, zone(tz)).date()
    return today.replace(day=1), today + timedelta(days=1)


def fmt_local(ts_s: int | None, tz: str) -> str:
    if ts_s is None:
        return ""
    return datetime.fromtimestamp(ts_s, timezone.utc).astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M %Z")
