"""Collecting switch CDR files from a spool directory: each closed file published once.

Crash safety rests on an order of durable steps per file, and on CDR keys:

1. the manifest (sqlite, in the spool unless told otherwise) records the file as
   ``publishing`` under (path, size, sha256), committed;
2. the file is published and the producer flushed (every message acknowledged);
3. the manifest marks it ``done`` (or ``failed`` with the reason), committed;
4. the file is renamed into ``done/`` or ``failed/`` (with ``<name>.reason`` beside it).

A kill between 1 and 3 re-publishes the whole file on restart. Downstream that is harmless:
every record keeps its CDR key, so the re-read records are duplicates, never a second charge.
A kill between 3 and 4 only finishes the move. A file whose (path, size, hash) is already
``done`` is never published again, even when it is dropped into the spool a second time.

A file is *closed* when it has not changed for ``settle_s`` seconds (switches rotate by
closing one file and opening the next); names starting with ``.`` or ending in ``.tmp`` or
``.part`` are in-flight uploads and are left alone.

Kamailio half calls (an INVITE in one transaction file, its BYE in the next) are held in the
manifest between files (``carry``: streams/formats/kamailio.py ``Carry``). The held rows are
saved in the same sqlite transaction that marks the file ``done``, so a kill before it
re-reads the file against the carry it was first read with: the same pairs, the same keys.
"""
from __future__ import annotations

import hashlib
import logging
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("cdrflow.collect")

MANIFEST_NAME = ".cdrflow-manifest.sqlite"
IN_FLIGHT_SUFFIXES = (".tmp", ".part", ".filepart")


@dataclass
class CollectStats:
    published: int = 0      # files published in this pass
    skipped: int = 0        # files found already published (moved to done/ without publishing)
    failed: int = 0         # files moved to failed/
    records: int = 0
    rejected: int = 0
    moved: list[str] = field(default_factory=list)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Manifest:
    """Which files were published: survives restarts (sqlite, synchronous commits)."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(str(path), isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("""CREATE TABLE IF NOT EXISTS files (
            path TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
            state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '', records INTEGER NOT NULL DEFAULT 0,
            rejected INTEGER NOT NULL DEFAULT 0, attempts INTEGER NOT NULL DEFAULT 0,
            started_ms INTEGER, finished_ms INTEGER, PRIMARY KEY (path, size, sha256))""")
        self.db.execute("CREATE TABLE IF NOT EXISTS carry (key TEXT PRIMARY KEY, rows TEXT NOT NULL)")

    def state(self, path: str, size: int, sha: str) -> str | None:
        row = self.db.execute("SELECT state FROM files WHERE path=? AND size=? AND sha256=?",
                              (path, size, sha)).fetchone()
        return row[0] if row else None

    def begin(self, path: str, size: int, sha: str) -> None:
        self.db.execute("""INSERT INTO files(path, size, sha256, state, attempts, started_ms)
                           VALUES (?, ?, ?, 'publishing', 1, ?)
                           ON CONFLICT(path, size, sha256) DO UPDATE
                           SET state='publishing', attempts=attempts+1, started_ms=excluded.started_ms""",
                        (path, size, sha, int(time.time() * 1000)))

    def finish(self, path: str, size: int, sha: str, state: str, reason: str, records: int, rejected: int,
               carry: tuple[str, str] | None = None) -> None:
        """Record the outcome, and (key, rows) of the carry the file left, in one transaction."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            self.db.execute("""UPDATE files SET state=?, reason=?, records=?, rejected=?, finished_ms=?
                               WHERE path=? AND size=? AND sha256=?""",
                            (state, reason, records, rejected, int(time.time() * 1000), path, size, sha))
            if carry is not None:
                self.db.execute("INSERT OR REPLACE INTO carry(key, rows) VALUES (?, ?)", carry)
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def carry(self, key: str) -> str | None:
        row = self.db.execute("SELECT rows FROM carry WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def rows(self) -> list[tuple]:
        return self.db.execute("SELECT path, size, sha256, state, reason, attempts FROM files ORDER BY rowid").fetchall()

    def close(self) -> None:
        self.db.close()


def closed_files(spool: Path, settle_s: float, now: float | None = None) -> list[Path]:
    """Regular files directly in ``spool`` untouched for ``settle_s`` seconds, oldest first."""
    now = time.time() if now is None else now
    out = []
    for p in spool.iterdir():
        name = p.name
        if name.startswith(".") or name.endswith(IN_FLIGHT_SUFFIXES) or name.endswith(".reason"):
            continue
        try:
            st = p.lstat()
        except FileNotFoundError:
            continue
        if not p.is_file() or p.is_symlink():
            continue
        if now - st.st_mtime >= settle_s:
            out.append((st.st_mtime, name, p))
    return [p for _, _, p in sorted(out)]


def _move(path: Path, folder: Path, reason: str | None = None) -> Path:
    folder.mkdir(exist_ok=True)
    dest = folder / path.name
    n = 1
    while dest.exists():
        # A switch reusing a file name must not overwrite the earlier, already published file.
        dest = folder / f"{path.name}.{n}"
        n += 1
    if reason is not None:
        reason_path = dest.with_name(dest.name + ".reason")
        reason_path.write_text(reason + "\n")
    os.replace(path, dest)
    return dest


# publish(path) -> (records, rejected, damage lines): streams.cli.publish.publish_files bound
# to a format, a broker and one producer; it returns only after the broker acknowledged all.
# With a carry, publish(path, carry) is called instead.
PublishFn = Callable[..., tuple[int, int, list[str]]]


class Collector:
    def __init__(self, spool: Path, publish: PublishFn, manifest: Path | None = None, settle_s: float = 2.0,
                 carry_key: str | None = None, carry_from_json: Callable[[str | None], Any] | None = None):
        self.spool = spool
        self.publish = publish
        # Rows held from file to file (Kamailio half calls), stored in the manifest under carry_key.
        self.carry_key = carry_key
        self.carry_from_json = carry_from_json
        self.settle_s = settle_s
        self.manifest = Manifest(manifest or spool / MANIFEST_NAME)
        self.done_dir = spool / "done"
        self.failed_dir = spool / "failed"

    def run_once(self, on_file: Callable[[Path], None] | None = None) -> CollectStats:
        stats = CollectStats()
        for path in closed_files(self.spool, self.settle_s):
            if on_file is not None:
                on_file(path)
            try:
                self.process(path, stats)
            except FileNotFoundError:
                continue  # taken away (another collector, an operator) between the scan and now
        return stats

    def process(self, path: Path, stats: CollectStats) -> None:
        size = path.stat().st_size
        sha = sha256_of(path)
        if path.stat().st_size != size:
            return  # still being written after all; next pass
        key = (str(path.resolve()), size, sha)
        state = self.manifest.state(*key)
        if state in ("done", "failed"):
            # Published before (a kill after step 3, or the same file dropped in again).
            dest = _move(path, self.done_dir if state == "done" else self.failed_dir,
                         None if state == "done" else "already collected and failed before; see the manifest")
            log.info("collect %s: already published, moved to %s", path.name, dest)
            stats.skipped += 1
            stats.moved.append(str(dest))
            return
        self.manifest.begin(*key)
        log.info("collect %s: publishing (%d bytes, sha256 %s)", path.name, size, sha[:12])
        carry = None
        if self.carry_from_json is not None:
            carry = self.carry_from_json(self.manifest.carry(self.carry_key or ""))
        try:
            records, rejected, damage = self.publish(path) if carry is None else self.publish(path, carry)
        except (TimeoutError, RuntimeError) as exc:
            # The broker did not acknowledge: leave the file in the spool, state stays
            # 'publishing', and the next pass publishes it again (keys make that harmless).
            log.warning("collect %s: not acknowledged, will retry: %s", path.name, exc)
            raise
        stats.records += records
        stats.rejected += rejected
        if damage:
            # The carry stays as it was: a repaired file sent again pairs its halves anew.
            reason = "\n".join(damage)
            self.manifest.finish(*key, "failed", reason, records, rejected)
            dest = _move(path, self.failed_dir, reason)
            stats.failed += 1
        else:
            self.manifest.finish(*key, "done", "", records, rejected,
                                 None if carry is None else (self.carry_key or "", carry.to_json()))
            if carry is not None and carry.rows:
                log.info("collect %s: %d rows of half calls held for the next file", path.name, len(carry.rows))
            dest = _move(path, self.done_dir)
            stats.published += 1
        stats.moved.append(str(dest))
        log.info("collect %s: %d records, %d rejected, moved to %s", path.name, records, rejected, dest)

    def close(self) -> None:
        self.manifest.close()
