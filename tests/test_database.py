"""init_db, get_async_session and reset_db behave as seed 001 shows, on both engines."""

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import selectinload
from support import isolated_settings

from session_db import database
from session_db.database import create_engine, get_async_session, init_db, reset_db
from session_db.errors import ResetRefusedError
from session_db.migrate import current_revision, head_revision
from session_db.models import Agent, AgentLog, Project, Session


async def test_seed_001_usage_runs_on_the_default_engine(default_database: URL) -> None:
    await init_db()
    async with get_async_session() as db:
        session = Session(
            session_slug="2026-01-15_auth-feature",
            title="Implement Authentication",
            working_dir="/path/to/project",
            session_type="full",
        )
        db.add(session)
    async with get_async_session() as db:
        agent = Agent(
            session_id=session.id,
            agent_type="spec",
            model="claude-sonnet-4-5-20250929",
            model_alias="sonnet",
        )
        db.add(agent)
    async with get_async_session() as db:
        db.add(
            AgentLog(
                agent_id=agent.id,
                session_id=session.id,
                event_category="hook",
                event_type="PreToolUse",
                tool_name="Read",
                tool_input={"file_path": "/src/auth.py"},
            )
        )
    async with get_async_session() as db:
        log = (await db.exec(select(AgentLog))).one()[0]
    assert log.tool_input == {"file_path": "/src/auth.py"}
    assert log.session_id == session.id and log.agent_id == agent.id


async def test_init_db_creates_an_empty_database_at_head(tmp_path: Path) -> None:
    engine = create_engine(
        isolated_settings(), url=f"sqlite+aiosqlite:///{tmp_path / 'new.sqlite'}"
    )
    try:
        assert await current_revision(engine) is None
        await init_db(engine)
        await init_db(engine)  # a second call finds nothing to do
        assert await current_revision(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_session_scope_commits_on_clean_exit(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        db.add(Project(name="kept", root_path="/kept"))
    async with get_async_session(engine) as db:
        assert (await db.exec(select(func.count()).select_from(Project))).one()[0] == 1


async def test_session_scope_rolls_back_on_error(engine: AsyncEngine) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        async with get_async_session(engine) as db:
            db.add(Project(name="lost", root_path="/lost"))
            await db.flush()  # the row reached the database inside the transaction
            raise RuntimeError("boom")
    async with get_async_session(engine) as db:
        assert (await db.exec(select(func.count()).select_from(Project))).one()[0] == 0


async def test_reset_db_refuses_without_an_explicit_request(default_database: URL) -> None:
    async with get_async_session() as db:
        db.add(Project(name="precious", root_path="/precious"))
    with pytest.raises(ResetRefusedError, match="confirm=True"):
        await reset_db()
    async with get_async_session() as db:
        assert (await db.exec(select(func.count()).select_from(Project))).one()[0] == 1


async def test_reset_db_with_confirm_deletes_everything_and_stays_at_head(
    default_database: URL,
) -> None:
    async with get_async_session() as db:
        db.add(Project(name="doomed", root_path="/doomed"))
    await reset_db(confirm=True)
    async with get_async_session() as db:
        assert (await db.exec(select(func.count()).select_from(Project))).one()[0] == 0
    assert await current_revision(database.get_engine()) == head_revision()


async def test_reset_db_as_seed_001_writes_it_when_the_setting_allows(
    default_database: URL, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SESSION_DB_ALLOW_RESET", "true")
    async with get_async_session() as db:
        db.add(Project(name="doomed", root_path="/doomed"))
    await reset_db()  # WARNING: Deletes all data!
    async with get_async_session() as db:
        assert (await db.exec(select(func.count()).select_from(Project))).one()[0] == 0


async def test_timestamps_come_back_aware_utc(db, engine: AsyncEngine) -> None:  # type: ignore[no-untyped-def]
    paris = timezone(timedelta(hours=1))
    aware = datetime(2026, 1, 15, 10, 30, 0, 123456, tzinfo=paris)
    naive = datetime(2026, 1, 15, 9, 0, 0)  # documented: naive means UTC
    early = Session(session_slug="early", started_at=naive)
    late = Session(session_slug="late", started_at=aware)
    db.add_all([early, late])
    await db.commit()
    async with get_async_session(engine) as fresh:
        rows = (await fresh.exec(select(Session).order_by(Session.started_at))).all()
        stored = [row[0] for row in rows]
    assert [s.session_slug for s in stored] == ["early", "late"]
    assert stored[0].started_at == datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    assert stored[1].started_at == aware
    assert all(s.started_at.tzinfo is UTC for s in stored)
    assert all(s.created_at.tzinfo is UTC for s in stored)


async def test_server_default_timestamps_are_aware_utc(engine: AsyncEngine) -> None:
    sid = uuid.uuid4()
    raw_id = sid.hex if engine.dialect.name == "sqlite" else str(sid)
    before = datetime.now(UTC).replace(microsecond=0)
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO projects (id, name, root_path, project_metadata) "
                "VALUES (:id, 'raw', '/raw', '{}')"
            ),
            {"id": raw_id},
        )
    async with get_async_session(engine) as db:
        project = await db.get(Project, sid)
    assert project is not None and project.created_at.tzinfo is UTC
    assert before - timedelta(seconds=5) <= project.created_at <= datetime.now(UTC)


async def test_money_is_exact_to_nine_places(db, engine: AsyncEngine) -> None:  # type: ignore[no-untyped-def]
    costs = [Decimal("0.2416735"), Decimal("0.000000001"), Decimal("12345.678901234")]
    db.add_all(Session(session_slug=f"s{i}", total_cost=c) for i, c in enumerate(costs))
    await db.commit()
    async with get_async_session(engine) as fresh:
        stored = sorted(r[0] for r in (await fresh.exec(select(Session.total_cost))).all())
        total = (await fresh.exec(select(func.sum(Session.total_cost)))).one()[0]
    assert stored == sorted(costs)
    assert all(isinstance(value, Decimal) for value in stored)
    assert Decimal(total).quantize(Decimal("1e-9")) == sum(costs)


async def test_json_round_trips_and_is_jsonb_on_postgresql(db, engine: AsyncEngine) -> None:  # type: ignore[no-untyped-def]
    payload = {"tool": "Read", "nested": {"list": [1, 2.5, None, "ü"]}, "flag": True}
    session = Session(session_slug="json", session_metadata=payload)
    db.add(session)
    await db.commit()
    async with get_async_session(engine) as fresh:
        stored = await fresh.get(Session, session.id)
    assert stored is not None and stored.session_metadata == payload
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            kind = (
                await connection.execute(
                    text(
                        "SELECT data_type FROM information_schema.columns "
                        "WHERE table_name = 'sessions' AND column_name = 'session_metadata'"
                    )
                )
            ).scalar_one()
        assert kind == "jsonb"


async def test_relationships_never_lazy_load(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        session = Session(session_slug="with-agents")
        db.add(session)
        await db.flush()
        db.add(Agent(session_id=session.id, agent_type="build"))
    async with get_async_session(engine) as db:
        plain = await db.get(Session, session.id)
        assert plain is not None
        with pytest.raises(InvalidRequestError, match="lazy='raise'"):
            _ = plain.agents
        loaded = (
            await db.exec(
                select(Session)
                .options(selectinload(Session.agents))
                .where(Session.id == session.id)
            )
        ).one()[0]
        assert [agent.agent_type for agent in loaded.agents] == ["build"]


async def test_objects_stay_readable_after_commit_without_a_connection(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        project = Project(name="after", root_path="/after")
        db.add(project)
    await engine.dispose()  # no connection left: any refresh would have to reconnect
    assert project.name == "after" and project.created_at.tzinfo is UTC
