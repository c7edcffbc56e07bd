"""Engines, sessions and the database lifecycle: `init_db`, `get_async_session`, `reset_db`.

Nothing here runs at import. The default engine is built from the settings the first time
something asks for it; pass an engine explicitly to use another database.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import Pool
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import jsoncodec
from session_db.config import Settings, get_settings, parse_database_url
from session_db.errors import ConfigurationError, ResetRefusedError
from session_db.files import create_private_file

_default_engine: AsyncEngine | None = None
# The execution option that marks a read-only session's connection (see get_async_session).
READ_ONLY_OPTION = "session_db_read_only"


def create_engine(
    settings: Settings | None = None,
    *,
    url: URL | str | None = None,
    poolclass: type[Pool] | None = None,
) -> AsyncEngine:
    """Build an async engine for the configured database (or `url`).

    SQLite connections get foreign keys on, WAL, a busy timeout, and `BEGIN IMMEDIATE`
    transactions, so concurrent writers queue for the lock instead of failing; a
    read-only session (`get_async_session(read_only=True)`) begins a deferred
    transaction instead, a WAL snapshot that never waits for a writer.

    Args:
        settings: Settings to use; read from the environment when omitted.
        url: A database URL that overrides `settings.url`.
        poolclass: A pool class, e.g. `NullPool` for engines used across event loops.

    Raises:
        ConfigurationError: The URL is malformed, names an unsupported driver, a port
            outside 1-65535 or a query parameter the driver does not take.
    """
    settings = settings or get_settings()
    if url is None:
        db_url = settings.database_url()
    elif isinstance(url, URL):
        db_url = parse_database_url(url.render_as_string(hide_password=False))
    else:
        db_url = parse_database_url(url)
    _check_url(db_url)

    # JSON columns are written with orjson (see jsoncodec: same values, several times faster).
    # hide_parameters: an error's text names the statement but not its values, which hold
    # event payloads and prompts; logs and messages show it, so it must not carry them.
    kwargs: dict[str, Any] = {
        "echo": settings.echo,
        "json_serializer": jsoncodec.dumps,
        "hide_parameters": True,
    }
    if poolclass is not None:
        kwargs["poolclass"] = poolclass
    if db_url.get_backend_name() == "sqlite":
        _ensure_sqlite_folder(db_url)
        kwargs["connect_args"] = {"timeout": settings.sqlite_busy_timeout_ms / 1000}
        engine = create_async_engine(db_url, **kwargs)
        _configure_sqlite(engine, settings.sqlite_busy_timeout_ms)
        return engine

    kwargs["pool_pre_ping"] = True
    kwargs["connect_args"] = {"timeout": settings.connect_timeout}
    if poolclass is None:
        kwargs.update(
            pool_size=settings.pool_size,
            max_overflow=settings.max_overflow,
            pool_timeout=settings.pool_timeout,
        )
    return create_async_engine(db_url, **kwargs)


# What SQLAlchemy's asyncpg dialect takes from a URL's query itself; the rest of the query
# goes to asyncpg.connect as keyword arguments.
_ASYNCPG_DIALECT_PARAMETERS = frozenset(
    {"prepared_statement_cache_size", "prepared_statement_name_func", "async_creator_fn"}
)
# What pysqlite takes from a URL's query without `uri=true` (it ignores the rest, warning).
_SQLITE_PARAMETERS = frozenset(
    {"timeout", "isolation_level", "detect_types", "check_same_thread", "cached_statements", "uri"}
)


def _check_url(url: URL) -> None:
    """Refuse, before connecting, a port or a query parameter the driver would choke on.

    asyncpg raises a bare TypeError or OverflowError for these when it connects; said
    here, the message names the URL (password hidden) and the fix.
    """
    shown = url.render_as_string(hide_password=True)
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ConfigurationError(
            f"the database URL {shown} has the port {url.port}, not one of 1-65535: "
            "fix the port in SESSION_DB_URL"
        )
    if url.get_backend_name() == "sqlite":
        if str(url.query.get("uri", "")).lower() in ("true", "1"):
            return  # SQLite URI parameters (mode, cache, ...) are SQLite's to judge
        allowed = _SQLITE_PARAMETERS
    else:
        import inspect

        import asyncpg

        allowed = _ASYNCPG_DIALECT_PARAMETERS | set(inspect.signature(asyncpg.connect).parameters)
    unknown = sorted(set(url.query) - allowed)
    if unknown:
        raise ConfigurationError(
            f"the database URL {shown} has the query "
            f"parameter{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}, which "
            f"{url.get_backend_name()} does not take: remove "
            f"{'them' if len(unknown) > 1 else 'it'} from SESSION_DB_URL"
            + (" (asyncpg spells sslmode as ssl)" if "sslmode" in unknown else "")
        )


def _ensure_sqlite_folder(url: URL) -> None:
    """Create the SQLite file's folder, private to the user, unless the DB is in memory.

    A folder that cannot be made (a file in the way, no permission, a disk not mounted
    yet) is left for the connection to report: that is an outage the deliverer waits
    out, and the command line explains it (`errors.explain_open_failure`).
    """
    path = _sqlite_file(url)
    if path is not None and not path.parent.exists():
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)


def _sqlite_file(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def _configure_sqlite(engine: AsyncEngine, busy_timeout_ms: int) -> None:
    """Attach the per-connection SQLite settings and our own transaction handling."""

    @event.listens_for(engine.sync_engine, "do_connect")
    def _before_connect(*_: Any) -> None:
        # Made 0600 before SQLite opens it: SQLite gives its -wal and -shm files the
        # database file's mode, so all three stay private whatever the umask. A path
        # that cannot be made is left for the driver to report as it connects.
        path = _sqlite_file(engine.url)
        if path is not None:
            with contextlib.suppress(OSError):
                create_private_file(path)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the driver so BEGIN is ours (below): the
        # driver's implicit BEGIN breaks SAVEPOINT and leaves DDL outside transactions.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            if _is_file_database(engine.url):
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        # IMMEDIATE takes the write lock up front: a transaction that reads and then
        # writes can otherwise fail with "database is locked" when another writer wins.
        # Read-only work needs no lock at all: its deferred transaction reads a snapshot.
        # query_only makes a write in read-only work fail, as READ ONLY does on PostgreSQL.
        read_only = bool(connection.get_execution_options().get(READ_ONLY_OPTION))
        if connection.info.get("query_only", False) != read_only:
            connection.exec_driver_sql(f"PRAGMA query_only={int(read_only)}")
            connection.info["query_only"] = read_only
        connection.exec_driver_sql("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")


def _is_file_database(url: URL) -> bool:
    return bool(url.database) and url.database != ":memory:"


def get_engine() -> AsyncEngine:
    """Return the default engine, building it from the settings on first use."""
    global _default_engine
    if _default_engine is None:
        _default_engine = create_engine()
    return _default_engine


async def dispose_engine() -> None:
    """Close the default engine's connections and forget it (settings are re-read next time)."""
    global _default_engine
    engine, _default_engine = _default_engine, None
    if engine is not None:
        await engine.dispose()


def get_session_factory(engine: AsyncEngine | None = None) -> async_sessionmaker[AsyncSession]:
    """Return a factory of AsyncSessions on `engine` (default: the default engine).

    Objects stay usable after commit (`expire_on_commit=False`), so reading an attribute
    never issues a query behind the caller's back.
    """
    return async_sessionmaker(engine or get_engine(), class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def get_async_session(
    engine: AsyncEngine | None = None, *, read_only: bool = False
) -> AsyncIterator[AsyncSession]:
    """Open a session that commits when the block exits cleanly and rolls back otherwise.

    This is the one place that commits: CRUD functions only flush.

    Args:
        engine: The engine to use; the default engine when omitted.
        read_only: For work that only reads. On SQLite it takes no lock, so it never
            waits for a writer (it reads the database as of its first statement); on
            PostgreSQL the transaction is READ ONLY. A write in it fails.
    """
    engine = engine or get_engine()
    if read_only:
        engine = engine.execution_options(**{READ_ONLY_OPTION: True, "postgresql_readonly": True})
    async with get_session_factory(engine)() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        # Read-only work commits too: it ends the snapshot and, unlike a rollback, keeps
        # the objects read usable (expire_on_commit=False).
        await session.commit()


async def init_db(engine: AsyncEngine | None = None) -> None:
    """Bring the database to the newest migration (creating it if it is empty).

    Safe to call from several processes at once: PostgreSQL serialises the upgrade on an
    advisory lock and SQLite on its write lock.
    """
    from session_db import migrate

    await migrate.upgrade(engine or get_engine(), "head")


async def reset_db(*, confirm: bool = False, engine: AsyncEngine | None = None) -> None:
    """Delete every table and all data, then migrate the empty database back to head.

    Args:
        confirm: Must be True, unless the setting `SESSION_DB_ALLOW_RESET` is true.
        engine: The engine to use; the default engine when omitted.

    Raises:
        ResetRefusedError: Neither `confirm=True` nor `SESSION_DB_ALLOW_RESET=true` was given.
    """
    if not (confirm or get_settings().allow_reset):
        raise ResetRefusedError(
            "reset_db() deletes every row; call reset_db(confirm=True) "
            "or set SESSION_DB_ALLOW_RESET=true to allow it"
        )
    from session_db import migrate

    engine = engine or get_engine()
    await migrate.downgrade(engine, "base")
    await migrate.upgrade(engine, "head")


def describe_url(engine: AsyncEngine | None = None) -> str:
    """Return the engine's URL with the password masked, for messages and logs."""
    return (engine or get_engine()).url.render_as_string(hide_password=True)


__all__ = [
    "AsyncSession",
    "create_engine",
    "describe_url",
    "dispose_engine",
    "get_async_session",
    "get_engine",
    "get_session_factory",
    "init_db",
    "reset_db",
]
