"""Usage records on both engines: the keep-the-larger bulk upsert, reads, and the totals."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.crud._bulk import BULK_PAGE
from session_db.crud.usage_records import _checked_fields, _fields, _plain_fields
from session_db.database import get_async_session
from session_db.errors import InvalidInputError, NotFoundError
from session_db.models import Agent, Session, UsageRecord
from session_db.models.usage import MAX_TOKENS, CostSource, UsageRecordCreate

T0 = datetime(2026, 2, 12, 16, 0, tzinfo=UTC)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements `engine` sends while the block runs (first words only)."""
    seen: list[str] = []

    def record(conn, cursor, statement, params, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()[:3]))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", record)


def usage(session_id: uuid.UUID, message: str, request: str = "req", **fields: Any) -> dict:
    return {
        "session_id": session_id,
        "message_id": message,
        "request_id": request,
        "model": "claude-opus-4-6",
        **fields,
    }


async def a_session(db: AsyncSession, slug: str) -> Session:
    return await crud.get_session(db, await crud.ensure_session(db, slug))


async def test_add_usage_records_keeps_the_larger_count_in_a_batch_and_against_stored_ones(
    db: AsyncSession,
) -> None:
    first, other = await a_session(db, "first"), await a_session(db, "other")
    written = await crud.add_usage_records(
        db,
        [
            usage(first.id, "m1", output_tokens=1, occurred_at=T0),  # a streaming placeholder
            usage(first.id, "m1", output_tokens=900, cost="0.5", occurred_at=T0),
            usage(first.id, "m1", output_tokens=900, cost="9"),  # a tie: the first stays
            usage(first.id, "m2", input_tokens=5),
            UsageRecordCreate(**usage(first.id, "m2", request="other-request")),
        ],
    )
    assert set(written) == {("m1", "req"), ("m2", "req"), ("m2", "other-request")}
    m1 = await crud.get_usage_record(db, written[("m1", "req")])
    assert (m1.output_tokens, m1.cost, m1.occurred_at) == (900, Decimal("0.5"), T0)

    # Fewer tokens than stored: nothing changes and nothing is returned.
    again = await crud.add_usage_records(db, [usage(other.id, "m1", output_tokens=10)])
    assert again == {}
    # More tokens: the counts and cost change; the session, agent and time do not.
    more = await crud.add_usage_records(
        db,
        [usage(other.id, "m1", output_tokens=5_108, cost="0.7", cost_source="reported")],
    )
    assert more == {("m1", "req"): m1.id}
    db.expunge_all()
    m1 = await crud.get_usage_record(db, m1.id)
    assert (m1.session_id, m1.output_tokens, m1.cost, m1.cost_source, m1.occurred_at) == (
        first.id,
        5_108,
        Decimal("0.7"),
        "reported",
        T0,
    )
    assert len(await crud.list_usage_records(db)) == 3


async def test_add_usage_records_writes_one_statement_per_page(
    engine: AsyncEngine,
) -> None:
    async with get_async_session(engine) as db:
        session = await a_session(db, "big")
        rows = [usage(session.id, f"m{i}", input_tokens=i) for i in range(2 * BULK_PAGE + 1)]
        rows.append(rows[0])  # a duplicate is dropped before the statement sees it
        with statements(engine) as seen:
            written = await crud.add_usage_records(db, rows)
    assert len(written) == 2 * BULK_PAGE + 1
    # Three pages of records; then the session's hours in usage_hours, at once.
    inserts = [s for s in seen if s.startswith("INSERT")]
    assert inserts == ["INSERT INTO usage_records"] * 3 + ["INSERT INTO usage_hours"]
    async with get_async_session(engine) as db:
        stored = await crud.list_usage_records(db, session_id=session.id, limit=1000)
        assert len(stored) == 1000


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"input_tokens": -1}, "usage_records[1].input_tokens"),
        ({"output_tokens": MAX_TOKENS + 1}, "usage_records[1].output_tokens"),
        ({"cost": "1e9"}, "usage_records[1].cost"),
        ({"cost_source": "guessed"}, "usage_records[1].cost_source"),
        ({"message_id": "m" * 256}, "usage_records[1].message_id"),
    ],
)
async def test_add_usage_records_refuses_a_bad_row_by_index_and_field(
    db: AsyncSession, row: dict, field: str
) -> None:
    session = await a_session(db, "refused")
    with pytest.raises(InvalidInputError) as refused:
        await crud.add_usage_records(
            db, [usage(session.id, "ok"), {**usage(session.id, "x"), **row}]
        )
    assert f"{refused.value.entity}.{refused.value.field}" == field
    assert await crud.list_usage_records(db) == []  # nothing of the batch was written


async def test_add_usage_records_refuses_a_session_that_does_not_exist(
    engine: AsyncEngine,
) -> None:
    async with engine.connect() as connection, AsyncSession(bind=connection) as db:
        with pytest.raises(InvalidInputError, match="does not exist"):
            await crud.add_usage_records(db, [usage(uuid.uuid4(), "orphan")])
        await db.rollback()


async def test_list_and_get_usage_records(db: AsyncSession) -> None:
    one, two = await a_session(db, "one"), await a_session(db, "two")
    await crud.add_usage_records(
        db,
        [
            usage(one.id, f"m{i}", occurred_at=T0 + timedelta(minutes=i), model=model)
            for i, model in enumerate(["claude-opus-4-6", "claude-haiku-4-5", "claude-opus-4-6"])
        ]
        + [
            usage(two.id, "n0", occurred_at=None),  # no time: first
            usage(two.id, "n1", occurred_at=T0 + timedelta(seconds=30)),
        ],
    )
    ids = lambda rows: [row.message_id for row in rows]  # noqa: E731
    assert ids(await crud.list_usage_records(db, session_id=one.id)) == ["m0", "m1", "m2"]
    assert ids(await crud.list_usage_records(db, session_id=two.id)) == ["n0", "n1"]
    opus = await crud.list_usage_records(db, model="claude-opus-4-6")
    assert ids(opus) == ["n0", "m0", "n1", "m2"]
    window = {"since": T0 + timedelta(minutes=1), "until": T0 + timedelta(minutes=2)}
    assert ids(await crud.list_usage_records(db, **window)) == ["m1"]
    assert ids(await crud.list_usage_records(db, session_id=one.id, limit=1, offset=1)) == ["m1"]
    with pytest.raises(InvalidInputError):
        await crud.list_usage_records(db, limit=0)
    with pytest.raises(NotFoundError):
        await crud.get_usage_record(db, uuid.uuid4())


async def test_get_latest_usage_record_finds_a_response_by_its_input_counts(
    db: AsyncSession,
) -> None:
    session = await a_session(db, "child")
    counts = {"input_tokens": 3, "cache_creation_tokens": 40, "cache_read_tokens": 500}
    await crud.add_usage_records(
        db,
        [
            usage(session.id, "early", occurred_at=T0, **counts),
            usage(session.id, "late", occurred_at=T0 + timedelta(seconds=5), **counts),
            usage(session.id, "other", occurred_at=T0 + timedelta(seconds=9), input_tokens=4),
        ],
    )
    found = await crud.get_latest_usage_record(db, session.id, **counts)
    assert found is not None and found.message_id == "late"
    latest = await crud.get_latest_usage_record(db, session.id)
    assert latest is not None and latest.message_id == "other"
    assert await crud.get_latest_usage_record(db, session.id, input_tokens=99) is None


async def test_ensure_usage_agents_creates_the_missing_and_keeps_the_existing(
    db: AsyncSession,
) -> None:
    session = await a_session(db, "agents")
    kept, new = uuid.uuid4(), uuid.uuid4()
    assert await crud.ensure_usage_agents(
        db, {kept: {"session_id": session.id, "agent_type": "main", "model": "m"}}
    ) == {kept}
    created = await crud.ensure_usage_agents(
        db,
        {
            kept: {"session_id": session.id, "agent_type": "renamed"},
            new: {"session_id": session.id, "agent_type": "compact", "status": "complete"},
        },
    )
    assert created == {new}
    db.expunge_all()
    assert (await crud.get_agent(db, kept)).agent_type == "main"
    assert (await crud.get_agent(db, new)).status == "complete"
    with pytest.raises(InvalidInputError):
        await crud.ensure_usage_agents(db, {uuid.uuid4(): {"session_id": session.id}})


async def test_refresh_usage_totals_sets_agents_and_sessions_in_three_statements(
    engine: AsyncEngine,
) -> None:
    async with get_async_session(engine) as db:
        parent, child, idle = [await a_session(db, slug) for slug in ("parent", "child", "idle")]
        main, gone, sub = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        await crud.ensure_usage_agents(
            db,
            {
                main: {"session_id": parent.id, "agent_type": "main", "agent_metadata": {"k": 1}},
                gone: {"session_id": parent.id, "agent_type": "compact"},
                sub: {"session_id": child.id, "agent_type": "Explore"},
            },
        )
        await crud.add_usage_records(
            db,
            [
                usage(parent.id, "p1", agent_id=main, input_tokens=10, output_tokens=5, cost="1"),
                usage(parent.id, "p2", agent_id=main, cache_read_tokens=100, cost="0.25"),
                usage(parent.id, "p3", agent_id=gone, cache_creation_tokens=7, cost="0.5"),
                usage(
                    child.id,
                    "c1",
                    agent_id=sub,
                    output_tokens=1,
                    cost="2",
                    cost_source="reported",
                    cost_is_estimate=False,
                ),
                usage(child.id, "c2", agent_id=sub, output_tokens=2, cost="0.000000001"),
            ],
        )
        await crud.delete_agent(db, gone)  # its record stays, with no agent
        db.expunge_all()
        with statements(engine) as seen:
            await crud.refresh_usage_totals(db, [parent.id, child.id, idle.id, parent.id])
    assert seen == [
        "SELECT usage_records.session_id, agents.id,",
        "UPDATE agents SET",
        "UPDATE sessions SET",
    ]
    async with get_async_session(engine) as db:
        sessions = {s.session_slug: s for s in await crud.list_sessions(db)}
        assert (sessions["parent"].total_tokens, sessions["parent"].total_cost) == (
            122,
            Decimal("1.750000000"),
        )
        assert (sessions["child"].total_tokens, sessions["child"].total_cost) == (
            3,
            Decimal("2.000000001"),
        )
        assert (sessions["idle"].total_tokens, sessions["idle"].total_cost) == (0, Decimal(0))
        agent = await crud.get_agent(db, main)
        assert (agent.input_tokens, agent.output_tokens, agent.cache_read_tokens) == (10, 5, 100)
        assert (agent.total_cost, agent.num_turns) == (Decimal("1.25"), 2)
        assert agent.agent_metadata == {"k": 1, "responses": 2, "cost_is_estimate": True}
        explore = await crud.get_agent(db, sub)
        assert explore.agent_metadata["cost_is_estimate"] is False  # one cost was reported


async def test_refresh_usage_totals_updates_loaded_rows_in_place(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        session = await a_session(db, "loaded")
        agent_id = uuid.uuid4()
        await crud.ensure_usage_agents(
            db, {agent_id: {"session_id": session.id, "agent_type": "main"}}
        )
        await crud.add_usage_records(
            db, [usage(session.id, "m", agent_id=agent_id, output_tokens=4)]
        )
        loaded = await db.get(Agent, agent_id)
        session.title = "set before the refresh"  # a pending change goes out with the totals
        await crud.refresh_usage_totals(db, [session.id])
        assert (session.total_tokens, loaded.output_tokens) == (4, 4)  # type: ignore[union-attr]
    async with get_async_session(engine) as db:
        stored = await crud.get_session(db, session.id)
        assert (stored.title, stored.total_tokens) == ("set before the refresh", 4)
        records = await db.exec(sa.select(sa.func.count()).select_from(UsageRecord))
        assert records.one()[0] == 1


async def test_add_usage_records_without_ids_writes_the_same_rows_and_returns_none(
    db: AsyncSession,
) -> None:
    session = await a_session(db, "no-ids")
    rows = [usage(session.id, f"m{i}", output_tokens=i, cost="0.5") for i in range(3)]
    assert await crud.add_usage_records(db, rows, return_ids=False) == {}
    bigger = usage(session.id, "m1", output_tokens=99, cost_source="reported")
    assert await crud.add_usage_records(db, [bigger], return_ids=False) == {}
    stored = {r.message_id: r for r in await crud.list_usage_records(db)}
    assert {m: r.output_tokens for m, r in stored.items()} == {"m0": 0, "m1": 99, "m2": 2}
    assert stored["m1"].cost_source == "reported"


async def test_find_usage_records_sees_every_request_id_of_a_message_and_where_it_is(
    db: AsyncSession,
) -> None:
    parent = await a_session(db, "p")
    child = await crud.get_session(
        db, await crud.ensure_session(db, "p/agent-1", parent_session_id=parent.id)
    )
    compact = uuid.uuid4()
    await crud.ensure_usage_agents(
        db, {compact: {"session_id": parent.id, "agent_type": "compact"}}
    )
    await crud.add_usage_records(
        db,
        [
            usage(parent.id, "m1", "r1", input_tokens=3, output_tokens=4),
            usage(child.id, "m1", "r2", cache_read_tokens=10),
            usage(parent.id, "m2", "r3", agent_id=compact),
            usage(parent.id, "other", "r4"),
        ],
    )
    found = sorted(
        await crud.find_usage_records(db, ["m1", "m2", "missing", "m1"]),
        key=lambda record: record.request_id,
    )
    assert [
        (f.message_id, f.request_id, f.in_child_session, f.agent_type, f.total_tokens)
        for f in found
    ] == [
        ("m1", "r1", False, None, 7),
        ("m1", "r2", True, None, 10),
        ("m2", "r3", False, "compact", 0),
    ]
    assert {f.session_id for f in found} == {parent.id, child.id}
    assert await crud.find_usage_records(db, []) == []


async def test_delete_usage_records_deletes_by_id_and_counts_them(db: AsyncSession) -> None:
    session = await a_session(db, "deleted")
    written = await crud.add_usage_records(db, [usage(session.id, "a"), usage(session.id, "b")])
    gone = written[("a", "req")]
    deleted = await crud.delete_usage_records(db, [gone, gone, uuid.uuid4()])
    assert deleted == 1
    assert [r.message_id for r in await crud.list_usage_records(db)] == ["b"]


async def test_refresh_usage_totals_splits_a_reported_cost_over_the_tree_exactly(
    engine: AsyncEngine,
) -> None:
    from session_db.crud.usage_records import ReportedCosts

    async with get_async_session(engine) as db:
        root = await a_session(db, "root")
        child = await crud.get_session(
            db, await crud.ensure_session(db, "root/agent-1", parent_session_id=root.id)
        )
        main, sub, haiku, retired = (uuid.uuid4() for _ in range(4))
        await crud.ensure_usage_agents(
            db,
            {
                main: {"session_id": root.id, "agent_type": "main", "model": "opus"},
                sub: {"session_id": child.id, "agent_type": "Explore", "model": "opus"},
                haiku: {"session_id": root.id, "agent_type": "main", "model": "haiku"},
                retired: {
                    "session_id": root.id,
                    "agent_type": "main",
                    "model": "old",
                    "total_cost": "9",
                    "agent_metadata": {"cost_source": "reported"},
                },
            },
        )
        cut = T0 + timedelta(minutes=5)
        await crud.add_usage_records(
            db,
            [
                usage(
                    root.id,
                    "m1",
                    agent_id=main,
                    model="opus",
                    output_tokens=2,
                    cost="2",
                    occurred_at=T0,
                ),
                usage(
                    child.id,
                    "m2",
                    agent_id=sub,
                    model="opus",
                    output_tokens=1,
                    cost="1",
                    occurred_at=T0,
                ),
                # After the report: its own estimate is added to the reported cost.
                usage(
                    root.id,
                    "m3",
                    agent_id=main,
                    model="opus",
                    output_tokens=5,
                    cost="0.25",
                    occurred_at=cut + timedelta(seconds=1),
                ),
                usage(root.id, "m4", model="sonnet", output_tokens=7, cost="0.5"),
            ],
        )
    report = ReportedCosts(
        {"opus": Decimal("1"), "haiku": Decimal("0.05"), "gpt": Decimal("0.01")},
        cut,
        {"opus": main, "haiku": haiku, "old": retired},
    )
    async with get_async_session(engine) as db:
        await crud.refresh_usage_totals(db, [child.id], reported={root.id: report})
    async with get_async_session(engine) as db:
        agents = {a.id: a for a in await crud.list_agents(db)}
        # 1 split 2 : 1 by the estimates before the report, to the last digit.
        assert agents[main].total_cost == Decimal("0.666666667") + Decimal("0.25")
        assert agents[sub].total_cost == Decimal("0.333333333")
        assert agents[main].agent_metadata["cost_source"] == "reported"
        assert agents[main].agent_metadata["cost_is_estimate"] is True  # m3 is an estimate
        assert agents[sub].agent_metadata["cost_is_estimate"] is False
        assert (agents[haiku].total_cost, agents[haiku].num_turns) == (Decimal("0.05"), 0)
        assert agents[retired].total_cost == 0
        assert "cost_source" not in agents[retired].agent_metadata
        sessions = {s.session_slug: s for s in await crud.list_sessions(db)}
        # opus 1 + 0.25, haiku 0.05, sonnet's estimate 0.5, and gpt (no agent) 0.01.
        assert sessions["root"].total_cost == Decimal("1.476666667")
        assert sessions["root/agent-1"].total_cost == Decimal("0.333333333")
        assert sessions["root"].total_tokens == 14


@pytest.mark.parametrize(
    "row",
    [
        {},
        {"agent_id": uuid.uuid4(), "occurred_at": T0, "cost": Decimal("1.250000000")},
        {"cost_source": "computed", "cost_is_estimate": False, "input_tokens": MAX_TOKENS},
        {"cost_source": CostSource.REPORTED, "request_id": "", "cost": Decimal("-0")},
        {"occurred_at": datetime(2026, 2, 12, 16, 0)},  # naive: kept as the model keeps it
        # Values the model changes or refuses: the model's way, the same result.
        {"message_id": "with\x00nul"},
        {"output_tokens": True},
        {"cost": 0.5},
        {"cost": "0.25"},
        {"cost_source": "unpriced", "request_id": "r" * 255},
    ],
)
def test_plain_usage_rows_get_the_values_the_model_gives(row: dict) -> None:
    data = {**usage(uuid.uuid4(), "m"), **row}
    assert _checked_fields(data, "usage_record") == _fields(UsageRecordCreate.model_validate(data))


@pytest.mark.parametrize(
    "row",
    [
        {"message_id": "with\x00nul"},
        {"output_tokens": True},
        {"input_tokens": -1},
        {"input_tokens": MAX_TOKENS + 1},
        {"cost": Decimal("NaN")},
        {"cost": Decimal("1e12")},
        {"cost_source": "guessed"},
        {"model": "m" * 129},
        {"unknown": 1},
    ],
)
def test_usage_rows_the_fast_check_does_not_vouch_for_go_through_the_model(row: dict) -> None:
    assert _plain_fields({**usage(uuid.uuid4(), "m"), **row}) is None
