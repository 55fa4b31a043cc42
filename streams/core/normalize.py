"""Raw switch CDR (cdr.v1.SwitchCdr as a dict) -> canonical CDR fields (cdr.v1.CanonicalCdr).

The agent adds the source fields (``source_topic``, ``source_partition``, ``source_offset``,
``source_index``, ``ingest_ms``, ``raw``); everything else is decided here, purely.

Checks run cheapest first (presence and types, enumerations, times, durations) and numbers
last, so a malformed record never pays for number parsing. Every failure is a
:class:`RejectError` with a reason from the closed list; :func:`normalize_batch` turns any
other exception into one as well, because an agent must never crash on input.

Partial records (``partial_seq`` > 0) are checked like complete ones: each partial is
expected to describe its own interval (start/end/duration of that slice of the call).
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.core.account_map import AccountMap
from streams.core.keys import cdr_key
from streams.core.numbering import MAX_RAW, WITHHELD, _lookup, lookup
from streams.core.reasons import Reason, RejectError
from streams.core.sources import NumberingContext

__all__ = ["Limits", "DEFAULT_LIMITS", "normalize", "normalize_batch", "DIRECTIONS", "DISPOSITIONS", "SERVICES"]

INT32_MAX = 2**31 - 1

DIRECTIONS = frozenset({"outbound", "inbound"})

# Spellings switches actually emit, mapped to the canonical four. Asterisk writes
# "NO ANSWER"; other exports use underscores or drop the space. CONGESTION is a failed
# attempt for billing purposes.
DISPOSITIONS = {
    "ANSWERED": "ANSWERED",
    "NO ANSWER": "NO ANSWER",
    "NO_ANSWER": "NO ANSWER",
    "NOANSWER": "NO ANSWER",
    "BUSY": "BUSY",
    "FAILED": "FAILED",
    "CONGESTION": "FAILED",
}

SERVICES = {"voice": "voice", "sms": "sms", "email": "email", "e-mail": "email", "fax": "fax"}


# Leg names that are call-centre stages, each priced by its own rule (ivr, agent, post-processing).
STAGES = frozenset({"ivr", "agent", "post"})


@dataclass(frozen=True)
class Limits:
    """Plausibility bounds. Defaults and why:

    * ``max_call_s`` = 172 800 (2 days): longer than any real call, yet it catches clock and
      unit bugs (ms sent as s) before they become a bill.
    * ``max_age_s`` = 400 days: a CDR older than a year plus a month can no longer be billed
      in any open period, and is almost always a switch clock reset.
    * ``max_future_s`` = 1 day: switch clocks drift and time zones get misconfigured by hours;
      a day tolerates both without accepting nonsense.
    * ``billsec_tolerance_s`` = 1: switches round duration and billsec independently, so
      billsec may exceed duration by one second.
    * ``duration_tolerance_s`` = 2: duration vs end-start differ by rounding on both ends.
    * ``answer_tolerance_s`` = 1: answer_ms may sit that far outside [start, end], for the
      same rounding reason.
    """

    max_call_s: int = 2 * 86_400
    max_age_s: int = 400 * 86_400
    max_future_s: int = 86_400
    billsec_tolerance_s: int = 1
    duration_tolerance_s: int = 2
    answer_tolerance_s: int = 1

    def __post_init__(self) -> None:
        for name in ("max_call_s", "max_age_s", "max_future_s", "billsec_tolerance_s", "duration_tolerance_s", "answer_tolerance_s"):
            v = getattr(self, name)
            if type(v) is not int or v < 0:
                raise ValueError(f"Limits.{name} must be a non-negative int, got {v!r}")
        # duration_s and billsec_s are Avro ints downstream; a bound above int32 would let
        # a record through here only to crash the encoder.
        if self.max_call_s + self.billsec_tolerance_s > INT32_MAX:
            raise ValueError("Limits.max_call_s must fit an Avro int")


DEFAULT_LIMITS = Limits()

_str = str
_int = int


def _missing(name: str) -> RejectError:
    return RejectError(Reason.MISSING_FIELD, f"{name} is absent, null or empty")


def _bad_type(name: str, value: Any, want: str) -> RejectError:
    return RejectError(Reason.BAD_FIELD_TYPE, f"{name} must be {want}, got {type(value).__name__}")


def _req_str(value: Any, name: str) -> str:
    """Slow path for a required string that was not a plain non-blank str."""
    if value is None or value == "":
        raise _missing(name)
    if not isinstance(value, str):
        raise _bad_type(name, value, "a string")
    if not value.strip():
        raise _missing(name)
    return str(value)


def _opt_str(value: Any, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad_type(name, value, "a string or null")
    return str(value)


def _req_int(value: Any, name: str) -> int:
    if value is None:
        raise _missing(name)
    # bool is an int subclass, but True as a duration is a producer bug, not 1 second.
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad_type(name, value, "an integer")
    return int(value)


def _number_slow(value: str, detail: str, name: str, *, withheld_ok: bool) -> tuple[str, str]:
    """The number did not parse (``detail`` says why): accept a withheld-CLI marker where the
    field allows one, otherwise reject naming the field."""
    if value.isspace():
        raise _missing(name)
    if withheld_ok:
        token = value.strip().lower()
        if token in WITHHELD:
            return token, "unknown"
    raise RejectError(Reason.INVALID_NUMBER, f"{name}: {detail}")


def normalize(raw: Mapping[str, Any], ctx: NumberingContext, *, now_ms: int, limits: Limits = DEFAULT_LIMITS,
              account_map: AccountMap | None = None) -> dict:
    """Validate one raw SwitchCdr dict and return the canonical fields (no source fields).
    A record without an account code gets one from ``account_map``, or ``unmapped_account``."""
    # isinstance against an ABC costs more than the rest of the identity checks together.
    if type(raw) is not dict and not isinstance(raw, Mapping):
        raise RejectError(Reason.BAD_FIELD_TYPE, f"record must be a mapping, got {type(raw).__name__}")
    g = raw.get

    # Identity. Fast path: a plain non-empty str; anything else goes to the slow checks.
    switch_id = g("switch_id")
    if type(switch_id) is not _str or not switch_id or switch_id.isspace():
        switch_id = _req_str(switch_id, "switch_id")
    call_id = g("call_id")
    if type(call_id) is not _str or not call_id or call_id.isspace():
        call_id = _req_str(call_id, "call_id")
    leg = g("leg")
    if type(leg) is not _str or not leg:
        # Absent, null and "" all mean the schema default, so a switch that omits the leg
        # keys the same as one that writes "A".
        leg = _opt_str(leg, "leg") or "A"
    partial_seq = g("partial_seq", 0)
    if type(partial_seq) is not _int:
        partial_seq = 0 if partial_seq is None else _req_int(partial_seq, "partial_seq")
    if partial_seq < 0 or partial_seq > INT32_MAX:
        raise RejectError(Reason.BAD_FIELD_TYPE, f"partial_seq {partial_seq} is outside 0..{INT32_MAX}")
    partial_final = g("partial_final", True)
    if partial_final is None:
        partial_final = True
    elif type(partial_final) is not bool:
        raise _bad_type("partial_final", partial_final, "a boolean")
    correlation_id = g("correlation_id")
    if type(correlation_id) is not _str or not correlation_id:
        correlation_id = _opt_str(correlation_id, "correlation_id") or call_id
    account = g("account")
    if type(account) is not _str or not account or account.isspace():
        # No account code: mapped from switch/trunk/DID/caller once the numbers are read.
        account = _opt_str(account, "account")
        account = account if account and not account.isspace() else None
    service_user = g("service_user")
    if type(service_user) is not _str:
        service_user = _opt_str(service_user, "service_user") or ""
    trunk = g("trunk")
    if type(trunk) is not _str:
        trunk = _opt_str(trunk, "trunk") or ""

    direction = g("direction")
    if type(direction) is not _str:
        direction = _req_str(direction, "direction")
    if direction not in DIRECTIONS:
        if not direction.strip():
            raise _missing("direction")
        d = direction.strip().lower()
        if d not in DIRECTIONS:
            raise RejectError(Reason.UNSUPPORTED_FORMAT, f"direction {direction[:40]!r} is not outbound or inbound")
        direction = d
    disposition = g("disposition")
    if type(disposition) is not _str:
        disposition = _req_str(disposition, "disposition")
    canon_disp = DISPOSITIONS.get(disposition)
    if canon_disp is None:
        if not disposition.strip():
            raise _missing("disposition")
        canon_disp = DISPOSITIONS.get(" ".join(disposition.upper().split()))
        if canon_disp is None:
            raise RejectError(Reason.UNSUPPORTED_FORMAT, f"disposition {disposition[:40]!r} is not one of ANSWERED, NO ANSWER, BUSY, FAILED")
    service = g("service")
    if service is None:
        service = "voice"
    elif type(service) is not _str:
        raise _bad_type("service", service, "a string")
    canon_service = SERVICES.get(service)
    if canon_service is None:
        canon_service = SERVICES.get(service.strip().lower())
        if canon_service is None:
            raise RejectError(Reason.UNSUPPORTED_FORMAT, f"service {service[:40]!r} is not one of voice, sms, email, fax")

    # Times and durations.
    start_ms = g("start_ms")
    if type(start_ms) is not _int:
        start_ms = _req_int(start_ms, "start_ms")
    end_ms = g("end_ms")
    if type(end_ms) is not _int:
        end_ms = _req_int(end_ms, "end_ms")
    answer_ms = g("answer_ms")
    if answer_ms is not None and type(answer_ms) is not _int:
        answer_ms = _req_int(answer_ms, "answer_ms")
    duration_s = g("duration_s")
    if type(duration_s) is not _int:
        duration_s = _req_int(duration_s, "duration_s")
    billsec_s = g("billsec_s")
    if type(billsec_s) is not _int:
        billsec_s = _req_int(billsec_s, "billsec_s")

    earliest = now_ms - limits.max_age_s * 1000
    latest = now_ms + limits.max_future_s * 1000
    if start_ms < earliest or start_ms > latest:
        raise RejectError(Reason.TIME_OUT_OF_RANGE, f"start_ms {start_ms} is outside [{earliest}, {latest}] (now {now_ms})")
    if end_ms < start_ms:
        raise RejectError(Reason.END_BEFORE_START, f"end_ms {end_ms} is {start_ms - end_ms} ms before start_ms {start_ms}")
    if end_ms > latest:
        raise RejectError(Reason.TIME_OUT_OF_RANGE, f"end_ms {end_ms} is after {latest} (now {now_ms})")
    if answer_ms is not None:
        tol = limits.answer_tolerance_s * 1000
        if answer_ms < start_ms - tol or answer_ms > end_ms + tol:
            raise RejectError(Reason.TIME_OUT_OF_RANGE, f"answer_ms {answer_ms} is outside the call [{start_ms}, {end_ms}]")
    if duration_s < 0 or billsec_s < 0:
        raise RejectError(Reason.BAD_DURATION, f"negative duration_s {duration_s} or billsec_s {billsec_s}")
    if duration_s > limits.max_call_s:
        raise RejectError(Reason.BAD_DURATION, f"duration_s {duration_s} exceeds the maximum {limits.max_call_s}")
    if billsec_s > duration_s + limits.billsec_tolerance_s:
        raise RejectError(Reason.BAD_DURATION, f"billsec_s {billsec_s} exceeds duration_s {duration_s}")
    span_ms = end_ms - start_ms
    if abs(duration_s * 1000 - span_ms) > limits.duration_tolerance_s * 1000:
        raise RejectError(Reason.BAD_DURATION, f"duration_s {duration_s} does not match end_ms - start_ms = {span_ms} ms")
    if billsec_s > duration_s:
        # Within tolerance: clamp, so downstream can rely on billsec <= duration.
        billsec_s = duration_s

    # Numbers last: the cache makes them cheap, a miss is not. The inlined cache probe
    # saves two calls per number on the hot path; misses and failures take the full route.
    # Blank-but-present numbers fail the lookup and are told apart in _number_slow, which
    # keeps an isspace() call off the hot path.
    caller = g("caller")
    if type(caller) is not _str or not caller:
        caller = _req_str(caller, "caller")
    called = g("called")
    if type(called) is not _str or not called:
        called = _req_str(called, "called")
    # The length guard is inlined rather than calling lookup(): this is the hottest line.
    got = _lookup(caller, ctx) if len(caller) <= MAX_RAW else lookup(caller, ctx)
    if type(got) is _str:
        got = _number_slow(caller, got, "caller", withheld_ok=True)
    caller_e164 = got[0]
    got = _lookup(called, ctx) if len(called) <= MAX_RAW else lookup(called, ctx)
    if type(got) is _str:
        got = _number_slow(called, got, "called", withheld_ok=False)
    called_e164, called_type = got
    presented = g("presented_cli")
    if presented is None or presented == "":
        presented_cli = caller_e164
    else:
        if type(presented) is not _str:
            presented = _opt_str(presented, "presented_cli")
        got = _lookup(presented, ctx) if len(presented) <= MAX_RAW else lookup(presented, ctx)
        if type(got) is _str:
            # CLIR ("anonymous") is the usual reason a presented CLI is not a number.
            got = _number_slow(presented, got, "presented_cli", withheld_ok=True)
        presented_cli = got[0]

    if account is None:
        account = account_map.lookup(switch_id, trunk, direction, caller_e164, called_e164) if account_map else None
        if account is None:
            raise RejectError(Reason.UNMAPPED_ACCOUNT,
                              f"no account code, and no account_map rule matches switch {switch_id!r} trunk {trunk!r} "
                              f"{direction} {caller_e164} -> {called_e164}")

    answered = billsec_s > 0 and (canon_disp == "ANSWERED" or answer_ms is not None)

    # Call-centre dimensions the tariff can price by (seed 001): the stage is the leg when the
    # leg names one; the operator's location and dedication come from the switch when it knows.
    stage = leg.lower() if leg.lower() in STAGES else ""
    operator_location = g("operator_location")
    if operator_location is not None:
        operator_location = _opt_str(operator_location, "operator_location") or None
    operator_dedicated = g("operator_dedicated")
    if operator_dedicated is not None and type(operator_dedicated) is not bool:
        raise RejectError(Reason.BAD_FIELD_TYPE,
                          f"operator_dedicated must be true, false or null, got {operator_dedicated!r}")

    return {
        "cdr_key": cdr_key(switch_id, call_id, leg, partial_seq),
        "switch_id": switch_id,
        "call_id": call_id,
        "leg": leg,
        "partial_seq": partial_seq,
        "partial_final": partial_final,
        "correlation_id": correlation_id,
        "account": account,
        "service_user": service_user,
        "direction": direction,
        "caller_e164": caller_e164,
        "presented_cli": presented_cli,
        "called_e164": called_e164,
        "called_type": called_type,
        "trunk": trunk,
        "start_ms": start_ms,
        "answer_ms": answer_ms,
        "end_ms": end_ms,
        "duration_s": duration_s,
        "billsec_s": billsec_s,
        "answered": answered,
        "disposition": canon_disp,
        "service": canon_service,
        "stage": stage,
        "operator_location": operator_location,
        "operator_dedicated": operator_dedicated,
    }


def normalize_batch(
    raws: list[dict],
    ctx_for: Callable[[dict], NumberingContext],
    now_ms: int,
    limits: Limits = DEFAULT_LIMITS,
    account_map: AccountMap | None = None,
) -> tuple[list[dict], list[tuple[int, RejectError]]]:
    """Normalise a batch. Returns (canonical dicts in input order, [(index, error)]).

    Never raises on any record: an unexpected exception (a bug, or input no check foresaw)
    becomes a BAD_FIELD_TYPE reject carrying the exception's type and message, so the
    record still ends somewhere on purpose and the agent keeps running.
    """
    ok: list[dict] = []
    rejected: list[tuple[int, RejectError]] = []
    append = ok.append
    for i, raw in enumerate(raws):
        try:
            append(normalize(raw, ctx_for(raw), now_ms=now_ms, limits=limits, account_map=account_map))
        except RejectError as exc:
            rejected.append((i, exc))
        except Exception as exc:  # noqa: BLE001 - the agent must never crash on input
            msg = str(exc)[:200]
            rejected.append((i, RejectError(Reason.BAD_FIELD_TYPE, f"unexpected {type(exc).__name__}: {msg}")))
    return ok, rejected
