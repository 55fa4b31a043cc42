"""Web endpoints on the worker that owns the account: authorisation before a call, the interim
update that renews a call's grant, and the call-end report. Faust's router forwards a request to
the worker holding the account's table partition, so the decision always sees the account's
current state and reservations.

Reservations live in their own changelogged table (same key and partition count as the accounts
table), so a restarted worker, or the new owner after a rebalance, still honours them. A web
request is no stream event, so Faust cannot tell which changelog partition a write belongs to;
we name it ourselves: the account's murmur2 partition, the one every producer and the router use.

A reservation made with ``call_id`` is settled by the call's rated CDR: ``release_on_rated``
consumes ``cdr.rated`` (one batch per account partition, the same partition number as the
account's, so Faust gives it to the worker owning the account and its reservations) and applies
each record to the reservations of its account and call id (streams/core/authorize.py says how).
"""
from __future__ import annotations

import asyncio
import logging

import orjson
from faust.web import Request, Response, View

from streams import codecs, topics
from streams.agents.charge import accounts, load_state
from streams.app import app, settings
from streams.core.authorize import Reservations, decide, month_minutes_s, outstanding, quote, rated_so_far
from streams.core.charge import utc_now_ms
from streams.core.numbering import to_e164
from streams.core.reasons import RejectError
from streams.mediation import load_sources
from streams.metrics import count
from streams.partitioning import partition_for
from streams.tariffs import current_book

RESERVATION_TABLE = "reservations"   # changelog: cdrflow-reservations-changelog

log = logging.getLogger("cdrflow.authorize")

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
    new owner would see it (measured: a SIGKILL right after an answer lost the last write).

    A caller's own writes are in ``_PENDING`` when it gets here (it wrote them without yielding),
    so it takes them all and awaits them all; popping one at a time let a concurrent caller find
    the list empty and answer while the write it needed was still in flight."""
    if not _PENDING:
        return
    futs = _PENDING[:]
    _PENDING.clear()
    if settings.authorize_send_now:
        try:
            await _send_now()
        except Exception:       # only a speed-up: the writes still go out after the linger
            log.warning("could not push reservation writes at once", exc_info=True)
    await asyncio.gather(*futs)


async def _send_now() -> None:
    """Push the reservation writes to the broker now instead of after the producer's linger
    (``producer_linger_ms``, kept for the pipeline's throughput): most of an answer's time was
    that wait. Faust hands the writes to aiokafka from its buffer; once there, the batches of the
    reservations changelog are closed and the sender woken, as aiokafka's own flush_for_commit
    does for every batch. Uses aiokafka internals; without them it falls back to the linger."""
    await app.producer.buffer.flush()
    acc = getattr(getattr(app.producer, "_producer", None), "_message_accumulator", None)
    batches = getattr(acc, "_batches", None)
    if not isinstance(batches, dict):
        return
    name = reservations.changelog_topic.get_topic_name()
    closed = False
    for tp, queue in batches.items():
        if tp.topic == name:
            for batch in queue:
                batch._builder.close()
                closed = True
    waiter = getattr(acc, "_waiter_future", None)
    if closed and waiter is not None and not waiter.done():
        waiter.set_result(None)


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
                "minutes_s": month_minutes_s(state, now) if state else 0,
                # The CDR's call_id (SIP Call-ID for Kamailio): its rated CDR releases the hold.
                "call_id": request.query.get("call_id") or None}
        held = RESERVATIONS.held(account, now)
        d = decide(state, number, kind, _quote(state, call), held, now, ctx, settings.authorize_quota_s)
        d.update(destination_e164=number, reserved_micros=held, call_id=call["call_id"])
        if d["allowed"] and d.get("max_duration_s"):
            d["reservation"] = RESERVATIONS.add(account, call, d, now)
        await _durable()
        return self.web.json(d, status=404 if state is None and not d["allowed"] else 200)


def _reservation_call(web, request: Request, seconds: str, *, open_only: bool):
    """(account, reservation id, the ``seconds`` parameter, now, the held call) of a
    /call-update or /call-end request, or the 4xx answer to send instead."""
    account = request.query.get("account", "")
    rid = request.query.get("reservation", "")
    value = _seconds(request, seconds)
    if value is None:
        return _bad(web, f"give ?account=ID&reservation=RID&{seconds}=SECONDS")
    now = utc_now_ms()
    call = RESERVATIONS.get(account, rid, now)
    if call is None or (open_only and call.get("ended")):
        return _bad(web, f"no open reservation {rid!r} for {account!r}", 404)
    return account, rid, value, now, call


@app.page("/call-update")
class CallUpdate(View):
    """Interim update (Diameter CCR-U style): the call has run ``used`` seconds; grant the next
    slice from the credit left now, or refuse (the call must end)."""

    @app.table_route(table=accounts, query_param="account")
    async def get(self, request: Request) -> Response:
        got = _reservation_call(self.web, request, "used", open_only=True)
        if not isinstance(got, tuple):   # the 4xx answer
            return got
        account, rid, used, now, call = got
        state = load_state(account)
        q = _quote(state, call)
        d = decide(state, call["number"], call["type"], q, RESERVATIONS.held_for_update(account, rid, now), now,
                   _context(request), settings.authorize_quota_s, used_s=used)
        e = RESERVATIONS.renew(account, rid, d, used, q.cost(used) if q else call["amount"], now)
        d.update(reservation=rid, held_micros=outstanding(e), destination_e164=call["number"])
        await _durable()
        return self.web.json(d)


@app.page("/call-end")
class CallEnd(View):
    @app.table_route(table=accounts, query_param="account")
    async def get(self, request: Request) -> Response:
        # An ended reservation may be ended again (a retried request): same answer.
        got = _reservation_call(self.web, request, "duration", open_only=False)
        if not isinstance(got, tuple):   # the 4xx answer
            return got
        account, rid, duration, now, call = got
        q = _quote(load_state(account), call)
        # Held at the call's full rated cost until the rated CDR has entered the spend.
        r = RESERVATIONS.end(account, rid, q.cost(duration) if q else call["amount"], now)
        await _durable()
        return self.web.json({"reservation": rid, "held_micros": outstanding(r)})


@app.page("/reservations")
class ReservationList(View):
    """What an account's calls hold right now (read only): ``held_micros`` and each entry."""

    @app.table_route(table=accounts, query_param="account")
    async def get(self, request: Request) -> Response:
        account = request.query.get("account", "")
        if not account:
            return _bad(self.web, "give ?account=ID")
        now = utc_now_ms()
        res = RESERVATIONS.entries(account, now)
        await _durable()
        return self.web.json({"account": account, "held_micros": sum(outstanding(e) for e in res.values()),
                              "reservations": {rid: {"call_id": e.get("call_id"), "amount_micros": e["amount"],
                                                     "rated_micros": rated_so_far(e), "held_micros": outstanding(e),
                                                     "ended": e["ended"], "settled": bool(e.get("settled")),
                                                     "expires_ms": e["expires_ms"]} for rid, e in res.items()}})


rated_in = app.topic(topics.RATED, partitions=settings.partitions, value_serializer="raw")


@app.agent(rated_in)
async def release_on_rated(stream):
    """Settle reservations by their calls' rated CDRs. Runs on the account's owner (same partition
    number as the account); a redelivered batch changes nothing (records are kept by cdr_key)."""
    async for value in stream:
        if not len(reservations.data):
            continue        # nothing held on this worker (every load test, most workers): skip the decode
        try:
            name, batch = codecs.decode(value)
        except Exception:
            log.exception("undecodable cdr.rated record skipped")
            count("reservation_settle_errors")
            continue
        recs = batch.get("records", []) if name == codecs.RATED_BATCH else [batch]
        n = RESERVATIONS.settle(recs, utc_now_ms())
        if n:
            await _durable()
            count("reservations_settled", n)
