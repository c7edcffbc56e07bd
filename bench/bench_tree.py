"""Session trees: `list_descendants`, `get_session_tree` and `sessions tree`, each beside one
hand-written recursive CTE returning the same columns.

Subjects, on one fresh migrated database holding a 20,000-node parent/child tree (five
children a node) and a 1,000-node one:
- `list_descendants(db, root)` of the 20,000-node tree. Baseline: `db.execute(text(...))`
  of a recursive CTE selecting the same columns (typed the same way, so both return the
  same Python values). Alternating rounds. Target: at most 1.5x.
- `get_session_tree(db, root)` of the 1,000-node tree, every node with its rolled-up
  cost, tokens and session count. Baseline: the same CTE at 1,000 nodes. Target: at most
  1.5x. Beside it, the statements it ran (a `before_cursor_execute` listener); target 1.
- `session-db sessions tree ROOT` of the 1,000-node tree, as a user runs it (a new
  process). Baseline: the same command on a one-node tree (start-up and connecting).

    python bench/bench_tree.py [--url postgresql+asyncpg://...] [--quick]
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from _common import (
    clean_env,
    dialect_name,
    fresh_database,
    median_ms,
    parser,
    row,
    scaled,
    settings,
)
from sqlalchemy import Integer, String, Uuid, bindparam, event, insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db import crud
from session_db.database import create_engine, get_async_session
from session_db.models import Session, SessionRelationship
from session_db.models.base import Money, UTCDateTime, new_id

BIG = 20_000
SMALL = 1_000
FANOUT = 5
ROUNDS = 7

# The hand-written walk: what `list_descendants` must stay close to.
CTE = """
WITH RECURSIVE walk(edge_id, session_id, depth) AS (
    SELECT e.id, e.child_session_id, 1
    FROM session_relationships e
    WHERE e.parent_session_id = :start AND e.relationship_type = 'parent/child'
    UNION ALL
    SELECT e.id, e.child_session_id, w.depth + 1
    FROM session_relationships e JOIN walk w ON e.parent_session_id = w.session_id
    WHERE w.depth < 64 AND e.relationship_type = 'parent/child'
)
SELECT s.id, s.session_slug, s.title, s.phase, s.status, s.session_type, s.started_at,
       s.ended_at, s.total_tokens, s.total_cost, s.total_tasks, s.completed_tasks,
       e.id AS relationship_id, e.relationship_type, e.parent_session_id,
       e.child_session_id, e.session_path, w.depth
FROM walk w
JOIN sessions s ON s.id = w.session_id
JOIN session_relationships e ON e.id = w.edge_id
ORDER BY w.depth, e.created_at, s.id
"""


def hand_written() -> Any:
    """The CTE with its columns typed as the library's are (UUIDs, UTC times, money)."""
    return (
        text(CTE)
        .bindparams(bindparam("start", type_=Uuid()))
        .columns(
            id=Uuid(),
            session_slug=String(),
            title=String(),
            phase=String(),
            status=String(),
            session_type=String(),
            started_at=UTCDateTime(),
            ended_at=UTCDateTime(),
            total_tokens=Integer(),
            total_cost=Money(),
            total_tasks=Integer(),
            completed_tasks=Integer(),
            relationship_id=Uuid(),
            relationship_type=String(),
            parent_session_id=Uuid(),
            child_session_id=Uuid(),
            session_path=String(),
            depth=Integer(),
        )
    )


async def make_tree(engine: AsyncEngine, prefix: str, size: int) -> uuid.UUID:
    """Insert a `size`-node tree (FANOUT children a node, breadth first); return its root."""
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    ids = [new_id() for _ in range(size)]
    sessions, edges, paths = [], [], {0: f"{prefix}-0"}
    for n, session_id in enumerate(ids):
        slug = f"{prefix}-{n}"
        sessions.append(
            {
                "id": session_id,
                "session_slug": slug,
                "title": f"Subagent {n}",
                "phase": "build",
                "status": "completed",
                "session_role": "subagent" if n else "main",
                "started_at": start + timedelta(seconds=n),
                "ended_at": start + timedelta(seconds=n + 30),
                "total_tokens": 1000 + n,
                "total_cost": Decimal("0.012345678"),
                "session_metadata": {},
                "created_at": start,
                "updated_at": start,
            }
        )
        if n:
            parent = (n - 1) // FANOUT
            paths[n] = f"{paths[parent]}.{slug}"
            edges.append(
                {
                    "id": new_id(),
                    "parent_session_id": ids[parent],
                    "child_session_id": session_id,
                    "relationship_type": "parent/child",
                    "spawn_reason": "task_tool",
                    "spawn_metadata": {},
                    "depth_level": paths[n].count("."),
                    "session_path": paths[n],
                    "created_at": start + timedelta(seconds=n),
                }
            )
    async with engine.begin() as connection:  # every session first: edges refer to them
        for rows, table in ((sessions, Session.__table__), (edges, SessionRelationship.__table__)):  # type: ignore[attr-defined]
            for chunk in range(0, len(rows), 5000):
                await connection.execute(insert(table), rows[chunk : chunk + 5000])
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.execution_options(isolation_level="AUTOCOMMIT")
            await connection.execute(text("ANALYZE sessions"))
            await connection.execute(text("ANALYZE session_relationships"))
    return ids[0]


async def interleaved(subject: Any, baseline: Any, rounds: int) -> tuple[float, float]:
    """Median seconds of each, run in alternating rounds after one warm-up of each."""
    await subject()
    await baseline()
    subject_s, baseline_s = [], []
    for _ in range(rounds):
        for call, samples in ((subject, subject_s), (baseline, baseline_s)):
            started = time.perf_counter()
            await call()
            samples.append(time.perf_counter() - started)
    return median_ms(subject_s), median_ms(baseline_s)


async def measure(url: str, big: int, small: int, rounds: int) -> dict[str, Any]:
    engine = create_engine(settings(), url=url)
    try:
        big_root = await make_tree(engine, "big", big)
        small_root = await make_tree(engine, "small", small)
        leaf_root = await make_tree(engine, "leaf", 1)

        def timed(call: Any, root: uuid.UUID) -> Any:
            async def go() -> int:
                async with get_async_session(engine, read_only=True) as db:
                    return len(await call(db, root))

            return go

        async def cte(db: Any, root: uuid.UUID) -> list[Any]:
            return list((await db.execute(hand_written(), {"start": root})).all())

        async def tree(db: Any, root: uuid.UUID) -> list[Any]:
            return [await crud.get_session_tree(db, root)]

        found = {}
        async with get_async_session(engine, read_only=True) as db:
            found["subject"] = len(await crud.list_descendants(db, big_root))
            found["baseline"] = len(await cte(db, big_root))
        assert found["subject"] == found["baseline"] == big - 1, found
        descendants = await interleaved(
            timed(crud.list_descendants, big_root), timed(cte, big_root), rounds
        )
        trees = await interleaved(timed(tree, small_root), timed(cte, small_root), rounds)

        statements = 0

        def count(*_: Any) -> None:
            nonlocal statements
            statements += 1

        async with get_async_session(engine, read_only=True) as db:
            await db.connection()  # the transaction's BEGIN is not the tree's
            event.listen(engine.sync_engine, "before_cursor_execute", count)
            try:
                await crud.get_session_tree(db, small_root)
            finally:
                event.remove(engine.sync_engine, "before_cursor_execute", count)
    finally:
        await engine.dispose()
    command = command_ms(url, small_root, leaf_root)
    return {
        "descendants": descendants,
        "tree": trees,
        "statements": statements,
        "command": command,
    }


def command_ms(url: str, root: uuid.UUID, leaf: uuid.UUID) -> tuple[float, float] | None:
    """Milliseconds of `session-db sessions tree` on each root (median of three runs)."""
    executable = shutil.which("session-db", path=os.path.dirname(sys.executable))
    if executable is None:
        return None
    env = clean_env(SESSION_DB_URL=url, COLUMNS="120")

    def once(session: uuid.UUID) -> float:
        started = time.perf_counter()
        subprocess.run(
            [executable, "sessions", "tree", str(session)],
            env=env,
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - started

    once(leaf)
    samples = [(once(root), once(leaf)) for _ in range(3)]
    return median_ms([s for s, _ in samples]), median_ms([b for _, b in samples])


def run(url: str | None, quick: bool, *, scale: float | None = None) -> list[dict[str, Any]]:
    big = scaled(BIG, quick, scale, minimum=10)
    small = scaled(SMALL, quick, scale, minimum=10)
    with fresh_database(url) as fresh:
        figures = asyncio.run(measure(fresh, big, small, ROUNDS))
    name = dialect_name(url)
    descendants, tree = figures["descendants"], figures["tree"]
    rows = [
        row(
            f"list_descendants, {big:,} nodes ({name})",
            descendants[0],
            "ms",
            descendants[1],
            "≤ 1.5x",
            compared_with="hand-written recursive CTE, same columns",
            note=f"median of {ROUNDS} alternating rounds",
        ),
        row(
            f"get_session_tree with rollups, {small:,} nodes ({name})",
            tree[0],
            "ms",
            tree[1],
            "≤ 1.5x",
            compared_with="hand-written recursive CTE, same columns",
            note=f"median of {ROUNDS} alternating rounds",
        ),
        row(
            f"get_session_tree statements, {small:,} nodes ({name})",
            figures["statements"],
            "",
            1,
            "≤ 1x",
            compared_with="one statement",
        ),
    ]
    if figures["command"] is not None:
        subject, baseline = figures["command"]
        rows.append(
            row(
                f"`session-db sessions tree`, {small:,} nodes ({name})",
                subject,
                "ms",
                baseline,
                "",
                compared_with="the same command on a one-node tree",
                note="a new process each time, median of 3",
            )
        )
    return rows


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    for result in run(args.url, args.quick):
        print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
