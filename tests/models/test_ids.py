"""Primary keys: version 7 UUIDs, so indexes on them grow at their end."""

from __future__ import annotations

import asyncio
import time
import uuid

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from session_db import crud
from session_db.database import get_async_session
from session_db.models import Session
from session_db.models.base import new_id, new_ids


def test_new_ids_are_unique_version_7_uuids_ordered_by_time() -> None:
    first = new_id()
    time.sleep(0.002)
    later = [new_id() for _ in range(10_000)]
    assert first.version == 7 and first.variant == uuid.RFC_4122
    assert len(set(later)) == len(later)
    assert all(first < key for key in later)
    millis = int.from_bytes(first.bytes[:6], "big")
    assert abs(millis - time.time_ns() // 1_000_000) < 60_000


def test_ids_made_in_bulk_are_version_7_and_later_than_one_made_before() -> None:
    first = new_id()
    time.sleep(0.002)
    batch = new_ids(10_000)
    assert len(batch) == len(set(batch)) == 10_000
    assert all(key.version == 7 and key.variant == uuid.RFC_4122 for key in batch)
    assert all(first < key for key in batch)
    # The 74 random bits differ from key to key, not only the last bytes.
    assert len({key.bytes[6:9] for key in batch}) > 9_000
    assert new_ids(0) == []


async def test_rows_created_later_sort_later_by_id_on_both_engines(engine: AsyncEngine) -> None:
    ids = []
    for index in range(3):
        async with get_async_session(engine) as db:
            ids.append((await crud.create_session(db, {"session_slug": f"s{index}"})).id)
        await asyncio.sleep(0.002)
    async with get_async_session(engine) as db:
        # The engine's own order of the stored keys (uuid on PostgreSQL, text on SQLite).
        stored = (await db.exec(select(Session.id).order_by(Session.id))).all()
    assert list(stored) == sorted(ids) == ids
