"""Read-only sessions: on SQLite they never wait for a writer; a writer that waits too
long gets a clear, retryable error; a write inside read-only work fails on both engines."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db import crud
from session_db.config import Settings
from session_db.database import create_engine, get_async_session
from session_db.errors import DatabaseBusyError, SessionDBError, is_transient
from session_db.migrate import upgrade
from session_db.models import SessionCreate

WRITER_HOLDS_S = 4.0


@pytest.fixture
async def sqlite_engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    settings = Settings(_env_file=None, sqlite_busy_timeout_ms=300)  # type: ignore[call-arg]
    engine = create_engine(settings, url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await upgrade(engine)
    async with get_async_session(engine) as db:
        await crud.create_session(db, SessionCreate(session_slug="before-the-writer"))
    try:
        yield engine
    finally:
        await engine.dispose()


class Writer(threading.Thread):
    """Another process's writer: holds SQLite's write lock, with a change not yet committed."""

    def __init__(self, path: str) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.holding = threading.Event()
        self.released = threading.Event()

    def run(self) -> None:
        connection = sqlite3.connect(self.path, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("UPDATE sessions SET title = 'uncommitted'")
            self.holding.set()
            threading.Event().wait(WRITER_HOLDS_S)
            connection.execute("COMMIT")
        finally:
            self.released.set()
            connection.close()


def database_path(engine: AsyncEngine) -> str:
    return str(engine.url.database)


@pytest.mark.slow
async def test_a_reader_does_not_wait_for_a_writer_holding_the_lock(
    sqlite_engine: AsyncEngine,
) -> None:
    writer = Writer(database_path(sqlite_engine))
    writer.start()
    assert await asyncio.to_thread(writer.holding.wait, 10)

    async with get_async_session(sqlite_engine, read_only=True) as db:
        seen = [(s.session_slug, s.title) for s in await crud.list_sessions(db)]

    # Done while the writer still holds its transaction, and from a snapshot without it.
    assert not writer.released.is_set()
    assert seen == [("before-the-writer", None)]
    await asyncio.to_thread(writer.join, 10)


@pytest.mark.slow
async def test_a_writer_past_the_busy_timeout_gets_a_clear_retryable_error(
    sqlite_engine: AsyncEngine,
) -> None:
    writer = Writer(database_path(sqlite_engine))
    writer.start()
    assert await asyncio.to_thread(writer.holding.wait, 10)

    with pytest.raises(DatabaseBusyError) as caught:
        async with get_async_session(sqlite_engine) as db:
            await crud.create_session(db, SessionCreate(session_slug="blocked"))

    assert not writer.released.is_set()
    assert is_transient(caught.value)
    assert "busy" in str(caught.value) and "try again" in str(caught.value)
    await asyncio.to_thread(writer.join, 10)


async def test_a_write_in_read_only_work_fails_on_both_engines(engine: AsyncEngine) -> None:
    with pytest.raises(SessionDBError):
        async with get_async_session(engine, read_only=True) as db:
            await crud.create_session(db, SessionCreate(session_slug="not-written"))
    async with get_async_session(engine) as db:  # and the same connections write again
        await crud.create_session(db, SessionCreate(session_slug="written"))
    async with get_async_session(engine, read_only=True) as db:
        assert [s.session_slug for s in await crud.list_sessions(db)] == ["written"]
