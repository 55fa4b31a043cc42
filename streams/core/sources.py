"""Where a CDR came from decides how its numbers read.

A switch writes numbers the way its local dial plan does: "020 123 4567" only means
+31 20 123 4567 when the switch sits in the Netherlands. Each switch (and, for a switch
with gateways abroad, each trunk) therefore carries a :class:`NumberingContext`, and a
:class:`SourceDirectory` resolves one per record.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any
from zoneinfo import ZoneInfo

import phonenumbers

__all__ = ["NumberingContext", "SourceDirectory", "DEFAULT_CONTEXT"]


@dataclass(frozen=True)
class NumberingContext:
    """The dial-plan facts needed to turn a switch's number into E.164.

    ``country``: ISO 3166 region of the switch (phonenumbers region code).
    ``trunk_prefix``: national (trunk) prefix, "0" in most of Europe, "1" in NANP.
    ``international_prefix``: exit code, "00" in most of the world, "011" in NANP.
    ``timezone``: IANA zone of the switch clock, for formats that carry local time.
    ``accept_possible_numbers``: a bare number (no prefix) that is valid neither as a national
    nor as an international number is rejected invalid_number unless this is true; then its
    merely possible national reading is taken (typed unknown).
    """

    country: str = "NL"
    trunk_prefix: str = "0"
    international_prefix: str = "00"
    timezone: str = "UTC"
    accept_possible_numbers: bool = False

    def __post_init__(self) -> None:
        # Contexts are built once at start-up, so validating eagerly costs nothing at run
        # time and turns a typo in the source config into a start-up error, not a flood of
        # INVALID_NUMBER rejects.
        country = str(self.country).upper()
        if country not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"unknown numbering region {self.country!r}")
        object.__setattr__(self, "country", country)
        for name in ("trunk_prefix", "international_prefix"):
            value = getattr(self, name)
            if not isinstance(value, str) or not (value == "" or (value.isascii() and value.isdigit())):
                raise ValueError(f"{name} must be a string of digits (or empty), got {value!r}")
        if not self.international_prefix:
            raise ValueError("international_prefix must not be empty")
        if type(self.accept_possible_numbers) is not bool:
            raise ValueError(f"accept_possible_numbers must be true or false, got {self.accept_possible_numbers!r}")
        try:
            ZoneInfo(self.timezone)
        except Exception as exc:  # ZoneInfoNotFoundError, ValueError on malformed keys
            raise ValueError(f"unknown time zone {self.timezone!r}") from exc
        # The numbering cache keys on (number, context) for every record; a precomputed hash
        # keeps that lookup from rebuilding a field tuple each time.
        object.__setattr__(self, "_hash", hash((country, self.trunk_prefix, self.international_prefix, self.timezone,
                                                 self.accept_possible_numbers)))

    def __hash__(self) -> int:  # dataclass keeps an explicit __hash__
        return self._hash  # type: ignore[attr-defined]

    @property
    def country_code(self) -> int:
        return phonenumbers.country_code_for_region(self.country)


DEFAULT_CONTEXT = NumberingContext()

_CTX_FIELDS = frozenset(f.name for f in fields(NumberingContext))


def _overlay(base: NumberingContext, spec: Mapping[str, Any] | None, where: str) -> NumberingContext:
    if not spec:
        return base
    if not isinstance(spec, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(spec).__name__}")
    unknown = set(spec) - _CTX_FIELDS - {"trunks"}
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)}; allowed {sorted(_CTX_FIELDS)}")
    try:
        return replace(base, **{k: v for k, v in spec.items() if k in _CTX_FIELDS})
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


class SourceDirectory:
    """switch_id (and optionally trunk) -> NumberingContext, with a default.

    Lookup order: (switch, trunk), then switch, then the default. A trunk entry inherits
    from its switch and a switch from the default, so config only states what differs.
    """

    def __init__(
        self,
        default: NumberingContext = DEFAULT_CONTEXT,
        switches: Mapping[str, NumberingContext] | None = None,
        trunks: Mapping[tuple[str, str], NumberingContext] | None = None,
    ) -> None:
        self.default = default
        self._switches: dict[str, NumberingContext] = dict(switches or {})
        self._trunks: dict[tuple[str, str], NumberingContext] = dict(trunks or {})

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> "SourceDirectory":
        """Build from plain data (the shape a YAML file will have)::

            default: {country: NL}
            switches:
              ams-1: {}                      # inherits the default
              nyc-1:
                country: US
                trunk_prefix: "1"
                international_prefix: "011"
                timezone: America/New_York
                trunks:
                  eu-gw: {country: DE}       # inherits nyc-1, overrides country
        """
        data = data or {}
        if not isinstance(data, Mapping):
            raise ValueError("source directory: expected a mapping")
        unknown = set(data) - {"default", "switches"}
        if unknown:
            raise ValueError(f"source directory: unknown keys {sorted(unknown)}")
        default_spec = data.get("default") or {}
        if "trunks" in default_spec:
            raise ValueError("default: trunks belong to a switch")
        default = _overlay(DEFAULT_CONTEXT, default_spec, "default")
        switches: dict[str, NumberingContext] = {}
        trunks: dict[tuple[str, str], NumberingContext] = {}
        for switch_id, spec in (data.get("switches") or {}).items():
            spec = spec or {}
            sw = _overlay(default, spec, f"switch {switch_id!r}")
            switches[str(switch_id)] = sw
            for trunk, tspec in (spec.get("trunks") or {}).items():
                if tspec and "trunks" in tspec:
                    raise ValueError(f"switch {switch_id!r} trunk {trunk!r}: trunks do not nest")
                trunks[(str(switch_id), str(trunk))] = _overlay(sw, tspec, f"switch {switch_id!r} trunk {trunk!r}")
        return cls(default, switches, trunks)

    def context_for(self, switch_id: object, trunk: object = None) -> NumberingContext:
        # Called for every record with whatever the raw dict holds, so it must not raise on
        # odd types: an unhashable switch_id simply gets the default, and normalisation
        # rejects the record on its own terms.
        if self._trunks and trunk:
            try:
                ctx = self._trunks.get((switch_id, trunk))  # type: ignore[arg-type]
            except TypeError:
                ctx = None
            if ctx is not None:
                return ctx
        try:
            return self._switches.get(switch_id, self.default)  # type: ignore[arg-type]
        except TypeError:
            return self.default

    def for_raw(self, raw: Mapping[str, Any]) -> NumberingContext:
        """The ``ctx_for`` callable that :func:`streams.core.normalize.normalize_batch` takes."""
        try:
            return self.context_for(raw.get("switch_id"), raw.get("trunk"))
        except AttributeError:
            return self.default

    def __repr__(self) -> str:
        return f"SourceDirectory(default={self.default!r}, switches={len(self._switches)}, trunks={len(self._trunks)})"
