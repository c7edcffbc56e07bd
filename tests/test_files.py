"""Files session_db creates are their owner's alone under a permissive umask, and errors
never show the values of a statement."""

from __future__ import annotations

import logging
import os
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.backup import backup_database
from session_db.config import Settings
from session_db.database import create_engine, get_async_session
from session_db.files import PrivateRotatingFileHandler, create_private_file
from session_db.migrate import upgrade


@pytest.fixture
def open_umask() -> Iterator[None]:
    """Run the test under umask 022, which leaves new files readable by everyone."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_create_private_file_makes_a_0600_file_once(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "new.log"
    assert create_private_file(path) is True
    assert mode(path) == 0o600
    path.write_text("kept")
    assert create_private_file(path) is False
    assert path.read_text() == "kept"


def test_rotating_log_files_are_private(tmp_path: Path, open_umask: None) -> None:
    path = tmp_path / "deliverer.log"
    handler = PrivateRotatingFileHandler(path, maxBytes=200, backupCount=2)
    log = logging.getLogger("test_files.rotation")
    log.addHandler(handler)
    log.propagate = False
    try:
        for number in range(20):
            log.warning("line %d of a log that rotates after a few hundred bytes", number)
    finally:
        log.removeHandler(handler)
        handler.close()
    files = sorted(tmp_path.glob("deliverer.log*"))
    assert len(files) == 3  # the live file and two rotated ones
    assert {mode(file) for file in files} == {0o600}


async def test_the_sqlite_file_and_its_wal_are_private(tmp_path: Path, open_umask: None) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'session_db.sqlite'}"
    engine = create_engine(Settings(_env_file=None), url=url)  # type: ignore[call-arg]
    try:
        await upgrade(engine)
        async with engine.connect() as connection:  # holds the WAL open while we look
            await connection.execute(sa.text("SELECT count(*) FROM sessions"))
            files = sorted((tmp_path / "data").iterdir())
            names = {file.name for file in files}
            assert {"session_db.sqlite", "session_db.sqlite-wal", "session_db.sqlite-shm"} <= names
            assert {file.name: mode(file) for file in files} == dict.fromkeys(names, 0o600)
        assert mode(tmp_path / "data") == 0o700
    finally:
        await engine.dispose()


async def test_a_sqlite_backup_is_private(tmp_path: Path, open_umask: None) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'session_db.sqlite'}"
    engine = create_engine(Settings(_env_file=None), url=url)  # type: ignore[call-arg]
    try:
        await upgrade(engine)
        copy = await backup_database(engine)
    finally:
        await engine.dispose()
    assert mode(copy) == 0o600
    assert copy.stat().st_size > 0


@pytest.mark.skipif(shutil.which("pg_dump") is None, reason="needs pg_dump (PostgreSQL client)")
async def test_a_pg_dump_backup_is_private(
    postgres_database: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, open_umask: None
) -> None:
    monkeypatch.setenv("SESSION_DB_DATA_DIR", str(tmp_path / "data"))
    engine = create_engine(Settings(_env_file=None), url=postgres_database)  # type: ignore[call-arg]
    try:
        copy = await backup_database(engine)
    finally:
        await engine.dispose()
    assert mode(copy) == 0o600
    assert copy.stat().st_size > 0


async def test_a_database_error_names_the_statement_but_not_its_values(
    engine: AsyncEngine,
) -> None:
    secret = "sk-ant-api03-do-not-log-this"
    table = sa.table("projects", sa.column("id"), sa.column("name"), sa.column("path"))
    with pytest.raises(DBAPIError) as caught:
        async with get_async_session(engine) as db:
            # No id: the NOT NULL primary key refuses the row, carrying our "secret".
            await db.exec(sa.insert(table).values(name=secret, path=secret))  # type: ignore[call-overload]
    text = str(caught.value)
    assert "INSERT INTO projects" in text
    assert secret not in text
