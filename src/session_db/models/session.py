"""Sessions: one unit of agent work, the union of seeds 000, 001 and 002.

The seeds give two words more than one meaning; each meaning has its own field here:

- `phase` is the workflow phase of seed 001 (its `status`): created, spec, plan, build,
  docs, complete, failed.
- `status` is the lifecycle state of seeds 000 and 002: active, paused, completed,
  failed, timeout, cancelled, archived.
- `session_type` is seed 001's workflow size: full, quick, research.
- `session_role` is seed 000's place in a hierarchy (its `session_type`): main,
  subagent, wave, continuation, isolated.
- `category` is seed 002's kind of work (its `session_type`): project, maintenance,
  research, ... an open vocabulary, so it has no CHECK.
"""

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Optional

import sqlalchemy as sa
from sqlmodel import Field, Relationship

from session_db.models.base import (
    Base,
    InputModel,
    check_in,
    check_range,
    count_field,
    created_at_field,
    enum_field,
    id_field,
    json_field,
    money_field,
    text_field,
    timestamp_field,
    updated_at_field,
)

if TYPE_CHECKING:
    from session_db.models.agent import Agent
    from session_db.models.project import Project


class SessionPhase(StrEnum):
    """Where a session is in the spec → plan → build → docs workflow (seed 001)."""

    CREATED = "created"
    SPEC = "spec"
    PLAN = "plan"
    BUILD = "build"
    DOCS = "docs"
    COMPLETE = "complete"
    FAILED = "failed"


class SessionStatus(StrEnum):
    """Lifecycle state of a session (seeds 000 and 002, merged)."""

    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    ARCHIVED = "archived"


class SessionType(StrEnum):
    """How much workflow a session runs (seed 001)."""

    FULL = "full"
    QUICK = "quick"
    RESEARCH = "research"


class SessionRole(StrEnum):
    """A session's place in a hierarchy of sessions (seed 000)."""

    MAIN = "main"
    SUBAGENT = "subagent"
    WAVE = "wave"
    CONTINUATION = "continuation"
    ISOLATED = "isolated"


class SessionBase(Base):
    """Fields a caller sets on a session."""

    session_slug: str = Field(max_length=255, unique=True)
    title: str | None = Field(default=None, max_length=500)
    name: str | None = Field(default=None, max_length=255)
    description: str | None = text_field()
    project_id: uuid.UUID | None = Field(
        default=None,
        foreign_key="projects.id",
        ondelete="SET NULL",
        index=True,
    )
    working_dir: str | None = Field(default=None, max_length=4096)
    source_app: str | None = Field(default=None, max_length=64, index=True)
    session_type: SessionType | None = enum_field(SessionType, None)
    session_role: SessionRole = enum_field(SessionRole, SessionRole.MAIN)
    category: str | None = Field(default=None, max_length=64)
    phase: SessionPhase = enum_field(SessionPhase, SessionPhase.CREATED)
    status: SessionStatus = enum_field(SessionStatus, SessionStatus.ACTIVE)
    parent_session_id: uuid.UUID | None = Field(
        default=None,
        foreign_key="sessions.id",
        ondelete="SET NULL",
        index=True,
    )
    started_at: datetime | None = timestamp_field()  # indexed with id: see Session
    ended_at: datetime | None = timestamp_field()
    duration_ms: int | None = Field(default=None, ge=0, sa_type=sa.BigInteger)
    agent_count: int = count_field()
    total_tokens: int = Field(
        default=0, ge=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"}
    )
    total_cost: Decimal = money_field()
    priority: int = Field(default=3, ge=1, le=5, sa_column_kwargs={"server_default": "3"})
    progress_percentage: float = Field(
        default=0.0, ge=0, le=100, sa_column_kwargs={"server_default": "0"}
    )
    total_tasks: int = count_field()
    completed_tasks: int = count_field()
    # Build checkpoints (state.json's build_progress), so "sessions with more than N
    # checkpoints" is a plain indexed query.
    checkpoints_total: int = count_field()
    checkpoints_completed: int = count_field()
    activated_at: datetime | None = timestamp_field()
    last_activity_at: datetime | None = timestamp_field(index=True)
    completed_at: datetime | None = timestamp_field()
    archived_at: datetime | None = timestamp_field()
    estimated_completion_at: datetime | None = timestamp_field()
    session_metadata: dict[str, Any] = json_field()


class Session(SessionBase, table=True):
    """A session row; relationships never lazy-load (load them explicitly)."""

    __tablename__ = "sessions"
    __table_args__ = (
        check_in("phase", SessionPhase),
        check_in("status", SessionStatus),
        check_in("session_type", SessionType),
        check_in("session_role", SessionRole),
        check_range("priority", 1, 5),
        check_range("progress_percentage", 0, 100),
        check_range("agent_count", 0),
        check_range("total_tokens", 0),
        check_range("total_cost", 0),
        check_range("duration_ms", 0),
        check_range("completed_tasks", 0),
        sa.CheckConstraint("completed_tasks <= total_tasks", name="completed_within_total"),
        check_range("checkpoints_completed", 0),
        sa.CheckConstraint(
            "checkpoints_completed <= checkpoints_total", name="checkpoints_within_total"
        ),
        sa.CheckConstraint("parent_session_id <> id", name="not_own_parent"),
        sa.CheckConstraint("ended_at >= started_at", name="ends_after_start"),
        sa.Index(None, "status"),
        sa.Index(None, "phase"),
        sa.Index(None, "session_type"),
        sa.Index(None, "session_role"),
        sa.Index(None, "priority"),
        sa.Index(None, "checkpoints_total"),
        # list_sessions' default order (newest start first, ties by id) read straight off
        # the index, and ranges of start times; it replaces a started_at-only index.
        sa.Index(None, "started_at", "id"),
    )

    id: uuid.UUID = id_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()

    project: Optional["Project"] = Relationship(
        back_populates="sessions", sa_relationship_kwargs={"lazy": "raise"}
    )
    agents: list["Agent"] = Relationship(
        back_populates="session",
        passive_deletes=True,
        sa_relationship_kwargs={"lazy": "raise"},
    )


class SessionCreate(SessionBase, InputModel):
    """Input to create a session; only `session_slug` is required."""


class SessionUpdate(InputModel):
    """Input to change a session; unset fields stay as they are."""

    title: str | None = Field(default=None, max_length=500)
    name: str | None = Field(default=None, max_length=255)
    description: str | None = None
    project_id: uuid.UUID | None = None
    working_dir: str | None = Field(default=None, max_length=4096)
    source_app: str | None = Field(default=None, max_length=64)
    session_type: SessionType | None = None
    session_role: SessionRole | None = None
    category: str | None = Field(default=None, max_length=64)
    phase: SessionPhase | None = None
    status: SessionStatus | None = None
    parent_session_id: uuid.UUID | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_ms: int | None = Field(default=None, ge=0)
    agent_count: int | None = Field(default=None, ge=0)
    total_tokens: int | None = Field(default=None, ge=0)
    total_cost: Decimal | None = Field(default=None, ge=0)
    priority: int | None = Field(default=None, ge=1, le=5)
    progress_percentage: float | None = Field(default=None, ge=0, le=100)
    total_tasks: int | None = Field(default=None, ge=0)
    completed_tasks: int | None = Field(default=None, ge=0)
    checkpoints_total: int | None = Field(default=None, ge=0)
    checkpoints_completed: int | None = Field(default=None, ge=0)
    activated_at: datetime | None = None
    last_activity_at: datetime | None = None
    completed_at: datetime | None = None
    archived_at: datetime | None = None
    estimated_completion_at: datetime | None = None
    session_metadata: dict[str, Any] | None = None


class SessionRead(SessionBase):
    """A session as returned to callers."""

    id: uuid.UUID
    created_at: datetime
    updated_at: datetime
