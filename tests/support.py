"""Helpers the tests share: settings without the developer's environment, running the
command line or the interpreter, emptying a test database, and the fixture files.

A module rather than conftest.py, so tests import helpers by name (`from support import
cli`) and conftest.py holds only fixtures.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import event, text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.config import Settings
from session_db.models import metadata

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
FIXTURES = TESTS / "fixtures"
# A real Claude Code session's transcripts (see fixtures/claude-code/LICENSE).
SPOTTER = FIXTURES / "claude-code" / "spotter"
ENGINES = ("sqlite", "postgresql")


def isolated_settings() -> Settings:
    """Settings that ignore the developer's own `.env` and environment."""
    return Settings(_env_file=None, url=None, data_dir=None)


async def truncate_all(engine: AsyncEngine) -> None:
    """Empty every table of a PostgreSQL test database in one statement."""
    tables = ", ".join(f'"{table.name}"' for table in metadata.sorted_tables)
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} CASCADE"))


@contextlib.contextmanager
def sent_statements(engine: AsyncEngine) -> Iterator[list[tuple[str, object]]]:
    """The SQL statements `engine` sends while the block runs, with their parameters."""
    seen: list[tuple[str, object]] = []

    def record(_conn, _cursor, statement, parameters, *_: object) -> None:  # type: ignore[no-untyped-def]
        seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `session-db ARGS` in this process; return (exit code, stdout, stderr)."""
    from session_db.cli.app import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_python(
    *args: str, env_changes: dict[str, str] | None = None, cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run this interpreter with `args` in a child process and capture its output."""
    env = {**os.environ, **(env_changes or {})}
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def engine_params() -> list[object]:
    """Parameters running a test once per engine, with readable ids."""
    return [pytest.param(name, id=name, marks=getattr(pytest.mark, name)) for name in ENGINES]


async def _admin(server: URL, sql: str) -> None:
    connection = await asyncpg.connect(
        user=server.username,
        password=server.password,
        host=server.host,
        port=server.port,
        database=server.database or "postgres",
    )
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


def create_postgres_database(server: URL) -> URL:
    """Create an empty, uniquely named database on `server` and return its URL."""
    name = f"session_db_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    return server.set(database=name)


def drop_postgres_database(server: URL, database: URL) -> None:
    """Drop a database made by `create_postgres_database`, closing its connections."""
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{database.database}" WITH (FORCE)'))


def cli_subprocess(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run the installed `session-db ARGS` console script in a child process."""
    script = Path(sys.executable).with_name("session-db")
    return subprocess.run(
        [str(script), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )
