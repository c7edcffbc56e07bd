"""Sessions: create, read (by id or slug), list with filters, update, delete."""

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import SelectOfScalar

from session_db.crud._base import (
    DEFAULT_LIMIT,
    apply_update,
    build_row,
    coerce_input,
    delete_row,
    enum_filter,
    get_or_raise,
    order_column,
    paginate,
    save,
    translating_errors,
    upsert_insert,
)
from session_db.errors import NotFoundError
from session_db.models import (
    Session,
    SessionCreate,
    SessionPhase,
    SessionRole,
    SessionStatus,
    SessionType,
    SessionUpdate,
)
from session_db.models.base import new_id

ENTITY = "session"
ORDERS = ("created_at", "started_at", "updated_at", "last_activity_at", "session_slug")


def elapsed_ms(started_at: datetime | None, ended_at: datetime | None) -> int | None:
    """Return the milliseconds from start to end (never negative), or None if either is."""
    if started_at is None or ended_at is None:
        return None
    return max(0, round((ended_at - started_at).total_seconds() * 1000))


@translating_errors(ENTITY)
async def create_session(db: AsyncSession, data: SessionCreate | Mapping[str, Any]) -> Session:
    """Create a session; `duration_ms` is derived from start and end when both are given.

    Raises:
        ConflictError: The `session_slug` is taken.
        NotFoundError: `project_id` or `parent_session_id` names no row.
        InvalidInputError: A field is missing, invalid, or breaks a rule.
    """
    session_in = coerce_input(SessionCreate, data, ENTITY)
    derived = {}
    if session_in.duration_ms is None:
        derived["duration_ms"] = elapsed_ms(session_in.started_at, session_in.ended_at)
    return await save(db, build_row(Session, session_in, ENTITY, **derived), ENTITY)


@translating_errors(ENTITY)
async def ensure_session(db: AsyncSession, session_slug: str, **values: Any) -> uuid.UUID:
    """Return the id of the session with this slug, creating it with `values` if missing.

    An existing session is left as it is (`values` only fill a new row); concurrent
    callers get the same row (INSERT ... ON CONFLICT DO NOTHING, then a read).
    """
    await db.exec(
        upsert_insert(db, Session)
        .values(id=new_id(), session_slug=session_slug, **values)
        .on_conflict_do_nothing(index_elements=[Session.session_slug])
    )
    found = select(Session.id).where(Session.session_slug == session_slug)
    return (await db.exec(found)).one()


@translating_errors(ENTITY)
async def get_session(db: AsyncSession, session_id: uuid.UUID) -> Session:
    """Return the session with this id, or raise NotFoundError."""
    return await get_or_raise(db, Session, session_id, ENTITY)


@translating_errors(ENTITY)
async def get_session_by_slug(db: AsyncSession, session_slug: str) -> Session:
    """Return the session with this slug, or raise NotFoundError."""
    found = (await db.exec(select(Session).where(Session.session_slug == session_slug))).first()
    if found is None:
        raise NotFoundError(ENTITY, session_slug, field="session_slug")
    return found


def _filtered(
    statement: SelectOfScalar[Any],
    *,
    project_id: uuid.UUID | None,
    phase: SessionPhase | str | None,
    status: SessionStatus | str | None,
    session_type: SessionType | str | None,
    session_role: SessionRole | str | None,
    source_app: str | None,
    parent_session_id: uuid.UUID | None,
    started_after: datetime | None,
    started_before: datetime | None,
) -> SelectOfScalar[Any]:
    conditions = []
    if project_id is not None:
        conditions.append(Session.project_id == project_id)
    if (value := enum_filter(SessionPhase, phase, ENTITY, "phase")) is not None:
        conditions.append(Session.phase == value)
    if (value := enum_filter(SessionStatus, status, ENTITY, "status")) is not None:
        conditions.append(Session.status == value)
    if (value := enum_filter(SessionType, session_type, ENTITY, "session_type")) is not None:
        conditions.append(Session.session_type == value)
    if (value := enum_filter(SessionRole, session_role, ENTITY, "session_role")) is not None:
        conditions.append(Session.session_role == value)
    if source_app is not None:
        conditions.append(Session.source_app == source_app)
    if parent_session_id is not None:
        conditions.append(Session.parent_session_id == parent_session_id)
    if started_after is not None:
        conditions.append(Session.started_at >= started_after)
    if started_before is not None:
        conditions.append(Session.started_at < started_before)
    return statement.where(*conditions)


@translating_errors(ENTITY)
async def list_sessions(
    db: AsyncSession,
    *,
    project_id: uuid.UUID | None = None,
    phase: SessionPhase | str | None = None,
    status: SessionStatus | str | None = None,
    session_type: SessionType | str | None = None,
    session_role: SessionRole | str | None = None,
    source_app: str | None = None,
    parent_session_id: uuid.UUID | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
    order_by: str = "created_at",
    descending: bool = True,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[Session]:
    """Return sessions matching every filter given, newest first by default.

    Raises:
        InvalidInputError: A filter value is not allowed, or paging is out of range.
    """
    column = order_column(Session, order_by, ORDERS, ENTITY)
    statement = _filtered(
        select(Session),
        project_id=project_id,
        phase=phase,
        status=status,
        session_type=session_type,
        session_role=session_role,
        source_app=source_app,
        parent_session_id=parent_session_id,
        started_after=started_after,
        started_before=started_before,
    ).order_by(column.desc() if descending else column.asc(), Session.id)
    return list((await db.exec(paginate(statement, limit, offset))).all())


@translating_errors(ENTITY)
async def count_sessions(
    db: AsyncSession,
    *,
    project_id: uuid.UUID | None = None,
    phase: SessionPhase | str | None = None,
    status: SessionStatus | str | None = None,
    session_type: SessionType | str | None = None,
    session_role: SessionRole | str | None = None,
    source_app: str | None = None,
    parent_session_id: uuid.UUID | None = None,
    started_after: datetime | None = None,
    started_before: datetime | None = None,
) -> int:
    """Return how many sessions match every filter given (the filters of list_sessions)."""
    statement = _filtered(
        select(func.count()).select_from(Session),
        project_id=project_id,
        phase=phase,
        status=status,
        session_type=session_type,
        session_role=session_role,
        source_app=source_app,
        parent_session_id=parent_session_id,
        started_after=started_after,
        started_before=started_before,
    )
    return (await db.exec(statement)).one()


@translating_errors(ENTITY)
async def update_session(
    db: AsyncSession, session_id: uuid.UUID, data: SessionUpdate | Mapping[str, Any]
) -> Session:
    """Change the fields the caller set; `duration_ms` follows start and end unless given."""
    changes = coerce_input(SessionUpdate, data, ENTITY)
    session = await get_or_raise(db, Session, session_id, ENTITY)
    changed = apply_update(session, changes, ENTITY)
    if changed & {"started_at", "ended_at"} and "duration_ms" not in changed:
        session.duration_ms = elapsed_ms(session.started_at, session.ended_at)
    return await save(db, session, ENTITY)


@translating_errors(ENTITY)
async def delete_session(db: AsyncSession, session_id: uuid.UUID) -> None:
    """Delete a session and everything it owns (agents, logs, threads, tasks, edges)."""
    await delete_row(db, Session, session_id, ENTITY)
