"""Service-user charge thresholds and bill-shock notifications (pure).

A corporate account has service users (an extension or a number, the CDR's ``service_user``).
Each user has two *monthly* charge thresholds ``[first, second]`` in micros; crossing one emits
a notification, once per user, period and threshold. A new month starts from zero. Thresholds
are configured per account: the ``"*"`` entry is the default for every user, a user's own
entry overrides it, and an empty list switches thresholds off for that user.

State lives inside the account state dict (a plain JSON-able dict, like ``streams.core.credit``):

* ``state["user_thresholds"]`` - the configuration ``{user | "*": [t1, t2] | []}``;
* ``state["users"]``           - per user ``{"spend": {period: micros}, "fired": {period: [1, 2]}}``.

Rules:

* A threshold is reached when spend ``>=`` it (as the credit limits). Each fires at most once
  per (user, period), whatever happens to the spend afterwards (credits, threshold changes).
* A threshold lowered below the spend already reached fires with the next charge of that user.
* Late CDRs: user spend is kept for the last ``KEEP_PERIODS`` months the user was charged in.
  A late CDR for one of those months is added to that month, and a crossing it causes is
  notified with ``correction=True`` (never silently). A CDR older than the retained months is
  billed by the credit control as usual, but leaves user thresholds alone: that month's
  counters are gone and a notification about it would be noise.
* Replays: the charge stage applies a CDR once (it de-duplicates by key before calling here).
  When it re-emits the outputs of a redelivered input, :func:`redelivered` gives back the
  notifications that CDR caused, with the same ids.

Account-level partner notifications (soft and hard limit) derive from the barring transitions
of :mod:`streams.core.credit`: :func:`notification_from_barring`.
"""
from __future__ import annotations

from streams.core import credit
from streams.core import profiles as P
from streams.core.periods import MONTHLY, period_of

CONFIG_KEY = "user_thresholds"
USERS_KEY = "users"
RECENT_KEY = "recent_notifications"
DEFAULT_USER = "*"
KEEP_PERIODS = 3
RECENT_NOTIFICATIONS = 32

SET_ACTION = "set_user_thresholds"

USER_THRESHOLD_1 = "user_threshold_1"
USER_THRESHOLD_2 = "user_threshold_2"
SOFT_LIMIT = "soft_limit"
HARD_LIMIT = "hard_limit"
KINDS = (USER_THRESHOLD_1, USER_THRESHOLD_2, SOFT_LIMIT, HARD_LIMIT)


# --- configuration ---------------------------------------------------------------------------

def parse_config(mapping: dict | None) -> dict[str, list[int]] | None:
    """Validate a ``user_thresholds`` map (as carried by ControlCommand). ``None`` stays None.

    Each value is ``[first, second]`` with ``0 < first < second`` (integer micros), or ``[]``
    to switch thresholds off for that user. Raises ValueError naming the bad entry."""
    if mapping is None:
        return None
    if not isinstance(mapping, dict):
        raise ValueError("user_thresholds must be a map of user -> [first, second]")
    out: dict[str, list[int]] = {}
    for user, vals in mapping.items():
        if not isinstance(user, str) or not user:
            raise ValueError(f"user_thresholds: bad user {user!r}")
        vals = list(vals or [])
        if not vals:
            out[user] = []
            continue
        if len(vals) != 2 or any(isinstance(v, bool) or not isinstance(v, int) for v in vals):
            raise ValueError(f"user_thresholds[{user!r}]: expected two integer micro amounts, got {vals!r}")
        t1, t2 = vals
        if not 0 < t1 < t2:
            raise ValueError(f"user_thresholds[{user!r}]: need 0 < first < second, got {t1} and {t2}")
        out[user] = [t1, t2]
    return out


def thresholds_for(config: dict | None, user: str) -> tuple[int, int] | None:
    """The thresholds of ``user``: its own entry, else the ``"*"`` default, else None."""
    if not config:
        return None
    vals = config.get(user)
    if vals is None:
        vals = config.get(DEFAULT_USER)
    return (int(vals[0]), int(vals[1])) if vals else None


def user_period(start_ms: int, timezone: str) -> str:
    """User thresholds are monthly in the account's time zone, whatever the credit period."""
    return period_of(start_ms, timezone, MONTHLY)


# --- per-user spend --------------------------------------------------------------------------

def notification_id(account: str, user: str, period: str, index: int) -> str:
    return f"{account}:{user}:{period}:{index}"


def apply_user_charge(users_state: dict, user: str, period: str, cost_micros: int,
                      thresholds: tuple[int, int] | None, at_ms: int, cause_key: str | None,
                      *, account: str) -> list[dict]:
    """Add one charge to ``user``'s spend in ``period``; return the notifications it caused.

    ``users_state`` is ``state["users"]``: the user's entry is replaced by an updated copy (never
    mutated in place), so only the top-level dict must belong to the caller. A user with no thresholds still has its
    spend counted, so that thresholds configured later in the month see the real spend."""
    if not user:
        return []
    prev = users_state.get(user) or {"spend": {}, "fired": {}}
    retained = sorted(prev["spend"])
    if period not in prev["spend"] and len(retained) >= KEEP_PERIODS and period < retained[0]:
        return []  # older than every retained month: see the module docstring
    # Copy-on-write of this user's entry: the caller's state may share nested values with the
    # stored table value, which must not change before the batch is written back.
    spend = dict(prev["spend"])
    fired = {p: list(v) for p, v in prev["fired"].items()}
    users_state[user] = {"spend": spend, "fired": fired}
    after = spend.get(period, 0) + int(cost_micros)
    spend[period] = after
    for p in sorted(spend)[:-KEEP_PERIODS]:
        del spend[p]
        fired.pop(p, None)
    if period not in spend or thresholds is None:
        return []
    late = period < max(spend)
    done = fired.setdefault(period, [])
    out = []
    for index, (kind, limit) in enumerate(zip((USER_THRESHOLD_1, USER_THRESHOLD_2), thresholds), 1):
        if index in done or after < limit:
            continue
        done.append(index)
        out.append({
            "notification_id": notification_id(account, user, period, index), "account": account,
            "service_user": user, "period": period, "kind": kind, "spend_micros": after,
            "threshold_micros": int(limit), "at_ms": at_ms, "cause_cdr_key": cause_key, "correction": late,
        })
    if not done:
        del fired[period]
    return out


def user_spend(state: dict, user: str, period: str) -> int:
    return state.get(USERS_KEY, {}).get(user, {}).get("spend", {}).get(period, 0)


# --- account-level (partner) notifications --------------------------------------------------

def notification_from_barring(event: dict) -> dict | None:
    """The most severe partner notification for a barring transition, or None (see
    :func:`notifications_for_barring`, which gives every notice a transition owes)."""
    notes = notifications_for_barring(event)
    return notes[-1] if notes else None


def notifications_for_barring(event: dict) -> list[dict]:
    """The partner notifications a barring transition owes, least severe first.

    * into ``low_credit`` from ``normal`` (spend reached the soft limit, or a lowered credit
      put it there)          -> ``soft_limit``;
    * into ``blocked`` because spend reached the credit (not a partner's forced profile)
                             -> ``hard_limit``, preceded by ``soft_limit`` when the account came
      straight from ``normal`` (one large call can cross both limits: the partner still gets the
      soft-limit notice, which is what bill-shock prevention promises);
    Relief transitions (unbar, raised credit, period reset), forced profiles and the correction
    of a late CDR in a closed period notify nothing.
    The id includes the transition's ``seq``: a limit reached again after the partner raised the
    credit is a new notification, a replayed event gives the same id."""
    new, old, reason = event["new_profile"], event["old_profile"], event["reason"]
    if reason in ("profile_set", "unbar", "period_reset", credit.LATE_CLOSED):
        return []
    kinds = []
    if old == P.NORMAL and (new == P.LOW_CREDIT or
                            (new == P.BLOCKED and event["spend_micros"] >= event["soft_limit_micros"])):
        kinds.append((SOFT_LIMIT, event["soft_limit_micros"]))
    if new == P.BLOCKED and event["spend_micros"] >= event["credit_micros"]:
        kinds.append((HARD_LIMIT, event["credit_micros"]))
    return [{
        "notification_id": f"{event['account']}:*:{event['period']}:{kind}:{event['seq']}",
        "account": event["account"], "service_user": "", "period": event["period"], "kind": kind,
        "spend_micros": event["spend_micros"], "threshold_micros": limit, "at_ms": event["at_ms"],
        "cause_cdr_key": event.get("cause_cdr_key"), "correction": bool(event.get("correction")),
    } for kind, limit in kinds]


def notifications_from_barring(events: list[dict]) -> list[dict]:
    return [n for ev in events for n in notifications_for_barring(ev)]


# --- integration helpers for the charge stage -----------------------------------------------

def apply_account_command(state: dict | None, cmd: dict, now_ms: int) -> tuple[dict, list[dict]]:
    """``credit.apply_command`` plus user thresholds; a drop-in replacement for it.

    * ``provision`` with ``user_thresholds``: the map replaces the account's configuration
      (provision without it keeps the existing one);
    * ``set_user_thresholds``: merges the given users into the configuration (no barring event);
    * every other action goes to ``credit.apply_command`` unchanged.
    The map is validated before anything changes, so a refused command leaves the state as is.
    Raises KeyError (unknown account) or ValueError (bad command) like credit.apply_command."""
    config = parse_config(cmd.get(CONFIG_KEY))
    if cmd["action"] == SET_ACTION:
        if state is None:
            raise KeyError(f"account {cmd['account']!r} is not provisioned")
        if config is None:
            raise ValueError("set_user_thresholds needs user_thresholds")
        state[CONFIG_KEY] = {**state.get(CONFIG_KEY, {}), **config}
        return state, []
    state, events = credit.apply_command(state, cmd, now_ms)
    if cmd["action"] == "provision" and config is not None:
        state[CONFIG_KEY] = config
    return state, events


def apply_cdr_charge(state: dict, *, period: str, start_ms: int, service_user: str, cost_micros: int,
                     at_ms: int, cause_key: str, cause_ingest_ms: int | None = None,
                     late_of: str | None = None) -> tuple[list[dict], list[dict]]:
    """``credit.apply_charge`` plus the user's monthly thresholds and partner notifications.

    Returns ``(barring_events, notifications)``; the notifications are also remembered in the
    state for :func:`redelivered`. ``late_of``: the closed financial period the CDR belongs to
    when ``period`` is the open one it is booked in instead (a correction event is added)."""
    events = credit.apply_charge(state, period, cost_micros, at_ms, cause_key, cause_ingest_ms)
    if late_of is not None:
        events.append(credit.late_closed_event(state, late_of, at_ms, cause_key, cause_ingest_ms))
    cfg = credit.config(state)
    notes = notifications_from_barring(events)
    notes += apply_user_charge(
        state.setdefault(USERS_KEY, {}), service_user, user_period(start_ms, cfg.timezone), cost_micros,
        thresholds_for(state.get(CONFIG_KEY), service_user), at_ms, cause_key, account=cfg.account)
    remember(state, notes)
    return events, notes


def remember(state: dict, notes: list[dict]) -> None:
    if notes:
        # A new list (not extend): the stored table value may share the old one.
        state[RECENT_KEY] = [*state.get(RECENT_KEY, []), *notes][-RECENT_NOTIFICATIONS:]


def redelivered(state: dict, cause_key: str) -> list[dict]:
    """Notifications a CDR caused earlier, to emit again when its input is redelivered."""
    return [n for n in state.get(RECENT_KEY, []) if n["cause_cdr_key"] == cause_key]
