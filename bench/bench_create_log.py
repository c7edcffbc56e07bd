"""`create_agent_log`, one per transaction, against a raw INSERT + COMMIT of the same row.

Subject: `async with get_async_session(engine) as db: await create_agent_log(db, {...})`.
Baseline: `async with engine.begin() as c: await c.execute(text("INSERT ..."), params)`
on the same engine, with the same columns and values (in the driver's forms). The two
run in alternating rounds on one fresh migrated database, so noise hits both alike; the
figure is rows/s of each (total rows / total time). Target: at least 0.5x.

    python bench/bench_create_log.py [--url postgresql+asyncpg://...] [--quick]
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from _common import dialect_name, fresh_database, parser, row, scaled, settings
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.crud.agent_logs import create_agent_log
from session_db.database import create_engine, get_async_session

ROWS = 2000  # of each
ROUND = 50
TOOL_INPUT = {
    "file_path": "/home/dev/projects/webshop/src/shop/orders.py",
    "old_string": "    return list(rows.all())\n" * 8,
    "new_string": "    return [Order.model_validate(r) for r in rows.all()]\n" * 8,
    "replace_all": False,
}


def payload(session: str) -> dict[str, Any]:
    return {
        "session_id": session,
        "transcript_path": f"/home/dev/.claude/projects/-home-dev-projects-webshop/{session}.jsonl",
        "cwd": "/home/dev/projects/webshop",
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": "Edit",
        "tool_input": TOOL_INPUT,
        "tool_use_id": "toolu_01ABCDEFGHIJKLMNOPQRSTUV",
    }


def values(session_id: uuid.UUID, external: str) -> dict[str, Any]:
    """The row's values as a caller of create_agent_log gives them."""
    return {
        "session_id": session_id,
        "event_type": "PreToolUse",
        "event_category": "hook",
        "source_app": "claude-code",
        "tool_name": "Edit",
        "tool_input": TOOL_INPUT,
        "payload": payload(external),
        "external_session_id": external,
        "tool_use_id": "toolu_01ABCDEFGHIJKLMNOPQRSTUV",
        "permission_mode": "default",
        "cwd": "/home/dev/projects/webshop",
        "occurred_at": datetime.now(UTC),
    }


def raw_insert(dialect: str, data: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The INSERT of the same row (with the id and created_at the ORM would add)."""
    params = dict(data, id=uuid.uuid4(), created_at=datetime.now(UTC), session_depth=0)
    params["tool_input"] = json.dumps(params["tool_input"])
    params["payload"] = json.dumps(params["payload"])
    if dialect == "sqlite":  # the stored forms: hex UUIDs, naive UTC text
        for key in ("id", "session_id"):
            params[key] = params[key].hex
        for key in ("occurred_at", "created_at"):
            params[key] = params[key].replace(tzinfo=None).isoformat(" ", "microseconds")
    columns = ", ".join(params)
    placeholders = ", ".join(f":{name}" for name in params)
    return text(f"INSERT INTO agent_logs ({columns}) VALUES ({placeholders})"), params


async def measure(url: str, rows: int) -> tuple[float, float]:
    engine: AsyncEngine = create_engine(settings(), url=url)
    dialect = engine.dialect.name
    external = str(uuid.uuid4())
    session_id = uuid.uuid4()
    sid = session_id.hex if dialect == "sqlite" else session_id
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO sessions (id, session_slug, session_metadata) "
                    "VALUES (:id, :slug, '{}')"
                ),
                {"id": sid, "slug": external},
            )

        async def subject(count: int) -> float:
            started = time.perf_counter()
            for _ in range(count):
                async with get_async_session(engine) as db:
                    await create_agent_log(db, values(session_id, external))
            return time.perf_counter() - started

        async def baseline(count: int) -> float:
            started = time.perf_counter()
            for _ in range(count):
                statement, params = raw_insert(dialect, values(session_id, external))
                async with engine.begin() as connection:
                    await connection.execute(statement, params)
            return time.perf_counter() - started

        await subject(10)  # warm up: statement caches, the pool, the page cache
        await baseline(10)
        subject_s = baseline_s = 0.0
        for _ in range(max(1, rows // ROUND)):
            subject_s += await subject(ROUND)
            baseline_s += await baseline(ROUND)
    finally:
        await engine.dispose()
    done = max(1, rows // ROUND) * ROUND
    return done / subject_s, done / baseline_s


def run(url: str | None, quick: bool, *, scale: float | None = None) -> list[dict[str, Any]]:
    rows = scaled(ROWS, quick, scale, minimum=ROUND)
    with fresh_database(url) as fresh:
        subject, baseline = asyncio.run(measure(fresh, rows))
    return [
        row(
            f"create_agent_log, one per transaction ({dialect_name(url)})",
            subject,
            "rows/s",
            baseline,
            "≥ 0.5x",
            compared_with="raw INSERT + COMMIT on the same engine",
            note=f"{rows:,} rows each, alternating rounds of {ROUND}",
        )
    ]


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    for result in run(args.url, args.quick):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
