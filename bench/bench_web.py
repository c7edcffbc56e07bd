"""Dashboard: server time of each page at 1,000,000 events, beside a SELECT 1 round trip.

Builds its own data on a fresh database: 1,000 sessions in 10 projects, 3 agent runs
each, 1,000,000 hook events (a tenth of them in one big session, the rest spread over
the others, over 60 days), 2,000 tool calls, a 30-task plan and a thread in the big
session. Each page is requested through httpx's ASGI transport against
`create_app(engine)` (no network, no browser: the server's own time), 2 warm-ups then
the median of 15. Target: every page ≤ 300 ms; the baseline is a `SELECT 1` in a
read-only session of the same engine, measured in the same run.

    python bench/bench_web.py [--url postgresql+asyncpg://...] [--quick] [--events N]
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from _common import dialect_name, fresh_database, migrated_engine, parser, row, scaled
from sqlalchemy import text

from session_db import crud
from session_db.database import get_async_session
from session_db.models import AgentLogCreate

EVENTS = 1_000_000
SESSIONS = 1_000
BUDGET_MS = 300.0
ROUNDS = 15
BATCH = 20_000
START = datetime(2026, 1, 1, tzinfo=UTC)
BIG = "bench-big-session"
EVENT_TYPES = ("PreToolUse", "PostToolUse", "UserPromptSubmit", "Notification", "Stop")
TOOLS = ("Bash", "Read", "Edit", "Grep", "Write", "Glob")
MODELS = ("claude-sonnet-4-5-20250929", "claude-opus-4-1", "claude-haiku-4-5", "gpt-4o")


async def build(engine: Any, events: int, sessions: int) -> dict[str, Any]:
    """Write the data set; return the slugs the pages are asked about."""
    async with get_async_session(engine) as db:
        projects = await crud.upsert_projects(db, [f"/src/project-{n}" for n in range(10)])
        project_ids = list(projects.values())
        slugs = [BIG] + [f"bench-session-{n:05}" for n in range(1, sessions)]
        ids = await crud.ensure_sessions(
            db,
            [
                {
                    "session_slug": slug,
                    "title": f"Session {n}: {('search', 'auth', 'billing', 'docs')[n % 4]}",
                    "project_id": project_ids[n % len(project_ids)],
                    "source_app": ("claude-code", "amp", "codex", "gemini")[n % 4],
                    "phase": ("spec", "plan", "build", "docs", "complete")[n % 5],
                    "status": "active" if n % 7 == 0 else "completed",
                    "started_at": START + timedelta(minutes=86 * n),
                    "last_activity_at": START + timedelta(minutes=86 * n + 40),
                    "total_tokens": 10_000 * (n % 50),
                    "total_cost": Decimal(n % 50) / 10,
                    # Given, because ensure_sessions' COPY path on PostgreSQL (a batch this
                    # big) leaves an omitted NOT NULL column null instead of its default.
                    "session_metadata": {},
                }
                for n, slug in enumerate(slugs)
            ],
        )
        session_ids = [ids[slug][0] for slug in slugs]
        await crud.upsert_agents(
            db,
            {
                uuid.uuid4(): {
                    "session_id": session_id,
                    "agent_type": ("spec", "build", "research")[k],
                    "model": MODELS[(n + k) % len(MODELS)],
                    "status": "complete",
                    "started_at": START + timedelta(minutes=86 * n + 5 * k),
                    "input_tokens": 1_000 * (n % 30 + k),
                    "output_tokens": 200 * (n % 30 + k),
                    "cache_creation_tokens": 50 * k,
                    "cache_read_tokens": 5_000 * (n % 30),
                    "total_cost": Decimal(n % 30 + k) / 100,
                }
                for n, session_id in enumerate(session_ids)
                for k in range(3)
            },
        )
        big = session_ids[0]
        await crud.save_tool_calls(
            db,
            [
                {
                    "id": uuid.uuid4(),
                    "session_id": big,
                    "tool_use_id": f"toolu_{n}",
                    "tool_name": TOOLS[n % len(TOOLS)],
                    "status": "failed" if n % 17 == 0 else "succeeded",
                    "started_at": START + timedelta(seconds=30 * n),
                    "ended_at": START + timedelta(seconds=30 * n + 5 + n % 20),
                    "duration_ms": 5_000 + 1_000 * (n % 20),
                }
                for n in range(2_000)
            ],
        )
        tasks = [
            await crud.create_task(
                db, {"session_id": big, "title": f"Task {n}", "plan_ref": f"1.{n}"}
            )
            for n in range(1, 31)
        ]
        for before, after in itertools.pairwise(tasks):
            await crud.add_task_dependency(db, after.id, before.id)
        thread = await crud.create_thread(db, {"session_id": big, "name": "planning"})
        for n in range(20):
            await crud.add_thread_message(db, thread.id, "user", f"message {n}")
    span = timedelta(days=60).total_seconds()
    written = 0
    while written < events:
        count = min(BATCH, events - written)
        rows = []
        for n in range(written, written + count):
            # A tenth in the big session; the rest round-robin over the others.
            session_id = big if n % 10 == 0 else session_ids[1 + n % (len(session_ids) - 1)]
            rows.append(
                AgentLogCreate.model_construct(
                    session_id=session_id,
                    event_type=EVENT_TYPES[n % len(EVENT_TYPES)],
                    tool_name=TOOLS[n % len(TOOLS)],
                    summary=f"event {n}",
                    occurred_at=START + timedelta(seconds=span * n / events),
                    payload={"hook_event_name": EVENT_TYPES[n % len(EVENT_TYPES)], "n": n},
                )
            )
        async with get_async_session(engine) as db:
            await crud.add_agent_logs(db, rows)
        written += count
    if engine.dialect.name == "postgresql":
        async with engine.connect() as connection:
            await connection.execute(text("COMMIT"))
            await connection.execute(text("ANALYZE"))
    else:
        async with engine.begin() as connection:
            await connection.execute(text("ANALYZE"))
    return {"big": BIG, "small": slugs[-1], "big_id": big}


async def select_one(engine: Any) -> None:
    async with get_async_session(engine, read_only=True) as db:
        await db.exec(text("SELECT 1"))  # type: ignore[call-overload]


async def measure(url: str, events: int, sessions: int) -> tuple[dict[str, float], float, str]:
    import httpx

    from session_db.web import create_app

    engine = await migrated_engine(url)
    try:
        started = time.perf_counter()
        built = await build(engine, events, sessions)
        build_s = time.perf_counter() - started
        pages = {
            "overview /": "/",
            "sessions /sessions": "/sessions",
            "sessions, searched and sorted by cost": "/sessions?q=search&sort=cost&dir=desc",
            "sessions, filtered, page 3": "/sessions?agent=amp&status=completed&page=3",
            f"session page, {events // 10:,} events": f"/sessions/{built['big']}",
            "session page, a small session": f"/sessions/{built['small']}",
        }
        transport = httpx.ASGITransport(app=create_app(engine))
        timings: dict[str, list[float]] = {name: [] for name in pages}
        baseline: list[float] = []
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for path in pages.values():
                for _ in range(2):
                    assert (await client.get(path)).status_code == 200, path
            for _ in range(ROUNDS):  # interleaved, so noise hits every figure alike
                started = time.perf_counter()
                await select_one(engine)
                baseline.append(time.perf_counter() - started)
                for name, path in pages.items():
                    started = time.perf_counter()
                    response = await client.get(path)
                    timings[name].append(time.perf_counter() - started)
                    assert response.status_code == 200, path
        # The live stream's poll, once a second per open page: one indexed look.
        cursor_of: Any = None
        async with get_async_session(engine, read_only=True) as db:
            cursor_of = await crud.get_latest_log_cursor(db, session_id=built["big_id"])
        polls = []
        for _ in range(ROUNDS):
            started = time.perf_counter()
            async with get_async_session(engine, read_only=True) as db:
                await crud.list_agent_logs_after(db, cursor_of, session_id=built["big_id"])
            polls.append(time.perf_counter() - started)
        timings["live stream poll (no new events)"] = polls
    finally:
        await engine.dispose()
    medians = {name: statistics.median(samples) * 1000 for name, samples in timings.items()}
    note = f"data built in {build_s:.0f} s"
    return medians, statistics.median(baseline) * 1000, note


def run(url: str | None, quick: bool, *, scale: float | None = None) -> list[dict]:
    """Each page's median server time beside a SELECT 1 round trip."""
    events = scaled(EVENTS, quick, scale, minimum=1_000)
    sessions = scaled(SESSIONS, quick, scale, minimum=20)
    with fresh_database(url, migrate=False) as fresh:
        medians, baseline, note = asyncio.run(measure(fresh, events, sessions))
    results = []
    for index, (name, value) in enumerate(medians.items()):
        verdict = "within" if value <= BUDGET_MS else "OVER"
        results.append(
            row(
                f"dashboard at {events:,} events ({dialect_name(url)}): {name}",
                value,
                "ms",
                baseline,
                "",
                compared_with="SELECT 1 in a read-only session",
                note=f"{verdict} the {BUDGET_MS:.0f} ms budget"
                + (f"; {note}" if index == 0 else ""),
            )
        )
    return results


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--events", type=int, help=f"hook events (default {EVENTS:,})")
    args = arguments.parse_args()
    events = args.events or scaled(EVENTS, args.quick)
    sessions = scaled(SESSIONS, args.quick, minimum=20)
    with fresh_database(args.url, migrate=False) as fresh:
        medians, baseline, note = asyncio.run(measure(fresh, events, sessions))
    print(f"database: {dialect_name(args.url)}; {events:,} events, {sessions:,} sessions; {note}")
    print(f"{'SELECT 1 round trip':<45} {baseline:8.1f} ms")
    for name, value in medians.items():
        flag = "" if value <= BUDGET_MS else f"  OVER {BUDGET_MS:.0f} ms"
        print(f"{name:<45} {value:8.1f} ms  {value / baseline:6.1f}x{flag}")


if __name__ == "__main__":
    main()
