"""Faults for the delivery tests: a database that goes away, for real, and comes back.

Each helper runs in a thread of its own (with its own event loop where it needs one), so
the fault keeps its own pace whatever the code under test does with the test's loop, and
it works the same for code in this process and in child processes.

- `TcpProxy` stands between an engine and PostgreSQL: it forwards, or it is down (the
  port refuses connections, or accepts and resets them), and it can cut every open one.
- `BackendTerminator` runs `pg_terminate_backend` on every other connection to one
  database, again and again, at random intervals.
- `SqliteLockHog` takes SQLite's write lock (`BEGIN EXCLUSIVE`) and holds it, once or
  again and again, so writers with a short busy timeout are turned away.
- `FolderSwap` puts a plain file where the SQLite database's folder was, so the file
  cannot be opened, and puts the folder back later.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Coroutine
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util import await_only
from support import isolated_settings

from session_db.database import create_engine

FORWARD = "forward"
REFUSE = "refuse"  # nothing listens on the port: connections are refused
RESET = "reset"  # the port accepts connections and resets them at once
MODES = (FORWARD, REFUSE, RESET)


class _LoopThread:
    """An event loop running in a daemon thread; `call` runs a coroutine on it."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close a socket with a TCP reset, as a dying server or a broken network would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class TcpProxy:
    """A TCP proxy from 127.0.0.1:`port` to `target`, which can be taken down and up.

    Use as a context manager, or call `start()` and `close()`.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.mode = FORWARD
        self.accepted = 0  # connections accepted while forwarding
        self.turned_away = 0  # connections reset while down in RESET mode
        self._server: asyncio.AbstractServer | None = None
        self._pipes: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()
        self._runner: _LoopThread | None = None

    def __enter__(self) -> TcpProxy:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> int:
        """Start listening on a free port; return it."""
        self._runner = _LoopThread("tcp-proxy")
        self._runner.call(self._listen())
        return self.port

    def close(self) -> None:
        """Stop listening, cut every connection and stop the thread."""
        if self._runner is None:
            return
        self._runner.call(self._stop_listening())
        self._runner.call(self._sever())
        self._runner.stop()
        self._runner = None

    def down(self, mode: str = REFUSE) -> None:
        """Cut every open connection and refuse (or reset) new ones until `up()`."""
        assert mode in (REFUSE, RESET), mode
        assert self._runner is not None, "start the proxy first"
        self._runner.call(self._down(mode))

    def up(self) -> None:
        """Forward new connections again (listening on the same port)."""
        assert self._runner is not None, "start the proxy first"
        self._runner.call(self._up())

    def sever(self) -> None:
        """Cut every open connection (new ones are still forwarded)."""
        assert self._runner is not None, "start the proxy first"
        self._runner.call(self._sever())

    @property
    def open_connections(self) -> int:
        return len(self._pipes)

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._handle, "127.0.0.1", self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _down(self, mode: str) -> None:
        self.mode = mode
        if mode == REFUSE:
            await self._stop_listening()
        await self._sever()

    async def _up(self) -> None:
        self.mode = FORWARD
        if self._server is None:
            await self._listen()

    async def _sever(self) -> None:
        for client, upstream in list(self._pipes):
            _abort(client)
            _abort(upstream)
        self._pipes.clear()
        await asyncio.sleep(0)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode != FORWARD:
            self.turned_away += 1
            _abort(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _abort(writer)
            return
        self.accepted += 1
        pipe = (writer, up_writer)
        self._pipes.add(pipe)
        try:
            await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        finally:
            self._pipes.discard(pipe)
            for side in pipe:
                side.close()

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                if writer.can_write_eof():
                    writer.write_eof()


class BackendTerminator:
    """Terminates every other connection to `database`, every `low` to `high` seconds.

    Counts what it did: `rounds` (queries run) and `terminated` (connections ended).
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        user: str,
        password: str | None,
        database: str,
        low: float = 0.2,
        high: float = 2.0,
        seed: int | None = None,
    ) -> None:
        self.connect_args = {"host": host, "port": port, "user": user, "password": password}
        self.database = database
        self.low, self.high = low, high
        self.random = random.Random(seed)
        self.rounds = 0
        self.terminated = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="terminator", daemon=True)

    def __enter__(self) -> BackendTerminator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        # Connected to the maintenance database, so it is never one of its own victims.
        connection = await asyncpg.connect(database="postgres", **self.connect_args)
        try:
            while not self._stop.wait(self.random.uniform(self.low, self.high)):
                try:
                    killed = await connection.fetchval(
                        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                        "FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() "
                        "AND backend_type = 'client backend'",
                        self.database,
                    )
                except asyncpg.PostgresError as error:  # keep going; the test reports it
                    self.errors.append(error)
                    continue
                self.rounds += 1
                self.terminated += killed
        finally:
            await connection.close()


class SqliteLockHog:
    """Holds SQLite's write lock on `path` from a connection of its own.

    `hold()` / `release()` take and drop it once; `start()` takes it again and again
    (for `low` to `high` seconds, every `low` to `high` seconds) until `stop()`.
    """

    def __init__(
        self, path: str, *, low: float = 0.2, high: float = 2.0, seed: int | None = None
    ) -> None:
        self.connection = sqlite3.connect(
            path, timeout=60, isolation_level=None, check_same_thread=False
        )
        self.low, self.high = low, high
        self.random = random.Random(seed)
        self.holds = 0
        self.held_seconds = 0.0
        self.errors: list[BaseException] = []
        self._held = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def hold(self) -> None:
        """Take the write lock, waiting for a writer that has it (blocking: use a thread)."""
        with self._lock:
            self.connection.execute("BEGIN EXCLUSIVE")
            self._held = True
            self.holds += 1

    def release(self) -> None:
        with self._lock:
            if self._held:
                self.connection.execute("ROLLBACK")
                self._held = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._again_and_again, name="lock-hog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(120)
        self.release()

    def close(self) -> None:
        self.stop()
        self.connection.close()

    def _again_and_again(self) -> None:
        while not self._stop.wait(self.random.uniform(self.low, self.high)):
            try:
                self.hold()
            except sqlite3.OperationalError as error:  # a writer kept it for 60 s
                self.errors.append(error)
                continue
            started = time.monotonic()
            self._stop.wait(self.random.uniform(self.low, self.high))
            self.release()
            self.held_seconds += time.monotonic() - started


class FolderSwap:
    """Replaces a folder by a plain file of the same name, and puts it back."""

    def __init__(self, folder: str) -> None:
        self.folder = folder
        self.away = folder + ".away"
        self.swapped = False

    def down(self) -> None:
        os.rename(self.folder, self.away)
        with open(self.folder, "w") as blocker:
            blocker.write("not a folder: the database is unreachable\n")
        self.swapped = True

    def up(self) -> None:
        if self.swapped:
            os.unlink(self.folder)
            os.rename(self.away, self.folder)
            self.swapped = False


async def install_refusal(engine: AsyncEngine, table: str = "agent_logs") -> None:
    """Make the database itself refuse rows of `table` whose tool_name is 'Poison'.

    A trigger, the same on both engines: a refusal that is the row's, not the connection's.
    """
    async with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            await connection.execute(
                sa.text(
                    f"CREATE TRIGGER refuse_poison BEFORE INSERT ON {table} "
                    "WHEN NEW.tool_name = 'Poison' BEGIN SELECT RAISE(ABORT, 'poison'); END"
                )
            )
            return
        await connection.execute(
            sa.text(
                "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN IF NEW.tool_name = 'Poison' THEN RAISE EXCEPTION 'poison'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        await connection.execute(
            sa.text(
                f"CREATE TRIGGER refuse_poison BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
            )
        )


async def remove_refusal(engine: AsyncEngine, table: str = "agent_logs") -> None:
    """Undo `install_refusal`."""
    async with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            await connection.execute(sa.text("DROP TRIGGER IF EXISTS refuse_poison"))
            return
        await connection.execute(sa.text(f"DROP TRIGGER IF EXISTS refuse_poison ON {table}"))
        await connection.execute(sa.text("DROP FUNCTION IF EXISTS refuse_poison()"))


class Saboteur:
    """Breaks chosen transactions of an engine for real, each at a chosen point.

    Transactions are numbered from 1 in the order they begin (a retry is a new one).
    `breaks` maps a transaction's number to how it breaks. On PostgreSQL: a statement
    number (1, 2, ...) or "commit", before which the backend serving it is terminated
    from another connection (pg_terminate_backend); or "lock", where another connection
    locks the tasks table before the transaction's second statement and the transaction
    gets a short lock_timeout, so its first task write fails with its connection alive.
    On SQLite (any value) another connection takes the write lock just before the
    transaction's BEGIN IMMEDIATE. Either lock is held until the next transaction
    begins, so on SQLite the transactions must not overlap.
    """

    def __init__(self, engine: AsyncEngine, breaks: dict[int, int | str]) -> None:
        self.url = engine.url
        self.sqlite = self.url.get_backend_name() == "sqlite"
        self.breaks = breaks
        self.begun = 0
        self.broken: list[int] = []
        self._mutex = threading.Lock()
        self._holder: sqlite3.Connection | None = None
        self._locker: asyncpg.Connection | None = None
        sync = engine.sync_engine
        if not self.sqlite:  # SQLite's BEGIN is a statement of ours: seen below
            event.listen(sync, "begin", self._begin)
        event.listen(sync, "before_cursor_execute", self._statement)
        event.listen(sync, "commit", self._commit)

    def _begin(self, connection: Any) -> None:
        with self._mutex:
            self.begun += 1
            connection.info["saboteur"] = [self.begun, 0]
        if self._locker is not None:
            await_only(self._locker.close())
            self._locker = None

    def _statement(self, connection: Any, _cursor: object, statement: str, *_: object) -> None:
        if self.sqlite and statement.startswith("BEGIN"):
            self._begin(connection)
            self.release()
            number = connection.info["saboteur"][0]
            if number in self.breaks:
                self._holder = sqlite3.connect(self.url.database or "", isolation_level=None)
                self._holder.execute("BEGIN IMMEDIATE")
                self.broken.append(number)
            return
        place = connection.info.get("saboteur")
        if place is None or self.sqlite:
            return
        place[1] += 1
        how = self.breaks.get(place[0])
        if how == place[1]:
            self._terminate(connection, place[0])
        elif how == "lock" and place[1] == 2:  # the driver opens its transaction at 1
            self._locker = await_only(self._lock_tasks())
            driver = connection.connection.driver_connection
            await_only(driver.execute("SET LOCAL lock_timeout = '100ms'"))
            self.broken.append(place[0])

    def _commit(self, connection: Any) -> None:
        place = connection.info.get("saboteur")
        if place is not None and self.breaks.get(place[0]) == "commit":
            self._terminate(connection, place[0])

    def _terminate(self, connection: Any, number: int) -> None:
        pid = connection.connection.driver_connection.get_server_pid()
        # Event hooks run inside SQLAlchemy's greenlet, on the engine's own event loop.
        await_only(self._kill(pid))
        self.broken.append(number)

    async def _admin(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            user=self.url.username,
            password=self.url.password,
            host=self.url.host,
            port=self.url.port,
            database=self.url.database,
        )

    async def _kill(self, pid: int) -> None:
        admin = await self._admin()
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
        finally:
            await admin.close()

    async def _lock_tasks(self) -> asyncpg.Connection:
        locker = await self._admin()
        await locker.execute("BEGIN; LOCK TABLE tasks IN ACCESS EXCLUSIVE MODE")
        return locker

    def release(self) -> None:
        """Give SQLite's write lock back, if it is held."""
        if self._holder is not None:
            self._holder.rollback()
            self._holder.close()
            self._holder = None


def faulty_engine(db_url: URL) -> AsyncEngine:
    """An engine on the test database; SQLite gives up on a held lock after 50 ms."""
    settings = isolated_settings().model_copy(update={"sqlite_busy_timeout_ms": 50})
    return create_engine(settings, url=db_url)


def terminate_other_backends(url: URL) -> None:
    """Kill every other connection to the database at `url` (a dropped connection)."""

    async def terminate() -> None:
        connection = await asyncpg.connect(
            user=url.username, host=url.host, port=url.port, database=url.database
        )
        try:
            await connection.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        finally:
            await connection.close()

    # From a thread with its own loop: the caller is inside a statement of this loop.
    worker = threading.Thread(target=lambda: asyncio.run(terminate()))
    worker.start()
    worker.join()
