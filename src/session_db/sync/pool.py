"""SyncPool: mirrors saved session folders into the database in the background.

A backend injects `pool.submit` as the StateManager's `on_save_callback`. `submit()`
only records the folder and wakes the pool's own thread, so an agent's save never waits
for the database, whatever state the database is in. The pool's thread runs an event
loop with its own engine and a bounded number of workers; each sync uses its own
AsyncSession. A sync starts `delay` seconds after the first save that asked for it, and
every save of that folder in between joins it: a burst of saves costs one sync, which
reads the newest files, and the agent's thread is not competing with a sync after
every save.

The filesystem is the truth: a sync that cannot be done now is logged and left for the
next one ("log and move on"), and `close()` drains what is queued.
"""

import asyncio
import atexit
import contextlib
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.config import Settings
from session_db.database import create_engine, get_async_session
from session_db.errors import SessionDBError, is_transient
from session_db.retry import retry_transient
from session_db.sync.folders import project_root_of
from session_db.sync.mirror import SyncResult, sync_session

logger = logging.getLogger(__name__)


class SyncPoolClosedError(SessionDBError, RuntimeError):
    """`submit()` was called after `close()`."""


@dataclass(frozen=True)
class SyncPoolStats:
    """Counters since the pool started.

    Attributes:
        submitted: Calls to submit().
        coalesced: Submits absorbed by a sync already waiting for that folder.
        synced: Syncs that ran to the end and committed (any outcome, see SyncResult).
        retried: Attempts repeated after a transient database error.
        failed: Syncs given up on (permanent error, or transient errors past the limit).
        pending: Folders waiting or being synced right now.
    """

    submitted: int
    coalesced: int
    synced: int
    retried: int
    failed: int
    pending: int


@dataclass(frozen=True)
class _Job:
    project_root: Path
    session_dir: Path


class SyncPool:
    """Background, coalescing, bounded sync of session folders into the database."""

    def __init__(
        self,
        *,
        settings: Settings | None = None,
        url: str | None = None,
        engine_factory: Callable[[], AsyncEngine] | None = None,
        project_root: str | os.PathLike[str] | None = None,
        concurrency: int = 2,
        delay: float = 0.25,
        max_attempts: int = 10,
        initial_backoff: float = 0.2,
        max_backoff: float = 30.0,
        on_result: Callable[[SyncResult], object] | None = None,
    ) -> None:
        """Start the pool's thread; nothing connects until the first sync.

        Args:
            settings: Settings to build the engine from (read from the environment if
                omitted).
            url: A database URL overriding the settings.
            engine_factory: Builds the pool's engine instead (called on the pool's
                thread; the engine must not be shared with another event loop).
            project_root: The project every submitted folder belongs to; when omitted it
                is read off each folder's `{root}/agents/sessions/{slug}` path.
            concurrency: Folders synced at once.
            delay: Seconds between a folder's first submit and its sync; submits in
                between coalesce. `close()` skips the wait.
            max_attempts: Attempts per sync when the database is unavailable.
            initial_backoff: Seconds before the first retry; doubled each time.
            max_backoff: The longest wait between two attempts, in seconds.
            on_result: Called on the pool's thread with each finished sync's result.
        """
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if delay < 0:
            raise ValueError("delay must not be negative")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self._engine_factory = engine_factory or (lambda: create_engine(settings, url=url))
        self._project_root = Path(project_root).absolute() if project_root else None
        self._concurrency = concurrency
        self._delay = delay
        self._max_attempts = max_attempts
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._on_result = on_result

        self._lock = threading.Lock()
        self._waiting: dict[Path, _Job] = {}  # queued, not started
        self._running: set[Path] = set()
        self._again: dict[Path, _Job] = {}  # submitted while running: sync once more after
        self._counts = dict.fromkeys(("submitted", "coalesced", "synced", "retried", "failed"), 0)
        self._closed = False
        self._idle = threading.Condition(self._lock)

        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue[tuple[float, Path] | None] | None = None
        self._hurry: asyncio.Event | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._thread = threading.Thread(target=self._run, name="session-db-sync", daemon=True)
        self._startup_error: BaseException | None = None
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            raise self._startup_error
        # An interpreter that exits without close() still drains (briefly) what is queued.
        atexit.register(self._close_at_exit)

    def __repr__(self) -> str:
        stats = self.stats()
        state = "closed" if self._closed else "open"
        return f"SyncPool({state}, pending={stats.pending}, synced={stats.synced})"

    def __enter__(self) -> "SyncPool":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def submit(self, session_dir: str | os.PathLike[str]) -> None:
        """Queue a sync of a session folder and return at once; safe from any thread.

        Raises:
            SyncPoolClosedError: The pool is closed.
            PathEscapeError: The folder is not laid out as `{root}/agents/sessions/{slug}`
                and the pool has no project root.
        """
        folder = Path(os.path.normpath(Path(session_dir).absolute()))
        root = self._project_root or project_root_of(folder)
        job = _Job(root, folder)
        with self._lock:
            if self._closed:
                raise SyncPoolClosedError("the sync pool is closed")
            self._counts["submitted"] += 1
            if folder in self._waiting or folder in self._again:
                self._counts["coalesced"] += 1
                return
            if folder in self._running:
                self._again[folder] = job
                return
            self._waiting[folder] = job
        assert self._loop is not None and self._queue is not None
        self._loop.call_soon_threadsafe(self._enqueue, folder)

    def _enqueue(self, folder: Path) -> None:
        assert self._loop is not None and self._queue is not None
        self._queue.put_nowait((self._loop.time() + self._delay, folder))

    def stats(self) -> SyncPoolStats:
        """A snapshot of the counters."""
        with self._lock:
            pending = len(self._waiting) + len(self._running) + len(self._again)
            return SyncPoolStats(**self._counts, pending=pending)

    def wait_until_idle(self, timeout: float | None = None) -> bool:
        """Block until nothing is waiting or running; False if `timeout` passed first."""
        with self._idle:
            return self._idle.wait_for(self._is_idle, timeout)

    def close(self, timeout: float = 30.0) -> bool:
        """Stop taking submits, finish what is queued, and stop the thread.

        Args:
            timeout: Seconds to wait for the queue to drain; what is left after that is
                logged and dropped (the next sync of those folders catches up).

        Returns:
            True if everything queued was synced (or given up on) before the timeout.
        """
        with self._lock:
            if self._closed:
                return self._is_idle()
            self._closed = True
        atexit.unregister(self._close_at_exit)
        assert self._loop is not None and self._hurry is not None
        self._loop.call_soon_threadsafe(self._hurry.set)
        drained = self.wait_until_idle(timeout)
        if not drained:
            logger.warning(
                "sync pool closed with %d folders not synced; the next sync catches up",
                self.stats().pending,
            )
        assert self._loop is not None and self._queue is not None
        for _ in range(self._concurrency):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, None)
        if not drained:
            self._loop.call_soon_threadsafe(self._cancel_workers)
        self._thread.join(timeout=10)
        return drained

    def _close_at_exit(self) -> None:
        self.close(timeout=5.0)

    def _is_idle(self) -> bool:
        return not (self._waiting or self._running or self._again)

    # The pool's thread -------------------------------------------------------------

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._queue = asyncio.Queue()
        self._hurry = asyncio.Event()
        try:
            loop.run_until_complete(self._serve())
        finally:
            loop.close()

    async def _serve(self) -> None:
        try:
            engine = self._engine_factory()
        except BaseException as error:  # a bad URL: __init__ raises it to the caller
            self._startup_error = error
            self._ready.set()
            return
        self._workers = [asyncio.create_task(self._work(engine)) for _ in range(self._concurrency)]
        self._ready.set()
        try:
            await asyncio.gather(*self._workers, return_exceptions=True)
        finally:
            await engine.dispose()

    def _cancel_workers(self) -> None:
        for worker in self._workers:
            worker.cancel()

    async def _work(self, engine: AsyncEngine) -> None:
        assert self._queue is not None and self._hurry is not None
        while True:
            item = await self._queue.get()
            if item is None:
                return
            due, folder = item
            wait = due - asyncio.get_running_loop().time()
            if wait > 0 and not self._hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._hurry.wait(), wait)
            with self._lock:
                job = self._waiting.pop(folder)
                self._running.add(folder)
            try:
                await self._sync(engine, job)
            finally:
                with self._lock:
                    self._running.discard(folder)
                    again = self._again.pop(folder, None)
                    if again is not None:
                        self._waiting[folder] = again
                        self._enqueue(folder)
                    self._idle.notify_all()

    async def _sync(self, engine: AsyncEngine, job: _Job) -> None:
        tries = 0

        async def attempt() -> SyncResult:
            # One folder, one transaction: a transient fault runs all of it again.
            nonlocal tries
            tries += 1
            if tries > 1:
                self._count("retried")
            async with get_async_session(engine) as db:
                return await sync_session(db, job.project_root, job.session_dir)

        try:
            result = await retry_transient(
                attempt,
                attempts=self._max_attempts,
                first_delay=self._initial_backoff,
                max_delay=self._max_backoff,
                what=f"sync of {job.session_dir}",
            )
        except Exception as error:
            self._count("failed")
            if is_transient(error):
                logger.warning(
                    "gave up syncing %s after %d attempts: %s",
                    job.session_dir,
                    tries,
                    _one_line(error),
                )
            else:  # the next save of the folder tries again
                logger.error("could not sync %s: %s", job.session_dir, _one_line(error))
            return
        self._count("synced")
        if self._on_result is not None:
            try:
                self._on_result(result)
            except Exception:
                logger.exception("on_result callback failed")

    def _count(self, name: str) -> None:
        with self._lock:
            self._counts[name] += 1


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
