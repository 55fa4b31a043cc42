"""Longest-prefix lookup over digit strings.

One dict holds every prefix; a lookup slices the number at each prefix length that occurs in
the index, longest first. With E.164 numbers (at most 15 digits) and typically fewer than ten
distinct prefix lengths this is a handful of dict probes per call, independent of the number
of prefixes, which a trie in pure Python cannot beat.
"""
from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class DuplicatePrefix(ValueError):
    def __init__(self, prefix: str, first: object, second: object):
        super().__init__(f"prefix {prefix!r} is in both {first} and {second}")
        self.prefix = prefix


class PrefixIndex(Generic[T]):
    __slots__ = ("_map", "_lengths")

    def __init__(self) -> None:
        self._map: dict[str, T] = {}
        self._lengths: tuple[int, ...] = ()

    def add(self, prefix: str, value: T, label: object = None) -> None:
        if not prefix or not prefix.isdigit() or not prefix.isascii():
            raise ValueError(f"prefix {prefix!r} must be one or more digits 0-9")
        if prefix in self._map:
            first = self._map[prefix]
            raise DuplicatePrefix(prefix, getattr(first, "name", first), label if label is not None else value)
        self._map[prefix] = value
        if len(prefix) not in self._lengths:
            self._lengths = tuple(sorted(set(self._lengths) | {len(prefix)}, reverse=True))

    def longest(self, digits: str) -> tuple[str, T] | None:
        """The longest prefix of ``digits`` in the index and its value, or None."""
        m = self._map
        n = len(digits)
        for ln in self._lengths:
            if ln <= n:
                p = digits[:ln]
                v = m.get(p)
                if v is not None:
                    return p, v
        return None

    def __len__(self) -> int:
        return len(self._map)

    def __contains__(self, prefix: str) -> bool:
        return prefix in self._map


# Number types that have no international form, or whose form the normaliser could not vouch for
# without a '+': their digits are a dialled code in a local plan ("1234", "112"), so matching
# them against E.164 country prefixes would price a service code as a call to the USA (+1).
DIALLED_CODE_TYPES = frozenset({"short_code", "emergency"})


def is_dialled_code(number: str, number_type: str | None) -> bool:
    """True for a number that must not be read as E.164 digits: a short code or emergency number,
    or an unknown-type number the normaliser left without an E.164 form (no '+')."""
    if number_type in DIALLED_CODE_TYPES:
        return True
    return number_type in (None, "unknown") and not number.startswith("+")


def declared_for(conds: tuple, number: str, number_type: str | None) -> bool:
    """May a prefix index with these conditions price ``number``?

    An E.164 number may match any index (its conditions are checked by the caller). A dialled
    code may match only an index declared for its number class, i.e. one whose conditions
    include ``called_type`` equal to the number's type (``when: {called_type: short_code}``).
    """
    if not is_dialled_code(number, number_type):
        return True
    return any(k == "called_type" and v == number_type for k, v in conds)
