"""Delivery of the hook spool to the database: in batches, exactly once, never losing one.

A pass takes the pass lock, turns the live spool file into a batch file, and delivers
every batch file oldest first, `batch_size` events per transaction. The spool id is the
key (a unique index on `agent_logs`), and the rows built from an event commit with it,
so a pass killed halfway and run again inserts and changes nothing twice. A batch file
is deleted only once all of it is in the database.

A database that is down, locked or not migrated yet stops the pass and leaves the files
for the next one. An event the database refuses for itself (not for the connection) is
retried alone, and if it still fails it goes to `rejected.jsonl` with the reason, so one
bad event never holds up the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.claude import spool
from session_db.claude.events import TRANSCRIPT_EVENTS, HookEvent, parse_line, store_events
from session_db.crud._base import translating_errors
from session_db.database import get_async_session
from session_db.errors import DatabaseNotMigratedError, is_transient

logger = logging.getLogger(__name__)

BATCH_SIZE = 500


@dataclass
class DeliveryReport:
    """What one delivery pass did."""

    delivered: int = 0
    duplicates: int = 0
    rejected: int = 0
    batch_files: int = 0
    transcripts: set[str] = field(default_factory=set)

    def add(self, other: DeliveryReport) -> None:
        """Add another pass's counts to this one."""
        self.delivered += other.delivered
        self.duplicates += other.duplicates
        self.rejected += other.rejected
        self.batch_files += other.batch_files
        self.transcripts |= other.transcripts


def pending_events(directory: str) -> bool:
    """Return whether the spool holds anything not delivered yet."""
    live = os.path.join(directory, spool.LIVE_FILE)
    try:
        if os.stat(live).st_size > 0:
            return True
    except FileNotFoundError:
        pass
    return bool(spool.batch_files(directory))


@translating_errors("database")
async def ensure_migrated(engine: AsyncEngine) -> None:
    """Raise DatabaseNotMigratedError unless the database is at the newest migration."""
    from session_db.migrate import current_revision, head_revision

    current, head = await current_revision(engine), head_revision()
    if current != head:
        raise DatabaseNotMigratedError(
            f"the database is at migration {current or 'none'}, not {head}: "
            "run `session-db db upgrade`; hook events wait in the spool until then"
        )


def _transcripts_of(event: HookEvent) -> set[str]:
    if event.name not in TRANSCRIPT_EVENTS:
        return set()
    paths = {event.text("transcript_path"), event.text("agent_transcript_path")}
    return {path for path in paths if path}


def _reject(directory: str, line: bytes, reason: str) -> None:
    record = {"rejected_at": time.time(), "reason": reason, "line": line.decode("utf-8", "replace")}
    spool.append_line(directory, (json.dumps(record) + "\n").encode(), spool.REJECTED_FILE)
    spool.log_line(directory, spool.DELIVERER_LOG, f"rejected: {reason[:500]}")


async def _deliver_chunk(
    engine: AsyncEngine,
    directory: str,
    chunk: list[tuple[HookEvent, bytes]],
    report: DeliveryReport,
) -> None:
    try:
        async with get_async_session(engine) as db:
            new = await store_events(db, [event for event, _ in chunk])
    except Exception as error:  # the database refused something in this chunk: find it
        if is_transient(error):
            raise
        if len(chunk) == 1:
            event, line = chunk[0]
            _reject(directory, line, f"event {event.spool_id}: {type(error).__name__}: {error}")
            report.rejected += 1
            return
        logger.warning("a batch of %d events failed (%s); retrying one by one", len(chunk), error)
        for item in chunk:
            await _deliver_chunk(engine, directory, [item], report)
        return
    report.delivered += len(new)
    report.duplicates += len(chunk) - len(new)
    for event in new:
        report.transcripts |= _transcripts_of(event)


def read_batch_file(path: str) -> tuple[list[tuple[HookEvent, bytes]], list[tuple[bytes, str]]]:
    """Return a batch file's events (with their lines) and its unreadable lines with why."""
    parsed: list[tuple[HookEvent, bytes]] = []
    bad: list[tuple[bytes, str]] = []
    with open(path, "rb") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                parsed.append((parse_line(line), line))
            except (ValueError, UnicodeDecodeError) as error:
                bad.append((line, str(error)))
    return parsed, bad


async def deliver_batch_file(
    engine: AsyncEngine, directory: str, path: str, batch_size: int = BATCH_SIZE
) -> DeliveryReport:
    """Deliver one batch file, then delete it."""
    report = DeliveryReport(batch_files=1)
    parsed, bad = await asyncio.to_thread(read_batch_file, path)
    for start in range(0, len(parsed), batch_size):
        await _deliver_chunk(engine, directory, parsed[start : start + batch_size], report)
    for line, reason in bad:  # after delivery, so a retried pass does not repeat them
        _reject(directory, line, reason)
        report.rejected += 1
    os.unlink(path)
    return report


async def deliver_pending(
    engine: AsyncEngine,
    directory: str | None = None,
    *,
    batch_size: int = BATCH_SIZE,
    import_transcripts: bool = True,
    check_schema: bool = True,
) -> DeliveryReport:
    """Deliver everything in the spool now (the `session-db ingest` pass).

    `check_schema` compares the database's migration with the newest first; a
    long-running deliverer does that once, not on every pass.

    Raises:
        DatabaseUnavailableError: The database is down, locked or not migrated; nothing
            was lost, the undelivered events stay in the spool.
    """
    directory = directory or spool.spool_dir()
    report = DeliveryReport()
    if not pending_events(directory):
        return report
    lock = spool.FileLock(directory, spool.PASS_LOCK)
    await asyncio.to_thread(lock.acquire)
    try:
        if check_schema:
            await ensure_migrated(engine)
        spool.rotate(directory)
        for path in spool.batch_files(directory):
            report.add(await deliver_batch_file(engine, directory, path, batch_size))
    finally:
        lock.release()
    if import_transcripts and report.transcripts:
        await _import_transcripts(engine, report.transcripts)
    return report


async def _import_transcripts(engine: AsyncEngine, paths: set[str]) -> None:
    from session_db.claude.importer import import_transcripts

    try:
        await import_transcripts(engine, sorted(paths))
    except Exception:  # the events are delivered; the usage comes with the next import
        logger.exception("importing transcripts after delivery failed")


async def follow(
    engine: AsyncEngine,
    directory: str | None = None,
    *,
    linger: float | None = None,
    poll: float = 0.25,
    stop: asyncio.Event | None = None,
    on_report: Callable[[DeliveryReport], None] | None = None,
    lock: spool.FileLock | None = None,
) -> bool:
    """Keep delivering as events arrive, until `stop` is set or `linger` idle seconds pass.

    Holds the deliverer lock throughout, which is how the hook knows one is running.

    Args:
        lock: The deliverer lock, already held (the hook takes it before it starts the
            deliverer, so a burst of hooks starts one); taken here when omitted.

    Returns:
        False (at once) if another deliverer already holds the lock, else True.
    """
    directory = directory or spool.spool_dir()
    stop = stop or asyncio.Event()
    running = lock or spool.FileLock(directory, spool.DELIVERER_LOCK)
    if lock is None and not running.acquire(blocking=False):
        return False
    running.write_pid()
    backoff, idle_since, schema_checked = 0.0, time.monotonic(), False
    try:
        while not stop.is_set():
            if pending_events(directory):
                idle_since = time.monotonic()
                try:
                    report = await deliver_pending(
                        engine, directory, check_schema=not schema_checked
                    )
                    schema_checked = True
                except Exception as error:
                    if not is_transient(error):
                        raise
                    backoff = min(max(1.0, backoff * 2), 30.0)
                    logger.warning("delivery failed, retrying in %.0f s: %s", backoff, error)
                    await _sleep(stop, backoff)
                    continue
                backoff = 0.0
                if on_report is not None:
                    on_report(report)
            elif linger is not None and time.monotonic() - idle_since > linger:
                # Release first, then look again: a hook that wrote after our last look
                # either sees the lock free (and starts a deliverer) or its event is seen here.
                running.release()
                if not pending_events(directory) or not running.acquire(blocking=False):
                    return True
                running.write_pid()
                continue
            await _sleep(stop, poll)
    finally:
        running.release()
    return True


async def _sleep(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


def spool_status(directory: str) -> dict[str, object]:
    """Return what waits in the spool, what was rejected, and the deliverer's recent log."""
    waiting = 0
    files = spool.batch_files(directory)
    for path in [*files, os.path.join(directory, spool.LIVE_FILE)]:
        try:
            with open(path, "rb") as handle:
                waiting += sum(1 for line in handle if line.strip())
        except FileNotFoundError:
            continue
    rejected = 0
    try:
        with open(os.path.join(directory, spool.REJECTED_FILE), "rb") as handle:
            rejected = sum(1 for line in handle if line.strip())
    except FileNotFoundError:
        pass
    recent: list[str] = []
    for name in (spool.HOOK_LOG, spool.DELIVERER_LOG):
        try:
            with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as log:
                recent.extend(f"{name}: {line.rstrip()}" for line in log.readlines()[-5:])
        except FileNotFoundError:
            continue
    return {
        "spool_dir": directory,
        "waiting": waiting,
        "batch_files": len(files),
        "rejected": rejected,
        "deliverer_pid": spool.deliverer_pid(directory) if os.path.isdir(directory) else None,
        "recent_log": recent,
    }
