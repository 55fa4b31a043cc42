"""Which accounts are where: the filters of ``cdrflow account list`` and of ``GET /accounts``.

Both answer from ``account.state`` records (streams.core.credit.snapshot): the CLI reads the
topic, the worker's web page builds the same records from its own accounts table. Filters:

* ``profile``  — normal, low_credit or blocked (the profile in force now);
* ``over_pct`` — a whole percentage N: accounts whose spend in their current period is at least
  N % of their credit (``spend * 100 >= N * credit``, integers, exact). An account with credit 0
  is at every percentage;
* ``period``   — the account's current period label (``2026-11``, ``2026-W45``): an account whose
  state is still in an older period (idle since the boundary) does not match a newer label.

Past periods' spend is in the ClickHouse reports (``cdrflow report``), not here.
"""
from __future__ import annotations

from dataclasses import dataclass

from streams.core import profiles as P
from streams.core.money import format_micros


@dataclass(frozen=True, slots=True)
class Filters:
    profile: str | None = None
    over_pct: int | None = None
    period: str | None = None

    @classmethod
    def parse(cls, profile: str | None = None, over_pct=None, period: str | None = None) -> "Filters":
        """Text filters (CLI options, query parameters) -> Filters; ValueError names the bad one."""
        profile = (profile or "").strip() or None
        if profile is not None and profile not in P.ORDER:
            raise ValueError(f"profile must be one of {', '.join(P.ORDER)}, not {profile!r}")
        pct = None
        if over_pct not in (None, ""):
            text = str(over_pct).strip()
            if not text.isdigit():
                raise ValueError(f"over_pct must be a whole percentage like 80, not {text!r}")
            pct = int(text)
        period = (period or "").strip() or None
        return cls(profile, pct, period)

    def match(self, rec: dict) -> bool:
        if self.profile is not None and rec["profile"] != self.profile:
            return False
        if self.period is not None and rec["period"] != self.period:
            return False
        if self.over_pct is not None and rec["spend_micros"] * 100 < self.over_pct * rec["credit_micros"]:
            return False
        return True


def used_pct(rec: dict) -> str:
    """Spend as a percentage of credit, 1 decimal, rounded down (display only; filters use integers)."""
    if rec["credit_micros"] <= 0:
        return "-"
    tenths = rec["spend_micros"] * 1000 // rec["credit_micros"]
    return f"{tenths // 10}.{tenths % 10}"


def select(records, filters: Filters) -> list[dict]:
    """The latest record per account (input order: later wins), filtered, sorted by account."""
    latest: dict[str, dict] = {}
    for rec in records:
        latest[rec["account"]] = rec
    return [latest[a] for a in sorted(latest) if filters.match(latest[a])]


def row(rec: dict) -> dict:
    """One JSON row: the account.state record plus decimal money and the used percentage."""
    return {**rec, "spend": format_micros(rec["spend_micros"]), "credit": format_micros(rec["credit_micros"]),
            "used_pct": used_pct(rec)}
