"""Migration 0010: `usage_hours` is filled from the records already stored, on both engines."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
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
from session_db.models.reports import UsageQuery

SESSIONS = sa.table(
    "sessions",
    sa.column("id", sa.Uuid()),
    sa.column("session_slug", sa.String()),
    sa.column("session_metadata", sa.JSON()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
)
RECORDS = sa.table(
    "usage_records",
    *(
        sa.column(name, kind)
        for name, kind in (
            ("id", sa.Uuid()),
            ("session_id", sa.Uuid()),
            ("message_id", sa.String()),
            ("model", sa.String()),
            ("input_tokens", sa.BigInteger()),
            ("output_tokens", sa.BigInteger()),
            ("cache_creation_tokens", sa.BigInteger()),
            ("cache_read_tokens", sa.BigInteger()),
            ("cost", sa.Numeric(18, 9)),
            ("cost_source", sa.String()),
            ("occurred_at", sa.DateTime(timezone=True)),
            ("created_at", sa.DateTime(timezone=True)),
            ("updated_at", sa.DateTime(timezone=True)),
        )
    ),
)
STORED = datetime(2026, 2, 12, 9, 0, tzinfo=UTC)


@pytest.fixture(params=engine_params())
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """An empty database of each engine."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'hours.sqlite'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = create_postgres_database(server)
    try:
        yield url
    finally:
        drop_postgres_database(server, url)


@pytest.fixture
async def engine(database: Any) -> AsyncIterator[AsyncEngine]:
    """An engine on it, migrated to 0009: the revision before usage_hours."""
    engine = create_engine(isolated_settings(), url=database, poolclass=NullPool)
    try:
        await upgrade(engine, "0009")
        yield engine
    finally:
        await engine.dispose()


async def test_the_upgrade_sums_the_stored_records_and_the_downgrade_drops_them(
    engine: AsyncEngine,
) -> None:
    session = uuid.uuid4()
    times = [  # two in one hour, one in the next, one without a time of its own
        datetime(2026, 2, 12, 10, 15, tzinfo=UTC),
        datetime(2026, 2, 12, 10, 55, tzinfo=UTC),
        datetime(2026, 2, 12, 11, 5, tzinfo=UTC),
        None,
    ]
    async with engine.begin() as connection:
        await connection.execute(
            SESSIONS.insert(),
            [
                {
                    "id": session,
                    "session_slug": "old",
                    "session_metadata": {},
                    "created_at": STORED,
                    "updated_at": STORED,
                }
            ],
        )
        await connection.execute(
            RECORDS.insert(),
            [
                {
                    "id": uuid.uuid4(),
                    "session_id": session,
                    "message_id": f"msg_{n}",
                    "model": "claude-sonnet-4-5-20250929",
                    "input_tokens": 3,
                    "output_tokens": 136,
                    "cache_creation_tokens": 15_005,
                    "cache_read_tokens": 11_442,
                    "cost": Decimal("0.123456789"),
                    "cost_source": "computed",
                    "occurred_at": at,
                    "created_at": STORED,
                    "updated_at": STORED,
                }
                for n, at in enumerate(times)
            ],
        )
    await upgrade(engine, "head")
    async with get_async_session(engine) as db:
        daily = await crud.list_usage_report(db, UsageQuery())
        blocks = await crud.list_usage_report(db, UsageQuery(period="blocks"))
    assert daily.cost_sources == {"reported": 0, "computed": 4, "unpriced": 0}
    assert daily.totals.cost == Decimal("0.493827156")
    assert daily.totals.total_tokens == 4 * (3 + 136 + 15_005 + 11_442)
    # The record without a time counts when it was stored, 09:00: one block from 09:00.
    assert [(row.start, row.last_at) for row in blocks.rows] == [(STORED, times[2])]
    async with engine.connect() as connection:
        hours = await connection.execute(sa.text("SELECT count(*) FROM usage_hours"))
        assert hours.scalar_one() == 3
    await downgrade(engine, "0009")
    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: sa.inspect(sync).get_table_names())
    assert "usage_hours" not in tables and "usage_records" in tables
