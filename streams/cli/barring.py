"""``cdrflow barring watch``: the reference call controller, printing every transition.

    cdrflow barring watch [--from-beginning] [--account A ...] [--json] [--max-seconds S] [--bootstrap B]

Bootstraps the decision of every account from ``account.state`` (latest per account), then
follows ``account.barring`` from its end (``--from-beginning``: from its start, to see the
history). Every transition read from ``account.barring`` is shown exactly once per (account, seq),
in seq order per account, whatever the arrival order of the two topics: a snapshot never hides
an event (streams/core/transitions.py). Each line names the causing CDR key; a correction of a
past period is shown as such and does not change the current decision. Stops on Ctrl-C /
SIGTERM or after ``--max-seconds``.

``--json`` prints one JSON object per line: ``{"type": "bootstrap", "accounts": N, ...}`` once,
then ``{"type": "transition", ...}`` per event.
"""
from __future__ import annotations

import json
import sys

from streams.cli.main import UserError
from streams.core.money import format_micros


def register(subparsers) -> None:
    p = subparsers.add_parser("barring", help="watch barring transitions like a call controller does")
    sub = p.add_subparsers(dest="barring_command", metavar="ACTION")
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])
    w = sub.add_parser("watch", help="bootstrap from account.state, then follow account.barring")
    w.add_argument("--from-beginning", action="store_true", help="replay account.barring from its start")
    w.add_argument("--account", action="append", default=[], metavar="ACCOUNT",
                   help="only this account (repeatable); reads only the partitions that own them")
    w.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    w.add_argument("--max-seconds", type=float, default=None, help="stop after this many seconds")
    w.add_argument("--bootstrap", help="Kafka bootstrap servers (default: settings)")
    w.set_defaults(func=cmd_watch)


def _client_conf(bootstrap: str | None) -> dict:
    from streams.settings import get_settings

    conf = get_settings().kafka_client_config()
    if bootstrap:
        conf["bootstrap.servers"] = bootstrap
    return conf


def _rate(micros: int) -> str:
    return "none" if micros < 0 else f"{format_micros(micros)}/min"


def cmd_watch(args) -> int:
    from rich.console import Console

    from streams.controllers import Stopper, Watcher

    if args.max_seconds is not None and args.max_seconds <= 0:
        raise UserError("--max-seconds must be positive")
    console = Console(highlight=False)

    def out(obj: dict) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    def on_bootstrapped(ctl) -> None:
        if args.json:
            out({"type": "bootstrap", "accounts": len(ctl.decisions),
                 "profiles": {a: d.profile for a, d in sorted(ctl.decisions.items())}})
            return
        from rich.table import Table

        t = Table(title=f"bootstrapped {len(ctl.decisions)} accounts from account.state")
        for col in ("account", "profile", "max rate", "always allowed", "seq"):
            t.add_column(col)
        for a, d in sorted(ctl.decisions.items())[:50]:
            t.add_row(a, d.profile, _rate(d.max_rate_micros_per_min), " ".join(d.allowed_destinations), str(d.seq))
        console.print(t)
        if len(ctl.decisions) > 50:
            console.print(f"... and {len(ctl.decisions) - 50} more")
        console.print("following account.barring (Ctrl-C stops)")

    def on_transition(tr) -> None:
        # The watcher hands over each transition once, in seq order (streams/core/transitions.py);
        # repeats were dropped there, so every call here is shown.
        if args.json:
            out({"type": "transition", **tr.to_dict()})
            return
        mark = "" if tr.applied or tr.correction else " [dim](already in the state snapshot)[/]"
        cause = f", cause CDR {tr.cause_cdr_key}" if tr.cause_cdr_key else ""
        color = {"blocked": "red", "low_credit": "yellow"}.get(tr.new_profile, "green")
        console.print(f"{tr.account} #{tr.seq} {tr.old_profile} -> [{color}]{tr.new_profile}[/] "
                      f"({tr.reason}{', correction' if tr.correction else ''}) period {tr.period} "
                      f"spend {format_micros(tr.spend_micros)} / credit {format_micros(tr.credit_micros)}, "
                      f"max rate {_rate(tr.max_rate_micros_per_min)}{cause}{mark}")

    stopper = Stopper(args.max_seconds)
    watcher = Watcher(_client_conf(args.bootstrap), accounts=args.account, from_beginning=args.from_beginning)
    try:
        watcher.run(stopper, on_transition, on_bootstrapped)
    except RuntimeError as exc:
        raise UserError(str(exc)) from None
    finally:
        stopper.restore()
    seqr = watcher.sequencer
    summary = {"type": "summary", "events": watcher.events, "replays_ignored": seqr.duplicates,
               "gaps": seqr.gaps, "stale": seqr.stale,
               "accounts": len(watcher.controller.decisions), "undecodable": watcher.undecodable}
    if args.json:
        out(summary)
    else:
        console.print(f"stopped: {watcher.events} events ({seqr.duplicates} repeats ignored, {seqr.gaps} missing seqs), "
                      f"{len(watcher.controller.decisions)} accounts")
    return 0
