"""Reading agent logs: by type, in the order they were stored, after a cursor."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from session_db import crud
from session_db.database import get_async_session

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def test_events_are_read_by_type_and_after_a_stored_cursor(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        session = await crud.create_session(db, {"session_slug": "s"})
        other = await crud.create_session(db, {"session_slug": "other"})
        # Stored in this order; the last one happened first (delivered late from a spool).
        for event_type, tool, minutes, where in (
            ("SessionStart", None, 0, session),
            ("PreToolUse", "Bash", 1, session),
            ("PreToolUse", "Read", 1, other),
            ("PostToolUse", "Bash", 2, session),
            ("UserPromptSubmit", None, -5, session),
        ):
            await crud.create_agent_log(
                db,
                {
                    "session_id": where.id,
                    "event_type": event_type,
                    "tool_name": tool,
                    "occurred_at": T0 + timedelta(minutes=minutes),
                },
            )
    async with get_async_session(engine, read_only=True) as db:
        by_time = await crud.list_agent_logs(db, session_id=session.id)
        assert by_time[0].event_type == "UserPromptSubmit"
        by_arrival = await crud.list_agent_logs(db, session_id=session.id, by_arrival=True)
        assert [log.event_type for log in by_arrival] == [
            "SessionStart",
            "PreToolUse",
            "PostToolUse",
            "UserPromptSubmit",
        ]
        latest = await crud.list_agent_logs(
            db, session_id=session.id, by_arrival=True, descending=True, limit=1
        )
        assert latest[0].event_type == "UserPromptSubmit"
        cursor = (by_arrival[1].created_at, by_arrival[1].id)
        after = await crud.list_agent_logs(db, session_id=session.id, after=cursor)
        assert [log.event_type for log in after] == ["PostToolUse", "UserPromptSubmit"]
        # Rows stored at the same instant as the cursor are told apart by id.
        same = (by_arrival[1].created_at, uuid.UUID(int=0))
        assert len(await crud.list_agent_logs(db, session_id=session.id, after=same)) >= 3
        typed = await crud.list_agent_logs(
            db, session_id=session.id, event_types=["PreToolUse", "PostToolUse"]
        )
        assert [(log.event_type, log.tool_name) for log in typed] == [
            ("PreToolUse", "Bash"),
            ("PostToolUse", "Bash"),
        ]
        assert await crud.list_agent_logs(db, session_id=session.id, event_types=[]) == []
