"""Migrations are the schema: they upgrade, downgrade, match the models and ship in the wheel."""

import asyncio
import os
import subprocess
import sys
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.config import Config
from pytest_alembic.tests import (  # noqa: F401  (collected here, on both engines)
    test_model_definitions_match_ddl,
    test_single_head_revision,
    test_up_down_consistency,
    test_upgrade,
)
from sqlalchemy import inspect, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool
from support import (
    REPO,
    create_postgres_database,
    drop_postgres_database,
    engine_params,
    isolated_settings,
    run_python,
)

from session_db import migrate
from session_db.database import create_engine
from session_db.migrate import current_revision, downgrade, head_revision, upgrade
from session_db.models import metadata


@pytest.fixture(params=engine_params())
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[URL]:
    """A database of each engine with nothing in it, not even Alembic's table."""
    if request.param == "sqlite":
        yield URL.create("sqlite+aiosqlite", database=str(tmp_path / "empty.sqlite"))
        return
    server = request.getfixturevalue("postgres_server")
    database = create_postgres_database(server)
    try:
        yield database
    finally:
        drop_postgres_database(server, database)


@pytest.fixture
def alembic_config() -> Config:
    """pytest-alembic's config: our migrations, found the way an installed package finds them."""
    return migrate.alembic_config()


@pytest.fixture
def alembic_engine(empty_database: URL) -> Iterator[AsyncEngine]:
    """pytest-alembic's database handle: an AsyncEngine that env.py connects through."""
    # NullPool: pytest-alembic drives each step through its own event loop.
    engine = create_engine(isolated_settings(), url=empty_database, poolclass=NullPool)
    yield engine
    asyncio.run(engine.dispose())


def _leftovers(connection: Connection) -> list[str]:
    """Every schema object except Alembic's own version table."""
    if connection.dialect.name == "sqlite":
        rows = connection.exec_driver_sql(
            "SELECT type || ' ' || name FROM sqlite_master "
            "WHERE name NOT LIKE 'sqlite_%' AND name <> 'alembic_version'"
        )
    else:
        rows = connection.exec_driver_sql(
            "SELECT c.relkind::text || ' ' || c.relname::text FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
            "AND c.relname NOT IN ('alembic_version', 'alembic_version_pkc') "
            "UNION ALL SELECT 'type ' || t.typname::text FROM pg_type t "
            "JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = 'public' "
            "AND t.typtype IN ('e', 'd', 'c') AND t.typname <> 'alembic_version'"
        )
    return sorted(row[0] for row in rows)


async def test_downgrade_base_leaves_nothing_behind(empty_database: URL) -> None:
    engine = create_engine(isolated_settings(), url=empty_database, poolclass=NullPool)
    try:
        await upgrade(engine, "head")
        async with engine.connect() as connection:
            created = await connection.run_sync(_leftovers)
        assert any("sessions" in name for name in created)
        await downgrade(engine, "base")
        async with engine.connect() as connection:
            assert await connection.run_sync(_leftovers) == []
        assert await current_revision(engine) is None
        await upgrade(engine, "head")
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_upgrade_creates_every_model_table_and_named_constraint(
    empty_database: URL,
) -> None:
    engine = create_engine(isolated_settings(), url=empty_database, poolclass=NullPool)
    try:
        await upgrade(engine, "head")

        def names(connection: Connection) -> tuple[set[str], set[str]]:
            inspector = inspect(connection)
            tables = set(inspector.get_table_names())
            constraints = set()
            for table in tables:
                constraints.update(c["name"] for c in inspector.get_check_constraints(table))
                constraints.update(c["name"] for c in inspector.get_foreign_keys(table))
                constraints.update(c["name"] for c in inspector.get_unique_constraints(table))
                constraints.update(i["name"] for i in inspector.get_indexes(table))
            return tables, constraints

        async with engine.connect() as connection:
            tables, constraints = await connection.run_sync(names)
        assert tables == set(metadata.tables) | {"alembic_version"}
        # Every name comes from the naming convention: no engine-invented names.
        assert None not in constraints
        assert all(name.startswith(("ck_", "fk_", "uq_", "ix_")) for name in constraints), sorted(
            n for n in constraints if not n.startswith(("ck_", "fk_", "uq_", "ix_"))
        )
    finally:
        await engine.dispose()


async def test_concurrent_upgrades_in_one_process_all_succeed(empty_database: URL) -> None:
    engines = [
        create_engine(isolated_settings(), url=empty_database, poolclass=NullPool) for _ in range(3)
    ]
    try:
        await asyncio.gather(*(upgrade(engine, "head") for engine in engines))
        assert await current_revision(engines[0]) == head_revision()
    finally:
        for engine in engines:
            await engine.dispose()


@pytest.mark.slow
def test_concurrent_init_db_from_separate_processes_all_succeed(empty_database: URL) -> None:
    script = "import asyncio\nfrom session_db.database import init_db\nasyncio.run(init_db())\n"
    env = {**os.environ, "SESSION_DB_URL": empty_database.render_as_string(hide_password=False)}
    processes = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=120)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0, 0], errors

    async def revision() -> str | None:
        engine = create_engine(isolated_settings(), url=empty_database, poolclass=NullPool)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    assert asyncio.run(revision()) == head_revision()


def _alembic(*args: str, url: URL, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SESSION_DB_URL": url.render_as_string(hide_password=False)}
    return subprocess.run(
        [sys.executable, "-m", "alembic", "-c", str(REPO / "alembic.ini"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_alembic_command_line_upgrades_and_reports_no_drift(empty_database: URL) -> None:
    upgraded = _alembic("upgrade", "head", url=empty_database)
    assert upgraded.returncode == 0, upgraded.stderr
    checked = _alembic("check", url=empty_database)
    assert checked.returncode == 0, checked.stderr
    assert "No new upgrade operations detected" in checked.stdout + checked.stderr
    downgraded = _alembic("downgrade", "base", url=empty_database)
    assert downgraded.returncode == 0, downgraded.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrade_sql_prints_the_ddl_without_touching_a_database(
    backend: str, tmp_path: Path
) -> None:
    if backend == "sqlite":
        url = URL.create("sqlite+aiosqlite", database=str(tmp_path / "never.sqlite"))
    else:  # a server that does not exist: the dry run must not try to connect
        url = URL.create(
            "postgresql+asyncpg",
            username="u",
            password="p",
            host="127.0.0.1",
            port=1,
            database="nowhere",
        )
    result = _alembic("upgrade", "head", "--sql", url=url)
    assert result.returncode == 0, result.stderr
    assert "CREATE TABLE sessions" in result.stdout
    assert "ck_sessions_priority_range" in result.stdout
    assert "uq_thread_messages_thread_id_idx" in result.stdout
    assert "JSONB" in result.stdout if backend == "postgresql" else "JSONB" not in result.stdout
    assert not (tmp_path / "never.sqlite").exists()


@pytest.mark.slow
def test_migrations_ship_in_the_wheel_and_run_from_it(tmp_path: Path) -> None:
    # Built through hatchling's PEP 517 hook, not pip: a `uv sync` environment has no pip.
    built = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from hatchling.build import build_wheel; build_wheel(sys.argv[1])",
            str(tmp_path / "dist"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("session_db-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    assert "session_db/migrations/env.py" in names
    assert any(n.startswith("session_db/migrations/versions/") for n in names)

    script = (
        "import asyncio, session_db, session_db.migrate as m\n"
        "from session_db.database import create_engine, init_db\n"
        "print(session_db.__file__)\nprint(m.migrations_dir())\n"
        "engine = create_engine(url='sqlite+aiosqlite:///' + __import__('sys').argv[1])\n"
        "asyncio.run(init_db(engine))\nprint(asyncio.run(m.current_revision(engine)))\n"
    )
    ran = run_python(
        "-c",
        script,
        str(tmp_path / "from-wheel.sqlite"),
        cwd=tmp_path,
        env_changes={"PYTHONPATH": str(tmp_path / "site")},
    )
    assert ran.returncode == 0, ran.stderr
    package_file, migrations, revision = ran.stdout.split()
    assert package_file.startswith(str(tmp_path / "site"))
    assert migrations == str(tmp_path / "site" / "session_db" / "migrations")
    assert revision == head_revision()
    assert "session_db/sync/schemas/state.v2.schema.json" in names

    # The command line works from the wheel too: history, the dry run, and an upgrade.
    wheel_env = {
        "PYTHONPATH": str(tmp_path / "site"),
        "SESSION_DB_URL": f"sqlite+aiosqlite:///{tmp_path / 'cli-from-wheel.sqlite'}",
    }
    history = run_python("-m", "session_db", "db", "history", cwd=tmp_path, env_changes=wheel_env)
    assert history.returncode == 0 and f"{head_revision()} (head)" in history.stdout
    dry = run_python(
        "-m", "session_db", "db", "upgrade", "--sql", cwd=tmp_path, env_changes=wheel_env
    )
    assert dry.returncode == 0 and "CREATE TABLE sessions" in dry.stdout
    assert not (tmp_path / "cli-from-wheel.sqlite").exists()
    upgraded = run_python("-m", "session_db", "db", "upgrade", cwd=tmp_path, env_changes=wheel_env)
    assert upgraded.returncode == 0 and "(head)" in upgraded.stdout, upgraded.stderr


async def test_sqlite_upgrade_runs_with_foreign_keys_restored(tmp_path: Path) -> None:
    url = URL.create("sqlite+aiosqlite", database=str(tmp_path / "fk.sqlite"))
    engine = create_engine(isolated_settings(), url=url)
    try:
        await upgrade(engine, "head")
        async with engine.connect() as connection:
            enabled = (await connection.execute(text("PRAGMA foreign_keys"))).scalar_one()
        assert enabled == 1
    finally:
        await engine.dispose()


def test_env_py_migrates_through_a_handed_in_sync_engine(tmp_path: Path) -> None:
    # pytest-alembic's default `alembic_engine` is a plain Engine, not a Connection.
    import sqlalchemy
    from alembic import command

    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'sync.sqlite'}")
    try:
        config = migrate.alembic_config()
        config.attributes["connection"] = engine
        command.upgrade(config, "head")
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            version = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            assert version.scalar_one() == head_revision()
        assert set(metadata.tables) <= tables
    finally:
        engine.dispose()


async def test_upgrading_an_existing_database_keeps_its_data(empty_database: URL) -> None:
    # Migrations run on databases full of sessions that many tables point at: a table
    # rebuilt carelessly on SQLite would cascade-delete their children.
    engine = create_engine(isolated_settings(), url=empty_database, poolclass=NullPool)
    sid = uuid.uuid4()
    raw = sid.hex if engine.dialect.name == "sqlite" else str(sid)
    try:
        await upgrade(engine, "0001")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO sessions (id, session_slug, session_metadata) "
                    "VALUES (:id, 'kept', '{}')"
                ),
                {"id": raw},
            )
            await connection.execute(
                text(
                    "INSERT INTO agents (id, session_id, agent_type, agent_metadata) "
                    "VALUES (:aid, :id, 'build', '{}')"
                ),
                {
                    "id": raw,
                    "aid": uuid.uuid4().hex
                    if engine.dialect.name == "sqlite"
                    else str(uuid.uuid4()),
                },
            )
        await upgrade(engine, "head")
        async with engine.connect() as connection:
            agents = (await connection.execute(text("SELECT count(*) FROM agents"))).scalar_one()
            total = (
                await connection.execute(
                    text("SELECT checkpoints_total FROM sessions WHERE session_slug = 'kept'")
                )
            ).scalar_one()
        assert (agents, total) == (1, 0)
        await downgrade(engine, "0001")
        async with engine.connect() as connection:
            agents = (await connection.execute(text("SELECT count(*) FROM agents"))).scalar_one()
        assert agents == 1
    finally:
        await engine.dispose()
