"""Alembic environment for session_db: async engines, handed-in connections, SQLite batch mode.

What `config.attributes["connection"]` may hold, and what happens:
- a Connection (session_db.migrate, pytest-alembic's runner): migrate on it;
- an Engine or AsyncEngine (pytest-alembic's `alembic_engine`): connect and migrate;
- nothing (the `alembic` command line): build an engine from SESSION_DB_URL.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool
from sqlmodel.sql.sqltypes import AutoString

from session_db.config import get_settings
from session_db.database import create_engine
from session_db.models import metadata
from session_db.models.base import MONEY_SCALE, Money, UTCDateTime

# Concurrent upgrades of one PostgreSQL database (two agents starting at once) queue on
# this transaction-scoped advisory lock instead of racing to create the same tables.
MIGRATION_LOCK_KEY = 7_153_006_311

config = context.config

# Only the `alembic` command line has an ini file; a program that migrates keeps its own
# logging setup.
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    """Render our column types as plain SQLAlchemy types, so migrations never import models."""
    if type_ != "type":
        return False
    if isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if isinstance(obj, Money):
        return f"sa.Numeric(precision=18, scale={MONEY_SCALE})"
    return False


def _configure(**kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata,
        compare_type=True,
        render_item=render_item,
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Print the SQL instead of running it (`alembic upgrade head --sql`)."""
    dialect = get_settings().database_url().get_backend_name()
    _configure(dialect_name=dialect, literal_binds=True, render_as_batch=dialect == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def _sqlite_pragma(connection: Connection, pragma: str) -> None:
    # At the driver level: SQLAlchemy would open a transaction first, and SQLite ignores
    # a foreign_keys pragma inside one.
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(pragma)
    finally:
        cursor.close()


def run_migrations_on(connection: Connection) -> None:
    """Run the migrations on `connection`, in one transaction."""
    dialect = connection.dialect.name
    # Batch migrations on SQLite copy and drop tables; with foreign keys on, dropping the
    # old table would fire ON DELETE CASCADE and silently empty its children.
    toggle_foreign_keys = dialect == "sqlite" and not connection.in_transaction()
    if toggle_foreign_keys:
        _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        _configure(
            connection=connection,
            render_as_batch=dialect == "sqlite",
            # Our SQLite engines issue BEGIN themselves (session_db.database), so a whole
            # upgrade is one transaction there too: a failed migration leaves nothing behind.
            transactional_ddl=True,
        )
        with context.begin_transaction():
            if dialect == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
            context.run_migrations()
            if toggle_foreign_keys:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:
                    raise RuntimeError(f"migration left rows breaking foreign keys: {broken[:5]}")
    finally:
        if toggle_foreign_keys:
            _sqlite_pragma(connection, "PRAGMA foreign_keys=ON")


async def _run_on_async_engine(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.run_sync(run_migrations_on)


async def _run_on_configured_database() -> None:
    engine = create_engine(poolclass=NullPool)
    try:
        await _run_on_async_engine(engine)
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    """Run the migrations against a live database."""
    handed = config.attributes.get("connection")
    if isinstance(handed, Connection):
        run_migrations_on(handed)
    elif isinstance(handed, Engine):
        with handed.connect() as connection:
            run_migrations_on(connection)
    elif isinstance(handed, AsyncEngine):
        asyncio.run(_run_on_async_engine(handed))
    elif handed is None:
        asyncio.run(_run_on_configured_database())
    else:
        raise TypeError(f"cannot migrate through a {type(handed).__name__}")


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
