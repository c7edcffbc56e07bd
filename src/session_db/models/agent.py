"""Agents: one agent run inside a session, with the SDK session id to resume it (seed 001)."""

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Field, Relationship

from session_db.models.base import (
    TOKEN_COLUMNS,
    Base,
    InputModel,
    check_in,
    check_range,
    created_at_field,
    enum_field,
    id_field,
    json_field,
    money_field,
    text_field,
    timestamp_field,
    token_field,
    updated_at_field,
)

if TYPE_CHECKING:
    from session_db.models.session import Session


class AgentStatus(StrEnum):
    """Where an agent run is (seed 001)."""

    PENDING = "pending"
    EXECUTING = "executing"
    COMPLETE = "complete"
    FAILED = "failed"


class AgentBase(Base):
    """Fields a caller sets on an agent run.

    `agent_type` is an open vocabulary: seed 001 names spec, plan, build, research, docs
    and debug, but Claude Code subagents have user-defined types ("Explore", custom agents),
    so the database does not restrict it.
    """

    session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE", index=True)
    agent_type: str = Field(max_length=64, index=True)
    model: str | None = Field(default=None, max_length=128)
    model_alias: str | None = Field(default=None, max_length=64)
    sdk_session_id: str | None = Field(default=None, max_length=255, index=True)
    status: AgentStatus = enum_field(AgentStatus, AgentStatus.PENDING)
    checkpoint_id: int | None = Field(default=None, ge=0)
    input_tokens: int = token_field()
    output_tokens: int = token_field()
    cache_creation_tokens: int = token_field()
    cache_read_tokens: int = token_field()
    total_cost: Decimal = money_field()
    num_turns: int | None = Field(default=None, ge=0)
    duration_ms: int | None = Field(default=None, ge=0, sa_type=sa.BigInteger)
    error_message: str | None = text_field()
    started_at: datetime | None = timestamp_field()
    completed_at: datetime | None = timestamp_field()
    agent_metadata: dict[str, Any] = json_field()


class Agent(AgentBase, table=True):
    """An agent row; deleting its session deletes it."""

    __tablename__ = "agents"
    __table_args__ = (
        check_in("status", AgentStatus),
        check_range("checkpoint_id", 0),
        *(check_range(column, 0) for column in TOKEN_COLUMNS),
        check_range("total_cost", 0),
        check_range("num_turns", 0),
        check_range("duration_ms", 0),
        sa.Index(None, "session_id", "status"),
    )

    id: uuid.UUID = id_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()

    session: "Session" = Relationship(
        back_populates="agents", sa_relationship_kwargs={"lazy": "raise"}
    )


class AgentCreate(AgentBase, InputModel):
    """Input to create an agent run; `session_id` and `agent_type` are required."""


class AgentUpdate(InputModel):
    """Input to change an agent run; unset fields stay as they are."""

    agent_type: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=128)
    model_alias: str | None = Field(default=None, max_length=64)
    sdk_session_id: str | None = Field(default=None, max_length=255)
    status: AgentStatus | None = None
    checkpoint_id: int | None = Field(default=None, ge=0)
    input_tokens: int | None = Field(default=None, ge=0)
    output_tokens: int | None = Field(default=None, ge=0)
    cache_creation_tokens: int | None = Field(default=None, ge=0)
    cache_read_tokens: int | None = Field(default=None, ge=0)
    total_cost: Decimal | None = Field(default=None, ge=0)
    num_turns: int | None = Field(default=None, ge=0)
    duration_ms: int | None = Field(default=None, ge=0)
    error_message: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    agent_metadata: dict[str, Any] | None = None
