"""Web endpoints on the worker that owns the account: authorisation before a call and the
call-end report. Faust's router forwards a request to the worker holding the account's table
partition, so the decision always sees the account's current state and reservations."""
from __future__ import annotations

from faust.web import Request, Response, View

from streams.agents.charge import accounts, load_state
from streams.app import app
from streams.core.authorize import Reservations, decide
from streams.core.charge import utc_now_ms
from streams.core.numbering import to_e164
from streams.core.reasons import RejectError
from streams.core.sources import NumberingContext
from streams.tariffs import current_book

RESERVATIONS = Reservations()
_CTX = NumberingContext()


def _bad(web, message: str, status: int = 400) -> Response:
    return web.json({"error": message}, status=status)


@app.page("/authorize")
class Authorize(View):
    @app.table_route(table=accounts, query_param="account")
    async def get(self, request: Request) -> Response:
        account = request.query.get("account", "")
        dest = request.query.get("destination", "")
        if not account or not dest:
            return _bad(self.web, "give ?account=ID&destination=NUMBER")
        try:
            e164, _kind = to_e164(dest, _CTX)
        except RejectError as exc:
            return _bad(self.web, f"destination: {exc.detail}")
        now = utc_now_ms()
        state = load_state(account)
        rate = None
        if state is not None:
            try:
                rate = current_book().max_rate_per_min_micros(state["cfg"]["tariff_plan"], e164, now)
            except RejectError:
                rate = None
        d = decide(state, e164, rate, RESERVATIONS.held(account, now), now)
        d["destination_e164"] = e164
        if d["allowed"] and d.get("max_duration_s") and rate:
            amount = -((-rate * d["max_duration_s"]) // 60)
            d["reservation"] = RESERVATIONS.add(account, rate, amount, d["max_duration_s"], now).rid
        return self.web.json(d, status=200 if state is not None else 404)


@app.page("/call-end")
class CallEnd(View):
    @app.table_route(table=accounts, query_param="account")
    async def get(self, request: Request) -> Response:
        account = request.query.get("account", "")
        rid = request.query.get("reservation", "")
        try:
            duration = int(request.query.get("duration", ""))
        except ValueError:
            return _bad(self.web, "give ?account=ID&reservation=RID&duration=SECONDS")
        r = RESERVATIONS.end(account, rid, duration, utc_now_ms())
        if r is None:
            return _bad(self.web, f"no open reservation {rid!r} for {account!r}", 404)
        return self.web.json({"reservation": rid, "held_micros": r.amount_micros})
