"""Read-only shapes returned by the analytical queries (seeds 000 and 003) and usage reports."""

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field


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
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    total_tokens: int
    total_cost: Decimal


USAGE_PERIODS = ("daily", "weekly", "monthly", "session", "blocks")
USAGE_AGENTS = ("claude-code", "sdk", "amp", "codex", "gemini")
COST_SOURCES = ("reported", "computed", "unpriced")


class UsageQuery(BaseModel):
    """What a usage report covers: its period, range, project, agent and time zone.

    `since` is inclusive and `until` exclusive; naive times are in `timezone`, an IANA
    name. `now` decides which block is active (the current time unless given).
    """

    period: Literal["daily", "weekly", "monthly", "session", "blocks"] = "daily"
    since: datetime | None = None
    until: datetime | None = None
    project: str | None = None  # a project's name or root path
    agent: Literal["claude-code", "sdk", "amp", "codex", "gemini"] | None = None
    timezone: str = "UTC"
    breakdown: bool = False
    now: datetime | None = None


class UsageRow(BaseModel):
    """Tokens and cost of one period, session or block (or of one model within one)."""

    key: str  # 2026-02-12, 2026-W07, 2026-02, a session's slug, a block's start; or a model
    label: str
    start: datetime | None = None  # the period's or block's start (for a session, its first)
    end: datetime | None = None  # its end, exclusive (for a session, its last activity)
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0
    total_tokens: int = 0
    cost: Decimal = Decimal(0)
    models: list[str] = Field(default_factory=list)  # canonical names
    cost_sources: dict[str, int] = Field(default_factory=dict)  # reported/computed/unpriced
    breakdown: list["UsageRow"] = Field(default_factory=list)  # one row per model
    first_at: datetime | None = None  # the first and last activity in it
    last_at: datetime | None = None
    active: bool = False  # blocks: the block still running at `now`


class UsageReport(BaseModel):
    """A usage report: its rows in time order, their totals, and how each cost was had."""

    rows: list[UsageRow]
    totals: UsageRow
    cost_sources: dict[str, int]
