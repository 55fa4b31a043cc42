"""Barring profiles are data: each has a maximum price per minute; `blocked` allows nothing
except the always-allowed destinations (emergency numbers, or a customer's exceptions)."""
from __future__ import annotations

from dataclasses import dataclass

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
    NORMAL: Profile(NORMAL, 800_000),
    LOW_CREDIT: Profile(LOW_CREDIT, 400_000),
    BLOCKED: Profile(BLOCKED, -1),
}


def allowed_destinations(profile: Profile, account_allowed: tuple[str, ...]) -> list[str]:
    seen: dict[str, None] = dict.fromkeys(profile.always_allowed)
    seen.update(dict.fromkeys(account_allowed))
    return list(seen)
