"""Rerating landed CDRs: read the latest ``cdr_rated`` rows, price them again with the pure core,
and write new rows with a higher ``rating_version`` (or adjustment rows for closed periods).

Pure parts (tested in tests/unit/test_rerate_pure.py): rebuilding a canonical CDR from a landed
row, pricing it, the replacement and adjustment rows, the money deltas and the ``adjust_spend``
commands. The I/O parts (``load_rows``, ``write_rows``, ``run``) talk to ClickHouse through the
sink's backend and its columnar insert path (``to_columns`` + ``insert_columns``).

Concurrency: chdb allows one process per data path, so on a chdb target the sink must be
stopped while rerating (opening the backend fails with a clear message otherwise). A
``clickhouse://`` server can be rerated while the sink runs: a redelivered original row carries
``rating_version`` 1 and loses to the rerated one in FINAL/argMax.

Rules (see sinks/clickhouse/periods.py for the period model):

* a CDR in an open period (or after the instant of a partial close) is *replaced*: same sorting
  key, ``rating_version`` + 1, so ``FINAL`` and argMax readers see only the new price;
* a CDR in a closed period (or before a partial close's instant) is *locked*: rerating refuses
  unless the period is reopened (``cdrflow periods reopen``) or ``adjust=True``, which leaves the
  locked row untouched and writes ``<cdr_key>#adj@<open period>`` with the money difference;
* touching a period that was closed before and has been reopened needs ``reopened=True``, an
  explicit confirmation that an already invoiced period is being rewritten;
* each (account, open period) whose spend changed gets one ``adjust_spend`` command with the
  signed delta, so the account agent corrects spend and barring.

Money stays integer micro-units throughout; the CLI prints Decimal.

Rows landed since migration 10 carry ``partial_seq`` and ``answer_ms``, so a partial is priced
again as its slice of the call (streams/core/partials.py). On older rows ``answer_ms`` is
approximated as ``end_ms - billsec_s*1000`` for answered calls (exact for switches whose billsec
is end − answer, as the simulator's) and ``partial_seq`` reads 0. Tariff conditions on ``stage``,
``operator_location`` and ``operator_dedicated`` see those fields as absent.
"""
from __future__ import annotations

import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import TYPE_CHECKING, Any, Callable, Iterable

from streams.core.charge import rated_record
from streams.core.periods import period_bounds, period_of
from streams.core.reasons import RejectError
from streams.core.tariff import TariffBook
from streams.core.tariff.model import Plan

if TYPE_CHECKING:
    from sinks.clickhouse.backend import Backend

ADJ_SEP = "#adj@"
ADJ_DISPOSITION = "ADJUSTMENT"

# cdr_rated columns read back, as the Avro field names rated_record uses. Money is read as the
# *_micros Int64 columns (never the Decimal ones) and times as epoch milliseconds.
ROW_FIELDS = (
    "cdr_key", "account", "service_user", "period", "switch_id", "call_id", "leg", "correlation_id",
    "direction", "caller_e164", "presented_cli", "called_e164", "called_type", "trunk", "destination",
    "prefix", "start_ms", "end_ms", "duration_s", "billsec_s", "answered", "disposition", "service",
    "charged_s", "rate_micros", "rate_unit_s", "connect_fee_micros", "cost_nanos", "cost_micros",
    "tariff_plan", "tariff_version", "rating_version", "rated_at_ms", "ingest_ms", "source_partition",
    "source_offset", "partial_seq", "answer_ms",
)
TIME_FIELDS = {"start_ms": "start_time", "end_ms": "end_time"}
INT_FIELDS = {"duration_s", "billsec_s", "charged_s", "rate_micros", "rate_unit_s", "connect_fee_micros",
              "cost_nanos", "cost_micros", "rating_version", "rated_at_ms", "ingest_ms",
              "source_partition", "source_offset", "start_ms", "end_ms", "partial_seq"}
# What a rerating can change; a row whose values are all equal is not rewritten.
PRICED_FIELDS = ("destination", "prefix", "charged_s", "rate_micros", "rate_unit_s", "connect_fee_micros",
                 "cost_nanos", "cost_micros", "tariff_plan", "tariff_version")


class RerateRefused(Exception):
    """The range touches locked (closed) periods and neither reopen nor --adjust allows it."""


# ------------------------------------------------------------------------------ pure helpers

def canonical_from_row(rec: dict) -> dict:
    """A canonical-CDR-shaped dict from a landed ``cdr_rated`` record, for ``TariffBook.rate``."""
    answered = bool(rec["answered"])
    billsec = int(rec["billsec_s"])
    answer_ms = rec["end_ms"] - billsec * 1000 if answered and billsec > 0 else None
    if rec.get("answer_ms") is not None:
        answer_ms = int(rec["answer_ms"])   # landed since migration 10; a partial's is the call's answer
    partial_seq = int(rec.get("partial_seq") or 0)
    return {
        "cdr_key": rec["cdr_key"], "switch_id": rec["switch_id"], "call_id": rec["call_id"], "leg": rec["leg"],
        "partial_seq": partial_seq, "partial_final": True, "correlation_id": rec["correlation_id"],
        "account": rec["account"], "service_user": rec["service_user"], "direction": rec["direction"],
        "caller_e164": rec["caller_e164"], "presented_cli": rec["presented_cli"],
        "called_e164": rec["called_e164"], "called_type": rec["called_type"], "trunk": rec["trunk"],
        "start_ms": int(rec["start_ms"]), "answer_ms": answer_ms, "end_ms": int(rec["end_ms"]),
        "duration_s": int(rec["duration_s"]), "billsec_s": billsec, "answered": answered,
        "disposition": rec["disposition"], "service": rec["service"] or "voice",
        "source_topic": "", "source_partition": int(rec["source_partition"]),
        "source_offset": int(rec["source_offset"]), "source_index": 0, "ingest_ms": int(rec["ingest_ms"]),
        "raw": b"",
    }


def pin_version(book: TariffBook, plan: str, version: str) -> TariffBook:
    """A book in which ``plan`` has only ``version``, in force at every instant."""
    p = book.plan(plan)
    for v in p.versions:
        if v.version == version:
            return book.with_plans({plan: Plan(p.name, p.timezone, [v], [-(1 << 62)])})
    raise ValueError(f"plan {plan!r} has no version {version!r} (has {', '.join(book.versions(plan))})")


def rerated(rec: dict, rate: Callable[[dict, str], Any], now_ms: int) -> dict:
    """The replacement row: priced again, same period and key, rating_version + 1."""
    cdr = canonical_from_row(rec)
    r = rate(cdr, rec["tariff_plan"])
    new = rated_record(cdr, r, rec["period"], now_ms)
    new["rating_version"] = int(rec["rating_version"]) + 1
    return new


def priced_equal(a: dict, b: dict) -> bool:
    return all(a[f] == b[f] for f in PRICED_FIELDS)


def adjustment_key(cdr_key: str, adj_period: str) -> str:
    return f"{cdr_key}{ADJ_SEP}{adj_period}"


def adjustment_of(key: str) -> str | None:
    return key.split(ADJ_SEP, 1)[0] if ADJ_SEP in key else None


def adjustment_row(orig: dict, new: dict, *, other_adjustments_micros: int, adj_period: str,
                   adj_start_ms: int, rating_version: int, now_ms: int) -> dict:
    """The adjustment that makes the billed total of ``orig`` equal ``new``'s cost.

    billed(orig) = orig.cost + every adjustment of it; this row (one per adjustment period, so a
    second run in the same period replaces it) holds new.cost − orig.cost − the other periods'.
    """
    row = dict(new)
    row.update({
        "cdr_key": adjustment_key(orig["cdr_key"], adj_period), "period": adj_period,
        "start_ms": adj_start_ms, "end_ms": adj_start_ms, "duration_s": 0, "billsec_s": 0,
        "answered": False, "disposition": ADJ_DISPOSITION,
        "charged_s": int(new["charged_s"]) - int(orig["charged_s"]),
        "cost_nanos": int(new["cost_nanos"]) - int(orig["cost_nanos"]),
        "cost_micros": int(new["cost_micros"]) - int(orig["cost_micros"]) - other_adjustments_micros,
        "rating_version": rating_version, "rated_at_ms": now_ms,
    })
    return row


def period_kind_of(label: str) -> str:
    return "weekly" if "-W" in label else "monthly"


def spend_commands(deltas: dict[tuple[str, str], int], now_ms: int, run_id: str) -> list[dict]:
    """One ``adjust_spend`` ControlCommand per (account, period) with a non-zero delta."""
    out = []
    for (account, period), delta in sorted(deltas.items()):
        if delta == 0:
            continue
        out.append({
            "command_id": f"rerate:{run_id}:{account}:{period}", "account": account, "action": "adjust_spend",
            "credit_micros": None, "profile": None, "timezone": None, "period_kind": None,
            "soft_limit_pct": None, "tariff_plan": None, "always_allowed": None, "issued_ms": now_ms,
            "user_thresholds": None, "period": period, "delta_micros": int(delta),
        })
    return out


@dataclass
class RerateResult:
    examined: int = 0
    unchanged: int = 0
    replaced: list[dict] = field(default_factory=list)
    adjustments: list[dict] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)       # (cdr_key, reason)
    deltas: dict[tuple[str, str], int] = field(default_factory=dict)  # (account, period) -> micros
    commands: list[dict] = field(default_factory=list)

    @property
    def delta_micros(self) -> int:
        return sum(self.deltas.values())

    @property
    def rows(self) -> list[dict]:
        return self.replaced + self.adjustments


def plan_rerate(rows: list[dict], prior_adjustments: list[dict], rate: Callable[[dict, str], Any], *,
                decision_of: Callable[[str, str], Any], ever_closed: Callable[[str, str], bool],
                adjust: bool = False, reopened: bool = False, adj_period_of: Callable[[dict], str] | None = None,
                adj_start_of: Callable[[str, str], int] | None = None, now_ms: int | None = None,
                run_id: str | None = None, progress: Callable[[int], None] | None = None) -> RerateResult:
    """Decide every row's fate; no I/O. Raises RerateRefused before anything is written.

    ``decision_of(account, period)`` gives the effective period decision (or None = open).
    """
    from sinks.clickhouse import periods as P

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    run_id = run_id or uuid.uuid4().hex[:12]
    locked: dict[tuple[str, str], str] = {}
    confirm: set[tuple[str, str]] = set()
    for rec in rows:
        d = decision_of(rec["account"], rec["period"])
        if P.is_locked(d, rec["start_ms"]):
            locked[(rec["account"], rec["period"])] = d.status
        elif (not reopened and d is not None and d.status == P.OPEN
              and ever_closed(rec["account"], rec["period"])):
            confirm.add((rec["account"], rec["period"]))
    if locked and not adjust:
        listed = ", ".join(f"{a} {p} ({s})" for (a, p), s in sorted(locked.items())[:10])
        more = f" and {len(locked) - 10} more" if len(locked) > 10 else ""
        raise RerateRefused(
            f"the range touches closed financial periods: {listed}{more}. Reopen them first "
            f"(cdrflow periods reopen --period P [--account A]) and rerate with --reopened, or rerate "
            f"with --adjust to leave the closed rows untouched and post adjustments in the open period")
    if confirm:
        listed = ", ".join(f"{a} {p}" for a, p in sorted(confirm)[:10])
        raise RerateRefused(
            f"these periods were closed before and have been reopened: {listed}; pass --reopened to "
            f"confirm rewriting an already closed period (or --adjust to post adjustments instead)")

    adj_by_orig: dict[str, dict[str, int]] = defaultdict(dict)   # orig key -> adj period -> micros
    adj_rows: dict[str, dict] = {}
    for a in prior_adjustments:
        orig = adjustment_of(a["cdr_key"])
        if orig is not None:
            adj_by_orig[orig][a["period"]] = int(a["cost_micros"])
            adj_rows[a["cdr_key"]] = a
    res = RerateResult()
    deltas: dict[tuple[str, str], int] = defaultdict(int)
    for i, rec in enumerate(rows):
        res.examined += 1
        if progress is not None:
            progress(i + 1)
        try:
            new = rerated(rec, rate, now_ms)
        except RejectError as exc:
            res.failed.append((rec["cdr_key"], f"{exc.reason.value}: {exc.detail}"))
            continue
        d = decision_of(rec["account"], rec["period"])
        if not P.is_locked(d, rec["start_ms"]):
            prior = {p: c for p, c in adj_by_orig.get(rec["cdr_key"], {}).items() if c}
            if priced_equal(rec, new) and not prior:
                res.unchanged += 1
                continue
            if not priced_equal(rec, new):
                res.replaced.append(new)
                deltas[(rec["account"], rec["period"])] += int(new["cost_micros"]) - int(rec["cost_micros"])
            if prior:
                _settle_adjustments(rec, prior, adj_rows, res, deltas, decision_of=decision_of,
                                    adj_period_of=adj_period_of, adj_start_of=adj_start_of, now_ms=now_ms)
            continue
        # Locked and adjust=True: the landed row stays; post the difference in the open period.
        adj_period = adj_period_of(rec)
        if P.is_locked(decision_of(rec["account"], adj_period), adj_start_of(rec["account"], adj_period)):
            raise RerateRefused(f"the adjustment period {adj_period} of account {rec['account']} is closed "
                                f"too; choose an open one with --adjust-period")
        others = sum(v for p, v in adj_by_orig[rec["cdr_key"]].items() if p != adj_period)
        existing = adj_rows.get(adjustment_key(rec["cdr_key"], adj_period))
        row = adjustment_row(rec, new, other_adjustments_micros=others, adj_period=adj_period,
                             adj_start_ms=adj_start_of(rec["account"], adj_period),
                             rating_version=(int(existing["rating_version"]) + 1) if existing else 1,
                             now_ms=now_ms)
        before = int(existing["cost_micros"]) if existing else 0
        if row["cost_micros"] == before and (existing is not None or row["cost_micros"] == 0):
            res.unchanged += 1
            continue
        res.adjustments.append(row)
        deltas[(rec["account"], adj_period)] += row["cost_micros"] - before
    res.deltas = {k: v for k, v in deltas.items() if v}
    res.commands = spend_commands(res.deltas, now_ms, run_id)
    return res


def _settle_adjustments(rec: dict, prior: dict[str, int], adj_rows: dict[str, dict], res: RerateResult,
                        deltas: dict, *, decision_of, adj_period_of, adj_start_of, now_ms: int) -> None:
    """The call's own row now carries its latest price, so the adjustments an earlier ``--adjust``
    posted for it would count a second time (issue 10 hole 8: reopen + rerate after an adjust
    refunded twice). Each one in an open period is set to zero; one in a locked period stays as
    billed and is offset by the call's adjustment row in the current adjustment period."""
    from sinks.clickhouse import periods as P

    acct, key = rec["account"], rec["cdr_key"]
    locked = {p: c for p, c in prior.items()
              if P.is_locked(decision_of(acct, p), int(adj_rows[adjustment_key(key, p)]["start_ms"]))}
    target = {p: 0 for p in prior if p not in locked}
    if locked:
        if adj_period_of is None or adj_start_of is None:
            raise RerateRefused(f"{key}: adjustments in closed periods ({', '.join(sorted(locked))}) need an "
                                f"open adjustment period to be offset in")
        adj_p = adj_period_of(rec)
        if adj_p in locked or P.is_locked(decision_of(acct, adj_p), adj_start_of(acct, adj_p)):
            raise RerateRefused(f"the adjustment period {adj_p} of account {acct} is closed too; choose an open "
                                f"one with --adjust-period")
        target[adj_p] = -sum(locked.values())
    template = adj_rows[adjustment_key(key, next(iter(prior)))]
    for p, want in sorted(target.items()):
        akey = adjustment_key(key, p)
        existing = adj_rows.get(akey)
        have = int(existing["cost_micros"]) if existing else 0
        if existing is not None and have == want:
            continue
        if existing is None and want == 0:
            continue
        row = dict(existing or template)
        nanos = 0 if want == 0 else -sum(int(adj_rows[adjustment_key(key, q)]["cost_nanos"]) for q in locked)
        row.update({"cdr_key": akey, "period": p, "cost_micros": want, "cost_nanos": nanos, "charged_s": 0,
                    "rating_version": int(existing["rating_version"]) + 1 if existing else 1, "rated_at_ms": now_ms})
        if existing is None:
            row["start_ms"] = row["end_ms"] = adj_start_of(acct, p)
        res.adjustments.append(row)
        deltas[(acct, p)] += want - have


# ------------------------------------------------------------------------------ ClickHouse I/O

def _time_expr(col: str, version) -> str:
    from sinks.clickhouse import ddl

    if tuple(version) >= ddl.DATETIME64:
        return f"toInt64(toUnixTimestamp64Milli({col}))"
    return f"toInt64(toUInt32({col})) * 1000"


def _lit(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def select_sql(db: str, version, *, accounts: Iterable[str] | None, from_ms: int | None, to_ms: int | None,
               adjustments: bool) -> str:
    """Latest row per key (FINAL) of the range, originals or adjustment rows."""
    from sinks.clickhouse.ddl import table_ref

    cols = []
    for f in ROW_FIELDS:
        if f in TIME_FIELDS:
            cols.append(_time_expr(TIME_FIELDS[f], version))
        elif f == "answered":
            cols.append("toUInt8(answered)")
        else:
            cols.append(f)
    conds = [f"disposition {'=' if adjustments else '!='} {_lit(ADJ_DISPOSITION)}"]
    if accounts is not None:
        conds.append(f"account IN ({', '.join(_lit(a) for a in accounts)})")
    # Second-granular bounds in SQL (18.16 has only DateTime); exact ms bounds applied in Python.
    if from_ms is not None:
        conds.append(f"start_time >= toDateTime({from_ms // 1000}, 'UTC')")
    if to_ms is not None:
        conds.append(f"start_time <= toDateTime({-(-to_ms // 1000)}, 'UTC')")
    return (f"SELECT {', '.join(cols)} FROM {table_ref(db, 'cdr_rated')} FINAL WHERE {' AND '.join(conds)} "
            f"ORDER BY account, start_time, cdr_key")


def _record(values: tuple) -> dict:
    rec = dict(zip(ROW_FIELDS, values))
    for f in INT_FIELDS:
        rec[f] = int(rec[f])
    rec["answered"] = bool(rec["answered"])
    rec["answer_ms"] = None if rec["answer_ms"] is None else int(rec["answer_ms"])
    return rec


def load_rows(backend: "Backend", *, accounts: list[str] | None, from_ms: int, to_ms: int) -> tuple[list[dict], list[dict]]:
    """(originals in [from, to), every adjustment row of the same accounts)."""
    v = backend.version()
    db = backend.database
    rows = [_record(r) for r in backend.query(select_sql(db, v, accounts=accounts, from_ms=from_ms,
                                                         to_ms=to_ms, adjustments=False))]
    rows = [r for r in rows if from_ms <= r["start_ms"] < to_ms]
    accts = accounts if accounts is not None else sorted({r["account"] for r in rows})
    adjs = [_record(r) for r in backend.query(select_sql(db, v, accounts=accts, from_ms=None, to_ms=None,
                                                         adjustments=True))] if accts else []
    return rows, adjs


def insert_token(rows: list[dict]) -> str:
    h = blake2b(digest_size=12)
    for k in sorted(f"{r['cdr_key']}|{r['rating_version']}|{r['cost_micros']}" for r in rows):
        h.update(k.encode())
        h.update(b"\x1f")
    return f"rerate|{h.hexdigest()}"


def write_rows(backend: "Backend", rows: list[dict], chunk: int = 5_000,
               progress: Callable[[int], None] | None = None) -> int:
    """The sink's columnar insert path: to_columns + insert_columns, with a dedup token."""
    from sinks.clickhouse import ddl
    from sinks.clickhouse.columns import to_columns

    version = backend.version()
    done = 0
    for i in range(0, len(rows), chunk):
        part = rows[i:i + chunk]
        names, cols = to_columns("cdr_rated", part)
        backend.insert_columns(f"{backend.database}.cdr_rated", names, cols,
                               settings=ddl.insert_settings(version, insert_token(part)))
        done += len(part)
        if progress is not None:
            progress(done)
    return done


def run(backend: "Backend", book: TariffBook, *, accounts: list[str] | None, from_ms: int, to_ms: int,
        tariff_version: str | None = None, adjust: bool = False, reopened: bool = False,
        adjust_period: str | None = None, timezone_name: str | None = None, dry_run: bool = False,
        now_ms: int | None = None, run_id: str | None = None, progress=None) -> RerateResult:
    """Load, plan and write a rerating. Commands are returned, not published (the caller does)."""
    from sinks.clickhouse import periods as P

    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    rows, adjs = load_rows(backend, accounts=accounts, from_ms=from_ms, to_ms=to_ms)
    decisions = P.current(backend)
    log = P.history(backend)

    books: dict[str, TariffBook] = {}

    def rate(cdr: dict, plan: str):
        if tariff_version is None:
            return book.rate(cdr, plan=plan)
        if plan not in books:
            books[plan] = pin_version(book, plan, tariff_version)
        return books[plan].rate(cdr, plan=plan)

    def tz_of(plan: str) -> str:
        if timezone_name:
            return timezone_name
        try:
            return book.timezone(plan)
        except RejectError:
            return "UTC"

    plan_tz = {r["account"]: tz_of(r["tariff_plan"]) for r in rows}

    def adj_period_of(rec: dict) -> str:
        return adjust_period or period_of(now_ms, plan_tz[rec["account"]], period_kind_of(rec["period"]))

    def adj_start_of(account: str, label: str) -> int:
        return period_bounds(label, plan_tz.get(account, "UTC"))[0]

    task = progress("rate", len(rows)) if progress else None
    result = plan_rerate(
        rows, adjs, rate, decision_of=lambda a, p: P.effective(decisions, a, p),
        ever_closed=lambda a, p: P.was_ever_closed(log, a, p), adjust=adjust, reopened=reopened,
        adj_period_of=adj_period_of, adj_start_of=adj_start_of, now_ms=now_ms, run_id=run_id, progress=task)
    if not dry_run and result.rows:
        wtask = progress("write", len(result.rows)) if progress else None
        write_rows(backend, result.rows, progress=wtask)
    return result
