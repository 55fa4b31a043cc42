"""The corporate self-care web application (seed 004): Starlette, Jinja2 templates, Chart.js.

Every route resolves the logged-in user from the store (not from the session), then checks the
grant for the account (and service user) in the URL before any query runs: a URL edited to
another account answers 403, pages and CSV exports alike. Changes (POST) also need the
session's CSRF token. Changes are control commands on ``account.control`` (``send_command``);
the worker applies them and the page shows the resulting account.state as it lands.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from streams.core import profiles as P
from streams.core import thresholds as TH
from streams.core.money import format_micros, parse_money
from streams.portal import data as D
from streams.portal import forecast as F
from streams.portal.directory import Directory
from streams.portal.sessions import Session, Sessions, csrf_ok
from streams.portal.throttle import LoginThrottle
from streams.portal.users import FINANCE, MANAGE, VIEW, User, UserStore

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
COOKIE = "cdrflow_portal"
MAX_RANGE_DAYS = 400

CSV_COLUMNS = ["account", "service_user", "start_local", "timezone", "called_e164", "destination", "direction",
               "charged_s", "rate", "cost", "currency", "cdr_key", "rating_version"]


class Denied(Exception):
    pass


class BadRequest(Exception):
    pass


@dataclass
class PortalConfig:
    currency: str = "EUR"
    cookie_secure: bool = False
    clock: Callable[[], float] = time.time
    send_command: Callable[[dict], None] | None = None   # None: changes are refused (no Kafka)
    sessions: Sessions = field(default_factory=Sessions)
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    # True when a ControlFollower feeds the directory from account.control/replies: a change is
    # then shown as pending until the worker's reply, instead of being applied here at once.
    followed: bool = False


def fmt_money(micros: int | None) -> str:
    """Exact amount, at least 2 decimals, no trailing zeros beyond (1.234500 → 1.2345)."""
    if micros is None:
        return "–"
    text = format_micros(int(micros))
    whole, frac = text.split(".")
    frac = frac.rstrip("0")
    return f"{whole}.{frac.ljust(2, '0')}"


def parse_day(text: str | None, default: date) -> date:
    if not text:
        return default
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadRequest(f"bad date {text!r}; use YYYY-MM-DD") from None


class SecurityHeaders:
    """Pure ASGI middleware: headers on every response (scripts only from /static: chart data
    travels as JSON in a non-executed script tag, so the CSP needs no 'unsafe-inline')."""

    CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
           "frame-ancestors 'none'; form-action 'self'")

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                h = MutableHeaders(scope=message)
                h["Content-Security-Policy"] = self.CSP
                h["X-Frame-Options"] = "DENY"
                h["X-Content-Type-Options"] = "nosniff"
                h["Referrer-Policy"] = "same-origin"
                if not static:
                    h["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(backend, store: UserStore, directory: Directory, cfg: PortalConfig | None = None) -> Starlette:
    cfg = cfg or PortalConfig()
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=select_autoescape(["html"]))
    env.filters["money"] = fmt_money

    # --- plumbing ---------------------------------------------------------------------------

    def session_of(request: Request) -> Session | None:
        return cfg.sessions.get(request.cookies.get(COOKIE))

    def current(request: Request) -> tuple[Session, User] | None:
        s = session_of(request)
        if s is None or s.user is None:
            return None
        user = store.get(s.user)
        if user is None or user.disabled:
            cfg.sessions.drop(s.sid)
            return None
        return s, user

    def with_cookie(resp: Response, s: Session) -> Response:
        resp.set_cookie(COOKIE, s.sid, httponly=True, samesite="strict", secure=cfg.cookie_secure, path="/")
        return resp

    def render(request: Request, name: str, ctx: dict, status: int = 200, s: Session | None = None) -> Response:
        ctx = {"currency": cfg.currency, "request": request, **ctx}
        if s is not None:
            ctx["csrf"] = s.csrf
            ctx["flash"], s.flash = list(s.flash), []
        return HTMLResponse(env.get_template(name).render(**ctx), status_code=status)

    def page(handler):
        """Login required; Denied → 403, BadRequest → 400; the user's grants come from the store."""
        async def wrapped(request: Request) -> Response:
            cu = current(request)
            if cu is None:
                return RedirectResponse("/login", status_code=303)
            s, user = cu
            try:
                return await handler(request, s, user)
            except Denied as exc:
                log.info("event=portal_denied user=%s path=%s why=%s", user.name, request.url.path, exc)
                return render(request, "error.html", {"user": user, "status": 403, "message": "Not granted: " + str(exc)},
                              403, s)
            except BadRequest as exc:
                return render(request, "error.html", {"user": user, "status": 400, "message": str(exc)}, 400, s)
        return wrapped

    def need(user: User, account: str, perm: str = VIEW, service_user: str | None = None, whole: bool = False):
        if not user.can(account, perm, service_user, whole=whole):
            raise Denied(f"{perm} on {account}" + (f" / {service_user}" if service_user else ""))

    async def form_checked(request: Request, s: Session) -> dict:
        form = await request.form()
        if not csrf_ok(s, form.get("csrf")):
            raise Denied("missing or wrong CSRF token")
        return form

    def now_s() -> int:
        return int(cfg.clock())

    def period_args(request: Request, tz: str) -> tuple[date, date]:
        d_first, d_after = D.default_range(now_s(), tz)
        first = parse_day(request.query_params.get("from"), d_first)
        last = parse_day(request.query_params.get("to"), d_after - timedelta(days=1))
        if last < first:
            raise BadRequest("'to' is before 'from'")
        if (last - first).days > MAX_RANGE_DAYS:
            raise BadRequest(f"at most {MAX_RANGE_DAYS} days at once")
        return first, last + timedelta(days=1)

    # --- login ------------------------------------------------------------------------------

    async def login_form(request: Request) -> Response:
        s = session_of(request) or cfg.sessions.new()
        return with_cookie(render(request, "login.html", {"user": None}, s=s), s)

    async def login_post(request: Request) -> Response:
        s = session_of(request)
        form = await request.form()
        if not csrf_ok(s, form.get("csrf")):
            return PlainTextResponse("CSRF token missing or wrong: reload the login page", status_code=403)
        name, password = str(form.get("username") or "")[:128], str(form.get("password") or "")
        address = request.client.host if request.client else "?"
        wait_s = cfg.throttle.retry_after(name, address)
        if wait_s > 0:
            # Refused before the password is checked: a locked-out guesser learns nothing more.
            log.info("event=portal_login_locked user=%s address=%s retry_after_s=%d", name[:64], address, wait_s)
            s.flash.append(f"Too many failed logins: try again in {int(wait_s) // 60 + 1} minute(s).")
            resp = with_cookie(render(request, "login.html", {"user": None}, 429, s), s)
            resp.headers["Retry-After"] = str(int(wait_s) + 1)
            return resp
        user = store.authenticate(name, password)
        if user is None:
            cfg.throttle.failed(name, address)
            log.info("event=portal_login_failed user=%s address=%s", name[:64], address)
            s.flash.append("Wrong user name or password.")
            return with_cookie(render(request, "login.html", {"user": None}, 401, s), s)
        cfg.throttle.succeeded(name)
        # A new session id at login: a session id planted before login is worth nothing after.
        cfg.sessions.drop(s.sid)
        fresh = cfg.sessions.new(user.name)
        log.info("event=portal_login user=%s", user.name)
        return with_cookie(RedirectResponse("/accounts", status_code=303), fresh)

    async def logout(request: Request) -> Response:
        s = session_of(request)
        form = await request.form()
        if s is not None and csrf_ok(s, form.get("csrf")):
            cfg.sessions.drop(s.sid)
            resp = RedirectResponse("/login", status_code=303)
            resp.delete_cookie(COOKIE, path="/")
            return resp
        return PlainTextResponse("CSRF token missing or wrong", status_code=403)

    async def home(request: Request) -> Response:
        return RedirectResponse("/accounts", status_code=303)

    # --- accounts ---------------------------------------------------------------------------

    @page
    async def accounts(request: Request, s: Session, user: User) -> Response:
        whole = [a for a in user.accounts() if user.can(a, VIEW, whole=True)]
        views = D.account_views(backend, directory, whole, now_s())
        partial = [a for a in user.accounts() if a not in whole]
        return render(request, "accounts.html", {"user": user, "views": views, "partial": partial,
                                                 "fmt_time": D.fmt_local, "F": F}, s=s)

    @page
    async def account(request: Request, s: Session, user: User) -> Response:
        acc = request.path_params["account"]
        need(user, acc, VIEW, whole=True)
        v = D.account_views(backend, directory, [acc], now_s())[0]
        return render(request, "account.html", {
            "user": user, "v": v, "barring": D.barring_history(backend, acc), "F": F, "fmt_time": D.fmt_local,
            "can_manage": user.can(acc, MANAGE, whole=True), "can_finance": user.can(acc, FINANCE),
            "profiles": list(P.ORDER), "recent": directory.recent(acc)}, s=s)

    def send(s: Session, cmd: dict, what: str) -> None:
        if cfg.send_command is None:
            raise BadRequest("changes are off: this portal was started without Kafka (--no-kafka)")
        cfg.send_command(cmd)
        if cfg.followed:
            directory.note_sent(cmd)    # shown as pending until the worker's reply is followed
        else:
            directory.apply(cmd)
        log.info("event=portal_command user=%s account=%s action=%s command_id=%s", s.user, cmd["account"],
                 cmd["action"], cmd["command_id"])
        s.flash.append(f"{what}: sent to the pipeline as command {cmd['command_id']}; the worker applies it and "
                       f"this page shows the new state once it has landed.")

    def amount(text: str, what: str) -> int:
        from streams.cli.account import amount as parse_amount
        from streams.cli.main import UserError

        try:
            return parse_amount(text, what)
        except UserError as exc:
            raise BadRequest(str(exc)) from None

    @page
    async def account_credit(request: Request, s: Session, user: User) -> Response:
        acc = request.path_params["account"]
        need(user, acc, MANAGE, whole=True)
        form = await form_checked(request, s)
        from streams.cli.account import command

        credit = amount(str(form.get("credit") or ""), "credit")
        send(s, command(acc, "set_credit", credit_micros=credit), f"credit of {acc} set to {fmt_money(credit)}")
        return RedirectResponse(f"/accounts/{acc}", status_code=303)

    @page
    async def account_profile(request: Request, s: Session, user: User) -> Response:
        acc = request.path_params["account"]
        need(user, acc, MANAGE, whole=True)
        form = await form_checked(request, s)
        prof = str(form.get("profile") or "")
        if prof not in P.ORDER:
            raise BadRequest(f"unknown profile {prof!r}")
        from streams.cli.account import command

        send(s, command(acc, "set_profile", profile=prof), f"profile of {acc} set to {prof}")
        return RedirectResponse(f"/accounts/{acc}", status_code=303)

    # --- service users ----------------------------------------------------------------------

    @page
    async def users_page(request: Request, s: Session, user: User) -> Response:
        acc = request.path_params["account"]
        need(user, acc, VIEW)
        info = directory.get(acc)
        month = D.month_of(now_s(), info.timezone)
        rows = D.service_users(backend, info, month, user.visible_users(acc))
        q = request.query_params.get("q", "")
        try:
            level = int(request.query_params.get("level") or 0)
        except ValueError:
            raise BadRequest("level is 0, 1 or 2") from None
        found = D.search_users(rows, q, level)
        return render(request, "users.html", {
            "user": user, "account": acc, "info": info, "rows": found, "total": len(rows), "q": q, "level": level,
            "month": f"{month // 100:04d}-{month % 100:02d}", "can_manage": user.can(acc, MANAGE),
            "can_finance": user.can(acc, FINANCE),
            "recent": directory.recent(acc) if user.can(acc, MANAGE) else []}, s=s)

    @page
    async def users_thresholds(request: Request, s: Session, user: User) -> Response:
        acc = request.path_params["account"]
        need(user, acc, MANAGE)
        form = await form_checked(request, s)
        selected = [str(u) for u in form.getlist("user") if str(u)]
        if not selected:
            raise BadRequest("select at least one service user")
        for u in selected:
            need(user, acc, MANAGE, service_user=u)
        t1, t2 = str(form.get("first") or "").strip(), str(form.get("second") or "").strip()
        vals = [] if not t1 and not t2 else [amount(t1, "first threshold"), amount(t2, "second threshold")]
        mapping = {u: vals for u in selected}
        try:
            TH.parse_config(mapping)
        except ValueError as exc:
            raise BadRequest(str(exc)) from None
        from streams.cli.account import command

        send(s, command(acc, TH.SET_ACTION, user_thresholds=mapping),
             f"thresholds of {len(selected)} service user(s) set to "
             + (" / ".join(fmt_money(v) for v in vals) if vals else "off"))
        return RedirectResponse(f"/accounts/{acc}/users", status_code=303)

    # --- itemisation ------------------------------------------------------------------------

    def item_scope(request: Request, user: User, perm: str):
        acc = request.path_params["account"]
        su = request.query_params.get("user") or None
        # No service user named: the whole account for a whole grant, else the granted users only.
        need(user, acc, perm, su)
        info = directory.get(acc)
        first, after = period_args(request, info.timezone)
        rows = D.items(backend, info, first, after, user.visible_users(acc), su)
        return acc, su, info, first, after, rows

    @page
    async def items_page(request: Request, s: Session, user: User) -> Response:
        acc, su, info, first, after, rows = item_scope(request, user, VIEW)
        total = sum(int(r["cost_micros"]) for r in rows)
        return render(request, "items.html", {
            "user": user, "account": acc, "service_user": su, "info": info, "rows": rows, "total": total,
            "first": first, "last": after - timedelta(days=1), "can_finance": user.can(acc, FINANCE, su)}, s=s)

    @page
    async def items_csv(request: Request, s: Session, user: User) -> Response:
        acc, su, info, first, after, rows = item_scope(request, user, FINANCE)
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(CSV_COLUMNS)
        for r in rows:
            w.writerow([r["account"], r["service_user"], r["start_local"].isoformat(), info.timezone,
                        r["called_e164"], r["destination"], r["direction"], r["charged_s"], r["rate"], r["cost"],
                        cfg.currency, r["cdr_key"], r["rating_version"]])
        name = f"{acc}{'-' + su if su else ''}-{first.isoformat()}-{(after - timedelta(days=1)).isoformat()}.csv"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{safe}"'})

    # --- charts -----------------------------------------------------------------------------

    @page
    async def charts(request: Request, s: Session, user: User) -> Response:
        fin = [a for a in user.accounts() if user.can(a, FINANCE)]
        if not fin:
            raise Denied("finance on any account")
        acc = request.query_params.get("account") or fin[0]
        need(user, acc, FINANCE)
        info = directory.get(acc)
        first, after = period_args(request, info.timezone)
        visible = user.visible_users(acc)
        axis, by_user = D.daily_by_user(backend, info, first, after, visible)
        totals = {u: sum(v) for u, v in by_user.items()}
        grand = sum(totals.values())
        # The bill pie: the account's current credit period, per service user.
        v = D.account_views(backend, directory, [acc], now_s(), with_forecast=False)[0] if visible is None else None
        bill_rows = D.service_users(backend, info, D.month_of(now_s(), info.timezone), visible)
        picked = [a for a in request.query_params.getlist("bills") if a in fin] or fin
        bill_axis, bill_series = D.bills(backend, picked)
        chart_data = {
            "currency": cfg.currency,
            "share": {"labels": list(totals), "values": [format_micros(x) for x in totals.values()]},
            "bill_share": {"labels": [r.service_user for r in bill_rows],
                           "values": [format_micros(r.spend_micros) for r in bill_rows]},
            "daily": {"labels": axis, "series": {u: [format_micros(x) for x in vals] for u, vals in by_user.items()}},
            "bills": {"labels": bill_axis, "series": {a: [format_micros(x) for x in vals]
                                                      for a, vals in bill_series.items()}},
        }
        return render(request, "charts.html", {
            "user": user, "account": acc, "accounts": fin, "picked": picked, "info": info, "first": first,
            "last": after - timedelta(days=1), "totals": totals, "grand": grand, "bill_rows": bill_rows, "v": v,
            "chart_json": json.dumps(chart_data).replace("<", "\\u003c")}, s=s)

    async def healthz(request: Request) -> Response:
        return PlainTextResponse("ok")

    routes = [
        Route("/", home), Route("/healthz", healthz),
        Route("/login", login_form, methods=["GET"]), Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/accounts", accounts),
        Route("/accounts/{account}", account),
        Route("/accounts/{account}/credit", account_credit, methods=["POST"]),
        Route("/accounts/{account}/profile", account_profile, methods=["POST"]),
        Route("/accounts/{account}/users", users_page),
        Route("/accounts/{account}/users/thresholds", users_thresholds, methods=["POST"]),
        Route("/accounts/{account}/items", items_page),
        Route("/accounts/{account}/items.csv", items_csv),
        Route("/charts", charts),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.cfg = cfg
    return app
