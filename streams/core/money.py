"""Exact money. Amounts are integers: micro-units (1e-6) billed, nano-units (1e-9) unrounded.

Float never appears on a money path; rounding happens only in :func:`round_nanos`.
"""
from __future__ import annotations

from decimal import Decimal
from enum import Enum

MICRO = 1_000_000
NANO_PER_MICRO = 1_000


class Rounding(str, Enum):
    UP = "up"
    DOWN = "down"
    HALF_EVEN = "half_even"


def parse_money(text: str | int | Decimal) -> int:
    """Decimal currency text ("0.085") -> exact micro-units. Refuses sub-micro precision."""
    d = Decimal(str(text))
    micros = d * MICRO
    if micros != micros.to_integral_value():
        raise ValueError(f"{text!r} has more than 6 decimals")
    return int(micros)


def format_micros(micros: int) -> str:
    sign = "-" if micros < 0 else ""
    q, r = divmod(abs(micros), MICRO)
    return f"{sign}{q}.{r:06d}"


def to_decimal(micros: int) -> Decimal:
    return Decimal(micros).scaleb(-6)


def round_nanos(nanos: int, decimals: int, method: Rounding) -> int:
    """Round an unrounded nano amount to ``decimals`` places; returns micro-units."""
    if not 0 <= decimals <= 6:
        raise ValueError("decimals must be 0..6")
    step = 10 ** (9 - decimals)
    if method is Rounding.UP:
        q = -((-nanos) // step)
    elif method is Rounding.DOWN:
        q = nanos // step
    else:
        q = _half_even_div(nanos, step)
    return q * step // NANO_PER_MICRO


def _half_even_div(n: int, d: int) -> int:
    q, r = divmod(n, d)
    twice = 2 * r
    if twice > d or (twice == d and q % 2 == 1):
        q += 1
    return q


__all__ = ["MICRO", "Rounding", "parse_money", "format_micros", "to_decimal", "round_nanos"]
