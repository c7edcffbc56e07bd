"""The plans of the statements the CRUD layer sends: the indexes they are meant to use.

Each test captures the statement a CRUD call really sends (with its parameters) and asks
the engine to explain it: SQLite's `EXPLAIN QUERY PLAN`, PostgreSQL's `EXPLAIN` with
sequential scans discouraged for the transaction (`SET LOCAL enable_seqscan = off`), as
a test database is too small for the planner to prefer an index on its own.
"""

import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from support import sent_statements

from session_db import crud

T0 = datetime(2026, 2, 12, 16, 0, tzinfo=UTC)


async def _plan(db: AsyncSession, engine: AsyncEngine, call: Callable[[], Awaitable[Any]]) -> str:
    """The engine's plan of the one statement `call` sends, as one text."""
    await db.flush()
    with sent_statements(engine) as sent:
        await call()
    [(statement, parameters)] = sent
    connection = await db.connection()
    if engine.dialect.name == "sqlite":
        rows = await connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)  # type: ignore[arg-type]
        return "\n".join(row[-1] for row in rows)
    await connection.execute(text("SET LOCAL enable_seqscan = off"))
    rows = await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)  # type: ignore[arg-type]
    return "\n".join(row[0] for row in rows)


async def _sessions(db: AsyncSession, count: int) -> list[Any]:
    return [
        await crud.create_session(
            db, {"session_slug": f"s{n}", "started_at": T0 + timedelta(minutes=n)}
        )
        for n in range(count)
    ]


async def test_the_default_session_list_is_read_in_order_off_its_index(
    db: AsyncSession, engine: AsyncEngine
) -> None:
    made = await _sessions(db, 5)
    plan = await _plan(db, engine, lambda: crud.list_sessions(db, limit=3))
    assert "ix_sessions_started_at_id" in plan, plan
    if engine.dialect.name == "sqlite":
        assert "USE TEMP B-TREE" not in plan, plan
    else:
        assert "Index Scan Backward using ix_sessions_started_at_id" in plan, plan
        assert "Sort" not in plan, plan
    listed = await crud.list_sessions(db, limit=3)
    assert [s.session_slug for s in listed] == ["s4", "s3", "s2"]
    assert listed[0].id == made[4].id


async def test_sessions_started_at_the_same_time_list_by_id_newest_first(
    db: AsyncSession,
) -> None:
    tied = [
        await crud.create_session(db, {"session_slug": f"t{n}", "started_at": T0})
        for n in (1, 2, 3)
    ]
    listed = await crud.list_sessions(db)
    assert [s.id for s in listed] == sorted((s.id for s in tied), reverse=True)
    oldest_first = await crud.list_sessions(db, descending=False)
    assert [s.id for s in oldest_first] == sorted(s.id for s in tied)


async def _other_trees(db: AsyncSession, engine: AsyncEngine, roots: int) -> None:
    """`roots` unrelated trees of ten subagents each, and fresh statistics: a graph big
    enough that walking it by scanning every edge would cost the planner more."""
    ids = await crud.ensure_sessions(
        db,
        [{"session_slug": f"other-{r}", "session_metadata": {}} for r in range(roots)]
        + [
            {"session_slug": f"other-{r}-{n}", "session_metadata": {}}
            for r in range(roots)
            for n in range(10)
        ],
    )
    await crud.link_new_children(
        db,
        [
            {
                "parent_session_id": ids[f"other-{r}"][0],
                "child_session_id": ids[f"other-{r}-{n}"][0],
            }
            for r in range(roots)
            for n in range(10)
        ],
    )
    await db.flush()
    connection = await db.connection()
    await connection.execute(text("ANALYZE"))


async def test_descendants_and_ancestors_follow_the_edge_indexes(
    db: AsyncSession, engine: AsyncEngine
) -> None:
    root, child, grandchild = await _sessions(db, 3)
    for parent, below in ((root, child), (child, grandchild)):
        await crud.link_sessions(db, {"parent_session_id": parent.id, "child_session_id": below.id})
    await _other_trees(db, engine, 300)
    down = await _plan(db, engine, lambda: crud.list_descendants(db, root.id))
    up = await _plan(db, engine, lambda: crud.list_ancestors(db, grandchild.id))
    # Down by an index led by parent_session_id, up by the child index: no table scan.
    assert re.search(
        r"(?i)using (covering )?(index )?(ix|uq)_session_relationships_parent_session_id", down
    ), down
    child_index = r"(?i)using (covering )?(index )?ix_session_relationships_child_session_id"
    assert re.search(child_index, up), up
    if engine.dialect.name == "sqlite":
        assert "SCAN session_relationships" not in down + up, down + up
    else:
        assert "Seq Scan on session_relationships" not in down + up, down + up
