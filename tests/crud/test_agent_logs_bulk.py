"""The bulk writer of agent logs stores exactly what the single-row writer stores."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db import crud
from session_db.crud.agent_logs import agent_log_values
from session_db.database import get_async_session
from session_db.errors import ConflictError, InvalidInputError, NotFoundError
from session_db.models import AgentLog
from session_db.models.base import MAX_JSON_CHARS, MAX_TEXT_CHARS

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# Columns that differ by construction between two stores of the same input.
OWN_KEYS = {"id", "created_at", "session_id", "spool_id"}


def inputs(session_id: uuid.UUID, prefix: str) -> list[dict[str, Any]]:
    """Inputs covering what the two paths might treat differently."""
    return [
        {  # NUL in text, in JSON keys and values
            "session_id": session_id,
            "spool_id": f"{prefix}-nul",
            "event_type": "Pre\x00ToolUse",
            "summary": "a\x00b",
            "payload": {"k\x00": ["v\x00", {"deep": "x\x00"}]},
            "tool_input": {"command": "printf '\x00'"},
            "occurred_at": T0,
        },
        {  # an event type newer than this code, kept as sent
            "session_id": session_id,
            "spool_id": f"{prefix}-new-type",
            "event_type": "PostModelSwitch",
            "payload": {"from_model": "claude-opus-4-6", "to_model": "claude-sonnet-4-5"},
            "occurred_at": T0,
        },
        {  # the largest text and JSON still allowed
            "session_id": session_id,
            "spool_id": f"{prefix}-large",
            "event_type": "PostToolUse",
            "reason": "r" * MAX_TEXT_CHARS,
            "payload": {"out": "o" * (MAX_JSON_CHARS - len('{"out": ""}'))},
            "occurred_at": T0,
        },
        {  # no spool id at all: never taken for a duplicate
            "session_id": session_id,
            "event_type": "Notification",
            "payload": {"message": "héllo ✓", "n": 12345678901234567},
            "occurred_at": T0,
        },
    ]


def stored(row: AgentLog) -> dict[str, Any]:
    columns = AgentLog.__table__.columns  # type: ignore[attr-defined]
    return {c.name: getattr(row, c.name) for c in columns if c.name not in OWN_KEYS}


async def read_back(engine: AsyncEngine, session_id: uuid.UUID) -> list[dict[str, Any]]:
    async with get_async_session(engine) as db:
        rows = (
            await db.exec(
                sa.select(AgentLog)
                .where(AgentLog.session_id == session_id)
                .order_by(AgentLog.event_type)
            )
        ).all()
        return [stored(row) for (row,) in rows]


async def test_bulk_and_single_writes_store_the_same_rows(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        one = await crud.create_session(db, {"session_slug": "single"})
        many = await crud.create_session(db, {"session_slug": "bulk"})
    async with get_async_session(engine) as db:
        for data in inputs(one.id, "one"):
            await crud.create_agent_log(db, data)
    async with get_async_session(engine) as db:
        keys = await crud.add_agent_logs(db, inputs(many.id, "many"))
    assert [key.spool_id for key in keys] == ["many-nul", "many-new-type", "many-large", None]
    single, bulk = await read_back(engine, one.id), await read_back(engine, many.id)
    assert single == bulk
    assert len(bulk) == 4
    by_type = {row["event_type"]: row for row in bulk}
    assert by_type["Pre\ufffdToolUse"]["payload"] == {"k\ufffd": ["v\ufffd", {"deep": "x\ufffd"}]}
    assert by_type["Pre\ufffdToolUse"]["summary"] == "a\ufffdb"
    assert by_type["PostModelSwitch"]["event_type"] == "PostModelSwitch"
    assert len(by_type["PostToolUse"]["reason"]) == MAX_TEXT_CHARS


async def test_a_large_checked_batch_stores_what_the_single_row_writer_stores(
    engine: AsyncEngine,
) -> None:
    # Over COPY_MIN_ROWS rows, so PostgreSQL takes its COPY path; some already stored.
    copies = 20
    async with get_async_session(engine) as db:
        one = await crud.create_session(db, {"session_slug": "single"})
        many = await crud.create_session(db, {"session_slug": "bulk"})
    async with get_async_session(engine) as db:
        for copy in range(copies):
            for data in inputs(one.id, f"one{copy}"):
                await crud.create_agent_log(db, data)
    rows = [
        agent_log_values(data) for copy in range(copies) for data in inputs(many.id, f"many{copy}")
    ]
    async with get_async_session(engine) as db:
        first = await crud.add_agent_logs(db, rows[:8], checked=True)
    async with get_async_session(engine) as db:
        keys = await crud.add_agent_logs(db, rows, checked=True)
    assert len(first) == 8
    assert len(keys) == len(rows) - 8 + 2  # the rows without a spool id go in again
    assert {key.spool_id for key in keys} == {row["spool_id"] for row in rows[8:]} | {None}
    single, bulk = await read_back(engine, one.id), await read_back(engine, many.id)
    assert len(bulk) == len(single) + 2 == 4 * copies + 2
    extra = Counter(map(repr, bulk))
    extra.subtract(Counter(map(repr, single)))
    # Row for row the same, but for the two rows without a spool id sent twice.
    assert +extra == Counter({repr(row): 2 for row in bulk if row["event_type"] == "Notification"})


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("summary", "s" * (MAX_TEXT_CHARS + 1), "exceeds"),
        ("payload", {"out": "o" * MAX_JSON_CHARS}, "exceeds"),
        ("event_type", "E" * 129, "at most 128"),
        ("session_depth", -1, "greater than or equal"),
    ],
)
async def test_both_paths_refuse_an_oversized_or_invalid_value_naming_the_field(
    engine: AsyncEngine, field: str, value: Any, problem: str
) -> None:
    async with get_async_session(engine) as db:
        session = await crud.create_session(db, {"session_slug": "s"})
    good = {"session_id": session.id, "event_type": "Stop", "spool_id": "good"}
    bad = {"session_id": session.id, "event_type": "Stop", "spool_id": "bad", field: value}
    async with get_async_session(engine) as db:
        with pytest.raises(InvalidInputError, match=problem) as single:
            await crud.create_agent_log(db, bad)
        assert single.value.field == field
        with pytest.raises(InvalidInputError, match=problem) as bulk:
            await crud.add_agent_logs(db, [good, bad])
        assert bulk.value.field == field and bulk.value.entity == "agent_logs[1]"
        # Nothing of the refused batch was written, and the transaction is still usable.
        assert await crud.count_agent_logs(db, session_id=session.id) == 0
        assert len(await crud.add_agent_logs(db, [good])) == 1


async def test_both_paths_refuse_a_payload_whose_keys_are_not_text(engine: AsyncEngine) -> None:
    # JSON would write the key as "1"; the model refuses it, and so must the fast check.
    async with get_async_session(engine) as db:
        session = await crud.create_session(db, {"session_slug": "s"})
    bad = {"session_id": session.id, "event_type": "Stop", "payload": {1: "one"}}
    async with get_async_session(engine) as db:
        with pytest.raises(InvalidInputError, match="valid string") as single:
            await crud.create_agent_log(db, bad)
        with pytest.raises(InvalidInputError, match="valid string") as bulk:
            await crud.add_agent_logs(db, [bad])
        assert single.value.field.startswith("payload") and bulk.value.field == single.value.field
        assert await crud.count_agent_logs(db, session_id=session.id) == 0


async def test_duplicates_in_one_batch_are_stored_once_and_redelivery_inserts_nothing(
    engine: AsyncEngine,
) -> None:
    async with get_async_session(engine) as db:
        session = await crud.create_session(db, {"session_slug": "s"})
    first = {"session_id": session.id, "event_type": "PreToolUse", "spool_id": "dup"}
    second = {**first, "event_type": "PostToolUse"}
    async with get_async_session(engine) as db:
        keys = await crud.add_agent_logs(db, [first, second, first])
        assert [key.spool_id for key in keys] == ["dup"]
        assert await crud.add_agent_logs(db, [first, second]) == []
        # The single path refuses what the bulk path skips: the caller asked for one row.
        with pytest.raises(ConflictError, match="spool_id"):
            await crud.create_agent_log(db, second)
        logs = await crud.list_agent_logs(db, session_id=session.id)
    assert [log.event_type for log in logs] == ["PreToolUse"]  # the first one won


async def test_both_paths_refuse_a_missing_session_and_keep_the_transaction_usable(
    engine: AsyncEngine,
) -> None:
    async with get_async_session(engine) as db:
        session = await crud.create_session(db, {"session_slug": "s"})
    nowhere = uuid.uuid4()
    async with get_async_session(engine) as db:
        with pytest.raises(NotFoundError, match=str(nowhere)):
            await crud.create_agent_log(db, {"session_id": nowhere, "event_type": "Stop"})
        with pytest.raises(NotFoundError, match=r"agent_logs\[1\]\.session_id"):
            await crud.add_agent_logs(
                db,
                [
                    {"session_id": session.id, "event_type": "Stop"},
                    {"session_id": nowhere, "event_type": "Stop"},
                ],
            )
        with pytest.raises(InvalidInputError, match="parent_session_id"):
            await crud.create_agent_log(
                db,
                {"session_id": session.id, "parent_session_id": session.id, "event_type": "X"},
            )
        # On PostgreSQL a refused statement would have aborted the transaction: none ran.
        log = await crud.create_agent_log(db, {"session_id": session.id, "event_type": "Stop"})
    async with get_async_session(engine) as db:
        assert (await crud.get_agent_log(db, log.id)).event_type == "Stop"
        assert await crud.count_agent_logs(db) == 1
