"""Usage records: many responses' tokens and cost at once, counted once; reads; totals.

A response is keyed by (message_id, request_id) and keeps the counts of the line with the
most tokens: Claude Code writes one response as several lines whose early ones carry a
streaming placeholder, and replays responses into other files. The per-session and
per-agent totals (`refresh_usage_totals`) are derived from the records, so reports that
read sessions and agents include them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.orm.util import identity_key
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    DEFAULT_LIMIT,
    coerce_input,
    get_or_raise,
    integrity_error,
    paginate,
    translating_errors,
    upsert_insert,
)
from session_db.crud._bulk import excluded, insert_rows
from session_db.models import Agent, AgentCreate, Session, UsageRecord
from session_db.models.base import TOKEN_COLUMNS, new_id, to_money, utcnow
from session_db.models.usage import UsageRecordCreate

__all__ = [
    "UsageKey",
    "add_usage_records",
    "ensure_usage_agents",
    "get_latest_usage_record",
    "get_usage_record",
    "list_usage_records",
    "refresh_usage_totals",
]

ENTITY = "usage_record"
_TABLE: sa.Table = UsageRecord.__table__  # type: ignore[attr-defined]
_AGENTS: sa.Table = Agent.__table__  # type: ignore[attr-defined]
_SESSIONS: sa.Table = Session.__table__  # type: ignore[attr-defined]
# What a response seen again may change: its counts and their cost, never its session,
# agent or time (a replay keeps the first attribution).
_CHANGED = (*TOKEN_COLUMNS, "cost", "cost_source", "cost_is_estimate", "updated_at")

UsageKey = tuple[str, str]  # (message_id, request_id)


def _keep_the_larger() -> tuple[dict[str, Any], Any]:
    """The DO UPDATE of a response seen again: its new counts, if they are larger."""
    new, old = excluded(_TABLE), _TABLE.c
    new_total = sum(new[column] for column in TOKEN_COLUMNS)
    old_total = sum(old[column] for column in TOKEN_COLUMNS)
    return {name: new[name] for name in _CHANGED}, new_total > old_total


@translating_errors(ENTITY)
async def add_usage_records(
    db: AsyncSession, rows: Iterable[UsageRecordCreate | Mapping[str, Any]]
) -> dict[UsageKey, uuid.UUID]:
    """Record many responses' usage; a response already stored keeps the larger count.

    Within the batch, a key given twice keeps the row with the larger token total (the
    first on a tie). A stored response is updated only by a row with more tokens than it
    has, and then only its counts and cost change. One statement per page of rows.
    No SAVEPOINT (it would double the statements of a small batch): after a refusal the
    caller rolls its transaction back, as `get_async_session` does.

    Returns:
        {(message_id, request_id): id} of the records inserted or updated.

    Raises:
        InvalidInputError: A row is invalid (the message names its index and field), or
            its `session_id` or `agent_id` names no row.
    """
    kept: dict[UsageKey, UsageRecordCreate] = {}
    for index, data in enumerate(rows):
        record = coerce_input(UsageRecordCreate, data, f"{ENTITY}s[{index}]")
        key = (record.message_id, record.request_id)
        current = kept.get(key)
        if current is None or record.total_tokens > current.total_tokens:
            kept[key] = record  # replacing keeps the key's first position
    if not kept:
        return {}
    now = utcnow()
    values = [
        {**_plain(record), "id": new_id(), "created_at": now, "updated_at": now}
        for record in kept.values()
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
            returning=["message_id", "request_id", "id"],
        )
    except sa.exc.IntegrityError as error:
        raise integrity_error(error, ENTITY, _TABLE.name) from error
    return {(message_id, request_id): record_id for message_id, request_id, record_id in rows}


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
    insert = upsert_insert(db, _AGENTS)  # type: ignore[arg-type]
    statement = insert.on_conflict_do_nothing(index_elements=[_AGENTS.c.id])
    connection = await db.connection()
    try:
        # RETURNING makes the parameter sets one multi-row statement (see above).
        result = await connection.execute(statement.returning(_AGENTS.c.id), rows)
    except sa.exc.IntegrityError as error:
        raise integrity_error(error, "agent", _AGENTS.name) from error
    return {agent_id for (agent_id,) in result.all()}


@translating_errors(ENTITY)
async def refresh_usage_totals(db: AsyncSession, session_ids: Iterable[uuid.UUID]) -> None:
    """Set sessions' and their agents' token and cost totals from their usage records.

    An agent gets its records' sums, its response count as `num_turns` and, in its
    metadata, `responses` and `cost_is_estimate` (whether every cost is an estimate); a
    session gets the sums over all its records (zero without any). One aggregate query
    for any number of sessions, then one UPDATE per table (an executemany). Rows this
    `db` has loaded get their totals on the loaded object instead, written by the flush
    at the end together with whatever else changed on them: one UPDATE, not two.
    """
    wanted = sorted(set(session_ids))  # sorted: concurrent callers lock rows in one order
    if not wanted:
        return
    if any(isinstance(row, UsageRecord) for row in (*db.new, *db.dirty, *db.deleted)):
        await db.flush()  # the aggregate must see records changed through the ORM
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
    sessions: dict[uuid.UUID, dict[str, Any]] = {
        sid: {"total_tokens": 0, "total_cost": Decimal(0)} for sid in wanted
    }
    agents: dict[uuid.UUID, dict[str, Any]] = {}
    identity_map = db.sync_session.identity_map
    for row in (await connection.execute(statement)).all():
        session_id, agent_id, metadata, *counts = row
        tokens = [int(value) for value in counts[: len(TOKEN_COLUMNS)]]
        cost, count, all_estimates = counts[len(TOKEN_COLUMNS) :]
        amount = to_money(cost)
        sessions[session_id]["total_tokens"] += sum(tokens)
        sessions[session_id]["total_cost"] += amount
        if agent_id is None:  # records whose agent was deleted count for the session only
            continue
        loaded = identity_map.get(identity_key(Agent, agent_id))
        if loaded is not None:  # its own metadata may hold changes not flushed yet
            metadata = loaded.agent_metadata
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
    for totals in sessions.values():
        totals["total_cost"] = to_money(totals["total_cost"])
    await _update_by_id(db, _AGENTS, Agent, agents)
    await _update_by_id(db, _SESSIONS, Session, sessions)
    await db.flush()


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
    names = [name for name in rows[0] if name != "b_id"]
    statement = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"))
        .values(
            {
                **{name.removeprefix("b_"): sa.bindparam(name) for name in names},
                "updated_at": utcnow(),
            }
        )
    )
    await (await db.connection()).execute(statement, rows)


def _plain(model: BaseModel) -> dict[str, Any]:
    """A validated input's fields as column values, enum members as their plain values."""
    return {
        name: value.value if isinstance(value, Enum) else value
        for name, value in model.model_dump().items()
    }
