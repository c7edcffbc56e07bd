"""Agent logs (hook and response events): create, read, list by session and time, update, delete."""

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    DEFAULT_LIMIT,
    create_row,
    delete_row,
    enum_filter,
    get_or_raise,
    paginate,
    translating_errors,
    update_row,
)
from session_db.models import AgentLog, AgentLogCreate, AgentLogUpdate, EventCategory

ENTITY = "agent_log"


@translating_errors(ENTITY)
async def create_agent_log(db: AsyncSession, data: AgentLogCreate | Mapping[str, Any]) -> AgentLog:
    """Record one event.

    Raises:
        NotFoundError: `session_id`, `agent_id` or `parent_session_id` names no row.
        InvalidInputError: A field is missing or invalid.
    """
    return await create_row(db, AgentLog, AgentLogCreate, data, ENTITY)


@translating_errors(ENTITY)
async def get_agent_log(db: AsyncSession, log_id: uuid.UUID) -> AgentLog:
    """Return the event with this id, or raise NotFoundError."""
    return await get_or_raise(db, AgentLog, log_id, ENTITY)


def _filtered(statement: Any, **filters: Any) -> Any:
    columns = {
        "session_id": AgentLog.session_id,
        "agent_id": AgentLog.agent_id,
        "event_type": AgentLog.event_type,
        "tool_name": AgentLog.tool_name,
        "wave_id": AgentLog.wave_id,
    }
    for name, column in columns.items():
        if filters.get(name) is not None:
            statement = statement.where(column == filters[name])
    category = enum_filter(EventCategory, filters.get("event_category"), ENTITY, "event_category")
    if category is not None:
        statement = statement.where(AgentLog.event_category == category)
    if filters.get("since") is not None:
        statement = statement.where(AgentLog.occurred_at >= filters["since"])
    if filters.get("until") is not None:
        statement = statement.where(AgentLog.occurred_at < filters["until"])
    return statement


@translating_errors(ENTITY)
async def list_agent_logs(
    db: AsyncSession,
    *,
    session_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    event_category: EventCategory | str | None = None,
    event_type: str | None = None,
    tool_name: str | None = None,
    wave_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    descending: bool = False,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[AgentLog]:
    """Return events matching every filter given, in time order (`since` ≤ t < `until`)."""
    statement = _filtered(
        select(AgentLog),
        session_id=session_id,
        agent_id=agent_id,
        event_category=event_category,
        event_type=event_type,
        tool_name=tool_name,
        wave_id=wave_id,
        since=since,
        until=until,
    )
    order = AgentLog.occurred_at.desc() if descending else AgentLog.occurred_at.asc()
    statement = statement.order_by(order, AgentLog.id)
    return list((await db.exec(paginate(statement, limit, offset))).all())


@translating_errors(ENTITY)
async def count_agent_logs(
    db: AsyncSession,
    *,
    session_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    event_category: EventCategory | str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Return how many events match every filter given."""
    statement = _filtered(
        select(func.count()).select_from(AgentLog),
        session_id=session_id,
        agent_id=agent_id,
        event_category=event_category,
        event_type=event_type,
        since=since,
        until=until,
    )
    return (await db.exec(statement)).one()


@translating_errors(ENTITY)
async def update_agent_log(
    db: AsyncSession, log_id: uuid.UUID, data: AgentLogUpdate | Mapping[str, Any]
) -> AgentLog:
    """Complete an event with what arrived later (its summary, the tool's output)."""
    return await update_row(db, AgentLog, log_id, AgentLogUpdate, data, ENTITY)


@translating_errors(ENTITY)
async def delete_agent_log(db: AsyncSession, log_id: uuid.UUID) -> None:
    """Delete one event."""
    await delete_row(db, AgentLog, log_id, ENTITY)
