"""Agent runs: create, read (by id or SDK session id), list, update, delete."""

import uuid
from collections.abc import Mapping
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    DEFAULT_LIMIT,
    bulk_upsert,
    coerce_input,
    create_row,
    delete_row,
    enum_filter,
    get_or_raise,
    paginate,
    translating_errors,
    update_row,
)
from session_db.errors import NotFoundError
from session_db.models import Agent, AgentCreate, AgentStatus, AgentUpdate

ENTITY = "agent"


@translating_errors(ENTITY)
async def create_agent(db: AsyncSession, data: AgentCreate | Mapping[str, Any]) -> Agent:
    """Create an agent run in a session.

    Raises:
        NotFoundError: `session_id` names no session.
        InvalidInputError: A field is missing or invalid.
    """
    return await create_row(db, Agent, AgentCreate, data, ENTITY)


@translating_errors(ENTITY)
async def get_agent(db: AsyncSession, agent_id: uuid.UUID) -> Agent:
    """Return the agent run with this id, or raise NotFoundError."""
    return await get_or_raise(db, Agent, agent_id, ENTITY)


@translating_errors(ENTITY)
async def get_agent_by_sdk_session_id(db: AsyncSession, sdk_session_id: str) -> Agent:
    """Return the newest agent run with this SDK session id (to resume it), or raise."""
    statement = (
        select(Agent)
        .where(Agent.sdk_session_id == sdk_session_id)
        .order_by(Agent.created_at.desc(), Agent.id)
    )
    agent = (await db.exec(statement)).first()
    if agent is None:
        raise NotFoundError(ENTITY, sdk_session_id, field="sdk_session_id")
    return agent


@translating_errors(ENTITY)
async def list_agents(
    db: AsyncSession,
    *,
    session_id: uuid.UUID | None = None,
    status: AgentStatus | str | None = None,
    agent_type: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[Agent]:
    """Return agent runs matching every filter given, oldest first."""
    statement = select(Agent)
    if session_id is not None:
        statement = statement.where(Agent.session_id == session_id)
    if (value := enum_filter(AgentStatus, status, ENTITY, "status")) is not None:
        statement = statement.where(Agent.status == value)
    if agent_type is not None:
        statement = statement.where(Agent.agent_type == agent_type)
    statement = statement.order_by(Agent.created_at, Agent.id)
    return list((await db.exec(paginate(statement, limit, offset))).all())


@translating_errors(ENTITY)
async def update_agent(
    db: AsyncSession, agent_id: uuid.UUID, data: AgentUpdate | Mapping[str, Any]
) -> Agent:
    """Change the fields the caller set (status, SDK session id, tokens, cost, ...)."""
    return await update_row(db, Agent, agent_id, AgentUpdate, data, ENTITY)


@translating_errors(ENTITY)
async def delete_agent(db: AsyncSession, agent_id: uuid.UUID) -> None:
    """Delete an agent run; its logged events stay, with no agent."""
    await delete_row(db, Agent, agent_id, ENTITY)


@translating_errors(ENTITY)
async def upsert_agents(
    db: AsyncSession, agents: Mapping[uuid.UUID, AgentCreate | Mapping[str, Any]]
) -> None:
    """Insert or update agent runs under ids the caller chose, a few statements in all.

    Only the fields each run gives are written, so fields another writer keeps (tokens,
    cost) stay; an existing run never moves to another session.

    Raises:
        InvalidInputError: A run is invalid, or its session does not exist.
    """
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for agent_id, data in agents.items():
        checked = coerce_input(AgentCreate, data, ENTITY)
        given = set(data) if isinstance(data, Mapping) else checked.model_fields_set
        row = checked.model_dump(include=given | {"session_id", "agent_type"})
        # The rows of one statement share their columns.
        shapes.setdefault(tuple(sorted(row)), []).append({"id": agent_id, **row})
    for rows in shapes.values():
        await bulk_upsert(db, Agent, rows, [Agent.id], skip={"session_id"})


__all__ = [
    "create_agent",
    "delete_agent",
    "get_agent",
    "get_agent_by_sdk_session_id",
    "list_agents",
    "update_agent",
    "upsert_agents",
]
