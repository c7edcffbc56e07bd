"""Threads and messages (seed 004): the API, message counts, and gap-free idx under concurrency."""

import asyncio
import uuid

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.database import get_async_session
from session_db.errors import InvalidInputError, NotFoundError


@pytest.fixture
async def session_id(engine: AsyncEngine) -> uuid.UUID:
    async with get_async_session(engine) as db:
        return (await crud.create_session(db, {"session_slug": "amp"})).id


async def test_seed_004_example_conversation(db: AsyncSession, session_id: uuid.UUID) -> None:
    thread = await crud.create_thread(db, {"session_id": session_id, "name": "Feature Discussion"})
    await crud.add_thread_message(db, thread.id, "user", "How should we implement this?")
    await crud.add_thread_message(db, thread.id, "assistant", "I suggest we start by...")
    await crud.add_thread_message(db, thread.id, "user", "That sounds good, let's proceed")
    messages = await crud.list_thread_messages(db, thread.id)
    assert [(m.idx, m.role) for m in messages] == [(0, "user"), (1, "assistant"), (2, "user")]
    assert messages[1].content == "I suggest we start by..."
    assert [m.idx for m in await crud.list_thread_messages(db, thread.id, limit=1, offset=1)] == [1]


async def test_session_threads_come_with_message_counts_most_recent_first(
    db: AsyncSession, session_id: uuid.UUID
) -> None:
    quiet = await crud.create_thread(db, {"session_id": session_id, "name": "quiet"})
    busy = await crud.create_thread(db, {"session_id": session_id, "name": "busy"})
    for text in ("a", "b"):
        await crud.add_thread_message(db, busy.id, "user", text)
    threads = await crud.list_session_threads(db, session_id)
    assert [(t.name, t.message_count) for t in threads] == [("busy", 2), ("quiet", 0)]
    await crud.update_thread_timestamp(db, quiet.id)
    assert [t.name for t in await crud.list_session_threads(db, session_id)] == ["quiet", "busy"]
    await crud.update_thread(db, busy.id, {"status": "archived"})
    archived = await crud.list_session_threads(db, session_id, status="archived")
    assert [t.name for t in archived] == ["busy"]


async def test_delete_thread_takes_its_messages(db: AsyncSession, session_id: uuid.UUID) -> None:
    thread = await crud.create_thread(db, {"session_id": session_id, "name": "t"})
    message = await crud.add_thread_message(db, thread.id, "system", "legacy id")
    await crud.delete_thread(db, thread.id)
    with pytest.raises(NotFoundError):
        await crud.get_thread_message(db, message.id)
    assert await crud.list_session_threads(db, session_id) == []


async def test_message_errors(db: AsyncSession, session_id: uuid.UUID) -> None:
    thread = await crud.create_thread(db, {"session_id": session_id, "name": "t"})
    with pytest.raises(InvalidInputError, match=r"thread_message\.role"):
        await crud.add_thread_message(db, thread.id, "robot", "beep")
    with pytest.raises(NotFoundError, match="thread with id="):
        await crud.add_thread_message(db, uuid.uuid4(), "user", "hello?")
    edited = await crud.update_thread_message(
        db, (await crud.add_thread_message(db, thread.id, "user", "helo")).id, {"content": "hello"}
    )
    assert (edited.content, edited.idx) == ("hello", 0)


async def test_concurrent_writers_get_a_gap_free_duplicate_free_idx_sequence(
    engine: AsyncEngine, session_id: uuid.UUID
) -> None:
    async with get_async_session(engine) as db:
        thread = await crud.create_thread(db, {"session_id": session_id, "name": "busy"})
    writers = 24

    async def append(number: int) -> int:
        async with get_async_session(engine) as db:  # one session per task
            message = await crud.add_thread_message(db, thread.id, "user", f"message {number}")
            await asyncio.sleep(0)  # hold the transaction open across a scheduling point
            return message.idx

    indexes = await asyncio.gather(*(append(n) for n in range(writers)))
    assert sorted(indexes) == list(range(writers))
    async with get_async_session(engine) as db:
        stored = await crud.list_thread_messages(db, thread.id)
    assert [m.idx for m in stored] == list(range(writers))
    assert sorted(m.content for m in stored) == sorted(f"message {n}" for n in range(writers))


async def test_the_seed_names_of_the_list_reads_are_aliases(db: AsyncSession) -> None:
    session = await crud.create_session(db, {"session_slug": "aliases"})
    thread = await crud.create_thread(db, {"session_id": session.id, "name": "t"})
    await crud.add_thread_message(db, thread.id, "user", "hi")
    assert crud.get_session_threads is crud.list_session_threads
    assert crud.get_thread_messages is crud.list_thread_messages
    assert [t.id for t in await crud.get_session_threads(db, session.id)] == [thread.id]
    assert [m.content for m in await crud.get_thread_messages(db, thread.id)] == ["hi"]
