"""Delivery of the hook spool to the database: set-based, exactly once, never losing one.

A pass takes the pass lock, turns the live spool file into a batch file, and delivers
every batch file oldest first, reading it in bounded chunks (`batch_size` events, at
most `CHUNK_BYTES`), so memory does not grow with the spool. Each chunk is one unit of
work: one transaction of a few set-based statements (see `events.store_events`). The
spool id is the key (a unique index on `agent_logs`) and the rows built from an event
commit with it, so a chunk repeated after a crash or a lost connection inserts and
changes nothing twice.

Faults are classified once (`errors.is_transient`, `errors.is_database_fault`):
- a transient one (connection lost, timeout, lock) retries the whole chunk with
  backoff, and if it persists stops the pass, leaving the files for the next one;
- the database's own state (read-only, a missing privilege, a schema that is not ours)
  stops the pass at once, leaving the files too: it refuses every event alike;
- a permanent one is the fault of some event in the chunk: the chunk is split in
  halves until the event is found, and only that event goes to `rejected.jsonl` with
  the reason. A line that is not an event (torn, not JSON, nested too deeply) goes there
  too. No event is ever set aside because a connection died.

A batch file is removed only once each of its lines is in the database or in the
rejected file. How far that holds is kept beside it (`<batch>.offset`), so a restarted
pass resumes there; if the rejected file cannot be written (a full disk), the valid
events are still delivered and the rest waits for the next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.claude import spool
from session_db.claude.events import TRANSCRIPT_EVENTS, HookEvent, parse_line, store_events
from session_db.database import get_async_session
from session_db.errors import (
    DatabaseError,
    DatabaseNotMigratedError,
    DatabaseUnavailableError,
    SessionDBError,
    explain_open_failure,
    is_database_fault,
    is_transient,
)
from session_db.retry import retry_transient

logger = logging.getLogger(__name__)

# Events per chunk (one transaction): 2,000 measured 5-25% faster than 1,000 on both
# engines (bench/bench_delivery.py), the per-chunk statements and commit shared by more.
BATCH_SIZE = 2000
# A chunk also ends at this many bytes of spool, so a run of huge events stays bounded.
CHUNK_BYTES = 16 * 1024 * 1024
# Tries of one chunk before a pass gives up and leaves it for the next pass.
CHUNK_ATTEMPTS = 5
OFFSET_SUFFIX = ".offset"


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
    """Return whether the spool holds anything not delivered yet (a re-queue that a crash
    interrupted included)."""
    live = os.path.join(directory, spool.LIVE_FILE)
    try:
        if os.stat(live).st_size > 0:
            return True
    except FileNotFoundError:
        pass
    return bool(spool.batch_files(directory)) or bool(_interrupted_requeues(directory))


async def ensure_migrated(engine: AsyncEngine) -> None:
    """Raise DatabaseNotMigratedError unless the database is at the newest migration.

    Raises:
        DatabaseUnavailableError: The database could not be asked (a transient fault).
        DatabaseError: Asking it failed for another reason.
    """
    from session_db.migrate import current_revision, head_revision

    try:
        current = await current_revision(engine)
    except SessionDBError:
        raise
    except Exception as error:
        explained = explain_open_failure(error, engine.url)
        if explained is not None:  # the database could not be opened: say why, and what to do
            raise explained from error
        kind = DatabaseUnavailableError if is_transient(error) else DatabaseError
        raise kind(f"cannot read the database's migration: {_first_line(error)}") from error
    head = head_revision()
    if current != head:
        raise DatabaseNotMigratedError(
            f"the database is at migration {current or 'none'}, not {head}: "
            "run `session-db db upgrade`; hook events wait in the spool until then"
        )


# A pass allocates tens of thousands of containers per chunk (the parsed payloads), all
# alive until the chunk is stored: the collector's default pace (every 700 allocations)
# traversed them again and again, a fifth of delivery's time. Within a pass it runs
# every GC_PACE allocations instead: a few times a chunk, still often enough that the
# few cycles a chunk leaves (SQLAlchemy's and asyncio's) do not pile up in memory.
GC_PACE = 20_000
_gc_lock = threading.Lock()
_gc_passes = 0
_gc_threshold: tuple[int, int, int] | None = None


@contextlib.contextmanager
def _paced_collection() -> Iterator[None]:
    """Collect garbage less often while a pass runs (restored when the last one ends)."""
    global _gc_passes, _gc_threshold
    with _gc_lock:
        if _gc_passes == 0:
            _gc_threshold = gc.get_threshold()
            if _gc_threshold[0] and _gc_threshold[0] < GC_PACE:
                gc.set_threshold(GC_PACE, *_gc_threshold[1:])
        _gc_passes += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_passes -= 1
            if _gc_passes == 0 and _gc_threshold is not None:
                gc.set_threshold(*_gc_threshold)


_frozen = False


def _freeze_startup_objects() -> None:
    """Keep what a deliverer loaded at startup (modules, tables) out of every collection.

    Once per process: the collector's full passes then walk only what delivery made.
    """
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def _transcripts_of(event: HookEvent) -> set[str]:
    paths = {event.text("transcript_path"), event.text("agent_transcript_path")}
    return {path for path in paths if path}


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _outage(error: Exception, engine: AsyncEngine) -> DatabaseUnavailableError | None:
    """The error a delivery pass raises for a transient database fault (the batch waits
    for the next pass), or None when `error` is to be raised as it is. A database that
    cannot be opened is said as the command line says it (`explain_open_failure`)."""
    if isinstance(error, SessionDBError) or not is_transient(error):
        return None
    explained = explain_open_failure(error, engine.url)
    reason = str(explained) if explained is not None else _first_line(error)
    return DatabaseUnavailableError(f"delivery stopped: {reason}")


def _log(message: str, directory: str) -> None:
    """A line in deliverer.log, if the disk lets us: a full disk must not stop delivery."""
    with contextlib.suppress(OSError):
        spool.log_line(directory, spool.DELIVERER_LOG, message)


def reject_lines(directory: str, rejected: list[tuple[bytes, str]]) -> None:
    """Append lines that can never be delivered, with their reasons, to `rejected.jsonl`.

    Raises:
        OSError: The rejected file cannot be written (the lines stay in their batch).
    """
    if not rejected:
        return
    now = time.time()
    records = b"".join(
        (
            json.dumps(
                {"rejected_at": now, "reason": reason, "line": line.decode("utf-8", "replace")}
            )
            + "\n"
        ).encode()
        for line, reason in rejected
    )
    spool.append_line(directory, records, spool.REJECTED_FILE)
    for _, reason in rejected:
        _log(f"rejected: {reason[:500]}", directory)


@dataclass
class Chunk:
    """A bounded run of a batch file's lines: the events, and the lines that are none."""

    events: list[tuple[HookEvent, bytes]]
    bad: list[tuple[bytes, str]]
    end: int  # byte offset just past the chunk


def read_chunks(
    path: str, offset: int = 0, batch_size: int = BATCH_SIZE, max_bytes: int = CHUNK_BYTES
) -> Iterator[Chunk]:
    """Yield a batch file's lines from `offset`, parsed, a bounded chunk at a time."""
    with open(path, "rb") as handle:
        handle.seek(offset)
        while True:
            events: list[tuple[HookEvent, bytes]] = []
            bad: list[tuple[bytes, str]] = []
            size = 0
            while len(events) + len(bad) < batch_size and size < max_bytes:
                line = handle.readline()
                if not line:
                    break
                size += len(line)
                if not line.strip():
                    continue
                try:
                    events.append((parse_line(line), line))
                except Exception as error:  # this line's own problem: it fails alone
                    bad.append((line, str(error)))
            if not events and not bad and size == 0:
                return
            yield Chunk(events, bad, handle.tell())


def read_batch_file(path: str) -> tuple[list[tuple[HookEvent, bytes]], list[tuple[bytes, str]]]:
    """Return a whole batch file's events (with their lines) and its unreadable lines."""
    events: list[tuple[HookEvent, bytes]] = []
    bad: list[tuple[bytes, str]] = []
    for chunk in read_chunks(path):
        events.extend(chunk.events)
        bad.extend(chunk.bad)
    return events, bad


def _read_offset(path: str) -> int:
    try:
        with open(path + OFFSET_SUFFIX, "rb") as handle:
            return int(handle.read().strip() or b"0")
    except (OSError, ValueError):
        return 0  # none yet, or unreadable: start over, which only re-finds duplicates


def _write_offset(path: str, offset: int) -> None:
    # Fixed width in one small write: a crash leaves the old value or the new, and a lost
    # or stale value only makes the next pass re-read lines it will find stored, or set
    # aside again (a line in the rejected file twice counts and is re-queued once).
    fd = os.open(path + OFFSET_SUFFIX, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.pwrite(fd, f"{offset:020d}\n".encode(), 0)
    finally:
        os.close(fd)


async def _store_unit(
    engine: AsyncEngine, items: list[tuple[HookEvent, bytes]]
) -> tuple[list[HookEvent], int, list[tuple[bytes, str]]]:
    """Store one unit of work in its own transaction, retrying it after transient faults."""

    async def work() -> tuple[list[HookEvent], int, list[tuple[bytes, str]]]:
        async with get_async_session(engine) as db:
            result = await store_events(db, [event for event, _ in items])
        lines = {event.spool_id: line for event, line in items}
        refused = [(lines[event.spool_id], reason) for event, reason in result.refused]
        return result.stored, result.duplicates, refused

    return await retry_transient(work, attempts=CHUNK_ATTEMPTS, what="delivering hook events")


def _refused_by_database(error: BaseException) -> bool:
    """Whether the database (or our checks of a row) refused what it was given: a fault
    some event is to blame for, not the database's own state (read-only, say)."""
    return isinstance(error, SessionDBError | sa_exc.StatementError) and not is_database_fault(
        error
    )


async def _deliver_chunk(
    engine: AsyncEngine, items: list[tuple[HookEvent, bytes]], report: DeliveryReport
) -> list[tuple[bytes, str]]:
    """Deliver a chunk; return the lines the database refused, found by splitting it."""
    if not items:
        return []
    try:
        stored, duplicates, refused = await _store_unit(engine, items)
    except Exception as error:
        if is_transient(error) or not _refused_by_database(error):
            # The connection's fault, the database's (read-only, not our schema) or a
            # bug of ours: no event is to blame, so none is set aside; the pass stops and
            # the events wait for the next one.
            raise
        if len(items) == 1:
            event, line = items[0]
            return [(line, f"event {event.spool_id}: {type(error).__name__}: {error}")]
        logger.warning(
            "a chunk of %d events was refused (%s); splitting it to find the event",
            len(items),
            type(error).__name__,
        )
        middle = len(items) // 2
        return await _deliver_chunk(engine, items[:middle], report) + await _deliver_chunk(
            engine, items[middle:], report
        )
    report.delivered += len(stored)
    report.duplicates += duplicates
    for event in stored:
        if event.name in TRANSCRIPT_EVENTS:
            report.transcripts |= _transcripts_of(event)
    return refused


async def deliver_batch_file(
    engine: AsyncEngine, directory: str, path: str, batch_size: int = BATCH_SIZE
) -> DeliveryReport:
    """Deliver one batch file chunk by chunk, then delete it once every line is settled."""
    report = DeliveryReport(batch_files=1)
    settled = True  # every line so far is in the database or in the rejected file
    # Parsed here, not in a worker thread one chunk ahead: parsing holds the GIL, so the
    # thread only contended with the database driver's. With it, delivery measured no
    # faster on SQLite and 15% slower on PostgreSQL, with twice the context switches.
    chunks = read_chunks(path, _read_offset(path), batch_size)
    with contextlib.closing(chunks):  # the file is closed however the loop ends
        for chunk in chunks:
            rejected = chunk.bad + await _deliver_chunk(engine, chunk.events, report)
            if not settled:
                # The next pass re-reads from where the first unwritten reject lies and
                # sets aside everything after it: appending these now would double them.
                continue
            try:
                reject_lines(directory, rejected)
            except OSError as error:
                # The events are in; these lines stay in the batch until a pass can set them
                # aside, and the offset stays where they start.
                settled = False
                logger.warning("cannot write the rejected file (%s); the batch is kept", error)
            else:
                report.rejected += len(rejected)
            if settled:
                try:
                    _write_offset(path, chunk.end)
                except OSError as error:  # only costs re-reading stored lines next time
                    logger.warning("cannot record how far %s is delivered: %s", path, error)
    if settled:
        os.unlink(path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + OFFSET_SUFFIX)
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
    long-running deliverer does that once, not on every pass. Chunks are parsed in the
    calling thread, between the chunk's statements: tens of milliseconds at a time.

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
        finish_interrupted_requeues(directory)
        spool.rotate(directory)
        with _paced_collection():
            for path in spool.batch_files(directory):
                report.add(await deliver_batch_file(engine, directory, path, batch_size))
    except Exception as error:
        if (outage := _outage(error, engine)) is None:
            raise
        raise outage from error
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
    _freeze_startup_objects()
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
                    # Nothing stops a following deliverer: a fault that is not the
                    # database's (a bug, a disk error) is logged whole and retried later
                    # like an outage, and the events wait in the spool meanwhile. One we
                    # explained (ours) is one line, as the command line would print it.
                    backoff = min(max(1.0, backoff * 2), 30.0)
                    if is_transient(error) or isinstance(error, SessionDBError):
                        logger.warning("delivery failed, retrying in %.0f s: %s", backoff, error)
                    else:
                        logger.exception("delivery failed, retrying in %.0f s", backoff)
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


# --- rejected events: reading them, and putting them back in the spool -----------------

REQUEUE_PREFIX = "requeue-"
# The hook's own rejections are raw spool lines; their reason is only in hook.log.
_HOOK_REJECTED = "rejected by the hook: the input is not a JSON object, or is too large"


@dataclass
class RejectedEvent:
    """One line of `rejected.jsonl`: the spool line as received, and why it was set aside."""

    line: bytes
    reason: str
    rejected_at: float | None = None
    spool_id: str | None = None
    event: str | None = None


def _read_record(raw: bytes) -> RejectedEvent:
    """The spool line a rejected file's line holds, and why, without reading the line."""
    record: object = None
    if raw.lstrip().startswith(b'{"rejected_at"'):
        with contextlib.suppress(ValueError):
            record = json.loads(raw)
    if isinstance(record, dict) and isinstance(record.get("line"), str):
        line = record["line"].encode("utf-8", "replace")
        reason = str(record.get("reason") or "no reason recorded")
        at = record.get("rejected_at")
        rejected = RejectedEvent(line, reason, at if isinstance(at, int | float) else None)
    else:
        rejected = RejectedEvent(raw.rstrip(b"\r\n") + b"\n", _HOOK_REJECTED)
    if not rejected.line.endswith(b"\n"):
        rejected.line += b"\n"
    return rejected


class _FirstSight:
    """Tells whether a spool line is met for the first time.

    A line can be in the rejected file twice: set aside again after a crash, or a full
    disk, kept the pass from recording that it was. Every spool line is unique (its
    header has its spool id), so a repeat is the same event: it is counted and re-queued
    once. A digest per line, not the line, bounds the memory.
    """

    def __init__(self) -> None:
        self._seen: set[bytes] = set()

    def __call__(self, line: bytes) -> bool:
        digest = hashlib.blake2b(line, digest_size=16).digest()
        if digest in self._seen:
            return False
        self._seen.add(digest)
        return True


def parse_rejected(raw: bytes) -> RejectedEvent:
    """Read one line of the rejected file: the deliverer's record, or the hook's raw line."""
    rejected = _read_record(raw)
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        header, payload = spool.split_line(rejected.line)
        fields = json.loads(header)
        if isinstance(fields, dict) and isinstance(fields.get("spool_id"), str):
            rejected.spool_id = fields["spool_id"]
        if len(payload) < 1_000_000:  # a name for people; a huge payload is not read for it
            body = json.loads(payload)
            if isinstance(body, dict) and isinstance(body.get("hook_event_name"), str):
                rejected.event = body["hook_event_name"]
    return rejected


def _rejected_files(directory: str) -> list[str]:
    """The rejected file, and any left by a re-queue that a crash interrupted."""
    try:
        names = sorted(n for n in os.listdir(directory) if n.startswith(REQUEUE_PREFIX))
    except (FileNotFoundError, NotADirectoryError):
        return []
    names = [n for n in names if n.endswith(".jsonl")]
    return [os.path.join(directory, n) for n in names] + [
        os.path.join(directory, spool.REJECTED_FILE)
    ]


def rejected_events(directory: str, last: int = 5) -> tuple[int, list[RejectedEvent]]:
    """Return how many events are set aside as rejected, and the last `last` of them."""
    from collections import deque

    count = 0
    recent: deque[bytes] = deque(maxlen=max(last, 0))
    first = _FirstSight()
    for path in _rejected_files(directory):
        try:
            with open(path, "rb") as handle:
                for raw in handle:
                    if raw.strip() and first(_read_record(raw).line):
                        count += 1
                        recent.append(raw)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return count, [parse_rejected(raw) for raw in recent]


def requeue_rejected(directory: str) -> list[tuple[str, int]]:
    """Move every rejected event back into the spool as a new batch file, exactly once.

    Call it holding the pass lock (`retry_rejected` does), so no pass rejects meanwhile.
    The rejected file is renamed to `requeue-<id>.jsonl` (the hook's later rejections
    start a new one); its spool lines are written to `batch-<id>.jsonl.tmp` and fsynced;
    only then is the requeue file removed, and the batch published by a rename. After a
    crash at any point the next call, or delivery pass, finishes the job: a `.tmp` whose
    requeue file is gone is complete and is published, one beside its requeue file is
    made again. So each line is in one place at every moment, and none is lost or
    doubled (a line the rejected file holds twice is re-queued once).

    Returns:
        The batch files made (none when nothing was rejected), each with its event count.
    """
    batches = finish_interrupted_requeues(directory)
    live = os.path.join(directory, spool.REJECTED_FILE)
    try:
        if os.stat(live).st_size == 0:
            return batches
    except FileNotFoundError:
        return batches
    ident = f"{time.time_ns():020d}-{os.urandom(4).hex()}"
    moved = os.path.join(directory, f"{REQUEUE_PREFIX}{ident}.jsonl")
    os.replace(live, moved)
    spool._fsync_dir(directory)
    with open(moved, "rb") as handle:  # a hook that locked the old file finishes first
        if spool.fcntl is not None:
            spool.fcntl.flock(handle.fileno(), spool.fcntl.LOCK_EX)
    made = _finish_requeue(directory, moved)
    return batches + ([made] if made is not None else [])


_UNPUBLISHED = spool.BATCH_SUFFIX + ".tmp"


def _unpublished_batches(directory: str) -> list[str]:
    """The batch files a re-queue wrote but did not publish yet (`requeue_rejected`)."""
    try:
        names = os.listdir(directory)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [
        os.path.join(directory, n)
        for n in sorted(names)
        if n.startswith(spool.BATCH_PREFIX) and n.endswith(_UNPUBLISHED)
    ]


def _requeue_file(unpublished: str) -> str:
    """The requeue file an unpublished batch file is being made from."""
    directory, name = os.path.split(unpublished)
    ident = name[len(spool.BATCH_PREFIX) : -len(_UNPUBLISHED)]
    return os.path.join(directory, f"{REQUEUE_PREFIX}{ident}.jsonl")


def _interrupted_requeues(directory: str) -> list[str]:
    """The requeue files of re-queues a crash interrupted (some may be gone already, their
    batch written but not published). Only meaningful under the pass lock, which every
    re-queue holds throughout."""
    requeues = set(_rejected_files(directory)[:-1])
    requeues.update(_requeue_file(path) for path in _unpublished_batches(directory))
    return sorted(requeues)


def finish_interrupted_requeues(directory: str) -> list[tuple[str, int]]:
    """Finish the re-queues a crash interrupted (see `requeue_rejected`), under the pass lock.

    Every delivery pass does this first, so events a `--retry-rejected` had taken out of
    the rejected file are delivered even if nobody asks again.

    Returns:
        The batch files published, each with its event count.
    """
    return [
        made
        for path in _interrupted_requeues(directory)
        if (made := _finish_requeue(directory, path)) is not None
    ]


def _finish_requeue(directory: str, moved: str) -> tuple[str, int] | None:
    """Turn a requeue file into its batch file (see `requeue_rejected`)."""
    ident = os.path.basename(moved)[len(REQUEUE_PREFIX) : -len(".jsonl")]
    batch = os.path.join(directory, f"{spool.BATCH_PREFIX}{ident}{spool.BATCH_SUFFIX}")
    temp = batch + ".tmp"
    count = 0
    if os.path.exists(moved):
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            first = _FirstSight()
            with open(moved, "rb") as source:
                for raw in source:
                    if raw.strip() and first(line := _read_record(raw).line):
                        spool._write_all(fd, line)
                        count += 1
            os.fsync(fd)
        finally:
            os.close(fd)
        os.unlink(moved)  # the commit: from here on the lines are the temporary file's
        spool._fsync_dir(directory)
    elif os.path.exists(temp):
        with open(temp, "rb") as handle:
            count = sum(1 for raw in handle if raw.strip())
    else:
        return None
    os.replace(temp, batch)
    spool._fsync_dir(directory)
    return batch, count


async def retry_rejected(
    engine: AsyncEngine, directory: str | None = None, *, import_transcripts: bool = True
) -> tuple[int, DeliveryReport]:
    """Put the rejected events back in the spool and deliver them now.

    Events the database now takes are stored (those stored before are duplicates, by
    spool id); those still refused go back to `rejected.jsonl`, once, with their reason.

    Returns:
        How many events were re-queued, and what their delivery did.

    Raises:
        DatabaseUnavailableError: The database is down or not migrated; the re-queued
            events wait in the spool as a batch file for the next pass.
    """
    directory = directory or spool.spool_dir()
    lock = spool.FileLock(directory, spool.PASS_LOCK)
    await asyncio.to_thread(lock.acquire)
    try:
        await ensure_migrated(engine)  # before: a database not ready leaves them as they are
        batches = requeue_rejected(directory)
        report = DeliveryReport()
        if not batches:
            return 0, report
        try:
            for batch, _ in batches:
                report.add(await deliver_batch_file(engine, directory, batch))
        except Exception as error:
            if (outage := _outage(error, engine)) is None:
                raise
            raise outage from error
    finally:
        lock.release()
    if import_transcripts and report.transcripts:
        await _import_transcripts(engine, report.transcripts)
    return sum(count for _, count in batches), report


def spool_status(directory: str) -> dict[str, object]:
    """Return what waits in the spool, what was rejected, and the deliverer's recent log."""
    waiting = 0
    files = spool.batch_files(directory)
    # A re-queue's batch written but not published: the next pass publishes it.
    unpublished = [
        path for path in _unpublished_batches(directory) if not os.path.exists(_requeue_file(path))
    ]
    for path in [*files, *unpublished, os.path.join(directory, spool.LIVE_FILE)]:
        try:
            with open(path, "rb") as handle:
                handle.seek(_read_offset(path) if path in files else 0)  # delivered before
                waiting += sum(1 for line in handle if line.strip())
        except (FileNotFoundError, NotADirectoryError):
            continue
    rejected, _ = rejected_events(directory, last=0)
    recent: list[str] = []
    for name in (spool.HOOK_LOG, spool.DELIVERER_LOG):
        try:
            with open(os.path.join(directory, name), encoding="utf-8", errors="replace") as log:
                recent.extend(f"{name}: {line.rstrip()}" for line in log.readlines()[-5:])
        except (FileNotFoundError, NotADirectoryError):
            continue
    return {
        "spool_dir": directory,
        "waiting": waiting,
        "batch_files": len(files),
        "rejected": rejected,
        "deliverer_pid": spool.deliverer_pid(directory),
        "recent_log": recent,
    }
