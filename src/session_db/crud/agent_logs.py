"""Agent logs (hook and response events): add one or many, read, list by session and time.

Events are the hot path, so both writes are set-based, with no SAVEPOINT per row: input
is validated once, references are checked with one lookup per batch, and the insert
skips a `spool_id` already stored (ON CONFLICT DO NOTHING; on PostgreSQL a lookup, then
COPY in one SAVEPOINT per batch), which makes re-delivering an event harmless. A row the
checks let through and the database still refuses (a reference deleted meanwhile by
another transaction) raises the translated error; on PostgreSQL the caller's transaction
must then be rolled back.
"""

import typing
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    DEFAULT_LIMIT,
    coerce_input,
    delete_row,
    enum_filter,
    get_or_raise,
    paginate,
    translating_errors,
    update_row,
)
from session_db.crud._bulk import COPY_MIN_ROWS, copy_rows, insert_rows, insert_rows_counted
from session_db.errors import ConflictError, InvalidInputError, NotFoundError, is_transient
from session_db.models import (
    Agent,
    AgentLog,
    AgentLogCreate,
    AgentLogRead,
    AgentLogUpdate,
    EventCategory,
    Session,
)
from session_db.models.base import (
    INT64_MAX,
    MAX_TEXT_CHARS,
    NUL,
    new_id,
    new_ids,
    normalise_object,
    scrub_nul,
    utcnow,
)

ENTITY = "agent_log"
_TABLE: sa.Table = AgentLog.__table__  # type: ignore[attr-defined]
# (column, referred table, referred entity) of every reference a log row holds.
_REFERENCES = (
    ("session_id", Session, "session"),
    ("parent_session_id", Session, "session"),
    ("agent_id", Agent, "agent"),
)


def validate_agent_log(
    data: AgentLogCreate | Mapping[str, Any], entity: str = ENTITY
) -> AgentLogCreate:
    """Return `data` as a checked `AgentLogCreate`, as both writers accept it.

    Raises:
        InvalidInputError: A field is missing or invalid; the error names it.
    """
    log = coerce_input(AgentLogCreate, data, entity)
    if log.parent_session_id is not None and log.parent_session_id == log.session_id:
        raise InvalidInputError(entity, "parent_session_id", "must differ from session_id")
    return log


def _field_kinds() -> dict[str, tuple[str, Any]]:
    """Per `AgentLogCreate` field, the plain value the fast check accepts as it is."""
    kinds: dict[str, tuple[str, Any]] = {}
    for name, info in AgentLogCreate.model_fields.items():
        limit = next((m.max_length for m in info.metadata if hasattr(m, "max_length")), None)
        annotation = str(info.annotation)
        if name == "event_category":
            kinds[name] = ("category", None)
        elif name == "session_depth":
            kinds[name] = ("depth", None)
        elif "UUID" in annotation:
            kinds[name] = ("uuid", None)
        elif "datetime" in annotation:
            kinds[name] = ("datetime", None)
        elif "dict" in annotation:
            kinds[name] = ("dict", None)
        else:
            kinds[name] = ("str", limit)
    return kinds


_KINDS = _field_kinds()
_REQUIRED = frozenset(
    name for name, info in AgentLogCreate.model_fields.items() if info.is_required()
)
_NULLABLE = frozenset(
    name
    for name, info in AgentLogCreate.model_fields.items()
    if type(None) in typing.get_args(info.annotation)
)
_CATEGORIES = {member.value: member.value for member in EventCategory} | {
    member: member.value for member in EventCategory
}


# The fast check's lookups, by the kind of value a field takes.
_STR_LIMITS = {
    name: limit or MAX_TEXT_CHARS for name, (kind, limit) in _KINDS.items() if kind == "str"
}
_EXACT_TYPES = {
    name: {"uuid": uuid.UUID, "datetime": datetime}[kind]
    for name, (kind, _) in _KINDS.items()
    if kind in ("uuid", "datetime")
}


_TEXT_KEY = frozenset({str})
# The model's defaults that are constants (an enum's as its value); `payload` and
# `occurred_at` have factories, applied by `agent_log_values`.
_DEFAULTS = {
    name: getattr(info.default, "value", info.default)
    for name, info in AgentLogCreate.model_fields.items()
    if not info.is_required() and info.default_factory is None
}


def _fast_values(data: Mapping[str, Any], plain: frozenset[str]) -> dict[str, Any] | None:
    """`data` normalised as the model would, if every value is plain; else None.

    Plain: what the model keeps as it is (str within its length, dict with text keys,
    UUID, datetime, a non-negative int depth, a category), so only the model's own
    input pass (`normalise_value`: NUL replaced, sizes limited) can change it. The
    values named in `plain` are taken as they are: the caller built them so.
    """
    if not data.keys() >= _REQUIRED:
        return None
    values = {**_DEFAULTS, **data}
    for name in data.keys() - plain if plain else data:
        value = values[name]
        # The common cases first, each settled by one or two lookups: a batch checks
        # tens of thousands of values.
        if value is None:
            if name not in _NULLABLE:
                return None
        elif type(value) is str and name in _STR_LIMITS:
            if len(value) > _STR_LIMITS[name]:
                return None
            if NUL in value:
                values[name] = scrub_nul(value)
        elif type(value) is _EXACT_TYPES.get(name):
            pass  # a UUID or an aware-or-naive datetime, as the model keeps it
        else:
            kind = _KINDS.get(name, ("unknown", None))[0]
            if kind == "dict":
                # JSON objects' keys are text; the model refuses any other (set(): one
                # C-level pass over the keys).
                if type(value) is not dict or not set(map(type, value)) <= _TEXT_KEY:
                    return None
                try:
                    values[name] = normalise_object(value)  # its text kept, for the writer
                except ValueError:
                    return None  # over its limit: the model says so, naming the field
            elif kind == "depth":
                if type(value) is not int or not 0 <= value <= INT64_MAX:
                    return None
            elif kind != "category" or not isinstance(value, str) or value not in _CATEGORIES:
                return None
    return values


def agent_log_values(
    data: Mapping[str, Any], entity: str = ENTITY, *, plain: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """Return a new row's values from `data`, checked exactly as `validate_agent_log` checks.

    For the hot writers (hook delivery): input of plain values (str, dict, UUID,
    datetime, each within its limits) is checked here without building a model, which
    costs a fraction of pydantic's validation; anything else goes through the model, so
    the values and the errors are the model's either way. Give the result to
    `add_agent_logs(..., checked=True)`, its session fields filled in if need be.

    Args:
        plain: Fields the caller built as the model would keep them (text without NUL
            within its column's length, a UUID, a datetime, a category's value): they
            are not checked again. A hot writer names the ones it made itself.

    Raises:
        InvalidInputError: A field is missing or invalid; the error names it.
    """
    values = _fast_values(data, plain)
    if values is None:
        return _input_values(validate_agent_log(data, entity))
    values["event_category"] = _CATEGORIES[values["event_category"]]
    if "payload" not in data:
        values["payload"] = {}  # a new one per row: a default dict must not be shared
    if "occurred_at" not in data:
        values["occurred_at"] = utcnow()
    parent = values["parent_session_id"]
    if parent is not None and parent == values["session_id"]:
        raise InvalidInputError(entity, "parent_session_id", "must differ from session_id")
    return values


def _input_values(log: AgentLogCreate) -> dict[str, Any]:
    values = log.__dict__.copy()  # shallow: the payload is written as it is, not copied
    values["event_category"] = log.event_category.value
    return values


class AgentLogKey(NamedTuple):
    """The keys of a row `add_agent_logs` inserted."""

    id: uuid.UUID
    spool_id: str | None


def _row_values(log: AgentLogCreate) -> dict[str, Any]:
    """The full column values of a new row (defaults filled here, not by the server)."""
    values = _input_values(log)
    values["id"] = new_id()
    values["created_at"] = utcnow()
    return values


async def _check_references(db: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    """Raise NotFoundError for the first row naming a session or agent that does not exist."""
    found: dict[Any, set[Any]] = {}
    for table in {table for _, table, _ in _REFERENCES}:  # one lookup per referred table
        wanted = {
            row[column]
            for column, referred, _ in _REFERENCES
            if referred is table
            for row in rows
            if row.get(column) is not None
        }
        if wanted:
            statement = select(table.id).where(table.id.in_(wanted))  # type: ignore[attr-defined]
            found[table] = set((await db.exec(statement)).all())
    for column, table, entity in _REFERENCES:
        for index, row in enumerate(rows):
            value = row.get(column)
            if value is not None and value not in found.get(table, set()):
                where = f"{ENTITY}.{column}" if len(rows) == 1 else f"{ENTITY}s[{index}].{column}"
                raise NotFoundError(
                    entity,
                    value,
                    detail=f"{where} refers to {entity} {value}, which does not exist",
                )


@translating_errors(ENTITY)
async def create_agent_log(
    db: AsyncSession, data: AgentLogCreate | Mapping[str, Any]
) -> AgentLogRead:
    """Record one event and return it as stored.

    Raises:
        NotFoundError: `session_id`, `agent_id` or `parent_session_id` names no row.
        InvalidInputError: A field is missing or invalid.
        ConflictError: An event with this `spool_id` is already stored.
    """
    values = _row_values(validate_agent_log(data, ENTITY))
    references = [
        sa.exists().where(table.id == values[column])  # type: ignore[attr-defined]
        for column, table, _ in _REFERENCES
        if values.get(column) is not None
    ]
    # One statement: the row goes in only where everything it refers to exists, so a
    # missing reference costs no failed statement (and no SAVEPOINT to survive one).
    source = sa.select(
        *(sa.literal(value, _TABLE.c[name].type).label(name) for name, value in values.items())
    ).where(sa.and_(sa.true(), *references))
    dialect = db.get_bind().dialect.name
    statement = (sqlite if dialect == "sqlite" else postgresql).insert(_TABLE)
    statement = (
        statement.from_select(list(values), source)
        .on_conflict_do_nothing(index_elements=[_TABLE.c.spool_id])
        .returning(_TABLE.c.id)
    )
    if (await db.exec(statement)).first() is None:
        await _check_references(db, [values])
        raise ConflictError(ENTITY, "spool_id", f"{ENTITY} with this spool_id already exists")
    return AgentLogRead.model_construct(**values)


@translating_errors(ENTITY)
async def add_agent_logs(
    db: AsyncSession,
    rows: Iterable[AgentLogCreate | Mapping[str, Any]],
    *,
    checked: bool = False,
) -> list[AgentLogKey]:
    """Record many events in a bounded number of statements; return the keys of those inserted.

    Rows are validated like `create_agent_log`'s input (an `AgentLogCreate` is taken as
    already valid). Within the batch, a `spool_id` seen twice keeps its first row; a
    `spool_id` already stored is skipped, so delivering the same events again inserts
    nothing. Nothing is written unless every row is valid and refers to rows that exist.

    Args:
        checked: The rows are `agent_log_values` results (their session fields may be
            filled in since): they are not checked again.

    Returns:
        (id, spool_id) of each inserted row, in input order.

    Raises:
        InvalidInputError: A row is invalid; the message names its index and field.
        NotFoundError: A row's `session_id`, `agent_id` or `parent_session_id` names no row.
    """
    values: list[dict[str, Any]] = []
    seen: set[str] = set()
    now = utcnow()  # one creation time for the batch: it is one write
    for index, data in enumerate(rows):
        if checked:
            row = dict(data)
        elif isinstance(data, AgentLogCreate):
            row = _input_values(data)
        else:
            row = agent_log_values(data, f"{ENTITY}s[{index}]")
        spool_id = row["spool_id"]
        if spool_id is not None:
            if spool_id in seen:
                continue
            seen.add(spool_id)
        row["created_at"] = now
        values.append(row)
    if not values:
        return []
    for row, row_id in zip(values, new_ids(len(values)), strict=True):
        row["id"] = row_id
    await _check_references(db, values)
    if db.get_bind().dialect.name == "postgresql":
        fresh = await _insert_postgres(db, values, seen)
    else:
        # SQLite returns no rows from an executemany, but counts them: only when some
        # spool id was stored already are the new rows looked up (by their fresh ids).
        inserted = await insert_rows_counted(db, _TABLE, values, skip_conflicts_on=["spool_id"])
        fresh = values
        if inserted != len(values):
            ids = [row["id"] for row in values]
            found = set((await db.exec(select(AgentLog.id).where(AgentLog.id.in_(ids)))).all())  # type: ignore[attr-defined]
            fresh = [row for row in values if row["id"] in found]
    return [AgentLogKey(row["id"], row["spool_id"]) for row in fresh]


_STORED_SPOOL_IDS = sa.text(
    "SELECT spool_id FROM agent_logs WHERE spool_id = ANY(:ids)"
).bindparams(sa.bindparam("ids", type_=postgresql.ARRAY(sa.String())))


async def _insert_postgres(
    db: AsyncSession, values: list[dict[str, Any]], spool_ids: set[str]
) -> list[dict[str, Any]]:
    """Insert the rows whose spool id is not stored yet; return those inserted.

    A batch skips the spool ids already stored (one lookup), then COPYs the rest straight
    into the table, in a SAVEPOINT (one per batch): half the work of staging them and
    moving them across with ON CONFLICT. Should the COPY be refused (a concurrent writer
    stored one of the spool ids since the lookup, or a reference was deleted meanwhile),
    the conflict-skipping statement does it instead, and reports a refusal in our terms.
    """
    if len(values) < COPY_MIN_ROWS:
        written = await insert_rows(
            db, _TABLE, values, skip_conflicts_on=["spool_id"], returning=["id"]
        )
        inserted = {row_id for (row_id,) in written}
        return [row for row in values if row["id"] in inserted]
    stored: set[str] = set()
    if spool_ids:
        found = await (await db.connection()).execute(_STORED_SPOOL_IDS, {"ids": list(spool_ids)})
        stored = {spool_id for (spool_id,) in found}
    fresh = [row for row in values if row["spool_id"] is None or row["spool_id"] not in stored]
    if not fresh:
        return []
    try:
        async with db.begin_nested():
            await copy_rows(db, _TABLE, fresh)
        return fresh
    except Exception as error:
        if is_transient(error):
            raise
    written = await insert_rows(db, _TABLE, fresh, skip_conflicts_on=["spool_id"], returning=["id"])
    inserted = {row_id for (row_id,) in written}
    return [row for row in fresh if row["id"] in inserted]


@translating_errors(ENTITY)
async def get_agent_log(db: AsyncSession, log_id: uuid.UUID) -> AgentLog:
    """Return the event with this id, or raise NotFoundError."""
    return await get_or_raise(db, AgentLog, log_id, ENTITY)


def _filtered(statement: Any, **filters: Any) -> Any:
    columns = {
        "session_id": AgentLog.session_id,
        "agent_id": AgentLog.agent_id,
        "event_type": AgentLog.event_type,
        "tool_name": AgentLog.tool_name,
        "wave_id": AgentLog.wave_id,
    }
    for name, column in columns.items():
        if filters.get(name) is not None:
            statement = statement.where(column == filters[name])
    category = enum_filter(EventCategory, filters.get("event_category"), ENTITY, "event_category")
    if category is not None:
        statement = statement.where(AgentLog.event_category == category)
    if filters.get("since") is not None:
        statement = statement.where(AgentLog.occurred_at >= filters["since"])
    if filters.get("until") is not None:
        statement = statement.where(AgentLog.occurred_at < filters["until"])
    return statement


@translating_errors(ENTITY)
async def list_agent_logs(
    db: AsyncSession,
    *,
    session_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    event_category: EventCategory | str | None = None,
    event_type: str | None = None,
    event_types: Sequence[str] | None = None,
    tool_name: str | None = None,
    wave_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    by_arrival: bool = False,
    descending: bool = False,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[AgentLog]:
    """Return events matching every filter given, in time order (`since` ≤ t < `until`).

    Args:
        event_types: Only events of one of these types (with `event_type`: of both).
        after: Only events stored after this (created_at, id) of an event seen before,
            in the order they were stored: what `session-db events --follow` polls for.
            An event delivered late (from the spool) is stored, and so found, after
            events that happened later.
        by_arrival: Order by when events were stored (created_at, id), not when they
            happened; implied by `after`.
        descending: Latest first.
    """
    statement = _filtered(
        select(AgentLog),
        session_id=session_id,
        agent_id=agent_id,
        event_category=event_category,
        event_type=event_type,
        tool_name=tool_name,
        wave_id=wave_id,
        since=since,
        until=until,
    )
    if event_types is not None:
        statement = statement.where(AgentLog.event_type.in_(list(event_types)))  # type: ignore[attr-defined]
    if after is not None:
        stored_at, last_id = after
        statement = statement.where(
            sa.or_(
                AgentLog.created_at > stored_at,
                sa.and_(AgentLog.created_at == stored_at, AgentLog.id > last_id),  # type: ignore[arg-type]
            )
        )
    first = AgentLog.created_at if by_arrival or after is not None else AgentLog.occurred_at
    if descending:
        statement = statement.order_by(first.desc(), AgentLog.id.desc())  # type: ignore[attr-defined]
    else:
        statement = statement.order_by(first.asc(), AgentLog.id)  # type: ignore[attr-defined]
    return list((await db.exec(paginate(statement, limit, offset))).all())


@translating_errors(ENTITY)
async def count_agent_logs(
    db: AsyncSession,
    *,
    session_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    event_category: EventCategory | str | None = None,
    event_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Return how many events match every filter given."""
    statement = _filtered(
        select(func.count()).select_from(AgentLog),
        session_id=session_id,
        agent_id=agent_id,
        event_category=event_category,
        event_type=event_type,
        since=since,
        until=until,
    )
    return (await db.exec(statement)).one()


@translating_errors(ENTITY)
async def update_agent_log(
    db: AsyncSession, log_id: uuid.UUID, data: AgentLogUpdate | Mapping[str, Any]
) -> AgentLog:
    """Complete an event with what arrived later (its summary, the tool's output)."""
    return await update_row(db, AgentLog, log_id, AgentLogUpdate, data, ENTITY)


@translating_errors(ENTITY)
async def delete_agent_log(db: AsyncSession, log_id: uuid.UUID) -> None:
    """Delete one event."""
    await delete_row(db, AgentLog, log_id, ENTITY)


class LogCursor(NamedTuple):
    """Where a reader of new events stopped: the last row's (created_at, id)."""

    created_at: datetime
    id: uuid.UUID


class EventSummary(NamedTuple):
    """What a list of events shows of one: no payload, input or output (they can be large)."""

    id: uuid.UUID
    session_id: uuid.UUID
    created_at: datetime
    occurred_at: datetime
    event_type: str
    tool_name: str | None
    agent_type: str | None
    summary: str | None


_SUMMARY_COLUMNS = [_TABLE.c[name] for name in EventSummary._fields]


@translating_errors(ENTITY)
async def get_latest_log_cursor(
    db: AsyncSession, *, session_id: uuid.UUID | None = None
) -> LogCursor | None:
    """Return the (created_at, id) of the most recently stored event (of a session), if any."""
    statement = select(AgentLog.created_at, AgentLog.id)
    if session_id is not None:
        statement = statement.where(AgentLog.session_id == session_id)
    statement = statement.order_by(AgentLog.created_at.desc(), AgentLog.id.desc()).limit(1)
    found = (await db.exec(statement)).first()
    return None if found is None else LogCursor(*found)


@translating_errors(ENTITY)
async def list_event_summaries(
    db: AsyncSession, session_id: uuid.UUID, *, limit: int = DEFAULT_LIMIT
) -> list[EventSummary]:
    """Return a session's latest events, newest first, without their payloads."""
    statement = (
        sa.select(*_SUMMARY_COLUMNS)
        .where(_TABLE.c.session_id == session_id)
        .order_by(_TABLE.c.occurred_at.desc(), _TABLE.c.id.desc())
    )
    rows = (await db.exec(paginate(statement, limit, 0))).all()
    return [EventSummary(*row) for row in rows]


@translating_errors(ENTITY)
async def list_agent_logs_after(
    db: AsyncSession,
    after: LogCursor | None,
    *,
    session_id: uuid.UUID | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[EventSummary]:
    """Return events stored after `after` (all, without it), in the order they were stored.

    Ordered by (created_at, id), not by when they happened: a late delivery of an old
    event is new to a reader that follows the table. Without payloads.
    """
    statement = sa.select(*_SUMMARY_COLUMNS)
    if session_id is not None:
        statement = statement.where(_TABLE.c.session_id == session_id)
    if after is not None:
        statement = statement.where(
            sa.or_(
                _TABLE.c.created_at > after.created_at,
                sa.and_(_TABLE.c.created_at == after.created_at, _TABLE.c.id > after.id),
            )
        )
    statement = statement.order_by(_TABLE.c.created_at, _TABLE.c.id)
    rows = (await db.exec(paginate(statement, limit, 0))).all()
    return [EventSummary(*row) for row in rows]


@translating_errors(ENTITY)
async def count_agent_logs_up_to(db: AsyncSession, session_id: uuid.UUID, cap: int) -> int:
    """Return how many events a session has, counting no further than `cap` + 1.

    A page that says "10,000+" needs no exact count of a million rows; the count stops
    after `cap` + 1 index entries, so a result above `cap` means "more than `cap`".
    """
    if cap < 0:
        raise InvalidInputError(ENTITY, "cap", "must not be negative")
    some = sa.select(_TABLE.c.id).where(_TABLE.c.session_id == session_id).limit(cap + 1)
    statement = sa.select(func.count()).select_from(some.subquery())
    return (await db.exec(statement)).one()[0]


__all__ = [
    "EventSummary",
    "LogCursor",
    "add_agent_logs",
    "count_agent_logs",
    "count_agent_logs_up_to",
    "create_agent_log",
    "delete_agent_log",
    "get_agent_log",
    "get_latest_log_cursor",
    "list_agent_logs",
    "list_agent_logs_after",
    "list_event_summaries",
    "update_agent_log",
]
