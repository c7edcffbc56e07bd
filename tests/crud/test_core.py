"""Projects, sessions, agents and agent logs through the CRUD layer, and its error contract."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.database import get_async_session
from session_db.errors import (
    ConflictError,
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    SessionDBError,
)
from session_db.models import AgentCreate, AgentLogCreate, AgentUpdate, SessionCreate

T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)


async def test_seed_001_usage_persists(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        session = await crud.create_session(
            db,
            SessionCreate(
                session_slug="2026-01-15_auth-feature",
                title="Implement Authentication",
                working_dir="/path/to/project",
                session_type="full",
            ),
        )
    async with get_async_session(engine) as db:
        agent = await crud.create_agent(
            db,
            AgentCreate(
                session_id=session.id,
                agent_type="spec",
                model="claude-sonnet-4-5-20250929",
                model_alias="sonnet",
            ),
        )
    async with get_async_session(engine) as db:
        await crud.update_agent(
            db,
            agent.id,
            AgentUpdate(
                sdk_session_id="sess_abc123", status="executing", started_at=datetime.utcnow()
            ),
        )
    async with get_async_session(engine) as db:
        await crud.create_agent_log(
            db,
            AgentLogCreate(
                agent_id=agent.id,
                session_id=session.id,
                event_category="hook",
                event_type="PreToolUse",
                tool_name="Read",
                tool_input={"file_path": "/src/auth.py"},
            ),
        )
    async with get_async_session(engine) as db:
        resumed = await crud.get_agent_by_sdk_session_id(db, "sess_abc123")
        logs = await crud.list_agent_logs(db, session_id=session.id)
        stored = await crud.get_session_by_slug(db, "2026-01-15_auth-feature")
    assert resumed.id == agent.id and resumed.status == "executing"
    assert resumed.started_at is not None and resumed.started_at.tzinfo is UTC
    assert [log.tool_input for log in logs] == [{"file_path": "/src/auth.py"}]
    assert stored.session_type == "full" and stored.phase == "created"


async def test_project_crud_round_trip(db: AsyncSession) -> None:
    project = await crud.create_project(db, {"name": "demo", "root_path": "/work/demo"})
    assert (await crud.get_project_by_path(db, "/work/demo")).id == project.id
    updated = await crud.update_project(db, project.id, {"description": "the demo"})
    assert updated.description == "the demo" and updated.name == "demo"
    await crud.create_project(db, {"name": "another", "root_path": "/work/another"})
    assert [p.name for p in await crud.list_projects(db)] == ["another", "demo"]
    assert [p.name for p in await crud.list_projects(db, limit=1, offset=1)] == ["demo"]
    assert await crud.count_projects(db) == 2
    await crud.delete_project(db, project.id)
    with pytest.raises(NotFoundError, match="project with id="):
        await crud.get_project(db, project.id)


async def test_upsert_project_and_ensure_session_are_idempotent(engine: AsyncEngine) -> None:
    async def claim() -> tuple[uuid.UUID, uuid.UUID]:
        async with get_async_session(engine) as db:
            project_id = await crud.upsert_project(db, "/work/app")
            session_id = await crud.ensure_session(
                db, "s-upsert", project_id=project_id, title="first"
            )
            return project_id, session_id

    first, again, *others = await asyncio.gather(*(claim() for _ in range(4)))
    assert first == again and all(other == first for other in others)
    async with get_async_session(engine) as db:
        project = await crud.get_project(db, first[0])
        assert (project.name, project.root_path) == ("app", "/work/app")
        assert await crud.ensure_session(db, "s-upsert", title="ignored") == first[1]
        session = await crud.get_session(db, first[1])
        assert (session.title, session.project_id) == ("first", first[0])
        assert await crud.count_projects(db) == 1


async def test_session_update_derives_duration_and_keeps_unset_fields(db: AsyncSession) -> None:
    session = await crud.create_session(db, {"session_slug": "s", "title": "T", "started_at": T0})
    updated = await crud.update_session(
        db, session.id, {"ended_at": T0 + timedelta(seconds=90), "status": "completed"}
    )
    assert updated.duration_ms == 90_000 and updated.title == "T"
    cleared = await crud.update_session(db, session.id, {"title": None})
    assert cleared.title is None and cleared.status == "completed"


async def test_list_sessions_filters_orders_and_pages(db: AsyncSession) -> None:
    project = await crud.create_project(db, {"name": "p", "root_path": "/p"})
    for index, phase in enumerate(["spec", "build", "build", "docs"]):
        await crud.create_session(
            db,
            {
                "session_slug": f"s{index}",
                "phase": phase,
                "project_id": project.id,
                "started_at": T0 + timedelta(hours=index),
                "session_type": "quick",
            },
        )
    await crud.create_session(db, {"session_slug": "elsewhere", "phase": "build"})
    in_build = await crud.list_sessions(
        db, phase="build", project_id=project.id, order_by="started_at", descending=False
    )
    assert [s.session_slug for s in in_build] == ["s1", "s2"]
    recent = await crud.list_sessions(
        db, started_after=T0 + timedelta(hours=2), order_by="started_at"
    )
    assert [s.session_slug for s in recent] == ["s3", "s2"]
    assert await crud.count_sessions(db, phase="build") == 3
    page = await crud.list_sessions(
        db, order_by="session_slug", descending=False, limit=2, offset=1
    )
    assert [s.session_slug for s in page] == ["s0", "s1"]


async def test_agents_list_and_delete_keeps_logs(db: AsyncSession) -> None:
    session = await crud.create_session(db, {"session_slug": "s"})
    build = await crud.create_agent(db, {"session_id": session.id, "agent_type": "build"})
    await crud.create_agent(
        db, {"session_id": session.id, "agent_type": "spec", "status": "failed"}
    )
    log = await crud.create_agent_log(
        db, {"session_id": session.id, "agent_id": build.id, "event_type": "Stop"}
    )
    assert [a.agent_type for a in await crud.list_agents(db, status="failed")] == ["spec"]
    await crud.delete_agent(db, build.id)
    assert (await crud.get_agent_log(db, log.id)).agent_id is None


async def test_agent_logs_in_time_order_with_filters(db: AsyncSession) -> None:
    session = await crud.create_session(db, {"session_slug": "s"})
    for minute, event in [(2, "PostToolUse"), (0, "SessionStart"), (1, "PreToolUse")]:
        await crud.create_agent_log(
            db,
            {
                "session_id": session.id,
                "event_type": event,
                "occurred_at": T0 + timedelta(minutes=minute),
            },
        )
    logs = await crud.list_agent_logs(db, session_id=session.id)
    assert [log.event_type for log in logs] == ["SessionStart", "PreToolUse", "PostToolUse"]
    window = await crud.list_agent_logs(
        db, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=2)
    )
    assert [log.event_type for log in window] == ["PreToolUse"]
    assert await crud.count_agent_logs(db, session_id=session.id, event_type="PreToolUse") == 1
    completed = await crud.update_agent_log(db, logs[1].id, {"tool_output": {"ok": True}})
    assert completed.tool_output == {"ok": True} and completed.event_type == "PreToolUse"
    await crud.delete_agent_log(db, logs[0].id)
    assert await crud.count_agent_logs(db, session_id=session.id) == 2


# The error contract: clear errors naming entity and field, identical on both engines,
# and nothing half-written.


async def test_duplicate_slug_is_a_conflict_naming_the_field(db: AsyncSession) -> None:
    await crud.create_session(db, {"session_slug": "taken"})
    with pytest.raises(ConflictError) as caught:
        await crud.create_session(db, {"session_slug": "taken"})
    assert (caught.value.entity, caught.value.field) == ("session", "session_slug")
    assert str(caught.value) == "session with this session_slug already exists"
    # The refused insert left the transaction usable and wrote nothing.
    assert await crud.count_sessions(db) == 1


async def test_reference_to_a_missing_row_names_the_field(db: AsyncSession) -> None:
    missing = uuid.uuid4()
    with pytest.raises(NotFoundError) as caught:
        await crud.create_agent(db, {"session_id": missing, "agent_type": "build"})
    assert caught.value.entity == "session" and caught.value.key == missing
    assert (
        str(caught.value) == f"agent.session_id refers to session {missing}, which does not exist"
    )
    assert await crud.list_agents(db) == []


@pytest.mark.parametrize(
    ("payload", "field", "fragment"),
    [
        ({"session_slug": "s", "phase": "shipping"}, "phase", "'created'"),
        ({"session_slug": "s", "priority": 9}, "priority", "less than or equal to 5"),
        ({"session_slug": "s", "progress_percentage": -1}, "progress_percentage", "greater"),
        ({"title": "no slug"}, "session_slug", "Field required"),
        ({"session_slug": "x" * 256}, "session_slug", "at most 255"),
        ({"session_slug": "s", "total_cost": "-0.5"}, "total_cost", "greater than or equal"),
        (
            {"session_slug": "s", "session_metadata": {"big": "x" * 8_000_001}},
            "session_metadata",
            "exceeds",
        ),
    ],
)
async def test_bad_input_is_refused_naming_the_field(
    db: AsyncSession, payload: dict[str, object], field: str, fragment: str
) -> None:
    with pytest.raises(InvalidInputError) as caught:
        await crud.create_session(db, payload)
    assert caught.value.entity == "session" and caught.value.field == field
    assert fragment in str(caught.value)
    assert await crud.count_sessions(db) == 0


async def test_database_rules_behind_validation_are_translated_too(db: AsyncSession) -> None:
    # completed_tasks <= total_tasks is a database rule pydantic cannot see.
    with pytest.raises(InvalidInputError) as caught:
        await crud.create_session(db, {"session_slug": "s", "total_tasks": 1, "completed_tasks": 2})
    assert caught.value.field == "completed_within_total"
    assert await crud.count_sessions(db) == 0


async def test_nul_characters_become_the_replacement_character(
    db: AsyncSession, engine: AsyncEngine
) -> None:
    session = await crud.create_session(
        db, {"session_slug": "nul\x00slug", "session_metadata": {"k\x00": ["v\x00"]}}
    )
    log = await crud.create_agent_log(
        db,
        {
            "session_id": session.id,
            "event_type": "E",
            "payload": {"out": "a\x00b"},
            "summary": "\x00",
        },
    )
    await db.commit()
    async with get_async_session(engine) as fresh:
        stored = await crud.get_session(fresh, session.id)
        stored_log = await crud.get_agent_log(fresh, log.id)
    assert stored.session_slug == "nul\ufffdslug"
    assert stored.session_metadata == {"k\ufffd": ["v\ufffd"]}
    assert stored_log.payload == {"out": "a\ufffdb"} and stored_log.summary == "\ufffd"


async def test_unknown_filter_values_and_paging_are_refused(db: AsyncSession) -> None:
    with pytest.raises(InvalidInputError, match=r"session\.phase:\ 'shiping'\ is\ not\ one\ of"):
        await crud.list_sessions(db, phase="shiping")
    with pytest.raises(InvalidInputError, match="limit"):
        await crud.list_sessions(db, limit=0)
    with pytest.raises(InvalidInputError, match="offset"):
        await crud.list_sessions(db, offset=-1)
    with pytest.raises(InvalidInputError, match="order_by"):
        await crud.list_sessions(db, order_by="id; DROP TABLE sessions")


async def test_update_refuses_null_for_required_fields_and_missing_rows(db: AsyncSession) -> None:
    session = await crud.create_session(db, {"session_slug": "s"})
    with pytest.raises(InvalidInputError, match=r"session\.phase:\ cannot\ be\ set\ to\ null"):
        await crud.update_session(db, session.id, {"phase": None})
    with pytest.raises(NotFoundError):
        await crud.update_session(db, uuid.uuid4(), {"title": "x"})
    with pytest.raises(InvalidInputError, match="expected SessionUpdate or a mapping"):
        await crud.update_session(db, session.id, ["title"])  # type: ignore[arg-type]


async def test_money_keeps_nine_places_through_crud(db: AsyncSession) -> None:
    session = await crud.create_session(db, {"session_slug": "s", "total_cost": "0.2416735"})
    assert session.total_cost == Decimal("0.2416735")


async def test_an_unreachable_database_is_a_session_db_error(tmp_path: object) -> None:
    from sqlalchemy.pool import NullPool
    from support import isolated_settings

    from session_db.database import create_engine

    engine = create_engine(
        isolated_settings(), url="postgresql://nobody:pw@127.0.0.1:1/none", poolclass=NullPool
    )
    try:
        with pytest.raises(DatabaseUnavailableError) as caught:
            async with get_async_session(engine) as db:
                await crud.get_session(db, uuid.uuid4())
        assert isinstance(caught.value, SessionDBError) and "pw" not in str(caught.value)
    finally:
        await engine.dispose()
