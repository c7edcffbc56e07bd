"""Tool calls: one lookup per batch, merged writes, reads."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.database import get_async_session
from session_db.errors import InvalidInputError
from session_db.models import ToolCallStatus

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def a_session(db: AsyncSession, slug: str = "s") -> uuid.UUID:
    return (await crud.create_session(db, {"session_slug": slug})).id


async def test_saved_calls_are_found_by_session_and_tool_use_id(db: AsyncSession) -> None:
    first, second = await a_session(db, "a"), await a_session(db, "b")
    calls = [
        {"id": uuid.uuid4(), "session_id": first, "tool_use_id": "toolu_1", "tool_name": "Bash"},
        {"id": uuid.uuid4(), "session_id": second, "tool_use_id": "toolu_2", "tool_name": "Read"},
    ]
    await crud.save_tool_calls(db, calls)
    found = await crud.find_tool_calls(
        db, [(first, "toolu_1"), (second, "toolu_2"), (first, "toolu_2"), (second, "nope")]
    )
    # (first, toolu_2) shares a session and an id with stored calls, but not as a pair.
    assert set(found) == {(first, "toolu_1"), (second, "toolu_2")}
    assert found[(first, "toolu_1")].tool_name == "Bash"
    assert found[(first, "toolu_1")].status == ToolCallStatus.RUNNING
    assert await crud.find_tool_calls(db, []) == {}


async def test_two_writers_of_one_call_merge_instead_of_duplicating(db: AsyncSession) -> None:
    """The start and the outcome arriving in different batches make one complete call."""
    session_id = await a_session(db)
    start = {
        "id": uuid.uuid4(),
        "session_id": session_id,
        "tool_use_id": "toolu_1",
        "tool_name": "Bash",
        "tool_input": {"command": "ls"},
        "started_at": T0,
    }
    outcome = {
        "id": uuid.uuid4(),
        "session_id": session_id,
        "tool_use_id": "toolu_1",
        "status": ToolCallStatus.SUCCEEDED,
        "tool_response": {"stdout": "a\nb"},
        "ended_at": T0 + timedelta(seconds=2),
        "duration_ms": 2000,
    }
    await crud.save_tool_calls(db, [outcome])  # the outcome first, as a replay may deliver
    await crud.save_tool_calls(db, [start])
    (call,) = await crud.list_tool_calls(db, session_id=session_id)
    assert call.tool_name == "Bash" and call.tool_input == {"command": "ls"}
    assert call.status == ToolCallStatus.SUCCEEDED and call.tool_response == {"stdout": "a\nb"}
    assert call.started_at == T0 and call.duration_ms == 2000
    # A later start of the same call does not undo its outcome, nor move its start later.
    await crud.save_tool_calls(db, [{**start, "started_at": T0 + timedelta(seconds=5)}])
    again = await crud.get_tool_call(db, call.id)
    assert again.status == ToolCallStatus.SUCCEEDED and again.started_at == T0


async def test_calls_without_a_tool_use_id_are_inserted_then_updated_by_id(
    db: AsyncSession,
) -> None:
    session_id = await a_session(db)
    running = {
        "id": uuid.uuid4(),
        "session_id": session_id,
        "tool_use_id": None,
        "tool_name": "Read",
        "tool_input": {"file_path": "/a"},
        "started_at": T0,
    }
    other = {
        **running,
        "id": uuid.uuid4(),
        "tool_input": {"file_path": "/b"},
        "started_at": T0 + timedelta(seconds=1),
    }
    await crud.save_tool_calls(db, [running, other])
    open_calls = await crud.list_running_unkeyed_tool_calls(db, [session_id])
    assert [call.tool_input for call in open_calls] == [{"file_path": "/a"}, {"file_path": "/b"}]
    await crud.save_tool_calls(db, [{**running, "status": "failed", "error": "denied"}])
    assert [c.id for c in await crud.list_running_unkeyed_tool_calls(db, [session_id])] == [
        other["id"]
    ]
    failed = await crud.list_tool_calls(db, session_id=session_id, status="failed")
    assert [(c.id, c.error) for c in failed] == [(running["id"], "denied")]
    assert len(await crud.list_tool_calls(db, tool_name="Read")) == 2
    with pytest.raises(InvalidInputError, match="status"):
        await crud.list_tool_calls(db, status="bogus")


async def test_a_thousand_calls_are_saved_in_one_batch(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        session_id = await a_session(db)
    calls = [
        {
            "id": uuid.uuid4(),
            "session_id": session_id,
            "tool_use_id": f"toolu_{index}",
            "tool_name": "Bash",
            "tool_input": {"n": index},
            "started_at": T0 + timedelta(seconds=index),
        }
        for index in range(1000)
    ]
    async with get_async_session(engine) as db:
        await crud.save_tool_calls(db, calls)
    async with get_async_session(engine) as db:
        found = await crud.find_tool_calls(db, [(session_id, f"toolu_{i}") for i in range(1000)])
        listed = await crud.list_tool_calls(db, session_id=session_id, limit=1000)
    assert len(found) == 1000 and found[(session_id, "toolu_999")].tool_input == {"n": 999}
    assert [call.tool_use_id for call in listed[:3]] == ["toolu_0", "toolu_1", "toolu_2"]


async def test_calls_are_listed_latest_first_when_asked(db: AsyncSession) -> None:
    session_id = await a_session(db)
    await crud.save_tool_calls(
        db,
        [
            {"id": uuid.uuid4(), "session_id": session_id, "tool_use_id": f"t{i}"}
            | {"tool_name": name, "started_at": T0 + timedelta(seconds=i)}
            for i, name in enumerate(("Read", "Bash", "Edit"))
        ],
    )
    listed = await crud.list_tool_calls(db, session_id=session_id, descending=True, limit=2)
    assert [call.tool_name for call in listed] == ["Edit", "Bash"]
    assert [c.tool_name for c in await crud.list_tool_calls(db, session_id=session_id)] == [
        "Read",
        "Bash",
        "Edit",
    ]
