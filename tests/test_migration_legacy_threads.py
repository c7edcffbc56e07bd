"""Migration 0007 (seed 004): a session's bare thread id becomes a thread with a system message.

Run with rows in place, up and down, on both engines.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool
from support import (
    create_postgres_database,
    drop_postgres_database,
    engine_params,
    isolated_settings,
)

from session_db import crud
from session_db.database import create_engine, get_async_session
from session_db.migrate import downgrade, upgrade

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
SESSIONS = sa.table(
    "sessions",
    sa.column("id", sa.Uuid()),
    sa.column("session_slug", sa.String()),
    sa.column("session_metadata", JSON),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
THREADS = sa.table(
    "threads",
    sa.column("id", sa.Uuid()),
    sa.column("session_id", sa.Uuid()),
    sa.column("name", sa.String()),
    sa.column("status", sa.String()),
)
MESSAGES = sa.table(
    "thread_messages",
    sa.column("thread_id", sa.Uuid()),
    sa.column("role", sa.String()),
    sa.column("content", sa.Text()),
    sa.column("idx", sa.Integer()),
    sa.column("created_at", sa.DateTime(timezone=True)),
)
CREATED = datetime(2025, 8, 25, 12, 0, tzinfo=UTC)
LONG = "T-" + "x" * 300


@pytest.fixture(params=engine_params())
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """An empty database of each engine."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'legacy.sqlite'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = create_postgres_database(server)
    try:
        yield url
    finally:
        drop_postgres_database(server, url)


@pytest.fixture
async def engine(database: Any) -> AsyncIterator[AsyncEngine]:
    """An engine on it, migrated to 0006: the revision before the legacy migration."""
    engine = create_engine(isolated_settings(), url=database, poolclass=NullPool)
    try:
        await upgrade(engine, "0006")
        yield engine
    finally:
        await engine.dispose()


async def _sessions(engine: AsyncEngine) -> dict[str, uuid.UUID]:
    """Sessions as a seed 004 system left them: some with a bare thread id, some without."""
    rows = {
        "with-thread": {"threadId": "T-5928a90d-d53b-488f-a829-4e36442142ee", "ampPrompt": "X"},
        "with-quote": {"threadId": "T-o'brien"},
        "with-long-id": {"threadId": LONG},
        "without": {"ampPrompt": "Y"},
        "empty-id": {"threadId": ""},
        "number-id": {"threadId": 42},
        "nested-id": {"thread": {"threadId": "T-nested"}},
    }
    ids = {slug: uuid.uuid4() for slug in rows}
    async with engine.begin() as connection:
        await connection.execute(
            SESSIONS.insert(),
            [
                {
                    "id": ids[slug],
                    "session_slug": slug,
                    "session_metadata": meta,
                    "created_at": CREATED,
                }
                for slug, meta in rows.items()
            ],
        )
        # A thread someone made themselves, in a session with a legacy id: left alone.
        await connection.execute(
            THREADS.insert(),
            [
                {
                    "id": uuid.uuid4(),
                    "session_id": ids["with-thread"],
                    "name": "Own",
                    "status": "active",
                }
            ],
        )
    return ids


async def _threads(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    """(session slug, thread name, [(idx, role, content)]) of every thread, by slug and name."""
    statement = (
        sa.select(
            SESSIONS.c.session_slug,
            THREADS.c.name,
            MESSAGES.c.idx,
            MESSAGES.c.role,
            MESSAGES.c.content,
        )
        .select_from(
            THREADS.join(SESSIONS, SESSIONS.c.id == THREADS.c.session_id).outerjoin(
                MESSAGES, MESSAGES.c.thread_id == THREADS.c.id
            )
        )
        .order_by(SESSIONS.c.session_slug, THREADS.c.name, MESSAGES.c.idx)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(statement)).all()
    found: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for slug, name, idx, role, content in rows:
        messages = found.setdefault((slug, name), [])
        if idx is not None:
            messages.append((idx, role, content))
    return [(slug, name, messages) for (slug, name), messages in found.items()]


LEGACY = [
    ("with-long-id", ("Legacy thread " + LONG)[:255], [(0, "system", f"Legacy thread id: {LONG}")]),
    ("with-quote", "Legacy thread T-o'brien", [(0, "system", "Legacy thread id: T-o'brien")]),
    (
        "with-thread",
        "Legacy thread T-5928a90d-d53b-488f-a829-4e36442142ee",
        [(0, "system", "Legacy thread id: T-5928a90d-d53b-488f-a829-4e36442142ee")],
    ),
    ("with-thread", "Own", []),
]


async def test_sessions_with_a_bare_thread_id_get_a_thread_with_a_system_message(
    engine: AsyncEngine,
) -> None:
    ids = await _sessions(engine)
    await upgrade(engine, "0007")
    assert await _threads(engine) == LEGACY
    async with get_async_session(engine) as db:
        (legacy,) = [
            t for t in await crud.list_session_threads(db, ids["with-thread"]) if t.name != "Own"
        ]
        (message,) = await crud.list_thread_messages(db, legacy.id)
        session = await crud.get_session(db, ids["with-thread"])
    # Dated by the session, and the legacy value stays where it was.
    assert legacy.created_at == message.created_at == CREATED
    assert session.session_metadata == {
        "threadId": "T-5928a90d-d53b-488f-a829-4e36442142ee",
        "ampPrompt": "X",
    }


async def test_the_downgrade_removes_what_the_upgrade_made_and_keeps_grown_threads(
    engine: AsyncEngine,
) -> None:
    ids = await _sessions(engine)
    await upgrade(engine, "0007")
    async with get_async_session(engine) as db:
        (grown,) = [
            t
            for t in await crud.list_session_threads(db, ids["with-quote"])
            if t.name.startswith("Legacy")
        ]
        await crud.add_thread_message(db, grown.id, "user", "carried on here")
    await downgrade(engine, "0006")
    # The untouched legacy threads are gone; the one written to since is someone's work.
    assert await _threads(engine) == [
        (
            "with-quote",
            "Legacy thread T-o'brien",
            [(0, "system", "Legacy thread id: T-o'brien"), (1, "user", "carried on here")],
        ),
        ("with-thread", "Own", []),
    ]
    async with engine.connect() as connection:
        assert (
            await connection.execute(sa.select(sa.func.count()).select_from(SESSIONS))
        ).scalar() == 7
    # Up again: the removed ones come back, the kept one is not made twice.
    await upgrade(engine, "0007")
    expected = [row for row in LEGACY if row[0] != "with-quote"]
    expected.insert(
        1,
        (
            "with-quote",
            "Legacy thread T-o'brien",
            [(0, "system", "Legacy thread id: T-o'brien"), (1, "user", "carried on here")],
        ),
    )
    assert await _threads(engine) == expected


async def test_the_migration_runs_on_a_database_without_legacy_ids(engine: AsyncEngine) -> None:
    await upgrade(engine, "0007")
    assert await _threads(engine) == []
    await downgrade(engine, "0006")
    assert await _threads(engine) == []
