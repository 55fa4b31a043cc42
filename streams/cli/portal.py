"""``cdrflow portal``: the corporate self-care web application and its users.

    cdrflow portal [serve] [--host 127.0.0.1] [--port 8090] [--clickhouse TARGET] [--bootstrap B] [--no-kafka]
    cdrflow portal user add NAME            (password from $CDRFLOW_PORTAL_PASSWORD or a prompt; never an argument)
    cdrflow portal user passwd NAME
    cdrflow portal user grant NAME ACCOUNT [--perm manage --perm finance] [--users 101 102]
    cdrflow portal user revoke NAME ACCOUNT
    cdrflow portal user disable|enable|remove NAME
    cdrflow portal user list [--json]
"""
from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

from streams.cli.main import UserError


def _store(args):
    from streams.portal.users import UserStore
    from streams.settings import get_settings

    return UserStore(args.users_file or get_settings().portal_users_file)


def _password(confirm: bool = True) -> str:
    pw = os.environ.get("CDRFLOW_PORTAL_PASSWORD")
    if pw:
        return pw
    if not sys.stdin.isatty():
        raise UserError("set CDRFLOW_PORTAL_PASSWORD or run in a terminal (passwords are never command arguments)")
    pw = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != pw:
        raise UserError("the passwords differ")
    return pw


def _store_call(fn, *a, **kw):
    from streams.portal.users import StoreError

    try:
        return fn(*a, **kw)
    except StoreError as exc:
        raise UserError(str(exc)) from None


def cmd_user_add(args) -> int:
    _store_call(_store(args).add, args.name, _password())
    print(f"portal user {args.name} added (no grants yet: `cdrflow portal user grant {args.name} ACCOUNT`)")
    return 0


def cmd_user_passwd(args) -> int:
    _store_call(_store(args).set_password, args.name, _password())
    print(f"password of {args.name} changed")
    return 0


def cmd_user_grant(args) -> int:
    g = _store_call(_store(args).grant, args.name, args.account, args.perm or [], args.users)
    who = "every service user" if g.users is None else "service users " + " ".join(sorted(g.users))
    print(f"{args.name} may {', '.join(sorted(g.perms))} on {args.account} ({who})")
    return 0


def cmd_user_revoke(args) -> int:
    _store_call(_store(args).revoke, args.name, args.account)
    print(f"{args.name} no longer sees {args.account}")
    return 0


def cmd_user_state(args) -> int:
    store = _store(args)
    if args.user_command == "remove":
        _store_call(store.remove, args.name)
    else:
        _store_call(store.set_disabled, args.name, args.user_command == "disable")
    print(f"portal user {args.name}: {args.user_command} done")
    return 0


def cmd_user_list(args) -> int:
    users = _store_call(_store(args).users)
    rows = [{"user": u.name, "disabled": u.disabled,
             "grants": [{"account": g.account, "perms": sorted(g.perms),
                         "users": None if g.users is None else sorted(g.users)} for g in u.grants.values()]}
            for u in users.values()]
    if args.json:
        print(json.dumps(rows))
        return 0
    for r in rows:
        grants = "; ".join(f"{g['account']} {'/'.join(g['perms'])}" + (f" users {' '.join(g['users'])}" if g["users"]
                                                                       else "") for g in r["grants"]) or "no grants"
        print(f"{r['user']}{' (disabled)' if r['disabled'] else ''}: {grants}")
    return 0


def cmd_serve(args) -> int:
    import uvicorn

    from streams.cli.clickhouse import open_target
    from streams.portal.embedded import assemble
    from streams.settings import get_settings

    settings = get_settings()
    kafka_conf = None
    if not args.no_kafka:
        from streams.cli.account import client_conf

        kafka_conf = client_conf(args.bootstrap)
    backend = open_target(args)
    try:
        portal = assemble(backend, settings, kafka_conf=kafka_conf, accounts_file=args.accounts_file,
                          users_file=args.users_file)
    except Exception:
        backend.close()
        raise
    host, port = args.host or settings.portal_host, args.port or settings.portal_port
    if not portal.store.users():
        print(f"note: no portal users in {portal.store.path}; add one with `cdrflow portal user add NAME`",
              file=sys.stderr)
    print(f"portal on http://{host}:{port}/ (ClickHouse {backend.kind}, changes "
          f"{'off' if kafka_conf is None else 'to account.control'})", flush=True)
    try:
        uvicorn.run(portal.app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        if portal.follower is not None:
            portal.follower.stop()
        backend.close()
    return 0


def register(subparsers) -> None:
    from streams.cli.clickhouse import add_target_arg

    p = subparsers.add_parser("portal", help="corporate self-care web portal and its users")
    p.add_argument("--users-file", default=None, help="user store (default: $CDRFLOW_PORTAL_USERS_FILE)")
    sub = p.add_subparsers(dest="portal_command", metavar="ACTION")

    def serve_args(sp):
        sp.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
        sp.add_argument("--port", type=int, default=None, help="default 8090")
        sp.add_argument("--bootstrap", help="Kafka bootstrap servers for changes (default: settings)")
        sp.add_argument("--no-kafka", action="store_true", help="read-only: refuse changes instead of sending them")
        sp.add_argument("--accounts-file", type=Path, default=None,
                        help="provisioning CSV/YAML (as `account load`) for time zones and thresholds")
        add_target_arg(sp)
        sp.set_defaults(func=cmd_serve)

    serve_args(p)
    serve_args(sub.add_parser("serve", help="run the portal (the default action)"))

    u = sub.add_parser("user", help="portal users and their grants")
    us = u.add_subparsers(dest="user_command", metavar="ACTION", required=True)
    for name, func, help_ in (("add", cmd_user_add, "add a user"), ("passwd", cmd_user_passwd, "change a password"),
                              ("disable", cmd_user_state, "refuse logins (grants kept)"),
                              ("enable", cmd_user_state, "allow logins again"),
                              ("remove", cmd_user_state, "delete the user")):
        sp = us.add_parser(name, help=help_)
        sp.add_argument("name")
        sp.set_defaults(func=func)
    sp = us.add_parser("grant", help="grant an account (or some of its service users)")
    sp.add_argument("name")
    sp.add_argument("account")
    sp.add_argument("--perm", action="append", choices=("view", "manage", "finance"),
                    help="view is always included; manage: thresholds/credit/profile; finance: CSV and charts")
    sp.add_argument("--users", nargs="+", default=None, metavar="SERVICE_USER",
                    help="only these service users (default: the whole account)")
    sp.set_defaults(func=cmd_user_grant)
    sp = us.add_parser("revoke", help="take an account away")
    sp.add_argument("name")
    sp.add_argument("account")
    sp.set_defaults(func=cmd_user_revoke)
    sp = us.add_parser("list", help="users and grants (never hashes)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_user_list)
