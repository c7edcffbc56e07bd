"""Helpers of the dashboard tests: a session with everything a page shows, and a live server.

A module, not conftest.py, so the tests import them by name.
"""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool
from support import isolated_settings

from session_db import crud
from session_db.database import create_engine, get_async_session

START = datetime(2026, 2, 14, 10, 0, tzinfo=UTC)
PARENT = "2026-02-14_search-feature_k2m9qx"
CHILD = "2026-02-14_search-ranking-research_p4t7wz"
OTHER = "2026-02-10_auth-hardening_a1b2c3"
# A password the server's URL carries on PostgreSQL (trust auth ignores it): no page
# may show it.
PASSWORD = "s3cret-Pa55word"


@dataclass(frozen=True)
class Seeded:
    """The ids of what `seed` wrote."""

    parent_id: uuid.UUID
    child_id: uuid.UUID
    other_id: uuid.UUID


async def seed(engine: AsyncEngine) -> Seeded:
    """Two projects; a parent session with a subagent, tool calls, events, tasks, a thread."""
    async with get_async_session(engine) as db:
        search = await crud.create_project(db, {"name": "search-app", "root_path": "/src/search"})
        auth = await crud.create_project(db, {"name": "auth-service", "root_path": "/src/auth"})
        parent = await crud.create_session(
            db,
            {
                "session_slug": PARENT,
                "title": "Full-text search",
                "project_id": search.id,
                "source_app": "claude-code",
                "phase": "build",
                "status": "active",
                "started_at": START,
                "last_activity_at": START + timedelta(minutes=30),
                "total_tokens": 1_500_000,
                "total_cost": Decimal("3.25"),
            },
        )
        child = await crud.create_session(
            db,
            {
                "session_slug": CHILD,
                "title": "Compare ranking functions",
                "project_id": search.id,
                "source_app": "claude-code",
                "session_role": "subagent",
                "phase": "complete",
                "status": "completed",
                "started_at": START + timedelta(minutes=5),
                "ended_at": START + timedelta(minutes=12),
                "total_tokens": 250_000,
                "total_cost": Decimal("0.50"),
            },
        )
        await crud.link_sessions(db, {"parent_session_id": parent.id, "child_session_id": child.id})
        other = await crud.create_session(
            db,
            {
                "session_slug": OTHER,
                "title": "Harden authentication",
                "project_id": auth.id,
                "source_app": "amp",
                "phase": "complete",
                "status": "completed",
                "started_at": START - timedelta(days=4),
                "last_activity_at": START - timedelta(days=4, hours=-2),
                "total_tokens": 900_000,
                "total_cost": Decimal("1.75"),
            },
        )
        # Dated and undated ids of one model: one line, under the canonical name.
        for session, agent_type, model, day, tokens, cost in (
            (parent.id, "spec", "claude-opus-4-1", START, (50_000, 8_000, 2_000, 140_000), "1.60"),
            (
                parent.id,
                "build",
                "claude-sonnet-4-5-20250929",
                START,
                (200_000, 40_000, 0, 900_000),
                "1.10",
            ),
            (parent.id, "fix", "claude-sonnet-4-5", START, (10_000, 1_000, 0, 50_000), "0.55"),
            (
                child.id,
                "research",
                "claude-haiku-4-5",
                START,
                (60_000, 9_000, 1_000, 180_000),
                "0.50",
            ),
            (
                other.id,
                "build",
                "gpt-4o-2024-08-06",
                START - timedelta(days=4),
                (300_000, 50_000, 0, 550_000),
                "1.75",
            ),
        ):
            await crud.create_agent(
                db,
                {
                    "session_id": session,
                    "agent_type": agent_type,
                    "model": model,
                    "status": "complete",
                    "started_at": day,
                    "input_tokens": tokens[0],
                    "output_tokens": tokens[1],
                    "cache_creation_tokens": tokens[2],
                    "cache_read_tokens": tokens[3],
                    "total_cost": Decimal(cost),
                },
            )
        await crud.save_tool_calls(
            db,
            [
                {
                    "id": uuid.uuid4(),
                    "session_id": parent.id,
                    "tool_use_id": f"toolu_{n}",
                    "tool_name": name,
                    "status": status,
                    "started_at": START + timedelta(minutes=n),
                    "ended_at": START + timedelta(minutes=n, seconds=20),
                    "duration_ms": 20_000,
                    "error": "exit code 1" if status == "failed" else None,
                }
                for n, (name, status) in enumerate(
                    [("Read", "succeeded"), ("Bash", "failed"), ("Edit", "succeeded")]
                )
            ],
        )
        await crud.add_agent_logs(
            db,
            [
                {
                    "session_id": parent.id,
                    "event_type": event_type,
                    "tool_name": tool,
                    "summary": summary,
                    "occurred_at": START + timedelta(minutes=n),
                    "payload": {"hook_event_name": event_type},
                }
                for n, (event_type, tool, summary) in enumerate(
                    [
                        ("SessionStart", None, "startup"),
                        ("PreToolUse", "Read", "read app/search/rank.py"),
                        ("PostToolUse", "Read", "read 120 lines"),
                    ]
                )
            ],
        )
        index = await crud.create_task(
            db,
            {
                "session_id": parent.id,
                "title": "Build the index",
                "plan_ref": "1.1",
                "status": "completed",
            },
        )
        rank = await crud.create_task(
            db, {"session_id": parent.id, "title": "Rank with BM25", "plan_ref": "1.2"}
        )
        endpoint = await crud.create_task(
            db, {"session_id": parent.id, "title": "GET /search endpoint", "plan_ref": "1.10"}
        )
        await crud.add_task_dependency(db, rank.id, index.id)
        await crud.add_task_dependency(db, endpoint.id, rank.id)
        thread = await crud.create_thread(db, {"session_id": parent.id, "name": "planning"})
        await crud.add_thread_message(db, thread.id, "user", "Plan the search feature.")
        await crud.add_thread_message(db, thread.id, "assistant", "Index first, then rank.")
    return Seeded(parent_id=parent.id, child_id=child.id, other_id=other.id)


async def add_hook_event(engine: AsyncEngine, session_id: uuid.UUID, summary: str) -> None:
    """Store one hook event, as delivery does."""
    async with get_async_session(engine) as db:
        await crud.add_agent_logs(
            db,
            [
                {
                    "session_id": session_id,
                    "event_type": "PreToolUse",
                    "tool_name": "Bash",
                    "summary": summary,
                    "payload": {"hook_event_name": "PreToolUse"},
                }
            ],
        )


def server_url(db_url: URL) -> URL:
    """The URL the server reads: on PostgreSQL with a password, which no page may show."""
    return db_url.set(password=PASSWORD) if db_url.get_backend_name() == "postgresql" else db_url


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def live_server(db_url: URL, *, poll_interval: float = 0.2) -> Iterator[str]:
    """Serve the dashboard with uvicorn in a thread; yield its base URL."""
    import uvicorn

    from session_db.web import create_app

    engine = create_engine(isolated_settings(), url=server_url(db_url), poolclass=NullPool)
    port = free_port()
    config = uvicorn.Config(
        create_app(engine, poll_interval=poll_interval),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the dashboard did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
