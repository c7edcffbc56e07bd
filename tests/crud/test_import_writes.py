"""The CRUD writes the history importers use: threads by the caller's id, messages at their
places, links made once."""

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


async def _session(db: AsyncSession, slug: str = "history") -> uuid.UUID:
    return (await crud.create_session(db, {"session_slug": slug})).id


def _texts(*texts: str) -> list[dict[str, object]]:
    return [
        {"role": "user" if i % 2 == 0 else "assistant", "content": t} for i, t in enumerate(texts)
    ]


async def test_ensure_threads_creates_under_the_callers_id_and_renames(db: AsyncSession) -> None:
    session_id = await _session(db)
    thread_id = uuid.uuid4()
    created = await crud.ensure_threads(db, {thread_id: {"session_id": session_id, "name": "a"}})
    assert created == {thread_id}
    again = await crud.ensure_threads(db, {thread_id: {"session_id": session_id, "name": "a"}})
    assert again == set()  # the same thread: nothing written
    renamed = await crud.ensure_threads(db, {thread_id: {"session_id": session_id, "name": "b"}})
    assert renamed == {thread_id}
    threads = await crud.list_session_threads(db, session_id)
    assert [(t.id, t.name) for t in threads] == [(thread_id, "b")]
    with pytest.raises(InvalidInputError):
        await crud.ensure_threads(db, {uuid.uuid4(): {"session_id": uuid.uuid4(), "name": "x"}})
    with pytest.raises(InvalidInputError, match="name"):
        await crud.ensure_threads(db, {uuid.uuid4(): {"session_id": session_id}})


async def test_add_thread_messages_appends_after_the_last_message(db: AsyncSession) -> None:
    session_id = await _session(db)
    thread = await crud.create_thread(db, {"session_id": session_id, "name": "t"})
    await crud.add_thread_message(db, thread.id, "system", "first")
    at = datetime(2026, 1, 1, 9, tzinfo=UTC)
    added = await crud.add_thread_messages(
        db,
        thread.id,
        [{"role": "user", "content": "a", "created_at": at}, {"role": "assistant", "content": "b"}],
    )
    assert added == [1, 2]
    messages = await crud.list_thread_messages(db, thread.id)
    assert [(m.idx, m.role, m.content) for m in messages] == [
        (0, "system", "first"),
        (1, "user", "a"),
        (2, "assistant", "b"),
    ]
    assert messages[1].created_at == at
    assert await crud.add_thread_messages(db, thread.id, []) == []


async def test_add_thread_messages_at_known_places_adds_only_what_is_new(db: AsyncSession) -> None:
    session_id = await _session(db)
    thread = await crud.create_thread(db, {"session_id": session_id, "name": "t"})
    assert await crud.add_thread_messages(db, thread.id, _texts("a", "b"), start_idx=0) == [0, 1]
    first = await crud.list_thread_messages(db, thread.id)
    # The same history, grown, written again from its start: only the new ones go in.
    assert await crud.add_thread_messages(db, thread.id, _texts("a", "b", "c"), start_idx=0) == [2]
    # A stored message's text stays unless asked: changed text, same role.
    assert await crud.add_thread_messages(db, thread.id, _texts("A", "b", "c"), start_idx=0) == []
    messages = await crud.list_thread_messages(db, thread.id)
    assert [(m.idx, m.content) for m in messages] == [(0, "a"), (1, "b"), (2, "c")]
    assert [m.id for m in messages[:2]] == [m.id for m in first]
    added = await crud.add_thread_messages(
        db,
        thread.id,
        [*_texts("A", "b", "c"), {"role": "user", "content": "d"}],
        start_idx=0,
        update_changed=True,
    )
    assert added == [3]
    messages = await crud.list_thread_messages(db, thread.id)
    assert [(m.idx, m.content) for m in messages] == [(0, "A"), (1, "b"), (2, "c"), (3, "d")]
    assert messages[0].id == first[0].id  # changed in place
    # A different role at a stored place is another history's message: left alone.
    swapped = [{"role": "assistant", "content": "Z"}]
    assert (
        await crud.add_thread_messages(db, thread.id, swapped, start_idx=0, update_changed=True)
        == []
    )
    assert (await crud.list_thread_messages(db, thread.id))[0].content == "A"


async def test_add_thread_messages_refuses_gaps_and_bad_input(db: AsyncSession) -> None:
    session_id = await _session(db)
    thread = await crud.create_thread(db, {"session_id": session_id, "name": "t"})
    with pytest.raises(InvalidInputError, match="gap"):
        await crud.add_thread_messages(db, thread.id, _texts("a"), start_idx=1)
    with pytest.raises(InvalidInputError, match=r"thread_messages\[1\]\.role"):
        await crud.add_thread_messages(
            db, thread.id, [*_texts("a"), {"role": "robot", "content": "x"}]
        )
    with pytest.raises(InvalidInputError, match="unknown field"):
        await crud.add_thread_messages(db, thread.id, [{"role": "user", "content": "x", "idx": 4}])
    with pytest.raises(InvalidInputError, match="created_at"):
        await crud.add_thread_messages(
            db, thread.id, [{"role": "user", "content": "x", "created_at": "now"}]
        )
    with pytest.raises(NotFoundError):
        await crud.add_thread_messages(db, uuid.uuid4(), _texts("a"))
    assert await crud.list_thread_messages(db, thread.id) == []


async def test_one_history_written_twice_at_once_is_stored_once(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        session_id = await _session(db)
        thread = await crud.create_thread(db, {"session_id": session_id, "name": "t"})
    history = _texts(*(f"m{i}" for i in range(200)))

    async def write() -> list[int]:
        async with get_async_session(engine) as db:
            return await crud.add_thread_messages(db, thread.id, history, start_idx=0)

    first, second = await asyncio.gather(write(), write())
    assert sorted(first + second) == list(range(200))  # each place written by one of them
    async with get_async_session(engine) as db:
        messages = await crud.list_thread_messages(db, thread.id)
    assert [(m.idx, m.content) for m in messages] == [(i, f"m{i}") for i in range(200)]


async def test_link_sessions_once_links_a_pair_once(db: AsyncSession) -> None:
    parent, child = await _session(db, "parent"), await _session(db, "child")
    link = {"parent_session_id": parent, "child_session_id": child}
    edge = await crud.link_sessions_once(db, link)
    assert edge is not None and edge.session_path == "parent.child"
    assert await crud.link_sessions_once(db, link) is None
    assert await crud.link_sessions_once(db, {**link, "relationship_type": "sibling"}) is None
    assert len(await crud.list_relationships(db)) == 1
    assert (await crud.get_session(db, parent)).agent_count == 1  # counted once
    with pytest.raises(InvalidInputError, match="cycle"):
        await crud.link_sessions_once(db, {"parent_session_id": child, "child_session_id": parent})
    with pytest.raises(NotFoundError):
        await crud.link_sessions_once(
            db, {"parent_session_id": parent, "child_session_id": uuid.uuid4()}
        )
