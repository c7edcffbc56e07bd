"""The questions the database exists to answer (seed 000's query patterns and seed 003's)."""

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func
from sqlalchemy.orm import aliased
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import DEFAULT_LIMIT, enum_filter, paginate, translating_errors
from session_db.errors import InvalidInputError
from session_db.model_names import canonical_model_name
from session_db.models import (
    Agent,
    AgentLog,
    AgentStatus,
    Project,
    RelationshipType,
    Session,
    SessionPhase,
    SessionRelationship,
)
from session_db.models.base import TOKEN_COLUMNS, to_money
from session_db.models.reports import (
    CostLine,
    ProjectCost,
    SessionMetrics,
    SpawnCorrelation,
    TimelineEntry,
    WaveSummary,
)

ENTITY = "query"
_PARENT_EDGE = and_(
    SessionRelationship.child_session_id == Session.id,
    SessionRelationship.relationship_type == RelationshipType.PARENT_CHILD,
)


def _check_range(start: datetime, end: datetime) -> None:
    if end <= start:
        raise InvalidInputError(ENTITY, "end", "must be after start")


@translating_errors(ENTITY)
async def list_timeline(
    db: AsyncSession,
    start: datetime,
    end: datetime,
    *,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[TimelineEntry]:
    """Return the events with start ≤ time < end, in time order, with hierarchy context."""
    _check_range(start, end)
    statement = (
        select(
            AgentLog,
            Session.session_role,
            SessionRelationship.relationship_type,
            SessionRelationship.spawn_reason,
        )
        .outerjoin(Session, Session.id == AgentLog.session_id)
        .outerjoin(SessionRelationship, _PARENT_EDGE)
        .where(AgentLog.occurred_at >= start, AgentLog.occurred_at < end)
        .order_by(AgentLog.occurred_at, AgentLog.id)
    )
    rows = (await db.exec(paginate(statement, limit, offset))).all()
    return [
        TimelineEntry(
            event_id=log.id,
            occurred_at=log.occurred_at,
            session_id=log.session_id,
            parent_session_id=log.parent_session_id,
            session_depth=log.session_depth,
            event_type=log.event_type,
            session_role=role,
            relationship_type=kind,
            spawn_reason=reason,
        )
        for log, role, kind, reason in rows
    ]


@translating_errors(ENTITY)
async def list_wave_summaries(
    db: AsyncSession, *, since: datetime | None = None
) -> list[WaveSummary]:
    """Return every wave (events sharing a `wave_id`), the most recently started first."""
    started = func.min(AgentLog.occurred_at)
    statement = (
        select(
            AgentLog.wave_id,
            func.count(AgentLog.session_id.distinct()),
            started,
            func.max(AgentLog.occurred_at),
            func.count(AgentLog.id),
        )
        .where(AgentLog.wave_id.is_not(None))
        .group_by(AgentLog.wave_id)
        .order_by(started.desc())
    )
    if since is not None:
        statement = statement.where(AgentLog.occurred_at >= since)
    rows = (await db.exec(statement)).all()
    return [
        WaveSummary(
            wave_id=wave,
            session_count=sessions,
            started_at=first,
            ended_at=last,
            event_count=events,
        )
        for wave, sessions, first, last, events in rows
    ]


@translating_errors(ENTITY)
async def list_session_metrics(
    db: AsyncSession, since: datetime, *, limit: int = DEFAULT_LIMIT, offset: int = 0
) -> list[SessionMetrics]:
    """Return per-session performance figures for sessions started since `since`, newest first."""
    events = (
        select(func.count(AgentLog.id))
        .where(AgentLog.session_id == Session.id)
        .correlate(Session)
        .scalar_subquery()
    )
    depth = (
        select(func.min(SessionRelationship.depth_level))
        .where(_PARENT_EDGE)
        .correlate(Session)
        .scalar_subquery()
    )
    statement = (
        select(Session, events, depth)
        .where(Session.started_at >= since)
        .order_by(Session.started_at.desc(), Session.id)
    )
    rows = (await db.exec(paginate(statement, limit, offset))).all()
    return [
        SessionMetrics(
            session_id=s.id,
            session_slug=s.session_slug,
            session_role=s.session_role,
            started_at=s.started_at,
            duration_ms=s.duration_ms,
            agent_count=s.agent_count,
            total_tokens=s.total_tokens,
            event_count=count,
            depth_level=level,
        )
        for s, count, level in rows
    ]


@translating_errors(ENTITY)
async def list_spawn_correlations(
    db: AsyncSession, since: datetime, *, limit: int = DEFAULT_LIMIT, offset: int = 0
) -> list[SpawnCorrelation]:
    """Pair each parent started since `since` with its children: spawn delay, child duration."""
    parent, child = aliased(Session), aliased(Session)
    statement = (
        select(parent, child, SessionRelationship)
        .join(SessionRelationship, SessionRelationship.parent_session_id == parent.id)
        .join(child, child.id == SessionRelationship.child_session_id)
        .where(parent.started_at >= since)
        .order_by(parent.started_at, child.started_at, child.id)
    )
    rows = (await db.exec(paginate(statement, limit, offset))).all()
    return [
        SpawnCorrelation(
            parent_session_id=p.id,
            parent_role=p.session_role,
            child_session_id=c.id,
            child_role=c.session_role,
            spawn_reason=edge.spawn_reason,
            delegation_type=edge.delegation_type,
            spawn_delay_ms=(
                round((c.started_at - p.started_at).total_seconds() * 1000)
                if c.started_at and p.started_at
                else None
            ),
            child_duration_ms=c.duration_ms,
        )
        for p, c, edge in rows
    ]


@translating_errors(ENTITY)
async def list_cost_by_project(db: AsyncSession) -> list[ProjectCost]:
    """Return every project's session count, tokens and cost, the most expensive first."""
    cost = func.coalesce(func.sum(Session.total_cost), 0)
    statement = (
        select(
            Project.id,
            Project.name,
            func.count(Session.id),
            func.coalesce(func.sum(Session.total_tokens), 0),
            cost,
        )
        .outerjoin(Session, Session.project_id == Project.id)
        .group_by(Project.id, Project.name)
        .order_by(cost.desc(), Project.name)
    )
    rows = (await db.exec(statement)).all()
    return [
        ProjectCost(
            project_id=pid,
            project_name=name,
            session_count=count,
            total_tokens=int(tokens),
            total_cost=to_money(total),
        )
        for pid, name, count, tokens, total in rows
    ]


@translating_errors(ENTITY)
async def list_failed_agents(
    db: AsyncSession, *, phase: SessionPhase | str = SessionPhase.BUILD
) -> list[Agent]:
    """Return the failed agent runs of sessions in `phase` (build unless given)."""
    wanted = enum_filter(SessionPhase, phase, ENTITY, "phase")
    statement = (
        select(Agent)
        .join(Session, Session.id == Agent.session_id)
        .where(Agent.status == AgentStatus.FAILED, Session.phase == wanted)
        .order_by(Agent.created_at, Agent.id)
    )
    return list((await db.exec(statement)).all())


@translating_errors(ENTITY)
async def list_sessions_with_checkpoints(db: AsyncSession, more_than: int) -> list[Session]:
    """Return sessions whose plan has more than `more_than` build checkpoints."""
    if more_than < 0:
        raise InvalidInputError(ENTITY, "more_than", "must not be negative")
    statement = (
        select(Session)
        .where(Session.checkpoints_total > more_than)
        .order_by(Session.checkpoints_total.desc(), Session.session_slug)
    )
    return list((await db.exec(statement)).all())


COST_GROUPS = ("project", "session", "agent_type", "model")


@translating_errors(ENTITY)
async def list_cost_breakdown(
    db: AsyncSession,
    by: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[CostLine]:
    """Tokens and cost grouped by project, session, agent type or model, costliest first.

    Models are grouped by canonical name (`model_names.canonical_model_name`), so a dated
    id and its Bedrock and Vertex forms make one line.

    By project or session the totals are the sessions' own (`total_tokens`, `total_cost`),
    filtered on when the session started, and the token kinds their agent runs'; by
    agent type or model they are the agent runs' (all four token kinds), filtered on
    when the run started.

    Raises:
        InvalidInputError: `by` is not one of COST_GROUPS, or the range is empty.
    """
    if by not in COST_GROUPS:
        raise InvalidInputError(ENTITY, "by", f"{by!r} is not one of {', '.join(COST_GROUPS)}")
    if since is not None and until is not None:
        _check_range(since, until)
    kinds: list[Any]
    if by in ("project", "session"):
        time = Session.started_at
        key = (
            func.coalesce(Project.name, "(no project)") if by == "project" else Session.session_slug
        )
        tokens, cost = Session.total_tokens, Session.total_cost
        # The token kinds are the sessions' agent runs' (a session keeps only its total).
        runs = (
            select(
                Agent.session_id.label("session_id"),  # type: ignore[attr-defined]
                *(func.sum(getattr(Agent, name)).label(name) for name in TOKEN_COLUMNS),
            )
            .group_by(Agent.session_id)
            .subquery()
        )
        kinds = [func.coalesce(func.sum(runs.c[name]), 0) for name in TOKEN_COLUMNS]
        base = select(
            key,
            func.count(Session.id),
            func.coalesce(func.sum(tokens), 0),
            func.coalesce(func.sum(cost), 0),
            *kinds,
        ).select_from(Session)
        if by == "project":
            base = base.outerjoin(Project, Project.id == Session.project_id)
        base = base.outerjoin(runs, runs.c.session_id == Session.id)
    else:
        time = Agent.started_at
        key = Agent.agent_type if by == "agent_type" else func.coalesce(Agent.model, "(unknown)")
        tokens = (
            Agent.input_tokens
            + Agent.output_tokens
            + Agent.cache_creation_tokens
            + Agent.cache_read_tokens
        )
        kinds = [func.coalesce(func.sum(getattr(Agent, name)), 0) for name in TOKEN_COLUMNS]
        base = select(
            key,
            func.count(Agent.id),
            func.coalesce(func.sum(tokens), 0),
            func.coalesce(func.sum(Agent.total_cost), 0),
            *kinds,
        )
    if since is not None:
        base = base.where(time >= since)
    if until is not None:
        base = base.where(time < until)
    total = func.coalesce(
        func.sum(Session.total_cost if by in ("project", "session") else Agent.total_cost), 0
    )
    statement = base.group_by(key).order_by(total.desc(), key)
    lines = [
        CostLine(
            key=str(name),
            count=count,
            input_tokens=int(i),
            output_tokens=int(o),
            cache_write_tokens=int(w),
            cache_read_tokens=int(r),
            total_tokens=int(tokens_sum),
            total_cost=to_money(cost_sum),
        )
        for name, count, tokens_sum, cost_sum, i, o, w, r in (await db.exec(statement)).all()
    ]
    return _by_canonical_model(lines) if by == "model" else lines


def _by_canonical_model(lines: list[CostLine]) -> list[CostLine]:
    """Merge the lines of one model's dated, Bedrock and Vertex ids, costliest first."""
    merged: dict[str, CostLine] = {}
    for line in lines:
        name = line.key if line.key == "(unknown)" else canonical_model_name(line.key)
        seen = merged.get(name)
        merged[name] = (
            line.model_copy(update={"key": name})
            if seen is None
            else CostLine(
                key=name,
                count=seen.count + line.count,
                input_tokens=seen.input_tokens + line.input_tokens,
                output_tokens=seen.output_tokens + line.output_tokens,
                cache_write_tokens=seen.cache_write_tokens + line.cache_write_tokens,
                cache_read_tokens=seen.cache_read_tokens + line.cache_read_tokens,
                total_tokens=seen.total_tokens + line.total_tokens,
                total_cost=seen.total_cost + line.total_cost,
            )
        )
    return sorted(merged.values(), key=lambda line: (-line.total_cost, line.key))


# The dashboard's charts and token breakdowns --------------------------------------------

DAILY_GROUPS = ("model", "project")


@dataclass(frozen=True)
class DailyCost:
    """Tokens and cost of one group (a model or a project) on one UTC day."""

    day: date
    key: str
    total_tokens: int
    total_cost: Decimal


@dataclass(frozen=True)
class ModelUsage:
    """The four token kinds and the cost of one model's agent runs."""

    model: str
    runs: int
    input_tokens: int
    output_tokens: int
    cache_write_tokens: int
    cache_read_tokens: int
    total_cost: Decimal

    @property
    def total_tokens(self) -> int:
        """All four token kinds together."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_write_tokens
            + self.cache_read_tokens
        )


def _agent_time() -> Any:
    return func.coalesce(Agent.started_at, Agent.created_at)


def _utc_day(db: AsyncSession, moment: Any) -> Any:
    """The UTC calendar day of a timestamp column, as 'YYYY-MM-DD' text on both engines."""
    if db.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", moment), "YYYY-MM-DD")
    return func.date(moment)  # SQLite stores the UTC wall time


def _agent_tokens() -> Any:
    return (
        Agent.input_tokens
        + Agent.output_tokens
        + Agent.cache_creation_tokens
        + Agent.cache_read_tokens
    )


@translating_errors(ENTITY)
async def get_latest_usage_at(db: AsyncSession) -> datetime | None:
    """Return when the most recent agent run started (its creation time if it has none)."""
    return (await db.exec(select(func.max(_agent_time())))).one()


@translating_errors(ENTITY)
async def list_daily_cost(
    db: AsyncSession,
    by: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[DailyCost]:
    """Tokens and cost of agent runs per UTC day and model (canonical name) or project.

    One statement. A run counts on the day it started; `since` ≤ start < `until`.

    Raises:
        InvalidInputError: `by` is not one of DAILY_GROUPS, or the range is empty.
    """
    if by not in DAILY_GROUPS:
        raise InvalidInputError(ENTITY, "by", f"{by!r} is not one of {', '.join(DAILY_GROUPS)}")
    if since is not None and until is not None:
        _check_range(since, until)
    moment = _agent_time()
    day = _utc_day(db, moment).label("day")
    if by == "model":
        key = func.coalesce(Agent.model, "(unknown)")
        statement = select(day, key, func.sum(_agent_tokens()), func.sum(Agent.total_cost))
    else:
        key = func.coalesce(Project.name, "(no project)")
        statement = (
            select(day, key, func.sum(_agent_tokens()), func.sum(Agent.total_cost))
            .join(Session, Session.id == Agent.session_id)
            .outerjoin(Project, Project.id == Session.project_id)
        )
    if since is not None:
        statement = statement.where(moment >= since)
    if until is not None:
        statement = statement.where(moment < until)
    statement = statement.group_by(day, key).order_by(day, key)
    merged: dict[tuple[str, str], tuple[int, Decimal]] = {}
    for day_text, name, tokens, cost in (await db.exec(statement)).all():
        if by == "model" and name != "(unknown)":
            name = canonical_model_name(name)
        tokens_before, cost_before = merged.get((day_text, name), (0, Decimal(0)))
        merged[(day_text, name)] = (
            tokens_before + int(tokens or 0),
            cost_before + to_money(cost or 0),
        )
    return [
        DailyCost(day=date.fromisoformat(str(day_text)), key=name, total_tokens=t, total_cost=c)
        for (day_text, name), (t, c) in sorted(merged.items())
    ]


@translating_errors(ENTITY)
async def list_model_usage(db: AsyncSession, session_ids: Iterable[uuid.UUID]) -> list[ModelUsage]:
    """The token kinds and cost of these sessions' agent runs, per canonical model name.

    One statement; the costliest model first.
    """
    wanted = list(set(session_ids))
    if not wanted:
        return []
    key = func.coalesce(Agent.model, "(unknown)")
    statement = (
        select(
            key,
            func.count(Agent.id),
            func.sum(Agent.input_tokens),
            func.sum(Agent.output_tokens),
            func.sum(Agent.cache_creation_tokens),
            func.sum(Agent.cache_read_tokens),
            func.sum(Agent.total_cost),
        )
        .where(Agent.session_id.in_(wanted))
        .group_by(key)
    )
    merged: dict[str, list[Any]] = {}
    for name, runs, inputs, outputs, writes, reads, cost in (await db.exec(statement)).all():
        name = name if name == "(unknown)" else canonical_model_name(name)
        seen = merged.setdefault(name, [0, 0, 0, 0, 0, Decimal(0)])
        for index, value in enumerate((runs, inputs, outputs, writes, reads)):
            seen[index] += int(value or 0)
        seen[5] += to_money(cost or 0)
    usage = [
        ModelUsage(
            model=name,
            runs=runs,
            input_tokens=inputs,
            output_tokens=outputs,
            cache_write_tokens=writes,
            cache_read_tokens=reads,
            total_cost=cost,
        )
        for name, (runs, inputs, outputs, writes, reads, cost) in merged.items()
    ]
    return sorted(usage, key=lambda line: (-line.total_cost, line.model))


__all__ = [
    "get_latest_usage_at",
    "list_cost_breakdown",
    "list_cost_by_project",
    "list_daily_cost",
    "list_failed_agents",
    "list_model_usage",
    "list_session_metrics",
    "list_sessions_with_checkpoints",
    "list_spawn_correlations",
    "list_timeline",
    "list_wave_summaries",
]
