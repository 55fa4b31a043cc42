"""Web endpoints on the worker that owns the account: authorisation before a call, the interim
update that renews a call's grant, and the call-end report. Faust's router forwards a request to
the worker holding the account's table partition, so the decision always sees the account's
current state and reservations.

Reservations live in their own changelogged table (same key and partition count as the accounts
table), so a restarted worker, or the new owner after a rebalance, still honours them. A web
request is no stream event, so Faust cannot tell which changelog partition a write belongs to;
we name it ourselves: the account's murmur2 partition, the one every producer and the router use.
"""
from __future__ import annotations

import orjson
from faust.web import Request, Response, View

from streams.agents.charge import accounts, load_state
from streams.app import app, settings
from streams.core.authorize import Reservations, decide, month_minutes_s, quote
from streams.core.charge import utc_now_ms
from streams.core.numbering import to_e164
from streams.core.reasons import RejectError
from streams.mediation import load_sources
from streams.partitioning import partition_for
from streams.tariffs import current_book

RESERVATION_TABLE = "reservations"   # changelog: cdrflow-reservations-changelog

reservations = app.Table(RESERVATION_TABLE, default=None, partitions=settings.partitions,
                         key_type=bytes, value_type=bytes)


def _load(account: str) -> dict | None:
    raw = reservations.get(account.encode())
    return orjson.loads(raw) if raw else None


def _save(account: str, entries: dict) -> None:
    key = account.encode()
    part = partition_for(account, settings.partitions)
    store = reservations.data
    if entries:
        value = orjson.dumps(entries)
        store[key] = value
        _PENDING.append(reservations.send_changelog(part, key, value))
    else:
        store.pop(key, None)
        _PENDING.append(reservations.send_changelog(part, key, None, value_serializer="raw"))   # tombstone
    kp = getattr(store, "_key_partition", None)
    if isinstance(kp, dict):
        # The memory store drops keys of revoked partitions by this map (as if recovered).
        kp[key] = part


_PENDING: list = []


async def _durable() -> None:
    """Wait until every changelog write so far is on the broker: a grant is answered only once a
    new owner would see it (measured: a SIGKILL right after an answer lost the last write)."""
    while _PENDING:
        fut = _PENDING.pop(0)
        await fut


RESERVATIONS = Reservations(_load, _save)
_SOURCES = load_sources(settings.sources_file)


def _bad(web, message: str, status: int = 400) -> Response:
    return web.json({"error": message}, status=status)


def _context(request: Request):
    # The caller's numbering context: what "112" or "0800…" means depends on where it is dialled.
    return _SOURCES.context_for(request.query.get("switch") or None, request.query.get("trunk") or None)


def _quote(state: dict | None, call: dict):
    if state is None:
        return None
    try:
        return quote(current_book(), call["plan"], call["number"], call["type"], call["at_ms"], call["trunk"],
                     call["minutes_s"])
    except RejectError:
        return None


def _seconds(request: Request, name: str) -> int | None:
    try:
        v = int(request.query.get(name, ""))
    except ValueError:
        return None
    return v if v >= 0 else None


@app.page("/authorize")
class Authorize(View):
    @app.table_route(table=accounts, query_param="account")
    async def get(self, request: Request) -> Response:
        account = request.query.get("account", "")
        dest = request.query.get("destination", "")
        if not account or not dest:
            return _bad(self.web, "give ?account=ID&destination=NUMBER[&switch=ID&trunk=ID]")
        ctx = _context(request)
        try:
            number, kind = to_e164(dest, ctx)
        except RejectError as exc:
            return _bad(self.web, f"destination: {exc.detail}")
        now = utc_now_ms()
        state = load_state(account)
        call = {"plan": state["cfg"]["tariff_plan"] if state else "", "number": number, "type": kind,
                "trunk": request.query.get("trunk") or None, "at_ms": now,
                "minutes_s": month_minutes_s(state, now) if state else 0}
        held = RESERVATIONS.held(account, now)
        d = decide(state, number, kind, _quote(state, call), held, now, ctx, settings.authorize_quota_s)
        d.update(destination_e164=number, reserved_micros=held)
        if d["allowed"] and d.get("max_duration_s"):
            d["reservation"] = RESERVATIONS.add(account, call, d, now)
        await _durable()
        return self.web.json(d, status=404 if state is None and not d["allowed"] else 200)


@app.page("/call-update")
class CallUpdate(View):
    """Interim update (Diameter CCR-U style): the call has run ``used`` seconds; grant the next
    slice from the credit left now, or refuse (the call must end)."""

    @app.table_route(table=accounts, query_param="account")
    async def get(self, request: Request) -> Response:
        account = request.query.get("account", "")
        rid = request.query.get("reservation", "")
        used = _seconds(request, "used")
        if used is None:
            return _bad(self.web, "give ?account=ID&reservation=RID&used=SECONDS")
        now = utc_now_ms()
        call = RESERVATIONS.get(account, rid, now)
        if call is None or call.get("ended"):
            return _bad(self.web, f"no open reservation {rid!r} for {account!r}", 404)
        state = load_state(account)
        q = _quote(state, call)
        d = decide(state, call["number"], call["type"], q, RESERVATIONS.held(account, now, exclude=rid), now,
                   _context(request), settings.authorize_quota_s, used_s=used)
        e = RESERVATIONS.renew(account, rid, d, used, q.cost(used) if q else call["amount"], now)
        d.update(reservation=rid, held_micros=e["amount"], destination_e164=call["number"])
        await _durable()
        return self.web.json(d)


@app.page("/call-end")
class CallEnd(View):
    @app.table_route(table=accounts, query_param="account")
    async def get(self, request: Request) -> Response:
        account = request.query.get("account", "")
        rid = request.query.get("reservation", "")
        duration = _seconds(request, "duration")
        if duration is None:
            return _bad(self.web, "give ?account=ID&reservation=RID&duration=SECONDS")
        now = utc_now_ms()
        call = RESERVATIONS.get(account, rid, now)
        if call is None:
            return _bad(self.web, f"no open reservation {rid!r} for {account!r}", 404)
        q = _quote(load_state(account), call)
        # Held at the call's full rated cost until the rated CDR has entered the spend.
        r = RESERVATIONS.end(account, rid, q.cost(duration) if q else call["amount"], now)
        await _durable()
        return self.web.json({"reservation": rid, "held_micros": r["amount"]})
