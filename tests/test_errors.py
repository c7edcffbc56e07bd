"""errors.is_transient and retry.retry_transient against real faults of real engines.

Every fault here is produced by a real server or file: a PostgreSQL backend terminated
from another connection, a refused connection, a statement timeout, a deadlock and a
serialization failure between two connections, constraint and SQL errors; SQLite's write
lock held by another connection, and a missing table. Nothing is mocked.
"""

import asyncio
import shutil
import socket
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from support import isolated_settings

from session_db import crud
from session_db.database import create_engine, get_async_session
from session_db.errors import (
    ConflictError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    is_database_fault,
    is_transient,
)
from session_db.retry import retry_transient
from session_db.sync import sync_session


async def fault_of(work: Awaitable[Any]) -> BaseException:
    """The exception `work` raises (the test fails if it raises none)."""
    try:
        await work
    except Exception as error:
        return error
    raise AssertionError("the work did not fail")


def closed_port() -> int:
    """A local port with nothing listening on it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def backend_pid(connection: AsyncConnection) -> int:
    return (await connection.execute(sa.text("SELECT pg_backend_pid()"))).scalar_one()


async def terminate(url: URL, pid: int) -> None:
    """Terminate backend `pid` from a connection of its own, and wait until it is gone."""
    admin = await asyncpg.connect(
        user=url.username, host=url.host, port=url.port, database=url.database
    )
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await admin.close()


@pytest.fixture
async def pg(postgres_database: URL) -> AsyncIterator[AsyncEngine]:
    """An engine on the run's PostgreSQL database."""
    engine = create_engine(isolated_settings(), url=postgres_database)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
async def scratch(pg: AsyncEngine) -> AsyncIterator[str]:
    """A throwaway table with a UNIQUE and a CHECK column and rows 1 and 2, dropped after."""
    name = f"errors_probe_{uuid.uuid4().hex[:8]}"
    async with pg.begin() as connection:
        await connection.execute(
            sa.text(f"CREATE TABLE {name} (id int PRIMARY KEY, v int CHECK (v >= 0), u int UNIQUE)")
        )
        await connection.execute(
            sa.text(f"INSERT INTO {name} (id, v, u) VALUES (1, 0, 1), (2, 0, 2)")
        )
    try:
        yield name
    finally:
        async with pg.begin() as connection:
            await connection.execute(sa.text(f"DROP TABLE {name}"))


# PostgreSQL: transient ------------------------------------------------------------------


@pytest.mark.postgresql
async def test_a_backend_terminated_mid_statement_is_transient_though_a_plain_dbapi_error(
    pg: AsyncEngine, postgres_database: URL
) -> None:
    async with pg.connect() as connection:
        pid = await backend_pid(connection)
        sleeping = asyncio.create_task(connection.execute(sa.text("SELECT pg_sleep(10)")))
        await asyncio.sleep(0.3)  # the statement is running on the server
        await terminate(postgres_database, pid)
        error = await fault_of(sleeping)
    # Not an OperationalError or InterfaceError: the wrapper's class alone says nothing.
    assert type(error) is DBAPIError
    assert error.connection_invalidated
    assert is_transient(error)


@pytest.mark.postgresql
async def test_a_backend_terminated_between_statements_is_transient(
    pg: AsyncEngine, postgres_database: URL
) -> None:
    async with get_async_session(pg) as db:
        await crud.count_projects(db)
        await terminate(postgres_database, await backend_pid(await db.connection()))
        error = await fault_of(crud.count_projects(db))
        await db.rollback()
    assert isinstance(error, DatabaseUnavailableError)  # the CRUD layer's translation
    assert is_transient(error)
    assert is_transient(error.__cause__)  # and the driver's own error under it


@pytest.mark.postgresql
async def test_a_refused_connection_is_transient(postgres_database: URL) -> None:
    engine = create_engine(isolated_settings(), url=postgres_database.set(port=closed_port()))
    try:
        raw = await fault_of(engine.connect().__aenter__())
        async with get_async_session(engine) as db:
            translated = await fault_of(crud.count_projects(db))
    finally:
        await engine.dispose()
    assert isinstance(raw, ConnectionRefusedError)
    assert is_transient(raw)
    assert isinstance(translated, DatabaseUnavailableError) and is_transient(translated)


@pytest.mark.postgresql
async def test_a_statement_timeout_is_transient(pg: AsyncEngine) -> None:
    async with pg.connect() as connection:
        await connection.execute(sa.text("SET statement_timeout = 50"))
        error = await fault_of(connection.execute(sa.text("SELECT pg_sleep(5)")))
    assert isinstance(error, DBAPIError) and not error.connection_invalidated
    assert "statement timeout" in str(error)
    assert is_transient(error)


@pytest.mark.postgresql
async def test_a_serialization_failure_is_transient(pg: AsyncEngine, scratch: str) -> None:
    async with pg.connect() as first, pg.connect() as second:
        await first.execute(sa.text("BEGIN ISOLATION LEVEL REPEATABLE READ"))
        await first.execute(sa.text(f"SELECT v FROM {scratch} WHERE id = 1"))
        await second.execute(sa.text(f"UPDATE {scratch} SET v = 1 WHERE id = 1"))
        await second.commit()
        error = await fault_of(first.execute(sa.text(f"UPDATE {scratch} SET v = 2 WHERE id = 1")))
    assert "could not serialize" in str(error)
    assert is_transient(error)


@pytest.mark.postgresql
async def test_a_deadlock_is_transient(pg: AsyncEngine, scratch: str) -> None:
    async with pg.connect() as first, pg.connect() as second:
        for connection in (first, second):
            await connection.execute(sa.text("SET deadlock_timeout = '50ms'"))
        await first.execute(sa.text(f"UPDATE {scratch} SET v = 1 WHERE id = 1"))
        await second.execute(sa.text(f"UPDATE {scratch} SET v = 1 WHERE id = 2"))
        waiting = asyncio.create_task(
            first.execute(sa.text(f"UPDATE {scratch} SET v = 2 WHERE id = 2"))
        )
        await asyncio.sleep(0.1)  # the first waits for the second's row lock
        outcomes = await asyncio.gather(
            waiting,
            second.execute(sa.text(f"UPDATE {scratch} SET v = 2 WHERE id = 1")),
            return_exceptions=True,
        )
    errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
    assert len(errors) == 1, outcomes  # the server broke the cycle by failing one of them
    assert "deadlock detected" in str(errors[0])
    assert is_transient(errors[0])


# PostgreSQL: permanent ------------------------------------------------------------------


@pytest.mark.postgresql
async def test_a_division_by_zero_is_permanent(pg: AsyncEngine) -> None:
    async with pg.connect() as connection:
        error = await fault_of(connection.execute(sa.text("SELECT 1 / 0")))
    assert type(error) is DBAPIError  # the same wrapper class as a killed connection
    assert not is_transient(error)
    assert not is_database_fault(error)  # the statement's own: what it was given


@pytest.mark.postgresql
async def test_check_and_unique_violations_are_permanent(pg: AsyncEngine, scratch: str) -> None:
    async with pg.connect() as connection:
        check = await fault_of(connection.execute(sa.text(f"UPDATE {scratch} SET v = -1")))
        await connection.rollback()
        unique = await fault_of(connection.execute(sa.text(f"UPDATE {scratch} SET u = 1")))
    assert isinstance(check, IntegrityError) and "check constraint" in str(check)
    assert isinstance(unique, IntegrityError) and "unique constraint" in str(unique)
    assert not is_transient(check) and not is_transient(unique)
    assert not is_database_fault(check) and not is_database_fault(unique)


@pytest.mark.postgresql
async def test_an_undefined_table_is_permanent(pg: AsyncEngine) -> None:
    async with pg.connect() as connection:
        error = await fault_of(connection.execute(sa.text("SELECT * FROM no_such_table")))
    assert isinstance(error, ProgrammingError)
    assert not is_transient(error)
    assert is_database_fault(error)  # not our schema: no row is to blame


# SQLite ---------------------------------------------------------------------------------


@pytest.fixture
def sqlite_file(sqlite_template: Path, tmp_path: Path) -> Path:
    """A migrated SQLite file of this test's own."""
    path = tmp_path / "errors.sqlite"
    shutil.copyfile(sqlite_template, path)
    return path


@pytest.mark.sqlite
async def test_a_sqlite_database_locked_by_another_writer_is_transient(
    sqlite_file: Path,
) -> None:
    holder = sqlite3.connect(sqlite_file)
    holder.execute("BEGIN IMMEDIATE")  # holds the write lock until it ends
    settings = isolated_settings().model_copy(update={"sqlite_busy_timeout_ms": 20})
    engine = create_engine(settings, url=f"sqlite+aiosqlite:///{sqlite_file}")
    try:
        async with engine.connect() as connection:
            raw = await fault_of(connection.execute(sa.text("BEGIN IMMEDIATE")))
        async with get_async_session(engine) as db:
            translated = await fault_of(crud.upsert_project(db, "/locked"))
    finally:
        await engine.dispose()
        holder.rollback()
        holder.close()
    assert isinstance(raw, OperationalError) and "database is locked" in str(raw)
    assert is_transient(raw)
    assert isinstance(translated, DatabaseUnavailableError) and is_transient(translated)


@pytest.mark.sqlite
async def test_a_sqlite_missing_table_is_permanent_though_an_operational_error(
    sqlite_file: Path,
) -> None:
    engine = create_engine(isolated_settings(), url=f"sqlite+aiosqlite:///{sqlite_file}")
    try:
        async with engine.connect() as connection:
            error = await fault_of(connection.execute(sa.text("SELECT * FROM no_such_table")))
    finally:
        await engine.dispose()
    assert isinstance(error, OperationalError) and "no such table" in str(error)
    assert not is_transient(error)
    assert is_database_fault(error)


# Our own errors -------------------------------------------------------------------------


async def test_our_own_errors_carry_their_verdict(engine: AsyncEngine, tmp_path: Path) -> None:
    assert is_transient(DatabaseUnavailableError("the server went away"))
    assert not is_transient(InvalidInputError("session", "priority", "out of range"))
    async with get_async_session(engine) as db:
        await crud.create_project(db, {"name": "p", "root_path": "/p"})
    async with get_async_session(engine) as db:
        conflict = await fault_of(crud.create_project(db, {"name": "q", "root_path": "/p"}))
        invalid = await fault_of(crud.list_projects(db, limit=0))
    assert isinstance(conflict, ConflictError) and not is_transient(conflict)
    assert isinstance(invalid, InvalidInputError) and not is_transient(invalid)
    # Raised while handling an OSError (NotADirectoryError) that by itself would count
    # as a failing disk: our verdict, not the error behind it, decides.
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    async with get_async_session(engine) as db:
        missing = await fault_of(sync_session(db, not_a_folder, "slug"))
    assert isinstance(missing, NotFoundError) and isinstance(missing.__context__, OSError)
    assert not is_transient(missing)


# retry_transient ------------------------------------------------------------------------


def counting(
    work: Callable[[int], Awaitable[Any]],
) -> tuple[Callable[[], Awaitable[Any]], list[int]]:
    """`work` called with its attempt number (1, 2, ...); the list records the attempts."""
    calls: list[int] = []

    async def run() -> Any:
        calls.append(len(calls) + 1)
        return await work(len(calls))

    return run, calls


@pytest.mark.postgresql
async def test_retry_reruns_the_unit_after_a_terminated_connection_and_succeeds(
    pg: AsyncEngine, postgres_database: URL
) -> None:
    root = f"/retry/{uuid.uuid4()}"

    async def unit(attempt: int) -> uuid.UUID:
        async with get_async_session(pg) as db:
            project_id = await crud.upsert_project(db, root)
            if attempt == 1:  # the server drops the connection mid-transaction
                await terminate(postgres_database, await backend_pid(await db.connection()))
            await crud.update_project(db, project_id, {"description": f"attempt {attempt}"})
            return project_id

    work, calls = counting(unit)
    try:
        project_id = await retry_transient(work, attempts=3, first_delay=0.01)
        async with get_async_session(pg) as db:
            project = await crud.get_project(db, project_id)
            assert calls == [1, 2]
            assert project.description == "attempt 2"  # the first attempt left nothing
    finally:
        async with get_async_session(pg) as db:
            await crud.delete_project(db, (await crud.get_project_by_path(db, root)).id)


@pytest.mark.postgresql
async def test_retry_gives_up_after_its_attempts(postgres_database: URL) -> None:
    engine = create_engine(isolated_settings(), url=postgres_database.set(port=closed_port()))

    async def unit(_: int) -> int:
        async with get_async_session(engine) as db:
            return await crud.count_projects(db)

    work, calls = counting(unit)
    try:
        with pytest.raises(DatabaseUnavailableError):
            await retry_transient(work, attempts=3, first_delay=0.01)
    finally:
        await engine.dispose()
    assert calls == [1, 2, 3]


async def test_retry_does_not_rerun_a_permanent_fault(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        await crud.create_project(db, {"name": "p", "root_path": "/p"})

    async def unit(_: int) -> None:
        async with get_async_session(engine) as db:
            await crud.create_project(db, {"name": "again", "root_path": "/p"})

    work, calls = counting(unit)
    with pytest.raises(ConflictError):
        await retry_transient(work, attempts=5, first_delay=0.01)
    assert calls == [1]


async def test_an_unknown_revision_is_a_migration_error(engine: AsyncEngine) -> None:
    from session_db.errors import MigrationError
    from session_db.migrate import downgrade

    with pytest.raises(MigrationError, match="no-such-revision"):
        await downgrade(engine, "no-such-revision")


def test_every_error_the_package_defines_is_a_session_db_error() -> None:
    import importlib
    import inspect
    import pkgutil

    import session_db
    from session_db.errors import SessionDBError

    defined = []
    for module_info in pkgutil.walk_packages(session_db.__path__, "session_db."):
        module = importlib.import_module(module_info.name)
        defined += [
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, BaseException)
            and obj.__module__ == module.__name__
            and not obj.__name__.startswith("_")  # private control flow, never raised out
        ]
    assert len(defined) >= 15  # the walk found the package's errors
    assert [e.__qualname__ for e in defined if not issubclass(e, SessionDBError)] == []
