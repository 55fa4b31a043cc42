"""cdrflow collect: publish every closed file of a spool directory to cdr.raw, exactly once.

    cdrflow collect SPOOL --format asterisk-csv|freeswitch-json|freeswitch-csv|kamailio-acc|avro
                    [--mode single|batch] [--batch-size N] [--switch-id ID] [--layout CONF[:MAPPING]]
                    [--bootstrap B] [--settle S] [--interval S] [--once] [--manifest PATH]

Options shared with ``cdrflow publish`` mean the same. Published files move to SPOOL/done/,
damaged ones to SPOOL/failed/ with ``<name>.reason``; see streams/collect.py for why a kill
at any point loses nothing and charges nothing twice.
"""
from __future__ import annotations

import io
import signal
import time
from pathlib import Path

from streams.cli.publish import add_file_options, client_conf, layout_arg, publish_files


def register(sub) -> None:
    p = sub.add_parser("collect", help="watch a spool directory and publish each closed switch CDR file once")
    p.add_argument("spool", type=Path, metavar="SPOOL")
    add_file_options(p)
    p.add_argument("--settle", type=float, default=2.0,
                   help="seconds a file must stay unchanged before it counts as closed (default 2)")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between scans of the spool (default 5)")
    p.add_argument("--once", action="store_true", help="collect what is closed now, then exit (cron)")
    p.add_argument("--manifest", type=Path, default=None,
                   help="sqlite manifest of published files (default SPOOL/.cdrflow-manifest.sqlite)")
    p.set_defaults(func=cmd_collect)


def cmd_collect(args) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streams.cli.main import UserError
    from streams.collect import Collector
    from streams.publisher import Publisher

    if not args.spool.is_dir():
        raise UserError(f"no such spool directory: {args.spool}")
    if args.batch_size < 1:
        raise UserError("--batch-size must be at least 1")
    if args.settle < 0 or args.interval <= 0:
        raise UserError("--settle must be >= 0 and --interval > 0")
    layout = layout_arg(args)

    console = Console(stderr=True)
    conf = client_conf(args.bootstrap)
    sender = Publisher(conf)
    stopping = []
    # SIGTERM stops between files; the file being published is finished first.
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as progress:
        def publish(path: Path, carry=None) -> tuple[int, int, list[str]]:
            lines = path.read_bytes().count(b"\n") or 1 if args.format != "avro" else None
            task = progress.add_task(path.name, total=lines)
            try:
                err = io.StringIO()
                stats = publish_files(conf, args.format, [path], args.mode, args.switch_id, args.batch_size,
                                      progress=lambda n: progress.advance(task, n), err=err, layout=layout,
                                      sender=sender, carry=carry)
            finally:
                progress.remove_task(task)
            for line in err.getvalue().splitlines():
                console.print(line, highlight=False, soft_wrap=True, markup=False)
            return stats.records, stats.rejected, stats.damaged

        # kamailio-acc: half calls (INVITE in one file, BYE in the next) are held across files,
        # per switch id, in the manifest (streams/formats/kamailio.py Carry).
        carry_from_json = None
        if args.format == "kamailio-acc":
            from streams.formats.kamailio import Carry

            carry_from_json = Carry.from_json
        collector = Collector(args.spool, publish, args.manifest, args.settle,
                              carry_key=args.switch_id or args.format, carry_from_json=carry_from_json)
        total_files = total_failed = 0
        try:
            while not stopping:
                try:
                    st = collector.run_once()
                except (TimeoutError, RuntimeError) as exc:
                    if args.once:
                        raise UserError(f"{exc}; the file stays in the spool and is published on the next run") from None
                    console.print(f"broker did not acknowledge, retrying: {exc}", highlight=False, markup=False)
                    st = None
                if st is not None:
                    total_files += st.published + st.failed
                    total_failed += st.failed
                    for dest in st.moved:
                        console.print(f"collected -> {dest}", highlight=False, soft_wrap=True, markup=False)
                if args.once:
                    break
                deadline = time.monotonic() + args.interval
                while not stopping and time.monotonic() < deadline:
                    time.sleep(min(0.2, args.interval))
        finally:
            collector.close()
            sender.close()
    console.print(f"collected {total_files} files ({total_failed} to failed/)", highlight=False)
    return 1 if total_failed and args.once else 0
