"""The live event stream: server-sent events of new `agent_logs` rows, as hooks arrive.

`GET /api/events/stream?session=<slug or id>&after=<created_at>|<id>` answers
`text/event-stream`. It looks for rows stored after the last one sent (by creation time
and id, so a late delivery of an old event still counts as new; see LOOKBACK) about once
a second, each look in its own short read-only session, and sends each as `event: hook`
with the event as JSON. The event's SSE id is the cursor, so a reconnecting browser resumes
where it stopped (Last-Event-ID).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

from sse_starlette import EventSourceResponse
from starlette.requests import Request
from starlette.responses import Response

from session_db import crud
from session_db.errors import InvalidInputError
from session_db.web.pages import event_json, reading

BATCH = 500
# How far behind the newest row sent each look starts again. A row's created_at is
# stamped before its transaction commits, so a writer that commits late (a concurrent
# delivery) can store rows older than ones already sent; looking back this far catches
# them. Rows are told apart by id, so none is sent twice.
LOOKBACK = timedelta(seconds=10)


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


async def _all_after(
    db: Any, since: crud.LogCursor | None, session_id: uuid.UUID
) -> list[crud.EventSummary]:
    """Every event stored after `since`, read BATCH at a time."""
    found: list[crud.EventSummary] = []
    while True:
        logs = await crud.list_agent_logs_after(db, since, session_id=session_id, limit=BATCH)
        found += logs
        if len(logs) < BATCH:
            return found
        since = crud.LogCursor(logs[-1].created_at, logs[-1].id)


def format_cursor(cursor: crud.LogCursor) -> str:
    """The cursor as the stream's event id and `after` value."""
    return f"{cursor.created_at.isoformat()}|{cursor.id}"


async def events_stream(request: Request) -> Response:
    """Server-sent events: every event of one session stored from now on."""
    wanted = request.query_params.get("session")
    if not wanted:
        # Following every session would read the whole table on each look.
        raise InvalidInputError("stream", "session", "required: a session's slug or id")
    resume = request.headers.get("last-event-id") or request.query_params.get("after")
    cursor = parse_cursor(resume)
    async with reading(request) as db:
        session_id = (await crud.get_session_by_slug_or_id(db, wanted)).id
        if cursor is None:
            cursor = await crud.get_latest_log_cursor(db, session_id=session_id)
    interval = request.app.state.poll_interval

    async def publish() -> AsyncIterator[dict[str, Any]]:
        position = cursor
        # Rows already shown (the page's, then the stream's), by id, within the lookback.
        sent: dict[uuid.UUID, datetime] = {}
        first = True
        while True:
            since = None
            if position is not None:
                since = crud.LogCursor(position.created_at - LOOKBACK, uuid.UUID(int=0))
            async with reading(request) as db:
                logs = await _all_after(db, since, session_id)
            for log in logs:
                key = crud.LogCursor(log.created_at, log.id)
                if log.id in sent:
                    continue
                sent[log.id] = log.created_at
                if first and position is not None and key <= position:
                    continue  # stored before the stream opened: the page has it
                position = key if position is None or key > position else position
                yield {
                    "event": "hook",
                    "id": format_cursor(position),
                    "data": json.dumps(event_json(log), ensure_ascii=False),
                }
            first = False
            if position is not None:
                horizon = position.created_at - LOOKBACK
                for key in [key for key, at in sent.items() if at < horizon]:
                    del sent[key]
            await asyncio.sleep(interval)

    return EventSourceResponse(publish(), ping=15, headers={"Cache-Control": "no-store"})
