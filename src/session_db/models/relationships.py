"""Session relationships: the parent/child graph of sessions, and the active session (000, 002).

`sessions.parent_session_id` is the denormalised direct parent, for cheap filters; this
table is the graph itself, with how and why each child was spawned.
"""

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, NamedTuple

import sqlalchemy as sa
from pydantic import BaseModel
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
    timestamp_field,
    utcnow,
)
from session_db.models.session import SessionRead


class RelationshipType(StrEnum):
    """How two sessions relate (seed 000)."""

    PARENT_CHILD = "parent/child"
    SIBLING = "sibling"
    CONTINUATION = "continuation"
    WAVE_MEMBER = "wave_member"


class SpawnReason(StrEnum):
    """Why a child session was started (seed 000)."""

    SUBAGENT_DELEGATION = "subagent_delegation"
    WAVE_ORCHESTRATION = "wave_orchestration"
    TASK_TOOL = "task_tool"
    CONTINUATION = "continuation"


class DelegationType(StrEnum):
    """How a child runs beside its siblings (seed 000)."""

    PARALLEL = "parallel"
    SEQUENTIAL = "sequential"
    ISOLATED = "isolated"


class SessionRelationshipBase(Base):
    """Fields a caller sets on a relationship."""

    parent_session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE")
    child_session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE", index=True)
    relationship_type: RelationshipType = enum_field(
        RelationshipType, RelationshipType.PARENT_CHILD
    )
    spawn_reason: SpawnReason | None = enum_field(SpawnReason, None)
    delegation_type: DelegationType | None = enum_field(DelegationType, None)
    spawn_metadata: dict[str, Any] = json_field()
    completed_at: datetime | None = timestamp_field()


class SessionRelationship(SessionRelationshipBase, table=True):
    """One edge parent → child; `depth_level` and `session_path` are derived on link."""

    __tablename__ = "session_relationships"
    __table_args__ = (
        sa.UniqueConstraint("parent_session_id", "child_session_id"),
        sa.CheckConstraint("parent_session_id <> child_session_id", name="parent_not_child"),
        check_in("relationship_type", RelationshipType),
        check_in("spawn_reason", SpawnReason),
        check_in("delegation_type", DelegationType),
        check_range("depth_level", 1),
        # Children of a parent by kind; the unique constraint already serves plain
        # parent lookups, so seed 000's single-column parent index would be a duplicate.
        sa.Index(None, "parent_session_id", "relationship_type"),
        sa.Index(None, "relationship_type"),
        sa.Index(None, "created_at"),
    )

    id: uuid.UUID = id_field()
    depth_level: int = Field(default=1, ge=1, sa_column_kwargs={"server_default": "1"})
    session_path: str | None = text_field()
    created_at: datetime = created_at_field()


class SessionRelationshipCreate(SessionRelationshipBase, InputModel):
    """Input to link a child session to its parent."""


class SessionRelationshipUpdate(InputModel):
    """Input to complete or annotate an edge; its two ends are fixed."""

    spawn_reason: SpawnReason | None = None
    delegation_type: DelegationType | None = None
    spawn_metadata: dict[str, Any] | None = None
    completed_at: datetime | None = None


class SessionRelationshipRead(SessionRelationshipBase):
    """A relationship as returned to callers."""

    id: uuid.UUID
    depth_level: int
    session_path: str | None
    created_at: datetime


class RelatedSession(BaseModel):
    """A session reached from another, with the edge that reached it."""

    session: SessionRead
    relationship: SessionRelationshipRead
    depth: int  # steps from the session asked about: 1 for a direct child or parent


class RelatedSessionRow(NamedTuple):
    """A session reached from another through the graph, as one lean row.

    What `list_descendants` and `list_ancestors` return: built straight from the result
    rows, not validated models, so a 20,000-node subtree stays cheap.

    Attributes:
        session_id, session_slug, title, phase, status, session_type, started_at,
            ended_at, total_tokens, total_cost, total_tasks, completed_tasks: the reached
            session's own columns (phase, status and session_type as their string values).
        relationship_id, relationship_type, parent_session_id, child_session_id,
            session_path: the edge that reached it (for a descendant its child end is the
            session itself; for an ancestor, its parent end is).
        depth: Steps from the session asked about: 1 for a direct child or parent.
    """

    session_id: uuid.UUID
    session_slug: str
    title: str | None
    phase: str
    status: str
    session_type: str | None
    started_at: datetime | None
    ended_at: datetime | None
    total_tokens: int
    total_cost: Decimal
    total_tasks: int
    completed_tasks: int
    relationship_id: uuid.UUID
    relationship_type: str
    parent_session_id: uuid.UUID
    child_session_id: uuid.UUID
    session_path: str | None
    depth: int


@dataclass(slots=True, eq=False)
class SessionTreeNode:
    """A session, its place in the tree, its subtree's totals, and its children nested.

    What `get_session_tree` returns (the root node).

    Attributes:
        session_id, session_slug, title, phase, status, session_type, started_at,
            ended_at, total_tokens, total_cost, total_tasks, completed_tasks: the session's
            own columns (phase, status and session_type as their string values).
        relationship_id, relationship_type, parent_session_id, session_path: the
            parent/child edge above it; all None for the root.
        depth: Steps below the root: 0 for the root.
        rollup_sessions, rollup_tokens, rollup_cost: this session and every session
            below it together (each session counted once).
        children: The nodes directly below, oldest edge first.
    """

    session_id: uuid.UUID
    session_slug: str
    title: str | None
    phase: str
    status: str
    session_type: str | None
    started_at: datetime | None
    ended_at: datetime | None
    total_tokens: int
    total_cost: Decimal
    total_tasks: int
    completed_tasks: int
    relationship_id: uuid.UUID | None
    relationship_type: str | None
    parent_session_id: uuid.UUID | None
    session_path: str | None
    depth: int
    rollup_sessions: int = 1
    rollup_tokens: int = 0
    rollup_cost: Decimal = Decimal(0)
    children: list["SessionTreeNode"] = field(default_factory=list)


class SessionRollup(BaseModel):
    """Tokens and cost of a session and all its descendants together.

    What `get_session_rollup` returns.

    Attributes:
        session_id: The session asked about.
        session_count: It and every parent/child session below it, each counted once.
        total_tokens, total_cost: Their `total_tokens` and `total_cost` summed.
    """

    session_id: uuid.UUID
    session_count: int
    total_tokens: int
    total_cost: Decimal


class ActiveSession(Base, table=True):
    """The single active session (seed 002): the table holds at most one row, id 1."""

    __tablename__ = "active_session"
    __table_args__ = (sa.CheckConstraint("id = 1", name="singleton"),)

    id: int = Field(default=1, primary_key=True, sa_column_kwargs={"autoincrement": False})
    session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE")
    activated_at: datetime = Field(
        default_factory=utcnow,
        sa_type=UTCDateTime,
        sa_column_kwargs={"server_default": sa.func.now(), "nullable": False},
    )
    context_data: dict[str, Any] | None = optional_json_field()
