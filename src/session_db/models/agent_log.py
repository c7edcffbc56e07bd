"""Agent logs: every event an agent emits (seed 001's AgentLog merged with seed 000's events).

`event_type` is an open vocabulary (PreToolUse, TextBlock, and hook events newer than this
code), so only `event_category` is restricted. Seed 000's `chat` column (a copy of the
transcript) is not kept per event: `payload` holds the raw event whole.

A hook event delivered from the spool carries its `spool_id` (unique: delivering it twice
inserts nothing) and the payload fields people filter on, promoted to columns. The
runtime's own ids are `external_session_id` / `external_agent_id`, because `session_id`
and `agent_id` here are our own keys.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from session_db.models.base import (
    Base,
    InputModel,
    UTCDateTime,
    check_in,
    check_range,
    created_at_field,
    enum_field,
    id_field,
    json_field,
    optional_json_field,
    text_field,
    utcnow,
)


class EventCategory(StrEnum):
    """What produced an event (seed 001)."""

    HOOK = "hook"
    RESPONSE = "response"
    PHASE = "phase"


class AgentLogBase(Base):
    """Fields a caller sets on a logged event."""

    session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE")
    agent_id: uuid.UUID | None = Field(
        default=None, foreign_key="agents.id", ondelete="SET NULL", index=True
    )
    parent_session_id: uuid.UUID | None = Field(
        default=None, foreign_key="sessions.id", ondelete="SET NULL", index=True
    )
    session_depth: int = Field(default=0, ge=0, sa_column_kwargs={"server_default": "0"})
    wave_id: str | None = Field(default=None, max_length=128)
    delegation_context: dict[str, Any] | None = optional_json_field()
    event_category: EventCategory = enum_field(EventCategory, EventCategory.HOOK)
    event_type: str = Field(max_length=128)
    source_app: str | None = Field(default=None, max_length=64)
    tool_name: str | None = Field(default=None, max_length=128)
    tool_input: dict[str, Any] | None = optional_json_field()
    tool_output: dict[str, Any] | None = optional_json_field()
    payload: dict[str, Any] = json_field()
    summary: str | None = text_field()
    spool_id: str | None = Field(default=None, max_length=64)
    external_session_id: str | None = Field(default=None, max_length=255)
    external_agent_id: str | None = Field(default=None, max_length=255)
    agent_type: str | None = Field(default=None, max_length=128)
    tool_use_id: str | None = Field(default=None, max_length=255)
    mcp_server: str | None = Field(default=None, max_length=255)
    prompt_id: str | None = Field(default=None, max_length=255)
    permission_mode: str | None = Field(default=None, max_length=64)
    cwd: str | None = text_field()
    transcript_path: str | None = text_field()
    source: str | None = Field(default=None, max_length=64)
    reason: str | None = text_field()
    occurred_at: datetime = Field(
        default_factory=utcnow,
        sa_type=UTCDateTime,
        sa_column_kwargs={"server_default": sa.func.now(), "nullable": False},
    )


class AgentLog(AgentLogBase, table=True):
    """One event row; deleting its session deletes it, deleting its agent keeps it."""

    __tablename__ = "agent_logs"
    __table_args__ = (
        check_in("event_category", EventCategory),
        check_range("session_depth", 0),
        sa.CheckConstraint("parent_session_id <> session_id", name="parent_not_self"),
        # The hot query: a session's events in time order.
        sa.Index(None, "session_id", "occurred_at"),
        # A reader following a session's new rows (the dashboard's live stream).
        sa.Index(None, "session_id", "created_at"),
        sa.Index(None, "wave_id", "occurred_at"),
        sa.Index(None, "session_depth", "event_type"),
        sa.Index(None, "event_type", "occurred_at"),
        # An index, not a constraint, so ON CONFLICT can target it on both engines.
        sa.Index(None, "spool_id", unique=True),
        sa.Index(None, "external_session_id", "occurred_at"),
        sa.Index(None, "tool_use_id"),
    )

    id: uuid.UUID = id_field()
    created_at: datetime = created_at_field()


class AgentLogCreate(AgentLogBase, InputModel):
    """Input to log an event; `session_id` and `event_type` are required."""


class AgentLogUpdate(InputModel):
    """Input to complete a logged event (its outcome arrives later); the event itself is fixed."""

    summary: str | None = None
    tool_output: dict[str, Any] | None = None
    wave_id: str | None = Field(default=None, max_length=128)
    delegation_context: dict[str, Any] | None = None


class AgentLogRead(AgentLogBase):
    """A logged event as returned to callers."""

    id: uuid.UUID
    created_at: datetime
