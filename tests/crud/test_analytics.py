"""Seed 000's query patterns and seed 003's questions, on both engines; index use on PostgreSQL."""

import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.database import get_async_session
from session_db.errors import InvalidInputError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def fleet(db: AsyncSession) -> dict[str, Any]:
    """A project with a main session, two subagents in a wave, and an unrelated project."""
    shop = await crud.create_project(db, {"name": "shop", "root_path": "/shop"})
    blog = await crud.create_project(db, {"name": "blog", "root_path": "/blog"})
    main = await crud.create_session(
        db,
        {
            "session_slug": "main",
            "project_id": shop.id,
            "phase": "build",
            "started_at": T0,
            "ended_at": T0 + timedelta(minutes=10),
            "total_tokens": 900,
            "total_cost": "0.9",
            "checkpoints_total": 5,
            "checkpoints_completed": 2,
        },
    )
    subs = []
    for index in range(2):
        sub = await crud.create_session(
            db,
            {
                "session_slug": f"sub{index}",
                "project_id": shop.id,
                "session_role": "subagent",
                "started_at": T0 + timedelta(seconds=30 * (index + 1)),
                "duration_ms": 1000 * index,
                "total_tokens": 100,
                "total_cost": "0.1",
                "checkpoints_total": 2,
            },
        )
        await crud.link_sessions(
            db,
            {
                "parent_session_id": main.id,
                "child_session_id": sub.id,
                "spawn_reason": "task_tool",
                "delegation_type": "parallel",
            },
        )
        for second in range(3):
            await crud.create_agent_log(
                db,
                {
                    "session_id": sub.id,
                    "parent_session_id": main.id,
                    "session_depth": 1,
                    "wave_id": "wave-1",
                    "event_type": "PreToolUse",
                    "occurred_at": T0 + timedelta(minutes=1, seconds=10 * index + second),
                },
            )
        subs.append(sub)
    await crud.create_agent_log(
        db, {"session_id": main.id, "event_type": "SessionStart", "occurred_at": T0}
    )
    await crud.create_session(
        db, {"session_slug": "draft", "project_id": blog.id, "phase": "spec", "total_cost": "0.05"}
    )
    failed = await crud.create_agent(
        db, {"session_id": main.id, "agent_type": "build", "status": "failed"}
    )
    await crud.create_agent(
        db, {"session_id": main.id, "agent_type": "build", "status": "complete"}
    )
    return {"shop": shop, "blog": blog, "main": main, "subs": subs, "failed": failed}


async def test_timeline_orders_events_with_hierarchy_context(
    db: AsyncSession, fleet: dict[str, Any]
) -> None:
    entries = await crud.list_timeline(db, T0, T0 + timedelta(minutes=1, seconds=12))
    # SessionStart at 0:00, then sub0 at 1:00-1:02 and sub1 at 1:10-1:11 (1:12 is excluded).
    assert [e.event_type for e in entries] == ["SessionStart"] + ["PreToolUse"] * 5
    assert entries[0].relationship_type is None and entries[0].session_role == "main"
    assert {(e.spawn_reason, e.session_depth) for e in entries[1:]} == {("task_tool", 1)}
    with pytest.raises(InvalidInputError, match=r"query\.end"):
        await crud.list_timeline(db, T0, T0)


async def test_wave_summary(db: AsyncSession, fleet: dict[str, Any]) -> None:
    (wave,) = await crud.list_wave_summaries(db)
    assert (wave.wave_id, wave.session_count, wave.event_count) == ("wave-1", 2, 6)
    assert wave.started_at == T0 + timedelta(minutes=1)
    assert wave.ended_at == T0 + timedelta(minutes=1, seconds=12)


async def test_session_metrics(db: AsyncSession, fleet: dict[str, Any]) -> None:
    metrics = {m.session_slug: m for m in await crud.list_session_metrics(db, T0)}
    assert set(metrics) == {"main", "sub0", "sub1"}
    assert (metrics["main"].event_count, metrics["main"].agent_count) == (1, 2)
    assert (metrics["main"].duration_ms, metrics["main"].depth_level) == (600_000, None)
    assert (metrics["sub1"].event_count, metrics["sub1"].depth_level) == (3, 1)


async def test_spawn_correlation(db: AsyncSession, fleet: dict[str, Any]) -> None:
    pairs = await crud.list_spawn_correlations(db, T0 - timedelta(days=1))
    assert [(p.spawn_delay_ms, p.child_duration_ms) for p in pairs] == [(30_000, 0), (60_000, 1000)]
    assert {(p.parent_role, p.child_role, p.delegation_type) for p in pairs} == {
        ("main", "subagent", "parallel")
    }


async def test_seed_003_questions(db: AsyncSession, fleet: dict[str, Any]) -> None:
    in_build = await crud.list_sessions(db, phase="build")
    assert [s.session_slug for s in in_build] == ["main"]
    costs = await crud.list_cost_by_project(db)
    assert [(c.project_name, c.session_count, c.total_cost) for c in costs] == [
        ("shop", 3, Decimal("1.1")),
        ("blog", 1, Decimal("0.05")),
    ]
    assert costs[0].total_tokens == 1100
    failed = await crud.list_failed_agents(db)
    assert [a.id for a in failed] == [fleet["failed"].id]
    assert await crud.list_failed_agents(db, phase="spec") == []
    assert [s.session_slug for s in await crud.list_sessions_with_checkpoints(db, 3)] == ["main"]
    assert len(await crud.list_sessions_with_checkpoints(db, 1)) == 3
    with pytest.raises(InvalidInputError):
        await crud.list_sessions_with_checkpoints(db, -1)


# Index use: EXPLAIN the SQL the CRUD functions really run, once the tables are big
# enough that the planner prefers an index to reading everything.

Query = Callable[[AsyncSession, dict[str, uuid.UUID]], Awaitable[Any]]
HOT_QUERIES: dict[str, Query] = {
    "logs of a session by time": lambda db, ids: crud.list_agent_logs(
        db, session_id=ids["session"], since=T0, until=T0 + timedelta(minutes=5)
    ),
    "children of a session": lambda db, ids: crud.list_children(db, ids["session"]),
    "threads of a session": lambda db, ids: crud.list_session_threads(db, ids["session"]),
    "messages of a thread": lambda db, ids: crud.list_thread_messages(db, ids["thread"]),
}


BULK_LOAD = [
    """INSERT INTO sessions (id, session_slug, session_metadata)
       SELECT md5('s' || i)::uuid, 'bulk-' || i, '{}' FROM generate_series(1, 2000) i""",
    """INSERT INTO session_relationships (id, parent_session_id, child_session_id, spawn_metadata)
       SELECT gen_random_uuid(), md5('s' || (i / 2))::uuid, md5('s' || i)::uuid, '{}'
       FROM generate_series(2, 2000) i""",
    """INSERT INTO agent_logs (id, session_id, event_type, payload, occurred_at)
       SELECT gen_random_uuid(), md5('s' || (1 + i % 2000))::uuid, 'PreToolUse', '{}',
              timestamptz '2026-03-01 12:00+00' + i * interval '1 second'
       FROM generate_series(1, 100000) i""",
    """INSERT INTO threads (id, session_id, name)
       SELECT md5('t' || i)::uuid, md5('s' || (1 + i % 2000))::uuid, 'thread ' || i
       FROM generate_series(1, 4000) i""",
    """INSERT INTO thread_messages (id, thread_id, role, content, idx)
       SELECT gen_random_uuid(), md5('t' || (1 + i % 4000))::uuid, 'user', 'hi', i / 4000
       FROM generate_series(0, 39999) i""",
]


def _md5_uuid(text_value: str) -> uuid.UUID:
    return uuid.UUID(hex=hashlib.md5(text_value.encode()).hexdigest())


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_hot_queries_use_an_index(engine: AsyncEngine) -> None:
    """2,000 sessions with edges, 100,000 events, 4,000 threads, 40,000 messages."""
    async with engine.begin() as connection:
        for statement in BULK_LOAD:
            await connection.execute(text(statement))
    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.exec_driver_sql("ANALYZE")
    ids = {"session": _md5_uuid("s7"), "thread": _md5_uuid("t7")}
    problems = []
    for name, query in HOT_QUERIES.items():
        for statement, parameters in await _captured_selects(engine, query, ids):
            async with engine.connect() as connection:
                rows = (await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)).all()
            plan = "\n".join(row[0] for row in rows)
            if "Seq Scan" in plan or "Index" not in plan:
                problems.append(f"{name}:\n{statement}\n{plan}")
    assert not problems, "\n\n".join(problems)


async def _captured_selects(
    engine: AsyncEngine, query: Query, ids: dict[str, uuid.UUID]
) -> list[tuple[str, Any]]:
    """Run `query` and return the SELECT statements it sent, with their parameters."""
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with get_async_session(engine) as db:
            await query(db, ids)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    assert statements, "the query ran no SELECT"
    return statements


async def test_cost_breakdown_by_project_session_agent_type_and_model(
    db: AsyncSession, fleet: dict[str, Any]
) -> None:
    await crud.create_agent(
        db,
        {
            "session_id": fleet["main"].id,
            "agent_type": "spec",
            "model": "opus",
            "input_tokens": 10,
            "output_tokens": 5,
            "cache_read_tokens": 1,
            "total_cost": "0.3",
            "started_at": T0,
        },
    )
    by_project = await crud.list_cost_breakdown(db, "project")
    assert [(c.key, c.count, c.total_tokens, c.total_cost) for c in by_project] == [
        ("shop", 3, 1100, Decimal("1.1")),
        ("blog", 1, 0, Decimal("0.05")),
    ]
    by_session = await crud.list_cost_breakdown(
        db, "session", since=T0, until=T0 + timedelta(seconds=31)
    )
    assert [c.key for c in by_session] == ["main", "sub0"]  # sub1 started at +60 s; draft never
    by_model = await crud.list_cost_breakdown(db, "model")
    assert [(c.key, c.count, c.total_tokens) for c in by_model] == [
        ("opus", 1, 16),
        ("(unknown)", 2, 0),
    ]
    by_type = await crud.list_cost_breakdown(db, "agent_type", since=T0)
    assert [(c.key, c.total_cost) for c in by_type] == [("spec", Decimal("0.3"))]
    with pytest.raises(InvalidInputError, match="colour"):
        await crud.list_cost_breakdown(db, "colour")
    with pytest.raises(InvalidInputError, match="after start"):
        await crud.list_cost_breakdown(db, "project", since=T0, until=T0)


async def test_cost_by_model_groups_dated_bedrock_and_vertex_ids_under_one_name(
    db: AsyncSession, fleet: dict[str, Any]
) -> None:
    for model, cost in [
        ("claude-sonnet-4-5-20250929", "0.25"),
        ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "0.5"),
        ("claude-sonnet-4-5@20250929", "0.125"),
        ("claude-haiku-4-5", "2"),
    ]:
        await crud.create_agent(
            db,
            {
                "session_id": fleet["main"].id,
                "agent_type": "spec",
                "model": model,
                "input_tokens": 10,
                "total_cost": cost,
                "started_at": T0,
            },
        )
    by_model = await crud.list_cost_breakdown(db, "model")
    assert [(c.key, c.count, c.total_tokens, c.total_cost) for c in by_model] == [
        ("claude-haiku-4-5", 1, 10, Decimal("2")),
        ("claude-sonnet-4-5", 3, 30, Decimal("0.875")),
        ("(unknown)", 2, 0, Decimal("0")),
    ]
