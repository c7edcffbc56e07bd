"""Tool calls: a tool's start and its outcome, paired from PreToolUse and PostToolUse events."""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from session_db.models.base import (
    Base,
    check_in,
    check_range,
    created_at_field,
    enum_field,
    id_field,
    optional_json_field,
    text_field,
    timestamp_field,
    updated_at_field,
)


class ToolCallStatus(StrEnum):
    """Where a tool call is."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    DENIED = "denied"  # refused permission (PermissionDenied): it never ran


class ToolCall(Base, table=True):
    """One tool call in a session; the outcome may arrive before or after the start.

    `tool_use_id` pairs the events (unique per session). Old Claude Code versions sent no
    `tool_use_id`; those calls are paired with the oldest running call of the same tool
    and input. An `Agent`/`Task` call that launched a subagent names its child session.
    """

    __tablename__ = "tool_calls"
    __table_args__ = (
        check_in("status", ToolCallStatus),
        check_range("duration_ms", 0),
        sa.Index(None, "session_id", "tool_use_id", unique=True),
        sa.Index(None, "session_id", "started_at"),
        sa.Index(None, "tool_name", "status"),
    )

    id: uuid.UUID = id_field()
    session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE")
    tool_use_id: str | None = Field(default=None, max_length=255)
    tool_name: str | None = Field(default=None, max_length=128)
    # The MCP server of an MCP tool (`mcp__server__tool`), so its tools can be told apart.
    mcp_server: str | None = Field(default=None, max_length=255)
    status: ToolCallStatus = enum_field(ToolCallStatus, ToolCallStatus.RUNNING)
    tool_input: dict[str, Any] | None = optional_json_field()
    # A tool's response is whatever the tool returned: an object, a list or a string.
    tool_response: dict[str, Any] | list[Any] | str | None = optional_json_field()
    error: str | None = text_field()
    is_interrupt: bool | None = None
    started_at: datetime | None = timestamp_field()
    ended_at: datetime | None = timestamp_field()
    duration_ms: int | None = Field(default=None, ge=0, sa_type=sa.BigInteger)
    subagent_session_id: uuid.UUID | None = Field(
        default=None, foreign_key="sessions.id", ondelete="SET NULL", index=True
    )
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class ToolCallRead(Base):
    """A tool call as returned to callers."""

    id: uuid.UUID
    session_id: uuid.UUID
    tool_use_id: str | None
    tool_name: str | None
    mcp_server: str | None
    status: ToolCallStatus
    tool_input: dict[str, Any] | None
    tool_response: dict[str, Any] | list[Any] | str | None
    error: str | None
    is_interrupt: bool | None
    started_at: datetime | None
    ended_at: datetime | None
    duration_ms: int | None
    subagent_session_id: uuid.UUID | None
