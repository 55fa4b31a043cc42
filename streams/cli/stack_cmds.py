"""cdrflow demo | up | worker | sink: run the pipeline on the embedded local stack."""
from __future__ import annotations

import argparse
import signal
import threading
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from streams import topics


def register(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the embedded stack and report")
    p.add_argument("--cdrs", type=int, default=5000)
    p.add_argument("--accounts", type=int, default=300)
    p.add_argument("--mode", choices=["single", "batch", "mixed"], default="mixed")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--no-bad-inputs", action="store_true", help="do not mix broken inputs into the stream")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on the last line")
    p.add_argument("--workdir", type=Path, help="where logs, ClickHouse data and the report go")
    p.add_argument("--stay", action="store_true",
                   help="after the check, keep the stack and the portal running until Ctrl-C, then write the report")
    _target_args(p)
    _portal_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("up", help="start the local stack and keep it running until Ctrl-C")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--workdir", type=Path, default=Path("var/up"))
    p.add_argument("--memory", action="store_true",
                   help="keep the embedded broker in memory: accounts, tariffs and offsets are lost on stop "
                        "(the default unless $CDRFLOW_BROKER_STORAGE=disk)")
    p.add_argument("--durable", action="store_true",
                   help="experimental: keep the embedded broker on disk in WORKDIR/broker (see README)")
    _target_args(p)
    _portal_args(p)
    p.set_defaults(func=cmd_up)

    # Both long-running commands hand every argument to the process they start (Faust's worker
    # options; the sink's own options), so `--help` and `--web-port` reach them. '+' as the
    # prefix keeps argparse from reading those options itself.
    p = sub.add_parser("worker", help="run one Faust worker (CDRFLOW_* variables; Faust worker options pass through)",
                       prefix_chars="+", add_help=False)
    p.add_argument("passthrough", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("sink", help="run the ClickHouse landing process (`cdrflow sink --help` for its options)",
                       prefix_chars="+", add_help=False)
    p.add_argument("passthrough", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_sink)


def cmd_worker(args) -> int:
    from streams.worker import main

    main(list(args.passthrough))
    return 0


def cmd_sink(args) -> int:
    from sinks.landing import main

    return main(list(args.passthrough))


def _target_args(p) -> None:
    p.add_argument("--bootstrap", help="use this Kafka instead of starting tansu (SASL/TLS from CDRFLOW_KAFKA_*)")
    p.add_argument("--clickhouse", help="land in this ClickHouse (clickhouse://user:pass@host:9000/db) "
                                        "instead of chdb in the work directory")


def _portal_args(p) -> None:
    p.add_argument("--portal-port", type=int, default=None,
                   help="port of the self-care portal the sink serves (default $CDRFLOW_PORTAL_PORT or 8090; "
                        "a free port when that one is taken)")
    p.add_argument("--no-portal", action="store_true", help="do not serve the self-care portal")


def portal_port(args) -> int:
    """The port the sink's portal gets: 0 when off; the configured one, or a free one if it is taken."""
    import socket

    from streams.local.procs import free_port
    from streams.settings import get_settings

    if args.no_portal:
        return 0
    port = args.portal_port or get_settings().portal_port
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            if args.portal_port:
                from streams.cli.main import UserError

                raise UserError(f"--portal-port {port} is in use") from None
            return free_port()
    return port


def _wait_for_stop() -> None:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1):
            pass
    except KeyboardInterrupt:
        pass


def cmd_demo(args) -> int:
    from streams.local.demo import DemoOptions, dumps, run_demo

    console = Console(stderr=True)
    opts = DemoOptions(cdrs=args.cdrs, accounts=args.accounts, mode=args.mode, workers=args.workers,
                       seed=args.seed, bad_inputs=not args.no_bad_inputs, workdir=args.workdir,
                       bootstrap=args.bootstrap, clickhouse=args.clickhouse, portal_port=portal_port(args))
    if args.stay:
        def hold(summary: dict) -> None:
            show_summary(console, summary)
            console.print(f"[bold]The stack{' and the portal ' + summary['portal'] if 'portal' in summary else ''} "
                          f"stay up; Ctrl-C stops them and writes the report.")
            _wait_for_stop()
        opts.hold = hold
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=False) as progress:
        task = progress.add_task("landing", total=None)

        def step(text, done=None, total=None):
            if text:
                console.log(text)
            if done is not None:
                progress.update(task, completed=done, total=total)

        summary = run_demo(opts, step)
    show_summary(console, summary)
    if args.json:
        print(dumps(summary))
    ok = summary["balanced"] and summary["money_matches"]
    return 0 if ok else 1


def show_summary(console: Console, s: dict) -> None:
    t = Table(title="cdrflow demo", show_header=False)
    for k, v in s.items():
        t.add_row(k, str(v))
    console.print(t)
    verdict = "[green]every CDR landed as rated or rejected; ClickHouse total equals the independent sum" \
        if s["balanced"] and s["money_matches"] else "[red]counts or money do not balance: see the table above"
    console.print(verdict)


def broker_data_for(args):
    """Where `cdrflow up`'s embedded broker keeps its data: WORKDIR/broker with --durable or
    CDRFLOW_BROKER_STORAGE=disk (never with --memory or an external Kafka, --bootstrap); else memory."""
    from streams.settings import get_settings

    if args.memory or args.bootstrap:
        return None
    if getattr(args, "durable", False) or get_settings().broker_storage == "disk":
        return args.workdir / "broker"
    return None


def cmd_up(args) -> int:
    from streams.local.stack import LocalStack

    console = Console()
    broker_data = broker_data_for(args)
    durable = broker_data is not None
    stack = LocalStack(args.workdir, workers=args.workers, bootstrap=args.bootstrap, clickhouse=args.clickhouse,
                       portal_port=portal_port(args), broker_data=broker_data)
    stack.start()
    try:
        stack.wait_workers_ready(120)
        if not args.bootstrap:
            console.print(f"[bold]Broker storage:[/] " + (f"{stack.broker_data} (kept across restarts)" if durable
                          else "memory (lost on stop; --durable keeps it, experimental)"))
        from streams.settings import get_settings as _settings
        if _settings().webhooks_file:
            # Partner webhooks (streams/notifications.py): started only when partners are configured.
            stack.start_webhooks(_settings().webhooks_file)
            console.print(f"[bold]Webhooks:[/] delivering account.notifications per {_settings().webhooks_file}")
        console.print(f"[bold]Kafka bootstrap:[/] {stack.bootstrap}")
        console.print(f"[bold]ClickHouse (chdb, owned by the sink):[/] {stack.env()['CDRFLOW_CLICKHOUSE']}")
        console.print(f"[bold]Sink status:[/] http://127.0.0.1:{stack.sink_status_port}/status")
        if stack.portal_port:
            from streams.settings import get_settings

            console.print(f"[bold]Portal:[/] http://{get_settings().portal_host}:{stack.portal_port}/ (users: "
                          f"`cdrflow portal user add NAME` / `grant`, store {get_settings().portal_users_file})")
        for name, port in stack.worker_ports.items():
            console.print(f"[bold]{name}:[/] http://127.0.0.1:{port}/cdrflow/stats")
        console.print("[bold]Topics:[/] " + ", ".join(s.name for s in topics.SPECS))
        console.print(f"Publish with: CDRFLOW_KAFKA_BOOTSTRAP={stack.bootstrap} cdrflow simulate --cdrs 1000\n"
                      f"Watch barring: CDRFLOW_KAFKA_BOOTSTRAP={stack.bootstrap} cdrflow barring watch\n"
                      "Ctrl-C stops everything.")
        stop = False

        def _stop(*_):
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        while not stop:
            time.sleep(1)
            for name in stack.restart_crashed_workers():
                console.print(f"[yellow]{name} stopped itself (exit 70, reason in its log); started again[/]")
            stack.check_alive()
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping...")
        stack.stop()
    return 0
