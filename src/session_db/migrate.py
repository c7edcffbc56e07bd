"""Run Alembic migrations programmatically, from a source checkout or an installed wheel."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

_PACKAGE_DIR = Path(__file__).resolve().parent

# Alembic keeps its running context in a module global, so two migrations interleaving in
# one process would corrupt each other. Other processes are kept out by the database
# (an advisory lock on PostgreSQL, the write lock on SQLite: see migrations/env.py).
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def _migration_lock() -> asyncio.Lock:
    loop = asyncio.get_running_loop()
    lock = _locks.get(loop)
    if lock is None:
        lock = _locks[loop] = asyncio.Lock()
    return lock


def migrations_dir() -> Path:
    """Return the folder holding `env.py` and `versions/`.

    A wheel carries it inside the package (`session_db/migrations`); a source checkout or
    an editable install has it at the repository root.
    """
    for candidate in (_PACKAGE_DIR / "migrations", _PACKAGE_DIR.parents[1] / "migrations"):
        if (candidate / "env.py").is_file():
            return candidate
    raise FileNotFoundError(
        f"session_db migrations not found in {_PACKAGE_DIR / 'migrations'} "
        f"or {_PACKAGE_DIR.parents[1] / 'migrations'}; the installation is incomplete"
    )


def alembic_config() -> Config:
    """Return an Alembic config pointing at the migrations, without reading alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Upgrade the database behind `engine` to `revision`."""
    await _run(engine, lambda config: command.upgrade(config, revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    """Downgrade the database behind `engine` to `revision` (`"base"` drops everything)."""
    await _run(engine, lambda config: command.downgrade(config, revision))


async def current_revision(engine: AsyncEngine) -> str | None:
    """Return the revision the database is at, or None if it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as connection:
        return await connection.run_sync(read)


def head_revision() -> str | None:
    """Return the newest revision the migrations define."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


async def _run(engine: AsyncEngine, alembic_command: Callable[[Config], None]) -> None:
    """Run an Alembic command on one of `engine`'s connections, handed to env.py."""

    def run(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        alembic_command(config)

    async with _migration_lock(), engine.connect() as connection:
        await connection.run_sync(run)
