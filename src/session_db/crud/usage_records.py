"""Usage records: many responses' tokens and cost at once, counted once; reads; totals.

A response is keyed by (message_id, request_id) and keeps the counts of the line with the
most tokens: Claude Code writes one response as several lines whose early ones carry a
streaming placeholder, and replays responses into other files. The per-session and
per-agent totals (`refresh_usage_totals`) are derived from the records, so reports that
read sessions and agents include them; where the client reported its own cost of a
session tree per model (`ReportedCosts`), that cost is the total instead of the estimates.

Every write also keeps `usage_hours` (the records summed per session, UTC hour, model
and cost source, what usage reports read): the hours a write touched are recomputed
from the records, in two statements per page of sessions.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm.util import identity_key
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    DEFAULT_LIMIT,
    coerce_input,
    dialect_insert,
    get_or_raise,
    integrity_error,
    paginate,
    translating_errors,
)
from session_db.crud._bulk import BULK_PAGE, excluded, insert_rows
from session_db.models import Agent, AgentCreate, Session, UsageHour, UsageRecord
from session_db.models.base import (
    MONEY_SCALE,
    NUL,
    TOKEN_COLUMNS,
    UTCDateTime,
    new_id,
    to_money,
    utcnow,
)
from session_db.models.usage import MAX_COST, MAX_TOKENS, CostSource, UsageRecordCreate

__all__ = [
    "ReportedCosts",
    "StoredUsage",
    "UsageKey",
    "add_usage_records",
    "delete_usage_records",
    "ensure_usage_agents",
    "find_usage_records",
    "get_latest_usage_record",
    "get_usage_record",
    "list_usage_records",
    "rebuild_usage_hours",
    "refresh_usage_totals",
]

ENTITY = "usage_record"
_TABLE: sa.Table = UsageRecord.__table__  # type: ignore[attr-defined]
_AGENTS: sa.Table = Agent.__table__  # type: ignore[attr-defined]
_SESSIONS: sa.Table = Session.__table__  # type: ignore[attr-defined]
_HOURS: sa.Table = UsageHour.__table__  # type: ignore[attr-defined]
# What a response seen again may change: its counts and their cost, never its session,
# agent or time (a replay keeps the first attribution).
_CHANGED = (*TOKEN_COLUMNS, "cost", "cost_source", "cost_is_estimate", "updated_at")

UsageKey = tuple[str, str]  # (message_id, request_id)
_TEXT_ARRAY = postgresql.ARRAY(sa.String)


@functools.cache
def _keep_the_larger() -> tuple[dict[str, Any], Any]:
    """The DO UPDATE of a response seen again: its new counts, if they are larger.

    Built once: each `excluded(...)` is a new table object, so a statement built anew
    per call would be a new entry in SQLAlchemy's statement cache, compiled every time.
    """
    new, old = excluded(_TABLE), _TABLE.c
    new_total = sum(new[column] for column in TOKEN_COLUMNS)
    old_total = sum(old[column] for column in TOKEN_COLUMNS)
    return {name: new[name] for name in _CHANGED}, new_total > old_total


@translating_errors(ENTITY)
async def add_usage_records(
    db: AsyncSession,
    rows: Iterable[UsageRecordCreate | Mapping[str, Any]],
    *,
    return_ids: bool = True,
) -> dict[UsageKey, uuid.UUID]:
    """Record many responses' usage; a response already stored keeps the larger count.

    Within the batch, a key given twice keeps the row with the larger token total (the
    first on a tie). A stored response is updated only by a row with more tokens than it
    has, and then only its counts and cost change. One statement per page of rows.
    No SAVEPOINT (it would double the statements of a small batch): after a refusal the
    caller rolls its transaction back, as `get_async_session` does. Each row is
    validated once, here.

    Args:
        return_ids: Return the ids written. Without them the write is cheaper (SQLite
            takes the rows as one executemany; PostgreSQL returns nothing).

    Returns:
        {(message_id, request_id): id} of the records inserted or updated; {} when
        `return_ids` is False.

    Raises:
        InvalidInputError: A row is invalid (the message names its index and field), or
            its `session_id` or `agent_id` names no row.
    """
    kept: dict[UsageKey, tuple[int, dict[str, Any]]] = {}
    for index, data in enumerate(rows):
        fields = _checked_fields(data, f"{ENTITY}s[{index}]")
        key = (fields["message_id"], fields["request_id"])
        total = sum(fields[column] for column in TOKEN_COLUMNS)
        current = kept.get(key)
        if current is None or total > current[0]:
            kept[key] = (total, fields)  # replacing keeps the key's first position
    if not kept:
        return {}
    now = utcnow()
    values = [
        {**fields, "id": new_id(), "created_at": now, "updated_at": now}
        for _, fields in kept.values()
    ]
    update, larger = _keep_the_larger()
    try:
        # The event pipeline's bulk path: COPY through a staging table on PostgreSQL,
        # multi-row statements on SQLite.
        rows = await insert_rows(
            db,
            _TABLE,
            values,
            skip_conflicts_on=["message_id", "request_id"],
            update_on_conflict=update,
            conflict_where=larger,
            returning=["message_id", "request_id", "id"] if return_ids else (),
        )
    except sa.exc.IntegrityError as error:
        raise integrity_error(error, ENTITY, _TABLE.name) from error
    # A response seen again keeps its stored session and time: read where the batch's
    # keys live now, whichever row won.
    batch = [message_id for message_id, _ in kept]
    await _refresh_hours(db, await _hours_of(db, "message_id", batch))
    return {(message_id, request_id): record_id for message_id, request_id, record_id in rows}


def record_time(table: sa.Table = _TABLE) -> Any:
    """When a record counts: its response's time, else when it was stored."""
    return sa.func.coalesce(table.c.occurred_at, table.c.created_at, type_=UTCDateTime)


def hour_of(dialect: str, moment: Any) -> Any:
    """The UTC hour of a timestamp, in SQL, as `usage_hours.hour` stores it."""
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text
        hour = sa.func.substr(moment, 1, 13, type_=sa.String).concat(":00:00.000000")
        return sa.type_coerce(hour, UTCDateTime)
    truncated = sa.func.date_trunc("hour", sa.func.timezone("UTC", moment))
    return sa.func.timezone("UTC", truncated, type_=UTCDateTime)


async def _hours_of(
    db: AsyncSession, column: str, values: list[Any]
) -> set[tuple[uuid.UUID, datetime]]:
    """The (session, UTC hour) of every record whose `column` is one of `values`."""
    connection = await db.connection()
    statement = _hours_query(connection.dialect.name, column)
    touched: set[tuple[uuid.UUID, datetime]] = set()
    unique = sorted(set(values))
    for start in range(0, len(unique), BULK_PAGE):
        rows = await connection.execute(statement, {"values": unique[start : start + BULK_PAGE]})
        touched.update((sid, at) for sid, at in rows.all())
    return touched


# The statements every write runs are built once per dialect, their lists bound as
# expanding parameters: building them is most of what a small write costs in Python.


@functools.cache
def _hours_query(dialect: str, column: str) -> sa.Select[Any]:
    """SELECT DISTINCT the (session, UTC hour) of the records whose `column` is in :values."""
    values = sa.bindparam("values", expanding=True)
    hour = hour_of(dialect, record_time())
    return sa.select(_TABLE.c.session_id, hour).where(_TABLE.c[column].in_(values)).distinct()


@functools.cache
def _hours_refresh(dialect: str) -> tuple[sa.Delete, sa.Insert]:
    """DELETE the `usage_hours` rows of :sessions and :hours, and INSERT them summed anew."""
    hour = hour_of(dialect, record_time())
    delete = sa.delete(_HOURS).where(
        _HOURS.c.session_id.in_(sa.bindparam("sessions", expanding=True)),
        _HOURS.c.hour.in_(sa.bindparam("hours", expanding=True)),
    )
    insert = _summed_into_hours(
        dialect,
        _TABLE.c.session_id.in_(sa.bindparam("sessions", expanding=True)),
        hour.in_(sa.bindparam("hours", expanding=True)),
    )
    return delete, insert


_LOCK_SESSIONS = sa.text(
    "SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS BIGINT[])) AS k ORDER BY k"
)


def _hours_lock_key(session_id: uuid.UUID) -> int:
    digest = hashlib.sha256(f"session_db.usage_hours:{session_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _summed_into_hours(dialect: str, *where: Any) -> sa.Insert:
    """INSERT INTO usage_hours the records matching `where`, summed per hour."""
    moment = record_time()
    if dialect == "sqlite":  # floats: add whole nano-dollars, exactly
        nano = 10**MONEY_SCALE
        whole = sa.func.sum(sa.cast(sa.func.round(_TABLE.c.cost * nano), sa.BigInteger))
        cost = whole / float(nano)
    else:
        cost = sa.func.sum(_TABLE.c.cost)
    summed = (
        sa.select(
            _TABLE.c.session_id,
            hour_of(dialect, moment),
            _TABLE.c.model,
            _TABLE.c.cost_source,
            sa.func.count(),
            *(sa.func.sum(_TABLE.c[column]) for column in TOKEN_COLUMNS),
            cost,
            sa.func.min(moment),
            sa.func.max(moment),
        )
        .where(*where)
        # By position: PostgreSQL would not match the hour's bound parameters in the
        # select list with those of a GROUP BY expression.
        .group_by(sa.text("1, 2, 3, 4"))
    )
    columns = ["session_id", "hour", "model", "cost_source", "responses", *TOKEN_COLUMNS]
    return sa.insert(_HOURS).from_select([*columns, "cost", "first_at", "last_at"], summed)


@translating_errors(ENTITY)
async def rebuild_usage_hours(db: AsyncSession) -> None:
    """Recompute all of `usage_hours` from the records (after loading records by other
    means than `add_usage_records`, such as a bulk COPY): two statements."""
    connection = await db.connection()
    await connection.execute(sa.delete(_HOURS))
    await connection.execute(_summed_into_hours(connection.dialect.name))


async def _refresh_hours(db: AsyncSession, touched: set[tuple[uuid.UUID, datetime]]) -> None:
    """Recompute the `usage_hours` rows of these (session, hour)s from the records.

    Per page of sessions, one DELETE and one INSERT … SELECT over the sessions' hours
    (every pair of the page's sessions and hours: a superset, the same in both).
    """
    if not touched:
        return
    by_session: dict[uuid.UUID, set[datetime]] = {}
    for sid, at in touched:
        by_session.setdefault(sid, set()).add(at)
    connection = await db.connection()
    delete, insert = _hours_refresh(connection.dialect.name)
    if connection.dialect.name == "postgresql":
        # Two transactions recomputing one session's hours would each miss the other's
        # records (or collide on the key): each waits for the other to commit, so its
        # statements see those records. SQLite's write lock does the same already.
        keys = sorted({_hours_lock_key(sid) for sid in by_session})
        await connection.execute(_LOCK_SESSIONS, {"keys": keys})
    sessions = sorted(by_session)
    page: list[uuid.UUID] = []
    hours: set[datetime] = set()
    for index, sid in enumerate(sessions):
        page.append(sid)
        hours |= by_session[sid]
        if index + 1 < len(sessions) and len(page) + len(hours) < BULK_PAGE:
            continue
        wanted = {"sessions": page, "hours": sorted(hours)}
        await connection.execute(delete, wanted)
        await connection.execute(insert, wanted)
        page, hours = [], set()


_RECORD_FIELDS = tuple(UsageRecordCreate.model_fields)
_REQUIRED_FIELDS = frozenset(
    name for name, info in UsageRecordCreate.model_fields.items() if info.is_required()
)
# The defaults of the fields a row may leave out, as column values.
_DEFAULTS = {
    name: info.get_default(call_default_factory=True)
    for name, info in UsageRecordCreate.model_fields.items()
    if not info.is_required()
}
_DEFAULTS["cost_source"] = CostSource(_DEFAULTS["cost_source"]).value
_TEXT_LIMITS = {
    name: next(m.max_length for m in info.metadata if hasattr(m, "max_length"))
    for name, info in UsageRecordCreate.model_fields.items()
    if info.annotation is str
}
_SOURCES = {member.value: member.value for member in CostSource}


def _checked_fields(data: UsageRecordCreate | Mapping[str, Any], entity: str) -> dict[str, Any]:
    """A row's column values, validated as `UsageRecordCreate` validates them.

    An importer writes thousands of rows of plain values (exact types, within bounds),
    which `_plain_fields` checks at a fraction of pydantic's cost per row; anything
    else goes through the model, so its values and errors are the model's.
    """
    if type(data) is dict:
        fields = _plain_fields(data)
        if fields is not None:
            return fields
    return _fields(coerce_input(UsageRecordCreate, data, entity))


def _plain_fields(data: dict[str, Any]) -> dict[str, Any] | None:
    """`data` with defaults filled in, where every value is one the model keeps as it
    is; else None (then the model decides, and names what it refuses)."""
    if (
        not data.keys() >= _REQUIRED_FIELDS
        or not data.keys() <= _DEFAULTS.keys() | _REQUIRED_FIELDS
    ):
        return None
    if type(data["session_id"]) is not uuid.UUID:
        return None
    agent_id = data.get("agent_id")
    if agent_id is not None and type(agent_id) is not uuid.UUID:
        return None
    for name, limit in _TEXT_LIMITS.items():
        value = data.get(name, "")
        # NUL is replaced by the model's input pass: that row takes the model's way.
        if type(value) is not str or len(value) > limit or NUL in value:
            return None
    for name in TOKEN_COLUMNS:
        value = data.get(name, 0)
        if type(value) is not int or not 0 <= value <= MAX_TOKENS:
            return None
    cost = data.get("cost", _DEFAULTS["cost"])
    if type(cost) is not Decimal or not cost.is_finite() or not 0 <= cost <= MAX_COST:
        return None
    source = data.get("cost_source", _DEFAULTS["cost_source"])
    if type(source) not in (str, CostSource) or source not in _SOURCES:
        return None
    if type(data.get("cost_is_estimate", True)) is not bool:
        return None
    occurred_at = data.get("occurred_at")
    if occurred_at is not None and type(occurred_at) is not datetime:
        return None
    # In the model's field order, as `_fields` gives them.
    fields = {name: data[name] if name in data else _DEFAULTS[name] for name in _RECORD_FIELDS}
    fields["cost_source"] = _SOURCES[source]
    return fields


def _fields(record: UsageRecordCreate) -> dict[str, Any]:
    """A validated record's fields as column values (the cost source as plain text).

    Read off the instance rather than through `model_dump`, which costs several times
    more per row and gives the same values for these scalar fields.
    """
    values = {name: getattr(record, name) for name in _RECORD_FIELDS}
    values["cost_source"] = CostSource(values["cost_source"]).value
    return values


@dataclass(frozen=True)
class StoredUsage:
    """A stored response as the de-duplication of a new batch needs to see it."""

    id: uuid.UUID
    message_id: str
    request_id: str
    session_id: uuid.UUID
    agent_id: uuid.UUID | None
    agent_type: str | None  # its agent's, None without one
    in_child_session: bool  # its session has a parent (a subagent's session, say)
    total_tokens: int


@translating_errors(ENTITY)
async def find_usage_records(db: AsyncSession, message_ids: Iterable[str]) -> list[StoredUsage]:
    """Return the stored responses with any of these message ids, whatever their request id.

    A replayed response can come back under a new request id, so the caller compares the
    stored ones with the new ones before writing. One indexed lookup per page of ids (on
    PostgreSQL with the ids as one array, so the statement is planned once, not once per
    length of the list); where any is found, one more read for their sessions and agents.
    """
    wanted = sorted(set(message_ids))
    total = sum((_TABLE.c[column] for column in TOKEN_COLUMNS), sa.literal(0))
    columns = (
        _TABLE.c.id,
        _TABLE.c.message_id,
        _TABLE.c.request_id,
        _TABLE.c.session_id,
        _TABLE.c.agent_id,
        total,
    )
    connection = await db.connection()
    postgres = connection.dialect.name == "postgresql"
    rows: list[Any] = []
    for start in range(0, len(wanted), BULK_PAGE):
        page = wanted[start : start + BULK_PAGE]
        condition = (
            _TABLE.c.message_id == sa.any_(sa.bindparam("ids", page, type_=_TEXT_ARRAY))
            if postgres
            else _TABLE.c.message_id.in_(page)
        )
        rows.extend((await connection.execute(sa.select(*columns).where(condition))).all())
    if not rows:
        return []
    sessions = {row[3] for row in rows}
    agents = {row[4] for row in rows if row[4] is not None}
    statement = sa.select(_SESSIONS.c.id, _SESSIONS.c.parent_session_id.is_not(None)).where(
        _SESSIONS.c.id.in_(sorted(sessions))
    )
    children = {sid: bool(is_child) for sid, is_child in await connection.execute(statement)}
    types: dict[uuid.UUID, str] = {}
    if agents:
        statement = sa.select(_AGENTS.c.id, _AGENTS.c.agent_type).where(
            _AGENTS.c.id.in_(sorted(agents))
        )
        types = dict((await connection.execute(statement)).all())
    return [
        StoredUsage(
            record_id,
            message_id,
            request_id,
            session_id,
            agent_id,
            types.get(agent_id) if agent_id is not None else None,
            children.get(session_id, False),
            int(tokens),
        )
        for record_id, message_id, request_id, session_id, agent_id, tokens in rows
    ]


@translating_errors(ENTITY)
async def delete_usage_records(db: AsyncSession, record_ids: Iterable[uuid.UUID]) -> int:
    """Delete usage records by id (a replay found to be another file's response); the count.

    One statement per page of ids. The totals of their sessions are stale until the
    caller refreshes them (`refresh_usage_totals`).
    """
    wanted = sorted(set(record_ids))
    touched = await _hours_of(db, "id", wanted)
    deleted = 0
    connection = await db.connection()
    for start in range(0, len(wanted), BULK_PAGE):
        result = await connection.execute(
            sa.delete(_TABLE).where(_TABLE.c.id.in_(wanted[start : start + BULK_PAGE]))
        )
        deleted += result.rowcount
    await _refresh_hours(db, touched)
    return deleted


@translating_errors(ENTITY)
async def get_usage_record(db: AsyncSession, record_id: uuid.UUID) -> UsageRecord:
    """Return the usage record with this id, or raise NotFoundError."""
    return await get_or_raise(db, UsageRecord, record_id, ENTITY)


@translating_errors(ENTITY)
async def list_usage_records(
    db: AsyncSession,
    *,
    session_id: uuid.UUID | None = None,
    agent_id: uuid.UUID | None = None,
    model: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[UsageRecord]:
    """Return usage records matching every filter given, oldest response first.

    Args:
        session_id: Records attributed to this session.
        agent_id: Records attributed to this agent.
        model: Records of this (normalised) model id.
        since: Responses at or after this time.
        until: Responses before this time.
        limit: At most this many (1 to MAX_LIMIT).
        offset: Skip this many first.

    Raises:
        InvalidInputError: `limit` or `offset` is out of range.
    """
    statement = select(UsageRecord)
    if session_id is not None:
        statement = statement.where(UsageRecord.session_id == session_id)
    if agent_id is not None:
        statement = statement.where(UsageRecord.agent_id == agent_id)
    if model is not None:
        statement = statement.where(UsageRecord.model == model)
    if since is not None:
        statement = statement.where(UsageRecord.occurred_at >= since)
    if until is not None:
        statement = statement.where(UsageRecord.occurred_at < until)
    # NULL times first on both engines (PostgreSQL would sort them last).
    statement = statement.order_by(
        UsageRecord.occurred_at.is_not(None), UsageRecord.occurred_at, UsageRecord.id
    )
    return list((await db.exec(paginate(statement, limit, offset))).all())


@translating_errors(ENTITY)
async def get_latest_usage_record(
    db: AsyncSession,
    session_id: uuid.UUID,
    *,
    input_tokens: int | None = None,
    cache_creation_tokens: int | None = None,
    cache_read_tokens: int | None = None,
) -> UsageRecord | None:
    """Return a session's latest response with these input counts, or None.

    A subagent's Task result reports its last response's usage; its input counts find
    that response among the subagent's records.
    """
    statement = select(UsageRecord).where(UsageRecord.session_id == session_id)
    for name, value in (
        ("input_tokens", input_tokens),
        ("cache_creation_tokens", cache_creation_tokens),
        ("cache_read_tokens", cache_read_tokens),
    ):
        if value is not None:
            statement = statement.where(getattr(UsageRecord, name) == value)
    statement = statement.order_by(sa.desc(UsageRecord.occurred_at), sa.desc(UsageRecord.id))
    return (await db.exec(statement.limit(1))).first()


@translating_errors("agent")
async def ensure_usage_agents(
    db: AsyncSession, agents: Mapping[uuid.UUID, AgentCreate | Mapping[str, Any]]
) -> set[uuid.UUID]:
    """Create the agent rows usage is attributed to, by id, leaving existing ones as they are.

    The ids are the caller's (derived from what the agent is), so recording the same
    usage again finds the same agents. One statement (INSERT … ON CONFLICT DO NOTHING),
    no SAVEPOINT: after a refusal the caller rolls its transaction back.

    Returns:
        The ids of the agents this call created.

    Raises:
        InvalidInputError: An agent is invalid, or its `session_id` names no session.
    """
    now = utcnow()
    rows = [
        {
            **_plain(coerce_input(AgentCreate, data, f"agents[{agent_id}]")),
            "id": agent_id,
            "created_at": now,
            "updated_at": now,
        }
        for agent_id, data in agents.items()
    ]
    if not rows:
        return set()
    connection = await db.connection()
    try:
        # RETURNING makes the parameter sets one multi-row statement (see above).
        result = await connection.execute(_ensure_agents(connection.dialect.name), rows)
    except sa.exc.IntegrityError as error:
        raise integrity_error(error, "agent", _AGENTS.name) from error
    return {agent_id for (agent_id,) in result.all()}


@functools.cache
def _ensure_agents(dialect: str) -> sa.Insert:
    """INSERT agents … ON CONFLICT (id) DO NOTHING RETURNING id, built once per dialect."""
    insert = dialect_insert(dialect, _AGENTS)
    return insert.on_conflict_do_nothing(index_elements=[_AGENTS.c.id]).returning(_AGENTS.c.id)


@dataclass(frozen=True)
class ReportedCosts:
    """The client's own cost of a session tree (a session and every session below it).

    Attributes:
        costs: USD per model: what the tree's responses of that model cost, by the client.
        as_of: The figures cover the responses up to this time (None: all of them);
            later ones (a session resumed, or still running) add their own costs.
        agents: Per model, the agent that carries its cost where the tree holds no record
            of that model (a request the transcripts do not show). One named for a model
            without a cost here (an earlier report's) goes back to its records' sums.
    """

    costs: Mapping[str, Decimal]
    as_of: datetime | None = None
    agents: Mapping[str, uuid.UUID] = field(default_factory=dict)


@translating_errors(ENTITY)
async def refresh_usage_totals(
    db: AsyncSession,
    session_ids: Iterable[uuid.UUID],
    *,
    reported: Mapping[uuid.UUID, ReportedCosts] | None = None,
) -> None:
    """Set sessions' and their agents' token and cost totals from their usage records.

    An agent gets its records' sums, its response count as `num_turns` and, in its
    metadata, `responses` and `cost_is_estimate` (whether every cost is an estimate); a
    session gets the sums over all its records (zero without any). One aggregate query
    for any number of sessions, then one UPDATE per table (an executemany). Rows this
    `db` has loaded get their totals on the loaded object instead, written by the flush
    at the end together with whatever else changed on them: one UPDATE, not two.

    `reported` maps a root session to the client's own costs of its tree. For each of its
    models, the tree's cost is the reported cost (plus the estimates of responses after
    `as_of`), split over the tree's agents in proportion to their estimates (their tokens
    where no estimate is above zero, else all to the model's agent in `agents`), exactly
    to the last digit; those agents' metadata say `cost_source: reported`. Token totals
    stay the records' sums. The whole tree is refreshed, whichever of its sessions were
    given: a few more statements per reported tree.
    """
    wanted = set(session_ids)
    trees: dict[uuid.UUID, list[uuid.UUID]] = {}
    if reported:
        trees = await _trees(db, list(reported))
        for members in trees.values():
            wanted.update(members)
    ordered = sorted(wanted)  # sorted: concurrent callers lock rows in one order
    if not ordered:
        return
    if any(isinstance(row, UsageRecord) for row in (*db.new, *db.dirty, *db.deleted)):
        await db.flush()  # the aggregate must see records changed through the ORM
    in_trees = {member for members in trees.values() for member in members}
    sessions: dict[uuid.UUID, dict[str, Any]] = {
        sid: {"total_tokens": 0, "total_cost": Decimal(0)} for sid in ordered
    }
    agents: dict[uuid.UUID, dict[str, Any]] = {}
    plain = [sid for sid in ordered if sid not in in_trees]
    if plain:
        await _plain_totals(db, plain, sessions, agents)
    for root, members in trees.items():
        assert reported is not None
        await _reported_totals(db, root, members, reported[root], sessions, agents)
    for totals in sessions.values():
        totals["total_cost"] = to_money(totals["total_cost"])
    await _update_by_id(db, _AGENTS, Agent, agents)
    await _update_by_id(db, _SESSIONS, Session, sessions)
    await db.flush()


async def _trees(db: AsyncSession, roots: list[uuid.UUID]) -> dict[uuid.UUID, list[uuid.UUID]]:
    """Each root with every session below it (one query per level of depth)."""
    tree_of = {root: root for root in roots}
    frontier = list(roots)
    connection = await db.connection()
    while frontier:
        rows = await connection.execute(
            sa.select(_SESSIONS.c.id, _SESSIONS.c.parent_session_id).where(
                _SESSIONS.c.parent_session_id.in_(frontier)
            )
        )
        frontier = []
        for child, parent in rows.all():
            if child not in tree_of:  # a cycle, or two roots of one tree: the first wins
                tree_of[child] = tree_of[parent]
                frontier.append(child)
    trees: dict[uuid.UUID, list[uuid.UUID]] = {root: [] for root in roots}
    for member, root in tree_of.items():
        trees[root].append(member)
    return trees


def _loaded_metadata(db: AsyncSession, agent_id: uuid.UUID, metadata: Any) -> Any:
    """An agent's metadata: the loaded object's (it may hold changes not flushed yet)."""
    loaded = db.sync_session.identity_map.get(identity_key(Agent, agent_id))
    return loaded.agent_metadata if loaded is not None else metadata


async def _plain_totals(
    db: AsyncSession,
    wanted: list[uuid.UUID],
    sessions: dict[uuid.UUID, dict[str, Any]],
    agents: dict[uuid.UUID, dict[str, Any]],
) -> None:
    """The records' own sums, into `sessions` and `agents` (one aggregate query)."""
    sums = [sa.func.coalesce(sa.func.sum(_TABLE.c[column]), 0) for column in TOKEN_COLUMNS]
    # Grouped by the agent's primary key, so its metadata may be selected with the sums
    # (PostgreSQL knows it depends on the key; SQLite allows it anyway).
    statement = (
        sa.select(
            _TABLE.c.session_id,
            _AGENTS.c.id,
            _AGENTS.c.agent_metadata,
            *sums,
            sa.func.coalesce(sa.func.sum(_TABLE.c.cost), 0),
            sa.func.count(),
            sa.func.min(sa.cast(_TABLE.c.cost_is_estimate, sa.Integer)),
        )
        .select_from(_TABLE.outerjoin(_AGENTS, _AGENTS.c.id == _TABLE.c.agent_id))
        .where(_TABLE.c.session_id.in_(wanted))
        .group_by(_TABLE.c.session_id, _AGENTS.c.id)
    )
    connection = await db.connection()
    for row in (await connection.execute(statement)).all():
        session_id, agent_id, metadata, *counts = row
        tokens = [int(value) for value in counts[: len(TOKEN_COLUMNS)]]
        cost, count, all_estimates = counts[len(TOKEN_COLUMNS) :]
        amount = to_money(cost)
        sessions[session_id]["total_tokens"] += sum(tokens)
        sessions[session_id]["total_cost"] += amount
        if agent_id is None:  # records whose agent was deleted count for the session only
            continue
        metadata = _loaded_metadata(db, agent_id, metadata)
        agents[agent_id] = {
            **dict(zip(TOKEN_COLUMNS, tokens, strict=True)),
            "total_cost": amount,
            "num_turns": int(count),
            "agent_metadata": {
                **(metadata or {}),
                "responses": int(count),
                "cost_is_estimate": bool(all_estimates),
            },
        }


@dataclass
class _Unit:
    """The records of one (session, agent, model) in a reported tree, before and after
    the report's time."""

    session_id: uuid.UUID
    agent_id: uuid.UUID | None
    model: str
    metadata: Any = None
    tokens: list[int] = field(default_factory=lambda: [0] * len(TOKEN_COLUMNS))
    before_cost: Decimal = Decimal(0)
    before_tokens: int = 0
    after_cost: Decimal = Decimal(0)
    count: int = 0
    all_estimates: bool = True
    after_all_estimates: bool = True
    has_after: bool = False
    cost: Decimal = Decimal(0)
    reported: bool = False


async def _reported_totals(
    db: AsyncSession,
    root: uuid.UUID,
    members: list[uuid.UUID],
    report: ReportedCosts,
    sessions: dict[uuid.UUID, dict[str, Any]],
    agents: dict[uuid.UUID, dict[str, Any]],
) -> None:
    """A reported tree's totals: the client's cost per model, split over its agents."""
    # Each record marked as after the report or not, then summed per unit and mark.
    after = (
        sa.literal(0)
        if report.as_of is None
        else sa.case(
            (sa.and_(_TABLE.c.occurred_at.is_not(None), _TABLE.c.occurred_at > report.as_of), 1),
            else_=0,
        )
    )
    records = (
        sa.select(
            _TABLE.c.session_id,
            _TABLE.c.agent_id,
            _TABLE.c.model,
            _TABLE.c.cost,
            _TABLE.c.cost_is_estimate,
            *(_TABLE.c[column] for column in TOKEN_COLUMNS),
            after.label("after"),
        )
        .where(_TABLE.c.session_id.in_(sorted(members)))
        .subquery()
    )
    sums = [sa.func.coalesce(sa.func.sum(records.c[column]), 0) for column in TOKEN_COLUMNS]
    statement = (
        sa.select(
            records.c.session_id,
            _AGENTS.c.id,
            records.c.model,
            records.c.after,
            _AGENTS.c.agent_metadata,
            *sums,
            sa.func.coalesce(sa.func.sum(records.c.cost), 0),
            sa.func.count(),
            sa.func.min(sa.cast(records.c.cost_is_estimate, sa.Integer)),
        )
        .select_from(records.outerjoin(_AGENTS, _AGENTS.c.id == records.c.agent_id))
        .group_by(records.c.session_id, _AGENTS.c.id, records.c.model, records.c.after)
    )
    connection = await db.connection()
    units: dict[tuple[uuid.UUID, uuid.UUID | None, str], _Unit] = {}
    for row in (await connection.execute(statement)).all():
        session_id, agent_id, model, is_after, metadata, *counts = row
        tokens = [int(value) for value in counts[: len(TOKEN_COLUMNS)]]
        cost, count, all_estimates = counts[len(TOKEN_COLUMNS) :]
        unit = units.setdefault(
            (session_id, agent_id, model), _Unit(session_id, agent_id, model, metadata)
        )
        unit.tokens = [a + b for a, b in zip(unit.tokens, tokens, strict=True)]
        unit.count += int(count)
        unit.all_estimates = unit.all_estimates and bool(all_estimates)
        if is_after:
            unit.after_cost += to_money(cost)
            unit.has_after = True
            unit.after_all_estimates = unit.after_all_estimates and bool(all_estimates)
        else:
            unit.before_cost += to_money(cost)
            unit.before_tokens += sum(tokens)
    # The named agents without records in the tree: they carry a model's reported cost
    # that no record shows, or (a model the latest report no longer names) go back to 0.
    recorded = {unit.agent_id for unit in units.values()}
    missing = {agent_id for agent_id in report.agents.values() if agent_id not in recorded}
    if missing:
        rows = await connection.execute(
            sa.select(
                _AGENTS.c.id, _AGENTS.c.session_id, _AGENTS.c.model, _AGENTS.c.agent_metadata
            ).where(_AGENTS.c.id.in_(sorted(missing, key=str)), _AGENTS.c.session_id.in_(members))
        )
        for agent_id, session_id, model, metadata in rows.all():
            units[(session_id, agent_id, model or "")] = _Unit(
                session_id, agent_id, model or "", metadata
            )
    for unit in units.values():
        unit.cost = unit.before_cost + unit.after_cost
    for model, amount in report.costs.items():
        share = [unit for unit in units.values() if unit.model == model]
        if not share:  # no agent to carry it: the root session's own total
            unit = _Unit(root, None, model)
            units[(root, None, model)] = unit
            share = [unit]
        _split(to_money(amount), share, report.agents.get(model), root)
    for unit in units.values():
        totals = sessions[unit.session_id]
        totals["total_tokens"] += sum(unit.tokens)
        totals["total_cost"] += unit.cost
        if unit.agent_id is None:  # records whose agent was deleted count for the session only
            continue
        metadata = dict(_loaded_metadata(db, unit.agent_id, unit.metadata) or {})
        if unit.reported:
            metadata["cost_source"] = "reported"
            estimate = unit.has_after and unit.after_all_estimates
        else:
            metadata.pop("cost_source", None)
            estimate = unit.all_estimates
        agents[unit.agent_id] = {
            **dict(zip(TOKEN_COLUMNS, unit.tokens, strict=True)),
            "total_cost": to_money(unit.cost),
            "num_turns": unit.count,
            "agent_metadata": {**metadata, "responses": unit.count, "cost_is_estimate": estimate},
        }


def _split(
    amount: Decimal, units: list[_Unit], preferred: uuid.UUID | None, root: uuid.UUID
) -> None:
    """Give `units` (one model's) `amount` in proportion to their estimates before the
    report, else their tokens, else all to the preferred agent (or the root's first)."""
    weights = [unit.before_cost for unit in units]
    if not any(weights):
        weights = [Decimal(unit.before_tokens) for unit in units]
    if not any(weights):
        chosen = next(
            (u for u in units if u.agent_id == preferred),
            next((u for u in units if u.session_id == root), units[0]),
        )
        weights = [Decimal(1 if unit is chosen else 0) for unit in units]
    whole = sum(weights, Decimal(0))
    shares = [to_money(amount * weight / whole) for weight in weights]
    # What rounding left over goes to the largest share, so the parts add up exactly.
    largest = max(range(len(units)), key=lambda index: (weights[index], -index))
    shares[largest] += amount - sum(shares, Decimal(0))
    for unit, part in zip(units, shares, strict=True):
        unit.cost = part + unit.after_cost
        unit.reported = True


async def _update_by_id(
    db: AsyncSession,
    table: sa.Table,
    model: type[Agent] | type[Session],
    changes: dict[uuid.UUID, dict[str, Any]],
) -> None:
    """Apply {id: {column: value}} (every row the same columns) with one executemany.

    A row this session has loaded is changed on its object instead (the caller flushes),
    so the object does not go stale and its pending changes go out in the same UPDATE.
    """
    identity_map = db.sync_session.identity_map
    rows = []
    for row_id, values in changes.items():
        loaded = identity_map.get(identity_key(model, row_id))
        if loaded is None:
            rows.append({"b_id": row_id, **{f"b_{name}": value for name, value in values.items()}})
            continue
        for name, value in values.items():
            setattr(loaded, name, value)
    if not rows:
        return
    now = utcnow()
    for row in rows:
        row["b_updated_at"] = now
    statement = _update_statement(table, tuple(name for name in rows[0] if name != "b_id"))
    await (await db.connection()).execute(statement, rows)


@functools.cache
def _update_statement(table: sa.Table, names: tuple[str, ...]) -> sa.Update:
    """UPDATE `table` by :b_id, setting each column of `names` ("b_" + column) to its value."""
    return (
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"))
        .values({name.removeprefix("b_"): sa.bindparam(name) for name in names})
    )


def _plain(model: BaseModel) -> dict[str, Any]:
    """A validated input's fields as column values, enum members as their plain values."""
    return {
        name: value.value if isinstance(value, Enum) else value
        for name, value in model.model_dump().items()
    }
