"""Tool calls: a tool's start and outcome, written many at a time; read one or a list.

The writers pair the events in memory and hand over each call's merged state; this
module looks the stored calls up once per batch and writes them in a bounded number of
statements. A call keyed by `tool_use_id` is upserted on (session_id, tool_use_id), so
two batches that both carry part of one call merge instead of duplicating it.
"""

import uuid
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    DEFAULT_LIMIT,
    enum_filter,
    get_or_raise,
    paginate,
    translating_errors,
)
from session_db.crud._bulk import COPY_MIN_ROWS, copy_rows, excluded, insert_rows, update_rows
from session_db.errors import is_transient
from session_db.models import ToolCall, ToolCallRead, ToolCallStatus
from session_db.models.base import utcnow

ENTITY = "tool_call"
_TABLE: sa.Table = ToolCall.__table__  # type: ignore[attr-defined]
# The columns a writer sets; the rest (created_at, updated_at) are ours.
COLUMNS = (
    "id",
    "session_id",
    "tool_use_id",
    "tool_name",
    "mcp_server",
    "status",
    "tool_input",
    "tool_response",
    "error",
    "is_interrupt",
    "started_at",
    "ended_at",
    "duration_ms",
    "subagent_session_id",
)


def _read(row: Any) -> ToolCallRead:
    values = {name: getattr(row, name) for name in COLUMNS}
    values["status"] = ToolCallStatus(values["status"])
    return ToolCallRead.model_construct(**values)


@translating_errors(ENTITY)
async def find_tool_calls(
    db: AsyncSession, keys: Iterable[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], ToolCallRead]:
    """Return the stored calls for (session id, tool_use_id) pairs, in one lookup."""
    wanted = set(keys)
    if not wanted:
        return {}
    sessions = {session_id for session_id, _ in wanted}
    tool_use_ids = {tool_use_id for _, tool_use_id in wanted}
    statement = select(*(_TABLE.c[name] for name in COLUMNS)).where(
        _TABLE.c.tool_use_id.in_(tool_use_ids), _TABLE.c.session_id.in_(sessions)
    )
    if db.get_bind().dialect.name == "postgresql":
        # Lock what we are about to merge into; SQLite's write transaction already is one.
        statement = statement.with_for_update()
    found = {}
    for row in (await db.exec(statement)).all():
        key = (row.session_id, row.tool_use_id)
        if key in wanted:
            found[key] = _read(row)
    return found


@translating_errors(ENTITY)
async def list_running_unkeyed_tool_calls(
    db: AsyncSession, session_ids: Iterable[uuid.UUID]
) -> list[ToolCallRead]:
    """Return the running calls without a `tool_use_id` of these sessions, oldest first.

    Claude Code sent no `tool_use_id` before mid-2025; such outcomes are paired with the
    oldest running call of the same tool and input.
    """
    sessions = set(session_ids)
    if not sessions:
        return []
    statement = (
        select(*(_TABLE.c[name] for name in COLUMNS))
        .where(
            _TABLE.c.session_id.in_(sessions),
            _TABLE.c.tool_use_id.is_(None),
            _TABLE.c.status == ToolCallStatus.RUNNING.value,
        )
        .order_by(_TABLE.c.started_at, _TABLE.c.id)
    )
    return [_read(row) for row in (await db.exec(statement)).all()]


def _row(call: Mapping[str, Any], now: Any) -> dict[str, Any]:
    row = {name: call.get(name) for name in COLUMNS}
    status = row["status"] or ToolCallStatus.RUNNING
    row["status"] = ToolCallStatus(status).value
    row["created_at"] = now
    row["updated_at"] = now
    return row


async def _copy_new(db: AsyncSession, rows: list[dict[str, Any]]) -> bool:
    """COPY calls taken to be new straight into the table (PostgreSQL, in a SAVEPOINT).

    Returns:
        Whether they went in; False if the COPY was refused (a concurrent writer stored
        one of them since the caller's lookup), which rolled back to the savepoint.
    """
    try:
        async with db.begin_nested():
            await copy_rows(db, _TABLE, rows)
        return True
    except Exception as error:
        if is_transient(error):
            raise
        return False


@translating_errors(ENTITY)
async def save_tool_calls(
    db: AsyncSession,
    calls: Sequence[Mapping[str, Any]],
    *,
    stored_ids: Collection[uuid.UUID] | None = None,
) -> None:
    """Write the merged state of many tool calls: one statement per kind of write.

    Args:
        calls: Column values per call (see `COLUMNS`; `id` required). A call with a
            `tool_use_id` is upserted on (session_id, tool_use_id): a concurrent writer's
            start time, input or outcome is kept where this one has none. A call without
            one is inserted, or updated by `id` if it is stored already.
        stored_ids: The ids of the calls `find_tool_calls` found in this transaction,
            when the caller looked all of them up: the other keyed calls are then new,
            and on PostgreSQL a batch of them is COPYed straight in (the upsert only
            where that is refused).
    """
    now = utcnow()
    keyed = [_row(call, now) for call in calls if call.get("tool_use_id") is not None]
    unkeyed = [_row(call, now) for call in calls if call.get("tool_use_id") is None]
    if (
        keyed
        and stored_ids is not None
        and db.get_bind().dialect.name == "postgresql"
        and len(keyed) >= COPY_MIN_ROWS
    ):
        new = [row for row in keyed if row["id"] not in stored_ids]
        if len(new) >= COPY_MIN_ROWS and await _copy_new(db, new):
            keyed = [row for row in keyed if row["id"] in stored_ids]
    if keyed:
        new, old = excluded(_TABLE), _TABLE.c
        done = new.status != ToolCallStatus.RUNNING.value
        update = {
            "tool_name": sa.func.coalesce(old.tool_name, new.tool_name),
            "mcp_server": sa.func.coalesce(old.mcp_server, new.mcp_server),
            "tool_input": sa.func.coalesce(old.tool_input, new.tool_input),
            "started_at": sa.case(
                (old.started_at.is_(None), new.started_at),
                (new.started_at < old.started_at, new.started_at),
                else_=old.started_at,
            ),
            "status": sa.case((done, new.status), else_=old.status),
            "tool_response": sa.case((done, new.tool_response), else_=old.tool_response),
            "error": sa.case((done, new.error), else_=old.error),
            "is_interrupt": sa.case((done, new.is_interrupt), else_=old.is_interrupt),
            "ended_at": sa.func.coalesce(new.ended_at, old.ended_at),
            "duration_ms": sa.func.coalesce(new.duration_ms, old.duration_ms),
            "subagent_session_id": sa.func.coalesce(
                new.subagent_session_id, old.subagent_session_id
            ),
            "updated_at": new.updated_at,
        }
        await insert_rows(
            db,
            _TABLE,
            keyed,
            skip_conflicts_on=["session_id", "tool_use_id"],
            update_on_conflict=update,
        )
    if unkeyed:
        stored = set(
            (
                await db.exec(
                    select(_TABLE.c.id).where(_TABLE.c.id.in_([row["id"] for row in unkeyed]))
                )
            ).all()
        )
        await insert_rows(db, _TABLE, [row for row in unkeyed if row["id"] not in stored])
        changed = [
            {key: value for key, value in row.items() if key != "created_at"}
            for row in unkeyed
            if row["id"] in stored
        ]
        await update_rows(db, _TABLE, "id", changed)


@translating_errors(ENTITY)
async def get_tool_call(db: AsyncSession, call_id: uuid.UUID) -> ToolCallRead:
    """Return the tool call with this id, or raise NotFoundError."""
    row = await get_or_raise(db, ToolCall, call_id, ENTITY)
    return ToolCallRead.model_validate(row, from_attributes=True)


@translating_errors(ENTITY)
async def list_tool_calls(
    db: AsyncSession,
    *,
    session_id: uuid.UUID | None = None,
    tool_name: str | None = None,
    status: ToolCallStatus | str | None = None,
    descending: bool = False,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[ToolCallRead]:
    """Return tool calls matching every filter, in start order (`descending`: latest first)."""
    statement = select(*(_TABLE.c[name] for name in COLUMNS))
    if session_id is not None:
        statement = statement.where(_TABLE.c.session_id == session_id)
    if tool_name is not None:
        statement = statement.where(_TABLE.c.tool_name == tool_name)
    if (value := enum_filter(ToolCallStatus, status, ENTITY, "status")) is not None:
        statement = statement.where(_TABLE.c.status == value.value)
    if descending:
        statement = statement.order_by(_TABLE.c.started_at.desc(), _TABLE.c.id.desc())
    else:
        statement = statement.order_by(_TABLE.c.started_at, _TABLE.c.id)
    rows = (await db.exec(paginate(statement, limit, offset))).all()
    return [_read(row) for row in rows]


class ToolCallSpan(NamedTuple):
    """When a call ran and how it ended: a timeline's bar (no input or response)."""

    id: uuid.UUID
    tool_name: str | None
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    error: str | None
    subagent_session_id: uuid.UUID | None


@translating_errors(ENTITY)
async def list_tool_call_spans(
    db: AsyncSession, session_id: uuid.UUID, *, limit: int = DEFAULT_LIMIT
) -> list[ToolCallSpan]:
    """Return a session's tool calls in start order, without their input and response."""
    statement = (
        select(*(_TABLE.c[name] for name in ToolCallSpan._fields))
        .where(_TABLE.c.session_id == session_id)
        .order_by(_TABLE.c.started_at, _TABLE.c.id)
    )
    rows = (await db.exec(paginate(statement, limit, 0))).all()
    return [ToolCallSpan(*row) for row in rows]


__all__ = [
    "ToolCallSpan",
    "find_tool_calls",
    "get_tool_call",
    "list_running_unkeyed_tool_calls",
    "list_tool_call_spans",
    "list_tool_calls",
    "save_tool_calls",
]
