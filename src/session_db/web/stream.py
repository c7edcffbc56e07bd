"""The live event stream: server-sent events of new `agent_logs` rows, as hooks arrive.

`GET /api/events/stream?session=<slug or id>&after=<created_at>|<id>` answers
`text/event-stream`. It looks for rows stored after the last one sent (by creation time
and id, so a late delivery of an old event still counts as new) about once a second,
each look in its own short read-only session, and sends each as `event: hook` with the
event as JSON. The event's SSE id is the cursor, so a reconnecting browser resumes
where it stopped (Last-Event-ID).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from session_db import crud
from session_db.errors import InvalidInputError
from session_db.web.pages import event_json, find_session, reading

BATCH = 100


def parse_cursor(text: str | None) -> crud.LogCursor | None:
    """`<ISO created_at>|<uuid>` as a cursor; None for an empty value.

    Raises:
        InvalidInputError: The text is not such a pair.
    """
    if not text:
        return None
    moment, _, key = text.partition("|")
    try:
        return crud.LogCursor(datetime.fromisoformat(moment), uuid.UUID(key))
    except ValueError:
        raise InvalidInputError("stream", "after", f"{text!r} is not <time>|<id>") from None


def format_cursor(cursor: crud.LogCursor) -> str:
    """The cursor as the stream's event id and `after` value."""
    return f"{cursor.created_at.isoformat()}|{cursor.id}"


async def events_stream(request: Request) -> Response:
    """Server-sent events: every event stored from now on (of one session, if given)."""
    wanted = request.query_params.get("session")
    resume = request.headers.get("last-event-id") or request.query_params.get("after")
    cursor = parse_cursor(resume)
    session_id = None
    async with reading(request) as db:
        if wanted:
            session_id = (await find_session(db, wanted)).id
        if cursor is None:
            cursor = await crud.get_latest_log_cursor(db, session_id=session_id)
    interval = request.app.state.poll_interval

    async def publish() -> AsyncIterator[dict[str, Any]]:
        position = cursor
        while True:
            async with reading(request) as db:
                logs = await crud.list_agent_logs_after(
                    db, position, session_id=session_id, limit=BATCH
                )
            for log in logs:
                position = crud.LogCursor(log.created_at, log.id)
                yield {
                    "event": "hook",
                    "id": format_cursor(position),
                    "data": json.dumps(event_json(log), ensure_ascii=False),
                }
            if len(logs) < BATCH:
                await asyncio.sleep(interval)

    return EventSourceResponse(publish(), ping=15, headers={"Cache-Control": "no-store"})
