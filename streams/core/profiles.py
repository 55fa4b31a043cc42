"""Barring profiles are data: each has a maximum price per minute; `blocked` allows nothing
except the always-allowed destinations (emergency numbers, or a customer's exceptions).

Seed 000: the maximum prices of `normal` and `low_credit` are set per customer (e.g. 0.80 and
0.40); :func:`profiles_for` builds an account's profiles from its own values, the defaults
below apply where a customer has none."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

NORMAL = "normal"
LOW_CREDIT = "low_credit"
BLOCKED = "blocked"
ORDER = {NORMAL: 0, LOW_CREDIT: 1, BLOCKED: 2}

# Emergency numbers stay callable whatever the profile; a regulatory requirement in the EU/US.
EMERGENCY_PREFIXES = ("112", "911", "999")


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    max_rate_micros_per_min: int   # -1: no chargeable call is allowed
    always_allowed: tuple[str, ...] = EMERGENCY_PREFIXES


DEFAULT_PROFILES: dict[str, Profile] = {
    NORMAL: Profile(NORMAL, 800_000),          # DEFAULT_MAX_RATE_NORMAL
    LOW_CREDIT: Profile(LOW_CREDIT, 400_000),  # DEFAULT_MAX_RATE_LOW
    BLOCKED: Profile(BLOCKED, -1),
}


DEFAULT_MAX_RATE_NORMAL = 800_000
DEFAULT_MAX_RATE_LOW = 400_000


@lru_cache(maxsize=4096)
def profiles_for(max_rate_normal: int | None = None, max_rate_low: int | None = None) -> dict[str, Profile]:
    """An account's profiles: its own maximum prices per minute, or the defaults."""
    if max_rate_normal is None and max_rate_low is None:
        return DEFAULT_PROFILES
    normal = DEFAULT_MAX_RATE_NORMAL if max_rate_normal is None else int(max_rate_normal)
    low = DEFAULT_MAX_RATE_LOW if max_rate_low is None else int(max_rate_low)
    return {NORMAL: Profile(NORMAL, normal), LOW_CREDIT: Profile(LOW_CREDIT, low), BLOCKED: Profile(BLOCKED, -1)}


def validate_max_rates(max_rate_normal: int | None, max_rate_low: int | None) -> None:
    """A low-credit maximum above the normal one would make low credit a relief; refused."""
    normal = DEFAULT_MAX_RATE_NORMAL if max_rate_normal is None else max_rate_normal
    low = DEFAULT_MAX_RATE_LOW if max_rate_low is None else max_rate_low
    if low < 0 or normal < 0:
        raise ValueError("maximum rates must not be negative")
    if low > normal:
        raise ValueError(f"the low_credit maximum rate ({low} micros/min) must not exceed the normal one ({normal})")


def allowed_destinations(profile: Profile, account_allowed: tuple[str, ...]) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(profile.always_allowed)
    seen.update(dict.fromkeys(account_allowed))
    return list(seen)
