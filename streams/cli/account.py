"""``cdrflow account``: provisioning and partner actions as ControlCommands, and the live state.

    cdrflow account create ACCOUNT --credit 50.00 [--period monthly|weekly] [--tz Europe/Amsterdam]
                           [--soft-pct 80] [--plan default] [--allow PREFIX ...]
                           [--user-threshold USER=T1,T2 ...]        (USER "*" = every user)
    cdrflow account set-credit|raise-credit|lower-credit ACCOUNT AMOUNT
    cdrflow account unbar ACCOUNT
    cdrflow account set-profile ACCOUNT normal|low_credit|blocked
    cdrflow account set-user-thresholds ACCOUNT USER=T1,T2 [USER= ...]   (USER= with no amounts: off)
    cdrflow account load FILE.csv|FILE.yaml           bulk provisioning (validated whole first)
    cdrflow account show ACCOUNT [--json]             latest account.state record

Every command takes ``--bootstrap``. Amounts are decimal strings ("50", "0.40"): exact micros,
at most 6 decimals, no exponents, never floats. Commands are keyed by account (murmur2), so
they reach the worker that holds the account.

CSV columns (header required): ``account,credit[,period,tz,soft_pct,plan,allow,user_thresholds]``
with ``allow`` as space-separated prefixes and ``user_thresholds`` as ``"*=10,20;101=5,8"`` (quoted:
it contains commas).
YAML: a list of mappings with the same keys (or ``{accounts: [...]}``); ``allow`` may be a
list and ``user_thresholds`` a mapping ``{"*": ["10", "20"]}``. Quote amounts in YAML.
"""
from __future__ import annotations

import csv
import json
import re
import sys
import time
import uuid
from pathlib import Path

from streams import topics
from streams.cli.main import UserError
from streams.core import profiles as P
from streams.core import thresholds as TH
from streams.core.money import format_micros, parse_money
from streams.core.periods import KINDS

_AMOUNT = re.compile(r"^\d+(\.\d+)?$")


def register(subparsers) -> None:
    p = subparsers.add_parser("account", help="provision accounts, change credit, unbar, show state")
    sub = p.add_subparsers(dest="account_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    def add(name: str, help_: str, func):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
        sp.add_argument("--json", action="store_true", help="print JSON instead of text")
        sp.set_defaults(func=func)
        return sp

    c = add("create", "provision an account (or reconfigure an existing one)", cmd_create)
    c.add_argument("account")
    c.add_argument("--credit", required=True, help="recurring credit per period, e.g. 50.00")
    c.add_argument("--period", choices=KINDS, default="monthly")
    c.add_argument("--tz", default="UTC", help="time zone of the periods, e.g. Europe/Amsterdam")
    c.add_argument("--soft-pct", type=int, default=80, help="soft limit as %% of the credit (1..100)")
    c.add_argument("--plan", default="default", help="tariff plan")
    c.add_argument("--allow", nargs="+", default=[], metavar="PREFIX", help="always-allowed destination prefixes")
    c.add_argument("--user-threshold", action="append", default=[], metavar="USER=T1,T2",
                   help="monthly charge thresholds of a service user; USER '*' is the default (repeatable)")

    for name, action, what in (("set-credit", "set_credit", "set the credit to"),
                               ("raise-credit", "raise_credit", "raise the credit by"),
                               ("lower-credit", "lower_credit", "lower the credit by")):
        sp = add(name, f"{what} AMOUNT", cmd_credit)
        sp.add_argument("account")
        sp.add_argument("amount")
        sp.set_defaults(action=action)

    u = add("unbar", "lift a block until the next limit (the partner's manual unbar)", cmd_unbar)
    u.add_argument("account")

    sp = add("set-profile", "force a profile (normal also lifts a block)", cmd_set_profile)
    sp.add_argument("account")
    sp.add_argument("profile", choices=list(P.ORDER))

    ut = add("set-user-thresholds", "set service-user thresholds (merged into the account's)", cmd_user_thresholds)
    ut.add_argument("account")
    ut.add_argument("thresholds", nargs="+", metavar="USER=T1,T2")

    ld = add("load", "provision accounts from a CSV or YAML file", cmd_load)
    ld.add_argument("file", type=Path)

    sh = add("show", "the latest account.state record of an account", cmd_show)
    sh.add_argument("account")
    sh.add_argument("--timeout", type=float, default=15.0, help="seconds to read account.state at most")


# --- parsing ---------------------------------------------------------------------------------

def amount(text, what: str = "amount") -> int:
    """Decimal text -> exact micros. Floats, exponents, negatives, >6 decimals are refused."""
    if isinstance(text, float):
        raise UserError(f"{what} {text!r} is a float; write it as a quoted decimal string, e.g. \"50.00\"")
    s = str(text).strip()
    if not _AMOUNT.match(s):
        raise UserError(f"{what} {s!r} is not a decimal amount like 50 or 0.40")
    try:
        return parse_money(s)
    except ValueError as exc:
        raise UserError(f"{what} {s!r}: {exc} (amounts are exact to the micro, 0.000001)") from None


def user_threshold(spec: str) -> tuple[str, list[int]]:
    """``USER=T1,T2`` -> (user, [t1, t2]); ``USER=`` -> (user, []) which switches them off."""
    user, sep, vals = spec.partition("=")
    user = user.strip()
    if not sep or not user:
        raise UserError(f"user threshold {spec!r}: expected USER=T1,T2 (USER '*' for every user)")
    parts = [v for v in (x.strip() for x in vals.split(",")) if v]
    if parts and len(parts) != 2:
        raise UserError(f"user threshold {spec!r}: give two amounts, first and second")
    micros = [amount(v, f"user threshold of {user}") for v in parts]
    try:
        TH.parse_config({user: micros})
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return user, micros


def _thresholds_map(specs) -> dict[str, list[int]] | None:
    if not specs:
        return None
    out: dict[str, list[int]] = {}
    for s in specs:
        user, vals = user_threshold(s)
        out[user] = vals
    return out


def command(account: str, action: str, **fields) -> dict:
    if not account or not account.strip():
        raise UserError("account must not be empty")
    cmd = {"command_id": str(uuid.uuid4()), "account": account, "action": action, "credit_micros": None,
           "profile": None, "timezone": None, "period_kind": None, "soft_limit_pct": None, "tariff_plan": None,
           "always_allowed": None, "user_thresholds": None, "issued_ms": int(time.time() * 1000)}
    cmd.update(fields)
    return cmd


def provision(account: str, credit, period: str = "monthly", tz: str = "UTC", soft_pct=80, plan: str = "default",
              allow=(), user_thresholds: dict | None = None) -> dict:
    from streams.core.periods import zone

    if period not in KINDS:
        raise UserError(f"period must be one of {', '.join(KINDS)}, not {period!r}")
    try:
        zone(tz)
    except Exception:
        raise UserError(f"unknown time zone {tz!r}") from None
    try:
        pct = int(str(soft_pct))
    except ValueError:
        raise UserError(f"soft limit {soft_pct!r} is not a whole percentage") from None
    if not 0 < pct <= 100:
        raise UserError(f"soft limit must be 1..100 %, not {pct}")
    bad = [a for a in allow if not re.fullmatch(r"\+?\d+", a)]
    if bad:
        raise UserError(f"always-allowed prefixes are digits, not {', '.join(bad)}")
    return command(account, "provision", credit_micros=amount(credit, "credit"), timezone=tz, period_kind=period,
                   soft_limit_pct=pct, tariff_plan=plan or "default", always_allowed=[a.lstrip("+") for a in allow],
                   user_thresholds=user_thresholds)


# --- publishing ------------------------------------------------------------------------------

def client_conf(bootstrap: str | None) -> dict:
    from streams.settings import get_settings

    conf = get_settings().kafka_client_config()
    if bootstrap:
        conf["bootstrap.servers"] = bootstrap
    return conf


def send(conf: dict, cmds: list[dict], progress=None, timeout_s: float = 30.0) -> int:
    from streams.publisher import Publisher

    pub = Publisher(conf)
    n = 0
    for cmd in cmds:
        n += pub.commands([cmd])
        pub.producer.poll(0)
        if progress is not None:
            progress(1)
    try:
        pub.flush(timeout_s)
    except (TimeoutError, RuntimeError) as exc:
        raise UserError(f"{exc} (bootstrap {conf.get('bootstrap.servers')})") from None
    return n


def describe(cmd: dict) -> str:
    parts = []
    for k, v in cmd.items():
        if v is None or k in ("command_id", "account", "action", "issued_ms"):
            continue
        if k == "credit_micros":
            parts.append(f"credit {format_micros(v)}")
        elif k == "user_thresholds":
            parts.append("user thresholds " + "; ".join(
                f"{u}={','.join(format_micros(x) for x in t) or 'off'}" for u, t in v.items()))
        elif k == "always_allowed":
            parts.append(f"always allowed {' '.join(v) or '-'}")
        else:
            parts.append(f"{k} {v}")
    return f"sent {cmd['action']} for {cmd['account']} to {topics.CONTROL} (command_id {cmd['command_id']})" + (
        ": " + ", ".join(parts) if parts else "")


def _publish_one(args, cmd: dict) -> int:
    send(client_conf(args.bootstrap), [cmd])
    print(json.dumps(cmd) if args.json else describe(cmd))
    return 0


def cmd_create(args) -> int:
    return _publish_one(args, provision(args.account, args.credit, args.period, args.tz, args.soft_pct, args.plan,
                                        args.allow, _thresholds_map(args.user_threshold)))


def cmd_credit(args) -> int:
    return _publish_one(args, command(args.account, args.action, credit_micros=amount(args.amount)))


def cmd_unbar(args) -> int:
    return _publish_one(args, command(args.account, "unbar"))


def cmd_set_profile(args) -> int:
    return _publish_one(args, command(args.account, "set_profile", profile=args.profile))


def cmd_user_thresholds(args) -> int:
    return _publish_one(args, command(args.account, TH.SET_ACTION, user_thresholds=_thresholds_map(args.thresholds)))


# --- bulk load -------------------------------------------------------------------------------

def _row_thresholds(value) -> dict | None:
    if value in (None, ""):
        return None
    if isinstance(value, dict):
        specs = [f"{u}={','.join(str(x) if not isinstance(x, float) else _float(x) for x in (v or []))}"
                 for u, v in value.items()]
    else:
        specs = [s for s in str(value).split(";") if s.strip()]
    return _thresholds_map(specs)


def _float(x: float) -> str:
    raise UserError(f"amount {x!r} is a float; quote amounts in YAML, e.g. \"50.00\"")


def read_rows(path: Path) -> list[dict]:
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or "account" not in reader.fieldnames or "credit" not in reader.fieldnames:
                raise UserError(f"{path}: the CSV needs a header with at least account,credit")
            return [{"_where": f"{path.name}:{i}", **row} for i, row in enumerate(reader, 2)]
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError as exc:
            raise UserError(f"{path}: not valid YAML: {exc}") from None
        if isinstance(data, dict):
            data = data.get("accounts")
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise UserError(f"{path}: expected a list of accounts (or accounts: [...])")
        return [{"_where": f"{path.name}: account #{i}", **row} for i, row in enumerate(data, 1)]
    raise UserError(f"{path}: use a .csv or .yaml file")


def commands_from_rows(rows: list[dict]) -> list[dict]:
    """Validate every row first, so a bad file publishes nothing. Errors name the row."""
    cmds, errors, seen = [], [], set()
    for row in rows:
        where = row.get("_where", "?")
        try:
            acct = str(row.get("account") or "").strip()
            if not acct:
                raise UserError("account is missing")
            if acct in seen:
                raise UserError(f"account {acct} appears twice")
            seen.add(acct)
            if row.get("credit") in (None, ""):
                raise UserError("credit is missing")
            allow = row.get("allow") or []
            if isinstance(allow, str):
                allow = allow.replace(",", " ").split()
            cmds.append(provision(acct, row["credit"], str(row.get("period") or "monthly"),
                                  str(row.get("tz") or row.get("timezone") or "UTC"), row.get("soft_pct") or 80,
                                  str(row.get("plan") or "default"), [str(a) for a in allow],
                                  _row_thresholds(row.get("user_thresholds"))))
        except UserError as exc:
            errors.append(f"{where}: {exc}")
    if errors:
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        raise UserError("refused whole, nothing published:\n  " + "\n  ".join(errors[:20]) + more)
    return cmds


def cmd_load(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cmds = commands_from_rows(read_rows(args.file))
    if not cmds:
        raise UserError(f"{args.file}: no accounts")
    console = Console(stderr=True)
    with Progress(TextColumn("[bold]provisioning"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, disable=args.json) as progress:
        task = progress.add_task("load", total=len(cmds))
        n = send(client_conf(args.bootstrap), cmds, progress=lambda k: progress.advance(task, k))
    if args.json:
        print(json.dumps({"sent": n, "topic": topics.CONTROL, "accounts": [c["account"] for c in cmds]}))
    else:
        print(f"sent {n} provision commands to {topics.CONTROL}")
    return 0


# --- show ------------------------------------------------------------------------------------

def latest_state(conf: dict, account: str, timeout_s: float = 15.0, idle_s: float = 2.0) -> dict | None:
    """The last account.state record of ``account``: only the partition that owns the key,
    from the beginning (tansu does not compact, and its high watermark is unreliable, so read
    to EOF or until idle; the last record wins)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    from streams import codecs
    from streams.partitioning import partition_for

    consumer = Consumer({**conf, "group.id": "cdrflow-account-show", "enable.auto.commit": False,
                         "enable.partition.eof": True})
    try:
        md = consumer.list_topics(topics.STATE, timeout=10).topics.get(topics.STATE)
        if md is None or md.error is not None or not md.partitions:
            raise UserError(f"topic {topics.STATE} does not exist (is the stack up?)")
        part = partition_for(account, len(md.partitions))
        consumer.assign([TopicPartition(topics.STATE, part, OFFSET_BEGINNING)])
        key = account.encode()
        found = None
        start = last = time.monotonic()
        while time.monotonic() - start < timeout_s and time.monotonic() - last < idle_s:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    break
                continue
            last = time.monotonic()
            if msg.key() != key:
                continue
            try:
                _, rec = codecs.decode(msg.value())
            except Exception:
                continue
            found = rec
        return found
    finally:
        consumer.close()


def cmd_show(args) -> int:
    rec = latest_state(client_conf(args.bootstrap), args.account, args.timeout)
    if rec is None:
        raise UserError(f"no {topics.STATE} record for {args.account} (provisioned? is the worker running?)")
    if args.json:
        print(json.dumps(rec))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"account {args.account}", show_header=False)
    t.add_column("field", style="bold")
    t.add_column("value")
    rate = rec["max_rate_micros_per_min"]
    for k, v in (("period", rec["period"]), ("profile", rec["profile"]),
                 ("spend", format_micros(rec["spend_micros"])), ("credit", format_micros(rec["credit_micros"])),
                 ("soft limit", format_micros(rec["soft_limit_micros"])),
                 ("max rate / min", "none" if rate < 0 else format_micros(rate)),
                 ("always allowed", " ".join(rec["allowed_destinations"])), ("seq", str(rec["seq"])),
                 ("updated", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(rec["updated_ms"] // 1000)))):
        t.add_row(k, v)
    Console(file=sys.stdout).print(t)
    return 0
