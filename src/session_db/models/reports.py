"""Read-only shapes returned by the analytical queries (seeds 000 and 003)."""

import uuid
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel


class TimelineEntry(BaseModel):
    """One event in a time range, with where its session sits in the hierarchy."""

    event_id: uuid.UUID
    occurred_at: datetime
    session_id: uuid.UUID
    parent_session_id: uuid.UUID | None
    session_depth: int
    event_type: str
    session_role: str | None
    relationship_type: str | None
    spawn_reason: str | None


class WaveSummary(BaseModel):
    """One wave of orchestrated sessions: how many, when, how busy."""

    wave_id: str
    session_count: int
    started_at: datetime
    ended_at: datetime
    event_count: int


class SessionMetrics(BaseModel):
    """Performance figures of one session."""

    session_id: uuid.UUID
    session_slug: str
    session_role: str
    started_at: datetime | None
    duration_ms: int | None
    agent_count: int
    total_tokens: int
    event_count: int
    depth_level: int | None  # None for a root session


class SpawnCorrelation(BaseModel):
    """How long after its parent a child started, and how long it ran."""

    parent_session_id: uuid.UUID
    parent_role: str
    child_session_id: uuid.UUID
    child_role: str
    spawn_reason: str | None
    delegation_type: str | None
    spawn_delay_ms: int | None
    child_duration_ms: int | None


class ProjectCost(BaseModel):
    """Tokens and cost of all sessions of one project."""

    project_id: uuid.UUID
    project_name: str
    session_count: int
    total_tokens: int
    total_cost: Decimal


class CostLine(BaseModel):
    """Tokens and cost of one group in a cost breakdown (a project, a session, a model)."""

    key: str
    count: int  # sessions (by project or session) or agent runs (by agent type or model)
    total_tokens: int
    total_cost: Decimal
