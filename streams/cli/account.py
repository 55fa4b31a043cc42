"""``cdrflow account``: provisioning and partner actions as ControlCommands, and the live state.

    cdrflow account create ACCOUNT --credit 50.00 [--period monthly|weekly] [--tz Europe/Amsterdam]
                           [--soft-pct 80] [--plan default] [--allow PREFIX ...]
                           [--max-rate-normal 0.80] [--max-rate-low 0.40]     (per customer, seed 000)
                           [--currency EUR]                         (default: the plan's currency)
                           [--user-threshold USER=T1,T2 ...]        (USER "*" = every user)
    cdrflow account set-credit|raise-credit|lower-credit ACCOUNT AMOUNT
    cdrflow account unbar ACCOUNT [--allowance AMOUNT]
    cdrflow account set-profile ACCOUNT normal|low_credit|blocked
    cdrflow account set-user-thresholds ACCOUNT USER=T1,T2 [USER= ...]   (USER= with no amounts: off)
    cdrflow account load FILE.csv|FILE.yaml           bulk provisioning (validated whole first; waits
                                                      for every reply like the single commands)
    cdrflow account show ACCOUNT [--json]             latest account.state record
    cdrflow account list [--profile P] [--over-pct N] [--period LABEL] [--json]
                                                      every account's latest state, filtered
                                                      (streams/account_api.py; also GET /accounts)

Every command takes ``--bootstrap``. Commands that change an account wait for the worker's
outcome on ``account.replies`` (``--timeout`` seconds, default 30; ``--no-wait`` to only send)
and print it: "applied" with the new state (exit 0) or "refused" with the reason (exit 1); no
reply in time is exit 2. Amounts are decimal strings ("50", "0.40"): exact micros,
at most 6 decimals, no exponents, never floats. Commands are keyed by account (murmur2), so
they reach the worker that holds the account.

CSV columns (header required):
``account,credit[,period,tz,soft_pct,plan,allow,user_thresholds,max_rate_normal,max_rate_low,currency]``
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
from streams.core import replies as R
from streams.core import thresholds as TH
from streams.core.money import format_micros, parse_money
from streams.core.periods import KINDS

_AMOUNT = re.compile(r"^\d+(\.\d+)?$")


def register(subparsers) -> None:
    p = subparsers.add_parser("account", help="provision accounts, change credit, unbar, show state")
    sub = p.add_subparsers(dest="account_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])

    def add(name: str, help_: str, func, waits: bool = True):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
        sp.add_argument("--json", action="store_true", help="print JSON instead of text")
        if waits:
            sp.add_argument("--timeout", type=float, default=30.0,
                            help="seconds to wait for the worker's reply (default 30)")
            sp.add_argument("--no-wait", action="store_true", help="send and return without waiting for the reply")
        sp.set_defaults(func=func)
        return sp

    c = add("create", "provision an account (or reconfigure an existing one)", cmd_create)
    c.add_argument("account")
    c.add_argument("--credit", required=True, help="recurring credit per period, e.g. 50.00")
    c.add_argument("--period", choices=KINDS, default="monthly")
    c.add_argument("--tz", default="UTC", help="time zone of the periods, e.g. Europe/Amsterdam")
    c.add_argument("--soft-pct", type=int, default=80, help="soft limit as %% of the credit (1..100)")
    c.add_argument("--plan", default="default", help="tariff plan")
    c.add_argument("--allow", nargs="+", default=[], metavar="PREFIX", help="always-allowed numbers, read as dialled: a code (112, 1233) or a range with +, 00 or 0 (+31800)")
    c.add_argument("--max-rate-normal", metavar="AMOUNT", help="the customer's maximum price per minute in "
                   "profile normal (default 0.80)")
    c.add_argument("--max-rate-low", metavar="AMOUNT", help="the customer's maximum price per minute in "
                   "profile low_credit (default 0.40)")
    c.add_argument("--currency", metavar="CODE", help="ISO 4217 code the account is billed in (default: its "
                   "plan's); one the plan does not price in is refused")
    c.add_argument("--user-threshold", action="append", default=[], metavar="USER=T1,T2",
                   help="monthly charge thresholds of a service user; USER '*' is the default (repeatable)")

    for name, action, what in (("set-credit", "set_credit", "set the credit to"),
                               ("raise-credit", "raise_credit", "raise the credit by"),
                               ("lower-credit", "lower_credit", "lower the credit by")):
        sp = add(name, f"{what} AMOUNT", cmd_credit)
        sp.add_argument("account")
        sp.add_argument("amount")
        sp.set_defaults(action=action)

    u = add("unbar", "lift a block until the spend grows past the spend at unbar (+ --allowance)", cmd_unbar)
    u.add_argument("account")
    u.add_argument("--allowance", default="0", metavar="AMOUNT",
                   help="extra spend allowed before the account is blocked again (default 0: the next charged call)")

    sp = add("set-profile", "force a profile (normal also lifts a block)", cmd_set_profile)
    sp.add_argument("account")
    sp.add_argument("profile", choices=list(P.ORDER))

    ut = add("set-user-thresholds", "set service-user thresholds (merged into the account's)", cmd_user_thresholds)
    ut.add_argument("account")
    ut.add_argument("thresholds", nargs="+", metavar="USER=T1,T2")

    ld = add("load", "provision accounts from a CSV or YAML file (waits for every reply)", cmd_load)
    ld.add_argument("file", type=Path)

    ls = add("list", "every account's latest state, filtered (same as GET /accounts on a worker)", cmd_list,
             waits=False)
    ls.add_argument("--profile", choices=list(P.ORDER), help="only accounts in this profile now")
    ls.add_argument("--over-pct", metavar="N", help="only accounts whose spend is at least N %% of their credit")
    ls.add_argument("--period", metavar="LABEL", help="only accounts whose current period is LABEL (2026-11)")
    ls.add_argument("--timeout", type=float, default=30.0, help="seconds to read account.state at most")

    sh = add("show", "the latest account.state record of an account", cmd_show, waits=False)
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
           "always_allowed": None, "user_thresholds": None, "max_rate_normal_micros": None,
           "max_rate_low_micros": None, "currency": None, "issued_ms": int(time.time() * 1000)}
    cmd.update(fields)
    return cmd


def provision(account: str, credit, period: str = "monthly", tz: str = "UTC", soft_pct=80, plan: str = "default",
              allow=(), user_thresholds: dict | None = None, max_rate_normal=None, max_rate_low=None,
              currency=None) -> dict:
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
    normal = None if max_rate_normal in (None, "") else amount(max_rate_normal, "maximum rate (normal)")
    low = None if max_rate_low in (None, "") else amount(max_rate_low, "maximum rate (low_credit)")
    try:
        P.validate_max_rates(normal, low)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    cur = None
    if currency not in (None, ""):
        from streams.core.currency import parse

        try:
            cur = parse(str(currency).strip().upper())
        except ValueError as exc:
            raise UserError(str(exc)) from None
    return command(account, "provision", credit_micros=amount(credit, "credit"), timezone=tz, period_kind=period,
                   soft_limit_pct=pct, tariff_plan=plan or "default", always_allowed=list(allow),
                   user_thresholds=user_thresholds, max_rate_normal_micros=normal, max_rate_low_micros=low,
                   currency=cur)


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
        elif k in ("max_rate_normal_micros", "max_rate_low_micros"):
            parts.append(f"{k.replace('_micros', '').replace('_', ' ')} {format_micros(v)}/min")
        elif k == "always_allowed":
            parts.append(f"always allowed {' '.join(v) or '-'}")
        else:
            parts.append(f"{k} {v}")
    return f"sent {cmd['action']} for {cmd['account']} to {topics.CONTROL} (command_id {cmd['command_id']})" + (
        ": " + ", ".join(parts) if parts else "")


def _publish_one(args, cmd: dict) -> int:
    conf = client_conf(args.bootstrap)
    if args.no_wait:
        send(conf, [cmd])
        print(json.dumps(cmd) if args.json else describe(cmd))
        return 0
    if args.timeout <= 0:
        raise UserError("--timeout must be positive")
    # Positioned on the reply partition before sending, so the reply cannot pass unseen.
    waiter = ReplyWaiter(conf, cmd["account"])
    try:
        send(conf, [cmd])
        reply = waiter.wait(cmd["command_id"], args.timeout)
    finally:
        waiter.close()
    if reply is None:
        raise UserError(f"sent {cmd['action']} for {cmd['account']} (command_id {cmd['command_id']}) but no "
                        f"reply on {topics.REPLIES} within {args.timeout:g} s (is the worker running?)")
    if args.json:
        print(json.dumps(reply))
    else:
        print(describe_reply(reply), file=sys.stdout if reply["outcome"] == R.APPLIED else sys.stderr)
    return 0 if reply["outcome"] == R.APPLIED else 1


def describe_reply(reply: dict) -> str:
    head = f"{reply['action']} for {reply['account']}"
    if reply["outcome"] != R.APPLIED:
        return f"refused: {head}: {reply['reason']} ({reply['detail']})"
    st = reply["state"]
    rate = st["max_rate_micros_per_min"]
    return (f"applied: {head}: profile {st['profile']}, spend {format_micros(st['spend_micros'])} / credit "
            f"{format_micros(st['credit_micros'])}{' ' + st['currency'] if st.get('currency') else ''} in {st['period']}, max rate "
            f"{'none' if rate < 0 else format_micros(rate) + '/min'}"
            + (f", {len(reply['transitions'])} transition(s)" if reply["transitions"] else ""))


class ReplyWaiter:
    """Reads ``account.replies`` on the accounts' partitions from (at most) their current end."""

    def __init__(self, conf: dict, account: str | list[str]):
        from confluent_kafka import Consumer, TopicPartition

        from streams.partitioning import partition_for

        accts = [account] if isinstance(account, str) else list(account)
        self.consumer = Consumer({**conf, "group.id": "cdrflow-account-reply", "enable.auto.commit": False})
        md = self.consumer.list_topics(topics.REPLIES, timeout=10).topics.get(topics.REPLIES)
        if md is None or md.error is not None or not md.partitions:
            self.consumer.close()
            raise UserError(f"topic {topics.REPLIES} does not exist (is the stack up? restart it to create it)")
        parts = sorted({partition_for(a, len(md.partitions)) for a in accts})
        # tansu reports a high watermark at or below the real end: reading from it only
        # re-reads a few older replies, which the command id filters out.
        assign = []
        for part in parts:
            _low, high = self.consumer.get_watermark_offsets(TopicPartition(topics.REPLIES, part), timeout=10)
            assign.append(TopicPartition(topics.REPLIES, part, max(high, 0)))
        self.consumer.assign(assign)
        self.keys = {a.encode() for a in accts}

    def wait(self, command_id: str, timeout_s: float) -> dict | None:
        got = self.wait_all({command_id}, timeout_s)
        return got.get(command_id)

    def wait_all(self, command_ids: set[str], timeout_s: float, progress=None) -> dict[str, dict]:
        """Replies by command id, until all arrived or ``timeout_s`` passed without a new one
        (then the ones seen): a big load is answered at the worker's pace, not in one window."""
        from streams import codecs

        want, got = set(command_ids), {}
        deadline = time.monotonic() + timeout_s
        while want and time.monotonic() < deadline:
            msg = self.consumer.poll(0.2)
            if msg is None or msg.error() or msg.key() not in self.keys:
                continue
            try:
                _, rec = codecs.decode(msg.value())
            except Exception:
                continue
            cid = rec.get("command_id")
            if cid in want:
                want.discard(cid)
                got[cid] = rec
                deadline = time.monotonic() + timeout_s
                if progress is not None:
                    progress(1)
        return got

    def close(self) -> None:
        self.consumer.close()


def cmd_create(args) -> int:
    return _publish_one(args, provision(args.account, args.credit, args.period, args.tz, args.soft_pct, args.plan,
                                        args.allow, _thresholds_map(args.user_threshold),
                                        args.max_rate_normal, args.max_rate_low, args.currency))


def cmd_credit(args) -> int:
    return _publish_one(args, command(args.account, args.action, credit_micros=amount(args.amount)))


def cmd_unbar(args) -> int:
    extra = amount(args.allowance, "allowance")
    return _publish_one(args, command(args.account, "unbar", credit_micros=extra or None))


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
                                  _row_thresholds(row.get("user_thresholds")),
                                  row.get("max_rate_normal"), row.get("max_rate_low"), row.get("currency")))
        except UserError as exc:
            errors.append(f"{where}: {exc}")
    if errors:
        more = f" (and {len(errors) - 20} more)" if len(errors) > 20 else ""
        raise UserError("refused whole, nothing published:\n  " + "\n  ".join(errors[:20]) + more)
    return cmds


def cmd_load(args) -> int:
    """Validated whole, sent, then (unless --no-wait) every command's reply awaited: exit 0 when
    all were applied, 1 when any was refused (each refusal printed), 2 when replies are missing
    after --timeout seconds without a new one."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    cmds = commands_from_rows(read_rows(args.file))
    if not cmds:
        raise UserError(f"{args.file}: no accounts")
    if not args.no_wait and args.timeout <= 0:
        raise UserError("--timeout must be positive")
    conf = client_conf(args.bootstrap)
    console = Console(stderr=True)
    # Positioned on the reply partitions before sending, so no reply can pass unseen.
    waiter = None if args.no_wait else ReplyWaiter(conf, [c["account"] for c in cmds])
    try:
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), console=console, disable=args.json) as progress:
            task = progress.add_task("provisioning", total=len(cmds))
            n = send(conf, cmds, progress=lambda k: progress.advance(task, k))
            if waiter is not None:
                task = progress.add_task("replies", total=len(cmds))
                replies = waiter.wait_all({c["command_id"] for c in cmds}, args.timeout,
                                          progress=lambda k: progress.advance(task, k))
    finally:
        if waiter is not None:
            waiter.close()
    if waiter is None:
        if args.json:
            print(json.dumps({"sent": n, "topic": topics.CONTROL, "accounts": [c["account"] for c in cmds]}))
        else:
            print(f"sent {n} provision commands to {topics.CONTROL}")
        return 0
    refused = [replies[c["command_id"]] for c in cmds
               if c["command_id"] in replies and replies[c["command_id"]]["outcome"] != R.APPLIED]
    missing = [c["account"] for c in cmds if c["command_id"] not in replies]
    applied = len(replies) - len(refused)
    if args.json:
        print(json.dumps({"sent": n, "applied": applied, "refused": refused, "no_reply": missing}))
    else:
        for r in refused:
            print(describe_reply(r), file=sys.stderr)
        print(f"applied {applied} of {n} provision commands" + (f", refused {len(refused)}" if refused else ""))
    if missing:
        raise UserError(f"no reply for {len(missing)} of {n} accounts within {args.timeout:g} s of the last reply "
                        f"(first: {missing[0]}; is the worker running?)")
    return 1 if refused else 0


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
                 ("currency", rec.get("currency") or "-"),
                 ("max rate / min", "none" if rate < 0 else format_micros(rate)),
                 ("always allowed", " ".join(rec["allowed_destinations"])), ("seq", str(rec["seq"])),
                 ("updated", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(rec["updated_ms"] // 1000)))):
        t.add_row(k, v)
    Console(file=sys.stdout).print(t)
    return 0


# --- list ------------------------------------------------------------------------------------

def all_states(conf: dict, timeout_s: float = 30.0, idle_s: float = 2.0) -> list[dict]:
    """Every account.state record, all partitions, in offset order per partition (the last one
    of an account is its latest: one account lives on one partition). Read to EOF or until idle,
    like :func:`latest_state`; running out of ``timeout_s`` first is an error, not a short list."""
    from streams import codecs
    from streams.topic_scan import ScanTimeout, TopicMissing, values_to_end

    out: list[dict] = []
    try:
        for value in values_to_end(conf, topics.STATE, "cdrflow-account-list", idle_s=idle_s, max_s=timeout_s):
            try:
                _, rec = codecs.decode(value)
            except Exception:
                continue
            out.append(rec)
    except TopicMissing:
        raise UserError(f"topic {topics.STATE} does not exist (is the stack up?)") from None
    except ScanTimeout as exc:
        raise UserError(f"{exc}; raise --timeout") from None
    return out


def cmd_list(args) -> int:
    from streams import account_api as A

    try:
        filters = A.Filters.parse(args.profile, args.over_pct, args.period)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    rows = [A.row(r) for r in A.select(all_states(client_conf(args.bootstrap), args.timeout), filters)]
    if args.json:
        print(json.dumps(rows))
        return 0
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(rows)} account(s)")
    for col in ("account", "period", "profile", "spend", "credit", "cur", "used %"):
        t.add_column(col, justify="right" if col in ("spend", "credit", "used %") else "left")
    for r in rows:
        t.add_row(r["account"], r["period"], r["profile"], r["spend"], r["credit"], r.get("currency") or "-",
                  r["used_pct"])
    Console(file=sys.stdout, width=120).print(t)
    return 0
