"""phonenumbers' metadata compiled to digit automata: E.164 + number type without its regexes.

``phonenumbers.parse`` + ``number_type`` cost ~30 µs a number because every step runs a
regular expression from the metadata (country-code split, national-prefix strip, one
``fullmatch`` per number type, region choice for shared country codes). Yet every pattern a
national-number description holds is a plain regular language over the digits 0-9:
literals, ``[...]`` classes, ``\\d``, alternation, groups and bounded repeats. So per
country calling code we compile, once, all of its regions' patterns into ONE automaton whose
states carry the set of descriptions that accept there; a number is then classified by one
walk over its digits (a dict lookup per digit), followed by the same decision order
phonenumbers uses (``_number_type_helper``, ``_test_number_length``,
``_region_code_for_number_from_list``), on precomputed length tables.

Source of truth stays phonenumbers:

* The automaton is built lazily by subset construction from the library's own pattern
  strings, so it accepts exactly the language ``re.fullmatch`` accepts (the patterns have no
  anchors, look-arounds or back-references; any construct we do not model makes that
  region "undecided" and the caller falls back to the library for the whole number).
* National-prefix stripping is modelled only when ``national_prefix_for_parsing`` is a
  literal or an ordered alternation of literals without a transform rule (NL "0",
  GB "0|180020", US "1"); otherwise the library's own strip function is called (exact).
* Inputs outside the modelled domain (fewer than 3 or more than 20 digits) return
  :data:`UNDECIDED`.
* ``tests/unit/test_number_tables.py`` checks equality with the library over every country
  calling code (Hypothesis plus a large generated sample).

Tables are built per country calling code on first use and cached for the process; DFA
states are added as numbers reach them, so memory follows the number ranges actually seen.
"""
from __future__ import annotations

try:  # Python 3.11+
    import re._constants as _c  # type: ignore[import-not-found]
    import re._parser as _p  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - older interpreters
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

from phonenumbers import PhoneNumberType as _T
from phonenumbers import phonenumberutil as _pnu
from phonenumbers.phonemetadata import PhoneMetadata

__all__ = ["UNDECIDED", "NumberTables", "Unsupported"]

UNDECIDED = object()  # the caller must ask phonenumbers itself

_DIGITS = "0123456789"
_MAX_NSN = 17  # phonenumberutil._MAX_LENGTH_FOR_NSN
_MIN_NSN = 2  # phonenumberutil._MIN_LENGTH_FOR_NSN

# Description order of phonenumbers' _number_type_helper (after general_desc); first match wins.
_ORDERED = (
    ("premium_rate", _T.PREMIUM_RATE),
    ("toll_free", _T.TOLL_FREE),
    ("shared_cost", _T.SHARED_COST),
    ("voip", _T.VOIP),
    ("personal_number", _T.PERSONAL_NUMBER),
    ("pager", _T.PAGER),
    ("uan", _T.UAN),
    ("voicemail", _T.VOICEMAIL),
)
_DESCS = ("general_desc",) + tuple(n for n, _ in _ORDERED) + ("fixed_line", "mobile")
_LEADING = "leading_digits"

# ValidationResult values _test_number_length returns
_VR = _pnu.ValidationResult
_POSSIBLE = frozenset({_VR.IS_POSSIBLE, _VR.IS_POSSIBLE_LOCAL_ONLY})  # is_possible_number()
_NOT_KEPT = frozenset({_VR.TOO_SHORT, _VR.IS_POSSIBLE_LOCAL_ONLY, _VR.INVALID_LENGTH})


class Unsupported(Exception):
    """A metadata pattern uses a construct the digit automaton does not model."""


# ---------------------------------------------------------------- regex -> NFA
class _Nfa:
    """Thompson NFA over the digits: ``eps[n]`` epsilon successors, ``edges[n]`` (chars, target)."""

    def __init__(self) -> None:
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple[frozenset, int]]] = []
        self.tag: dict[int, tuple[int, str]] = {}  # accept node -> (region index, description)

    def node(self) -> int:
        self.eps.append([])
        self.edges.append([])
        return len(self.eps) - 1

    def add(self, pattern: str, tag: tuple[int, str], *, prefix: bool = False) -> int:
        start = self.node()
        end = self._seq(_p.parse(pattern), start)
        if prefix:
            # re.match semantics: accepting once is enough, whatever digits follow.
            self.edges[end].append((frozenset(_DIGITS), end))
        self.tag[end] = tag
        return start

    def _charset(self, items) -> frozenset:
        chars: set[str] = set()
        negate = False
        for op, av in items:
            if op is _c.LITERAL:
                chars.add(chr(av))
            elif op is _c.RANGE:
                chars.update(chr(i) for i in range(av[0], av[1] + 1) if chr(i) in _DIGITS)
            elif op is _c.CATEGORY and av is _c.CATEGORY_DIGIT:
                chars.update(_DIGITS)
            elif op is _c.NEGATE:
                negate = True
            else:
                raise Unsupported(f"class item {op}")
        digits = frozenset(ch for ch in chars if ch in _DIGITS)
        return frozenset(_DIGITS) - digits if negate else digits

    def _seq(self, tokens, cur: int) -> int:
        for op, av in tokens:
            cur = self._one(op, av, cur)
        return cur

    def _one(self, op, av, cur: int) -> int:
        if op is _c.LITERAL:
            nxt = self.node()
            self.edges[cur].append((frozenset(ch for ch in chr(av) if ch in _DIGITS), nxt))
            return nxt
        if op is _c.IN:
            nxt = self.node()
            self.edges[cur].append((self._charset(av), nxt))
            return nxt
        if op is _c.ANY:
            nxt = self.node()
            self.edges[cur].append((frozenset(_DIGITS), nxt))
            return nxt
        if op is _c.SUBPATTERN:
            group, add_flags, del_flags, sub = av
            if add_flags or del_flags:
                raise Unsupported("inline flags")
            return self._seq(sub, cur)
        if op is _c.BRANCH:
            end = self.node()
            for alt in av[1]:
                start = self.node()
                self.eps[cur].append(start)
                self.eps[self._seq(alt, start)].append(end)
            return end
        if op is _c.MAX_REPEAT or op is _c.MIN_REPEAT:
            lo, hi, sub = av
            for _ in range(lo):
                cur = self._seq(sub, cur)
            if hi is _c.MAXREPEAT:
                loop = self.node()
                self.eps[cur].append(loop)
                self.eps[self._seq(sub, loop)].append(loop)
                return loop
            for _ in range(hi - lo):
                end = self.node()
                self.eps[cur].append(end)
                self.eps[self._seq(sub, cur)].append(end)
                cur = end
            return cur
        raise Unsupported(f"regex construct {op}")

    def closure(self, nodes) -> frozenset:
        seen = set(nodes)
        stack = list(nodes)
        while stack:
            for m in self.eps[stack.pop()]:
                if m not in seen:
                    seen.add(m)
                    stack.append(m)
        return frozenset(seen)


class _State(dict):
    """One DFA state: maps a digit to the next state, built on first use."""

    __slots__ = ("nodes", "tags", "owner", "kinds")

    def __missing__(self, ch: str) -> "_State":
        owner = self.owner
        if ch not in _DIGITS:
            raise KeyError(ch)
        edges = owner.nfa.edges
        step = [t for n in self.nodes for chars, t in edges[n] if ch in chars]
        nxt = owner.state(owner.nfa.closure(step))
        self[ch] = nxt
        return nxt


class _Dfa:
    def __init__(self, nfa: _Nfa, starts: list[int]) -> None:
        self.nfa = nfa
        self.states: dict[frozenset, _State] = {}
        self.start = self.state(nfa.closure(starts))

    def state(self, nodes: frozenset) -> _State:
        st = self.states.get(nodes)
        if st is None:
            st = _State()
            st.nodes = nodes
            st.owner = self
            st.kinds = {}  # nsn length -> PhoneNumberType: the type is a function of (state, length)
            tag = self.nfa.tag
            st.tags = frozenset(tag[n] for n in nodes if n in tag)
            self.states[nodes] = st
        return st

    def final(self, digits: str) -> _State:
        st = self.start
        for ch in digits:
            st = st[ch]
        return st

    def tags(self, digits: str) -> frozenset:
        return self.final(digits).tags


# ---------------------------------------------------------------- per-region tables
class _Region:
    """What _number_type_helper / _test_number_length need from one region's metadata."""

    def __init__(self, index: int, meta: PhoneMetadata, nfa: _Nfa, starts: list[int]) -> None:
        self.index = index
        self.meta = meta
        # description -> possible lengths (empty: any); absent key: the description never matches
        self.lengths: dict[str, frozenset] = {}
        for name in _DESCS:
            desc = getattr(meta, name, None)
            if desc is None or not desc.national_number_pattern:
                continue
            self.lengths[name] = frozenset(desc.possible_length or ())
            starts.append(nfa.add(desc.national_number_pattern, (index, name)))
        self.has_leading = meta.leading_digits is not None
        if self.has_leading:
            starts.append(nfa.add(meta.leading_digits, (index, _LEADING), prefix=True))
        self.same_fixed_mobile = bool(meta.same_mobile_and_fixed_line_pattern)
        # _test_number_length(x, meta) depends on len(x) only.
        self.length_result = [_pnu._test_number_length("0" * n, meta) for n in range(_MAX_NSN + 25)]
        self.strip = self._strip_rule(meta)

    @staticmethod
    def _strip_rule(meta: PhoneMetadata):
        """None: nothing to strip; a tuple of literals tried in order; or "library"."""
        npp = meta.national_prefix_for_parsing
        if not npp:
            return None
        if meta.national_prefix_transform_rule:
            return "library"
        try:
            tokens = list(_p.parse(npp))
        except Exception:
            return "library"

        def literal(seq) -> str | None:
            out = []
            for op, av in seq:
                if op is not _c.LITERAL or chr(av) not in _DIGITS:
                    return None
                out.append(chr(av))
            return "".join(out) or None

        whole = literal(tokens)
        if whole is not None:
            return (whole,)
        if len(tokens) == 1 and tokens[0][0] is _c.BRANCH:
            alts = [literal(alt) for alt in tokens[0][1][1]]
            if all(a is not None for a in alts):
                return tuple(alts)
        return "library"

    def matches(self, name: str, tags: frozenset, length: int) -> bool:
        lengths = self.lengths.get(name)
        if lengths is None:
            return False
        if lengths and length not in lengths:
            return False
        return (self.index, name) in tags

    def number_type(self, tags: frozenset, length: int):
        """phonenumberutil._number_type_helper on the automaton's tags."""
        m = self.matches
        if not m("general_desc", tags, length):
            return _T.UNKNOWN
        for name, kind in _ORDERED:
            if m(name, tags, length):
                return kind
        if m("fixed_line", tags, length):
            if self.same_fixed_mobile or m("mobile", tags, length):
                return _T.FIXED_LINE_OR_MOBILE
            return _T.FIXED_LINE
        if not self.same_fixed_mobile and m("mobile", tags, length):
            return _T.MOBILE
        return _T.UNKNOWN


class _CountryCode:
    """All regions sharing one calling code, in phonenumbers' order, on one automaton."""

    def __init__(self, cc: int) -> None:
        self.cc = str(cc)
        nfa = _Nfa()
        starts: list[int] = []
        regions = _pnu.COUNTRY_CODE_TO_REGION_CODE[cc]
        self.main = None
        self.regions: list[_Region] = []
        main_meta = PhoneMetadata.metadata_for_region_or_calling_code(cc, _pnu.region_code_for_country_code(cc))
        if main_meta is None:
            raise Unsupported(f"no metadata for +{cc}")
        if len(regions) == 1:
            self.main = _Region(0, main_meta, nfa, starts)
            self.regions = [self.main]
            self.single = True
        else:
            self.single = False
            for i, code in enumerate(regions):
                meta = PhoneMetadata.metadata_for_region(code.upper(), None)
                if meta is None:
                    continue
                region = _Region(i, meta, nfa, starts)
                self.regions.append(region)
                if meta is main_meta:
                    self.main = region
            if self.main is None:
                self.main = _Region(len(regions), main_meta, nfa, starts)
        self.dfa = _Dfa(nfa, starts)

    def number_type(self, tags: frozenset, length: int):
        """phonenumbers.number_type: the region (_region_code_for_number_from_list), then its type."""
        if self.single:
            return self.main.number_type(tags, length)
        for region in self.regions:
            if region.has_leading:
                if (region.index, _LEADING) in tags:
                    return region.number_type(tags, length)
            else:
                kind = region.number_type(tags, length)
                if kind != _T.UNKNOWN:
                    return kind
        return _T.UNKNOWN

    def national_number(self, rest: str) -> str:
        """parse()'s national-prefix strip with the main region's metadata, then its length gate."""
        main = self.main
        rule = main.strip
        if rule is None:
            return rest
        potential = rest
        if rule == "library":
            _, potential, _ = _pnu._maybe_strip_national_prefix_carrier_code(rest, main.meta)
        else:
            for lit in rule:
                if rest.startswith(lit):
                    stripped = rest[len(lit) :]
                    key = (main.index, "general_desc")
                    # The library keeps the prefix only when the whole text fits the general
                    # pattern and the stripped one does not (pattern only, lengths unchecked).
                    keep = key in self.dfa.tags(rest) and key not in self.dfa.tags(stripped)
                    potential = rest if keep else stripped
                    break
        if potential is rest or potential == rest:
            return rest
        n = len(potential)
        result = main.length_result[n] if n < len(main.length_result) else _pnu._test_number_length(potential, main.meta)
        return rest if result in _NOT_KEPT else potential


class NumberTables:
    """``parse_intl(digits)`` == numbering's phonenumbers path for "+" + digits, without regexes.

    ``type_map`` maps PhoneNumberType to the rating class (numbering._TYPE_MAP); a valid
    number of an unmapped type and a merely possible number are "unknown".
    """

    def __init__(self, type_map: dict) -> None:
        self._type_map = type_map
        self._codes: dict[str, _CountryCode | None] = {}
        self._known = {str(cc) for cc in _pnu.COUNTRY_CODE_TO_REGION_CODE}

    def country(self, cc: str) -> _CountryCode | None:
        """Tables for one calling code (built on first use); None where they cannot be built."""
        try:
            return self._codes[cc]
        except KeyError:
            pass
        try:
            table: _CountryCode | None = _CountryCode(int(cc))
        except Unsupported:
            table = None
        self._codes[cc] = table
        return table

    def warm(self, country_codes) -> None:
        """Build the tables for these calling codes now (start-up), not on the first CDR."""
        for cc in country_codes:
            if str(cc) in self._known:
                self.country(str(cc))

    def parse_intl(self, digits: str):
        """(E.164, class), None when phonenumbers finds no possible number, or UNDECIDED."""
        n = len(digits)
        if n < 3 or n > 20:
            return UNDECIDED
        if digits[0] == "0":
            return None  # no calling code starts with 0: INVALID_COUNTRY_CODE
        known = self._known
        if digits[:1] in known:
            cc = digits[:1]
        elif digits[:2] in known:
            cc = digits[:2]
        elif digits[:3] in known:
            cc = digits[:3]
        else:
            return None
        table = self._codes.get(cc, UNDECIDED)
        if table is UNDECIDED:
            table = self.country(cc)
        if table is None:
            return UNDECIDED
        rest = digits[len(cc) :]
        if len(rest) < _MIN_NSN:
            return None
        nsn = table.national_number(rest)
        length = len(nsn)
        if length > _MAX_NSN:
            return None
        state = table.dfa.final(nsn)
        kind = state.kinds.get(length)
        if kind is None:
            kind = state.kinds[length] = table.number_type(state.tags, length)
        if kind != _T.UNKNOWN:
            return "+" + cc + nsn, self._type_map.get(kind, "unknown")
        lengths = table.main.length_result
        if length < len(lengths) and lengths[length] in _POSSIBLE:
            return "+" + cc + nsn, "unknown"
        return None
