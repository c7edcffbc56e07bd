"""Sessions: create, read (by id or slug), list with filters, update, delete."""

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, or_
from sqlmodel import col, select
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
from session_db.crud._bulk import BULK_PAGE, insert_rows, update_rows
from session_db.errors import ConflictError, InvalidInputError, NotFoundError
from session_db.models import (
    Session,
    SessionCreate,
    SessionPhase,
    SessionRole,
    SessionStatus,
    SessionType,
    SessionUpdate,
)
from session_db.models.base import new_id, utcnow

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

    `values` are checked as a `SessionCreate`'s. An existing session is left as it is
    (`values` only fill a new row); concurrent callers get the same row (INSERT ... ON
    CONFLICT DO NOTHING, then a read).

    Raises:
        InvalidInputError: A value is invalid or a field unknown; the error names it.
    """
    checked = _checked_new(ENTITY, {**values, "session_slug": session_slug})
    await db.exec(
        upsert_insert(db, Session)
        .values(id=new_id(), **checked)
        .on_conflict_do_nothing(index_elements=[Session.session_slug])
    )
    found = select(Session.id).where(Session.session_slug == session_slug)
    return (await db.exec(found)).one()


def _checked_new(entity: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The given values of a new session, validated like `create_session`'s input."""
    return coerce_input(SessionCreate, values, entity).model_dump(exclude_unset=True)


@translating_errors(ENTITY)
async def ensure_sessions(
    db: AsyncSession, sessions: Iterable[Mapping[str, Any]]
) -> dict[str, tuple[uuid.UUID, bool]]:
    """Return {slug: (id, created)} for many sessions, creating the missing ones.

    Args:
        sessions: `SessionCreate` values per session, `session_slug` required and each
            checked; they only fill a new row (an existing session is left as it is). A
            slug given twice keeps its first values.

    Returns:
        Every slug's session id, and whether this call created it.
    """
    unique: dict[str, dict[str, Any]] = {}
    for index, values in enumerate(sessions):
        checked = _checked_new(f"{ENTITY}s[{index}]", values)
        unique.setdefault(checked["session_slug"], {**checked, "id": new_id()})
    if not unique:
        return {}
    table = Session.__table__  # type: ignore[attr-defined]
    # Rows of one statement share their columns, so sessions given different fields go
    # in one statement per shape (two or three in practice, never one per row).
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for slug in sorted(unique):  # sorted: concurrent callers take row locks in one order
        shapes.setdefault(tuple(sorted(unique[slug])), []).append(unique[slug])
    created: set[str] = set()
    for rows in shapes.values():
        written = await insert_rows(
            db, table, rows, skip_conflicts_on=["session_slug"], returning=["session_slug"]
        )
        created.update(slug for (slug,) in written)
    found = await db.exec(
        select(table.c.session_slug, table.c.id).where(table.c.session_slug.in_(list(unique)))
    )
    return {slug: (session_id, slug in created) for slug, session_id in found.all()}


@dataclass
class SessionActivity:
    """What a batch of events saw of one session, merged into its row by one write.

    Attributes:
        first_at, last_at: The span of its own events: widen `started_at`,
            `last_activity_at` and `ended_at` to cover it.
        touched_at: Activity below it (a subagent's event): moves `last_activity_at` only.
        status, completed_at: The last status the events set, and when it completed.
        ended: The session ended (SessionEnd): it is completed, unless it had failed.
        metadata: Keys merged into `session_metadata`.
        name: Replaces the name. `title`: Set only where the session has none.
        set_title: Replaces the title (the agent itself named the session).
    """

    first_at: datetime | None = None
    last_at: datetime | None = None
    touched_at: datetime | None = None
    status: SessionStatus | None = None
    completed_at: datetime | None = None
    ended: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    name: str | None = None
    title: str | None = None
    set_title: str | None = None

    def cover(self, at: datetime) -> None:
        """Widen the span to include `at` (called once per event: no `widen` detour)."""
        if self.first_at is None or at < self.first_at:
            self.first_at = at
        if self.last_at is None or at > self.last_at:
            self.last_at = at

    def widen(self, first: datetime | None, last: datetime | None) -> None:
        """Widen the span to include [first, last]; either end may be unknown (None)."""
        self.first_at = _earliest(self.first_at, first)
        self.last_at = _latest(self.last_at, last)


def _earliest(*values: datetime | None) -> datetime | None:
    present = [value for value in values if value is not None]
    return min(present) if present else None


def _latest(*values: datetime | None) -> datetime | None:
    present = [value for value in values if value is not None]
    return max(present) if present else None


_ACTIVITY_COLUMNS = (
    "id",
    "started_at",
    "last_activity_at",
    "ended_at",
    "status",
    "completed_at",
    "session_metadata",
    "name",
    "title",
)


@translating_errors(ENTITY)
async def record_session_activity(
    db: AsyncSession, activity: Mapping[uuid.UUID, SessionActivity]
) -> None:
    """Merge what a batch saw into each session: one read and one executemany UPDATE."""
    if not activity:
        return
    table = Session.__table__  # type: ignore[attr-defined]
    statement = (
        select(*(table.c[name] for name in _ACTIVITY_COLUMNS))
        .where(table.c.id.in_(list(activity)))
        .order_by(table.c.id)
    )
    if db.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update()
    changes = []
    now = utcnow()
    for row in (await db.exec(statement)).all():
        seen = activity[row.id]
        started = _earliest(row.started_at, seen.first_at)
        ended = _latest(row.ended_at, seen.last_at)
        metadata = {**(row.session_metadata or {}), **seen.metadata}
        status = SessionStatus(seen.status or row.status)
        if seen.ended and status is not SessionStatus.FAILED:
            status = SessionStatus.COMPLETED
        changes.append(
            {
                "id": row.id,
                "started_at": started,
                "last_activity_at": _latest(row.last_activity_at, seen.last_at, seen.touched_at),
                "ended_at": ended,
                "duration_ms": elapsed_ms(started, ended),
                "status": status.value,
                "completed_at": seen.completed_at or row.completed_at,
                "session_metadata": metadata,
                "name": seen.name or row.name,
                "title": seen.set_title or row.title or seen.title,
                "updated_at": now,
            }
        )
    await update_rows(db, table, "id", changes)


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


@translating_errors(ENTITY)
async def list_sessions_by_slug(
    db: AsyncSession, session_slugs: Iterable[str]
) -> dict[str, Session]:
    """Return the sessions that have these slugs, by slug; one query per page of slugs."""
    wanted = sorted(set(session_slugs))
    found: dict[str, Session] = {}
    for start in range(0, len(wanted), BULK_PAGE):
        page = wanted[start : start + BULK_PAGE]
        rows = await db.exec(select(Session).where(col(Session.session_slug).in_(page)))
        found.update((session.session_slug, session) for session in rows.all())
    return found


@translating_errors(ENTITY)
async def get_session_by_slug_or_id(db: AsyncSession, slug_or_id: str) -> Session:
    """Return the session with this slug, else with this id (one statement).

    The slug wins: a Claude Code session's slug is its session id, which is a UUID too.

    Raises:
        NotFoundError: No session has this slug or id.
    """
    try:
        session_id: uuid.UUID | None = uuid.UUID(slug_or_id)
    except ValueError:
        session_id = None
    by_slug = Session.session_slug == slug_or_id
    statement = select(Session).where(
        by_slug if session_id is None else or_(by_slug, Session.id == session_id)
    )
    if session_id is not None:  # both may match different rows: the slug's comes first
        statement = statement.order_by(case((by_slug, 0), else_=1)).limit(1)
    found = (await db.exec(statement)).first()
    if found is None:
        raise NotFoundError(ENTITY, slug_or_id, field="session_slug")
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
    order_by: str = "started_at",
    descending: bool = True,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[Session]:
    """Return sessions matching every filter given, the latest started first by default.

    Ties go by id in the same direction (ids grow with creation time), so the default
    order is read straight off the (started_at, id) index. Sessions with no start time
    sort as the engine puts NULLs: first on PostgreSQL, last on SQLite, when descending.

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
    ).order_by(
        *(
            (column.desc(), Session.id.desc())  # type: ignore[attr-defined]
            if descending
            else (column.asc(), Session.id.asc())  # type: ignore[attr-defined]
        )
    )
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


def _merged_metadata(db: AsyncSession, excluded: Any, keys: list[str]) -> Any:
    """The stored session_metadata with these top-level keys replaced by the new values."""
    current = Session.__table__.c.session_metadata  # type: ignore[attr-defined]
    if db.get_bind().dialect.name == "postgresql":
        return current.op("||")(excluded.session_metadata)  # jsonb: the right side's keys win
    pairs: list[Any] = []
    for key in keys:
        path = f'$."{key}"'
        # json_extract hands objects and arrays on as JSON, scalars as plain values.
        pairs += [path, func.json_extract(excluded.session_metadata, path)]
    return func.json_set(func.coalesce(current, "{}"), *pairs) if pairs else current


@translating_errors(ENTITY)
async def upsert_session_by_slug(
    db: AsyncSession, data: SessionCreate | Mapping[str, Any]
) -> uuid.UUID:
    """Insert or update the session with this slug in one statement; return its id.

    Only the fields given are written. The top-level keys of the given `session_metadata`
    replace the stored ones; other keys (another writer's) stay. A session that belongs
    to another project is never taken over.

    Raises:
        ConflictError: The slug belongs to a session of another project.
        InvalidInputError: A field is missing or invalid.
    """
    checked = coerce_input(SessionCreate, data, ENTITY)
    given = set(data) if isinstance(data, Mapping) else checked.model_fields_set
    values = checked.model_dump(include=given | {"session_slug"})
    metadata = values.get("session_metadata")
    keys = list(metadata) if isinstance(metadata, dict) else []
    if any('"' in key for key in keys):  # SQLite's JSON paths cannot spell such a key
        raise InvalidInputError(ENTITY, "session_metadata", "a key contains a double quote")
    now = utcnow()
    insert = upsert_insert(db, Session).values(id=new_id(), **values, updated_at=now)
    excluded = insert.excluded
    set_ = {name: excluded[name] for name in values if name != "session_slug"}
    set_["updated_at"] = now
    if metadata is not None:
        set_["session_metadata"] = _merged_metadata(db, excluded, keys)
    statement = insert.on_conflict_do_update(
        index_elements=[Session.session_slug],
        set_=set_,
        # A slug is global; a folder of another project with the same name must not
        # take over that project's session.
        where=or_(
            col(Session.project_id).is_(None), col(Session.project_id) == excluded.project_id
        ),
    ).returning(Session.id)
    row = (await db.exec(statement)).first()
    if row is None:
        raise ConflictError(
            ENTITY,
            "session_slug",
            f"session {checked.session_slug!r} already belongs to another project",
        )
    return row[0]


# The dashboard's session listing --------------------------------------------------------

# Sort keys of `search_sessions`, by the name a page's `?sort=` uses.
SEARCH_SORTS = (
    "started",
    "activity",
    "cost",
    "tokens",
    "title",
    "slug",
    "project",
    "agent",
    "phase",
    "status",
)


@dataclass(frozen=True)
class SessionListItem:
    """One row of a session listing: the session and its project's name."""

    session: Session
    project_name: str | None


@dataclass(frozen=True)
class SessionPage:
    """One page of a session listing and how many sessions match in all."""

    items: list[SessionListItem]
    total: int


def _search_sort_column(sort: str) -> Any:
    from session_db.models import Project

    columns = {
        "started": Session.started_at,
        "activity": Session.last_activity_at,
        "cost": Session.total_cost,
        "tokens": Session.total_tokens,
        "title": Session.title,
        "slug": Session.session_slug,
        "project": Project.name,
        "agent": Session.source_app,
        "phase": Session.phase,
        "status": Session.status,
    }
    if sort not in columns:
        raise InvalidInputError(ENTITY, "sort", f"{sort!r} is not one of {', '.join(SEARCH_SORTS)}")
    return columns[sort]


@translating_errors(ENTITY)
async def search_sessions(
    db: AsyncSession,
    *,
    query: str | None = None,
    source_app: str | None = None,
    phase: SessionPhase | str | None = None,
    status: SessionStatus | str | None = None,
    sort: str = "started",
    descending: bool = True,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> SessionPage:
    """Return a page of sessions whose title, slug or project name contains `query`.

    Two statements: the page (with each session's project name) and the count. Sessions
    without a value in the sort column come last either way.

    Args:
        query: Text to look for, case-insensitively, in the title, slug and project name.
        source_app: The agent that recorded the session (`claude-code`, `amp`, ...).
        sort: One of SEARCH_SORTS.

    Raises:
        InvalidInputError: A filter value or the sort key is not allowed, or paging is
            out of range.
    """
    from session_db.models import Project

    column = _search_sort_column(sort)
    conditions = []
    if query:
        conditions.append(
            or_(
                col(Session.title).icontains(query, autoescape=True),
                col(Session.session_slug).icontains(query, autoescape=True),
                col(Project.name).icontains(query, autoescape=True),
            )
        )
    if source_app:
        conditions.append(Session.source_app == source_app)
    if (value := enum_filter(SessionPhase, phase, ENTITY, "phase")) is not None:
        conditions.append(Session.phase == value)
    if (value := enum_filter(SessionStatus, status, ENTITY, "status")) is not None:
        conditions.append(Session.status == value)
    order = column.desc() if descending else column.asc()
    statement = (
        select(Session, Project.name)
        .outerjoin(Project, Project.id == Session.project_id)
        .where(*conditions)
        .order_by(order.nulls_last(), Session.id.desc() if descending else Session.id)
    )
    rows = (await db.exec(paginate(statement, limit, offset))).all()
    counted = (
        select(func.count())
        .select_from(Session)
        .outerjoin(Project, Project.id == Session.project_id)
        .where(*conditions)
    )
    total = (await db.exec(counted)).one()
    return SessionPage(
        items=[SessionListItem(session=session, project_name=name) for session, name in rows],
        total=total,
    )


@translating_errors(ENTITY)
async def list_source_apps(db: AsyncSession) -> list[str]:
    """Return the agents that recorded sessions (each `source_app` once), sorted."""
    statement = (
        select(Session.source_app)
        .where(col(Session.source_app).is_not(None))
        .distinct()
        .order_by(Session.source_app)
    )
    return [app for app in (await db.exec(statement)).all() if app]


__all__ = [
    "count_sessions",
    "create_session",
    "delete_session",
    "ensure_session",
    "ensure_sessions",
    "get_session",
    "get_session_by_slug",
    "get_session_by_slug_or_id",
    "list_sessions",
    "list_sessions_by_slug",
    "list_source_apps",
    "record_session_activity",
    "search_sessions",
    "update_session",
    "upsert_session_by_slug",
]
