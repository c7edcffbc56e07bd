"""Throwaway databases for the tests: a real PostgreSQL and a real SQLite file.

PostgreSQL is found in this order, and the run fails (never skips) if none answers:
1. `SESSION_DB_TEST_URL`, a URL of a server where we may create databases;
2. a server on 127.0.0.1:5432 as user `postgres` (trust auth, as on CI machines);
3. a testcontainers PostgreSQL, where a Docker engine answers.

Each run creates its own uniquely named database, migrated with Alembic, and drops it at
the end. Each test gets a clean slate: a fresh copy of a migrated SQLite file, or the
PostgreSQL database with every table truncated after the test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool
from sqlmodel.ext.asyncio.session import AsyncSession
from support import (
    ENGINES,
    create_postgres_database,
    drop_postgres_database,
    engine_params,
    isolated_settings,
    truncate_all,
)

from session_db.database import create_engine, get_async_session
from session_db.migrate import upgrade

LOCAL_SERVER_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"


async def _answers(url: URL) -> bool:
    try:
        connection = await asyncpg.connect(
            user=url.username,
            password=url.password,
            host=url.host or "127.0.0.1",
            port=url.port or 5432,
            database=url.database or "postgres",
            timeout=3,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError):
        return False
    await connection.close()
    return True


def _start_testcontainer() -> tuple[URL, object] | None:
    try:
        try:
            from testcontainers.community.postgres import PostgresContainer
        except ImportError:  # testcontainers before the community split
            from testcontainers.postgres import PostgresContainer

        container = PostgresContainer("postgres:16-alpine", driver="asyncpg")
        container.start()
    except Exception:  # no Docker engine, no image, no permission: try the next source
        return None
    return make_url(container.get_connection_url()), container


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[URL]:
    """The URL of a PostgreSQL server where the tests may create databases."""
    explicit = os.environ.get("SESSION_DB_TEST_URL")
    if explicit:
        url = make_url(explicit).set(drivername="postgresql+asyncpg")
        if not asyncio.run(_answers(url)):
            pytest.exit(f"SESSION_DB_TEST_URL ({url}) does not answer", returncode=3)
        yield url
        return
    local = make_url(LOCAL_SERVER_URL)
    if asyncio.run(_answers(local)):
        yield local
        return
    started = _start_testcontainer()
    if started is not None:
        url, container = started
        try:
            yield url
        finally:
            container.stop()  # type: ignore[attr-defined]
        return
    pytest.exit(
        "No PostgreSQL for the tests: set SESSION_DB_TEST_URL to a server where databases "
        "may be created, start one on 127.0.0.1:5432 (user postgres, trust auth), or run a "
        "Docker engine so testcontainers can start one.",
        returncode=3,
    )


async def _migrate(url: URL | str) -> None:
    engine = create_engine(isolated_settings(), url=url, poolclass=NullPool)
    try:
        await upgrade(engine, "head")
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def postgres_database(postgres_server: URL) -> Iterator[URL]:
    """One migrated PostgreSQL database for the whole run, dropped at the end."""
    database = create_postgres_database(postgres_server)
    try:
        asyncio.run(_migrate(database))
        yield database
    finally:
        drop_postgres_database(postgres_server, database)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.sqlite"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(params=engine_params())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> URL:
    """A migrated, empty database of each engine in turn."""
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return make_url(f"sqlite+aiosqlite:///{path}")
    return request.getfixturevalue("postgres_database")


@pytest.fixture
async def engine(db_url: URL) -> AsyncIterator[AsyncEngine]:
    """An engine on the test database; PostgreSQL tables are emptied afterwards."""
    engine = create_engine(isolated_settings(), url=db_url)
    try:
        yield engine
    finally:
        if engine.dialect.name == "postgresql":
            await truncate_all(engine)
        await engine.dispose()


@pytest.fixture
async def db(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    """A session that commits when the test body ends cleanly."""
    async with get_async_session(engine) as session:
        yield session


@pytest.fixture
async def default_database(
    db_url: URL, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> AsyncIterator[URL]:
    """Point SESSION_DB_URL at the test database, so calls without an engine use it."""
    from session_db import database

    monkeypatch.chdir(tmp_path)  # away from any developer .env
    monkeypatch.setenv("SESSION_DB_URL", db_url.render_as_string(hide_password=False))
    monkeypatch.delenv("SESSION_DB_ALLOW_RESET", raising=False)
    await database.dispose_engine()
    try:
        yield db_url
    finally:
        await database.dispose_engine()
        if db_url.get_backend_name() == "postgresql":
            cleaner = create_engine(isolated_settings(), url=db_url, poolclass=NullPool)
            await truncate_all(cleaner)
            await cleaner.dispose()


@pytest.fixture
def cli_db(db_url: URL, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[URL]:
    """SESSION_DB_URL pointing at the test database; PostgreSQL emptied afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SESSION_DB_URL", db_url.render_as_string(hide_password=False))
    monkeypatch.setenv("SESSION_DB_DATA_DIR", str(tmp_path / "data"))
    yield db_url
    if db_url.get_backend_name() == "postgresql":
        engine = create_engine(isolated_settings(), url=db_url, poolclass=NullPool)
        asyncio.run(truncate_all(engine))


def pytest_configure(config: pytest.Config) -> None:
    for name in ENGINES:
        config.addinivalue_line("markers", f"{name}: runs against {name}")
