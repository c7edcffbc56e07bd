"""Strict inputs: an unknown field is refused, not dropped, and values the engines would
disagree on get one answer on both."""

from __future__ import annotations

import math
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db import crud
from session_db.database import get_async_session
from session_db.errors import InvalidInputError
from session_db.models import (
    AgentCreate,
    AgentLogCreate,
    AgentUpdate,
    ProjectCreate,
    SessionCreate,
    SessionUpdate,
    TaskCreate,
    ThreadCreate,
)


@pytest.mark.parametrize(
    ("build", "entity", "field"),
    [
        pytest.param(
            lambda: SessionCreate(session_slug="x", titel="typo"),
            "session",
            "titel",
            id="SessionCreate",
        ),
        pytest.param(lambda: SessionUpdate(titel="typo"), "session", "titel", id="SessionUpdate"),
        pytest.param(
            lambda: AgentCreate(agnet_type="Explore"), "agent", "agnet_type", id="AgentCreate"
        ),
        pytest.param(lambda: AgentUpdate(stauts="done"), "agent", "stauts", id="AgentUpdate"),
        pytest.param(
            lambda: ProjectCreate(name="p", root_path="/p", rooot="/q"),
            "project",
            "rooot",
            id="ProjectCreate",
        ),
        pytest.param(lambda: TaskCreate(title="t", group="g"), "task", "group", id="TaskCreate"),
        pytest.param(
            lambda: ThreadCreate(session_id="0" * 32, topic="t"),
            "thread",
            "topic",
            id="ThreadCreate",
        ),
    ],
)
def test_an_input_model_refuses_an_unknown_field_naming_it(
    build: Any, entity: str, field: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        build()
    assert (caught.value.entity, caught.value.field) == (entity, field)
    assert "unknown field" in str(caught.value)


async def test_the_mapping_path_refuses_an_unknown_field_on_both_engines(
    engine: AsyncEngine,
) -> None:
    async with get_async_session(engine) as db:
        with pytest.raises(InvalidInputError) as caught:
            await crud.create_session(db, {"session_slug": "x", "titel": "typo"})
    assert (caught.value.entity, caught.value.field) == ("session", "titel")
    async with get_async_session(engine) as db:
        assert await crud.list_sessions(db) == []  # nothing half-written


@pytest.mark.parametrize(
    "value", [2**63, -(2**63) - 1, 10**30], ids=["int64-max+1", "int64-min-1", "10**30"]
)
async def test_an_integer_beyond_64_bits_is_refused_alike_on_both_engines(
    engine: AsyncEngine, value: int
) -> None:
    async with get_async_session(engine) as db:
        with pytest.raises(InvalidInputError) as caught:
            await crud.create_session(db, {"session_slug": "big", "total_tokens": value})
    assert caught.value.field == "total_tokens"
    assert "64-bit" in str(caught.value)


async def test_the_largest_64_bit_integer_is_stored(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        session = await crud.create_session(
            db, SessionCreate(session_slug="max", total_tokens=2**63 - 1)
        )
    async with get_async_session(engine, read_only=True) as db:
        assert (await crud.get_session(db, session.id)).total_tokens == 2**63 - 1


async def test_nan_inside_json_is_stored_as_null_on_both_engines(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        session = await crud.create_session(db, SessionCreate(session_slug="nan"))
        log = await crud.create_agent_log(
            db,
            AgentLogCreate(session_id=session.id, event_type="X", payload={"v": math.inf}),
        )
    async with get_async_session(engine, read_only=True) as db:
        assert (await crud.get_agent_log(db, log.id)).payload == {"v": None}
