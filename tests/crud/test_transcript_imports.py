"""Transcript import progress rows on both engines: claimed (and locked), recorded, read."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.database import get_async_session
from session_db.errors import InvalidInputError, NotFoundError

T0 = datetime(2026, 2, 12, 16, 0, tzinfo=UTC)


async def test_claim_creates_rows_once_and_returns_them_as_recorded(engine: AsyncEngine) -> None:
    paths = ["/p/b.jsonl", "/p/a.jsonl", "/p/" + "x" * 2000]
    async with get_async_session(engine) as db:
        first = await crud.claim_transcript_imports(db, paths)
        assert set(first) == set(paths)
        assert all(row.byte_offset == 0 and row.lines_read == 0 for row in first.values())
        assert len(first[paths[2]].path) == 1024  # cut to the indexable length
        row = first["/p/a.jsonl"]
        row.byte_offset, row.lines_read, row.file_identity = 4096, 12, "1:2:abc"
        row.last_imported_at = T0
        await crud.record_transcript_imports(db, [row])
    async with get_async_session(engine) as db:
        again = await crud.claim_transcript_imports(db, ["/p/a.jsonl", "/p/c.jsonl"])
        assert again["/p/a.jsonl"].id == row.id
        stored = await crud.get_transcript_import(db, "/p/a.jsonl")
        assert (stored.byte_offset, stored.lines_read, stored.file_identity) == (
            4096,
            12,
            "1:2:abc",
        )
        assert stored.last_imported_at == T0
        assert len(await crud.list_transcript_imports(db)) == 4


async def test_record_refuses_negative_offsets(db: AsyncSession) -> None:
    row = (await crud.claim_transcript_imports(db, ["/p/x.jsonl"]))["/p/x.jsonl"]
    row.byte_offset = -1
    with pytest.raises(InvalidInputError):
        await crud.record_transcript_imports(db, [row])


async def test_a_claim_waits_for_the_transaction_holding_the_file(engine: AsyncEngine) -> None:
    holder_claimed, holder_may_commit = asyncio.Event(), asyncio.Event()

    async def holder() -> None:
        async with get_async_session(engine) as db:
            row = (await crud.claim_transcript_imports(db, ["/p/held.jsonl"]))["/p/held.jsonl"]
            holder_claimed.set()
            await holder_may_commit.wait()
            row.byte_offset = 777
            await crud.record_transcript_imports(db, [row])

    async def second() -> int:
        await holder_claimed.wait()
        async with get_async_session(engine) as db:
            claimed = await crud.claim_transcript_imports(db, ["/p/held.jsonl"])
            return claimed["/p/held.jsonl"].byte_offset

    holding = asyncio.create_task(holder())
    waiting = asyncio.create_task(second())
    await holder_claimed.wait()
    await asyncio.sleep(0.5)
    assert not waiting.done()  # locked out while the first transaction holds the row
    holder_may_commit.set()
    await holding
    assert await asyncio.wait_for(waiting, 10) == 777  # and then it sees what was recorded


async def test_list_and_get_transcript_imports(db: AsyncSession) -> None:
    session_id = await crud.ensure_session(db, "s")
    rows = await crud.claim_transcript_imports(db, ["/Home/a.jsonl", "/home/b.jsonl", "/home/c"])
    rows["/home/b.jsonl"].session_id = session_id
    await crud.record_transcript_imports(db, list(rows.values()))
    paths = lambda found: [row.path for row in found]  # noqa: E731
    assert paths(await crud.list_transcript_imports(db)) == [
        "/Home/a.jsonl",
        "/home/b.jsonl",
        "/home/c",
    ]
    assert paths(await crud.list_transcript_imports(db, under="/home/")) == [
        "/home/b.jsonl",
        "/home/c",
    ]  # a prefix, compared as text on both engines (LIKE would ignore case on SQLite)
    assert paths(await crud.list_transcript_imports(db, under="/home/b_")) == []
    assert paths(await crud.list_transcript_imports(db, session_id=session_id)) == ["/home/b.jsonl"]
    assert paths(await crud.list_transcript_imports(db, limit=1, offset=2)) == ["/home/c"]
    with pytest.raises(NotFoundError):
        await crud.get_transcript_import(db, f"/nowhere/{uuid.uuid4()}.jsonl")


async def test_get_transcript_imports_reads_the_rows_that_exist_without_creating_any(
    db: AsyncSession,
) -> None:
    long = "/p/" + "y" * 2000
    claimed = await crud.claim_transcript_imports(db, ["/p/a.jsonl", long])
    claimed["/p/a.jsonl"].byte_offset = 10
    await crud.record_transcript_imports(db, [claimed["/p/a.jsonl"]])
    found = await crud.get_transcript_imports(db, ["/p/a.jsonl", "/p/missing.jsonl", long])
    assert sorted(found) == sorted(["/p/a.jsonl", long])  # by the path as given
    assert (found["/p/a.jsonl"].byte_offset, found[long].byte_offset) == (10, 0)
    assert await crud.list_transcript_imports(db, under="/p/missing") == []
    assert await crud.get_transcript_imports(db, []) == {}
