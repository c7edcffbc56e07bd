"""SQLite's bulk path: values converted as SQLAlchemy would, rows packed into multi-row
statements, and what each statement changed counted."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db import crud
from session_db.crud import _bulk
from session_db.database import get_async_session
from session_db.models import AgentLog

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)

INSTANTS = [
    datetime(2026, 11, 30, 12, 0, tzinfo=UTC),  # no microseconds: still six digits
    datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC),
    datetime(2026, 11, 30, 7, 0, 0, 1, tzinfo=timezone(timedelta(hours=-5))),  # another zone
    datetime(2026, 11, 30, 12, 0, 0, 999999),  # naive: taken to be UTC
]


async def raw_times(engine: AsyncEngine, session_id: uuid.UUID) -> list[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(
            sa.text(
                "SELECT occurred_at FROM agent_logs WHERE session_id = :id ORDER BY event_type"
            ),
            {"id": session_id.hex},
        )
        return [text for (text,) in rows]


async def test_bulk_rows_store_timestamps_as_the_single_row_writer_does(
    engine: AsyncEngine,
) -> None:
    async with get_async_session(engine) as db:
        one = await crud.create_session(db, {"session_slug": "single"})
        many = await crud.create_session(db, {"session_slug": "bulk"})
    # Each instant twice in the batch, so a cached conversion is read back as well.
    rows = [
        {"session_id": many.id, "event_type": f"E{index}{copy}", "occurred_at": at}
        for index, at in enumerate(INSTANTS)
        for copy in "ab"
    ]
    async with get_async_session(engine) as db:
        for row in rows:
            await crud.create_agent_log(db, {**row, "session_id": one.id})
    async with get_async_session(engine) as db:
        await crud.add_agent_logs(db, rows)
    single, bulk = await raw_times(engine, one.id), await raw_times(engine, many.id)
    assert bulk == single
    assert bulk[0] == "2026-11-30 12:00:00.000000"
    assert bulk[4] == "2026-11-30 12:00:00.000001"  # the other zone's instant, in UTC


async def test_rows_beyond_one_statements_parameters_go_in_several_counting_each_new_row(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    columns = len(AgentLog.__table__.columns)  # type: ignore[attr-defined]
    # Room for three rows a statement: 10 rows go two at a time (a power of two).
    monkeypatch.setattr(_bulk, "SQLITE_MAX_PARAMETERS", columns * 3 + 2)
    rows_per_insert: list[int] = []

    def count_rows(connection, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if statement.startswith("INSERT INTO agent_logs"):
            rows_per_insert.append(len(parameters) // columns)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", count_rows)
    async with get_async_session(engine) as db:
        session = await crud.create_session(db, {"session_slug": "s"})
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    rows = [
        {
            "session_id": session.id,
            "spool_id": f"spool-{index}",
            "event_type": "Notification",
            "payload": {"n": index},
            "occurred_at": at + timedelta(seconds=index),
        }
        for index in range(10)
    ]
    async with get_async_session(engine) as db:
        first = await crud.add_agent_logs(db, rows[3:5])
    async with get_async_session(engine) as db:
        keys = await crud.add_agent_logs(db, rows)
    sa.event.remove(engine.sync_engine, "before_cursor_execute", count_rows)
    assert rows_per_insert == [2] + [2] * 5  # the first batch, then the second
    assert [key.spool_id for key in first] == ["spool-3", "spool-4"]
    # Counted per statement: only the lookup of new rows can tell the two stored apart.
    assert [key.spool_id for key in keys] == [f"spool-{i}" for i in range(10) if i not in (3, 4)]
    async with get_async_session(engine) as db:
        logs = await crud.list_agent_logs(db, session_id=session.id, limit=100)
    assert sorted(log.payload["n"] for log in logs) == list(range(10))


async def _logged(engine: AsyncEngine, count: int) -> tuple[uuid.UUID, list[dict[str, object]]]:
    """A session with `count` Notification events stored; their rows as given."""
    async with get_async_session(engine) as db:
        session = await crud.create_session(db, {"session_slug": f"s-{uuid.uuid4().hex[:8]}"})
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    rows: list[dict[str, object]] = [
        {
            "session_id": session.id,
            "spool_id": f"{session.id}-{index}",
            "event_type": "Notification",
            "payload": {"n": index},
            "occurred_at": at,
        }
        for index in range(count)
    ]
    async with get_async_session(engine) as db:
        await crud.add_agent_logs(db, rows)
        stored = await crud.list_agent_logs(db, session_id=session.id, limit=100)
    # Every column as stored, so the rows can go to the bulk writer as they are.
    columns = [column.name for column in AgentLog.__table__.columns]  # type: ignore[attr-defined]
    ordered = sorted(stored, key=lambda log: log.payload["n"])
    return session.id, [{name: getattr(log, name) for name in columns} for log in ordered]


async def _event_types(engine: AsyncEngine, session_id: uuid.UUID) -> list[str]:
    async with get_async_session(engine) as db:
        logs = await crud.list_agent_logs(db, session_id=session_id, limit=100)
    return [log.event_type for log in sorted(logs, key=lambda log: log.payload["n"])]


def _excluded() -> Any:
    """The agent_logs row an INSERT proposes, for conflict conditions."""
    return _bulk.excluded(AgentLog.__table__)  # type: ignore[attr-defined]


async def _write_again(
    engine: AsyncEngine, rows: list[dict[str, object]], event_type: str, where: object
) -> None:
    """The stored rows again as `event_type`: the stored one takes it where `where` holds."""
    new = _excluded()
    changed = [{**row, "id": uuid.uuid4(), "event_type": event_type} for row in rows]
    async with get_async_session(engine) as db:
        await _bulk.insert_rows(
            db,
            AgentLog.__table__,  # type: ignore[attr-defined]
            changed,
            skip_conflicts_on=["spool_id"],
            update_on_conflict={"event_type": new.event_type},
            conflict_where=where,
        )


async def test_a_conflict_condition_built_anew_each_call_applies_its_own_constant(
    engine: AsyncEngine,
) -> None:
    session_id, rows = await _logged(engine, 4)
    new = _excluded()
    for index, wanted in ((0, "Stop"), (1, "SessionEnd")):
        # A new expression per call, each with its own constant: one compiled plan must
        # not serve the other.
        await _write_again(engine, rows, wanted, new.spool_id == rows[index]["spool_id"])
    assert await _event_types(engine, session_id) == [
        "Stop",
        "SessionEnd",
        "Notification",
        "Notification",
    ]


async def test_a_column_bound_twice_is_written_row_by_row_with_each_rows_value(
    engine: AsyncEngine,
) -> None:
    session_id, rows = await _logged(engine, 4)
    new = _excluded()
    # The condition binds the row's own spool_id a second time: no multi-row statement
    # can take that, so each row must meet the condition with its own value.
    where = sa.and_(new.spool_id == sa.bindparam("spool_id"), new.spool_id.like("%-2"))
    await _write_again(engine, rows, "Stop", where)
    assert await _event_types(engine, session_id) == [
        "Notification",
        "Notification",
        "Stop",
        "Notification",
    ]
