"""The CRUD reads the dashboard added, on both engines."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from web_support import CHILD, OTHER, PARENT, START, add_hook_event, seed

from session_db import crud
from session_db.database import get_async_session
from session_db.errors import InvalidInputError


async def test_search_sessions_pages_and_counts_with_project_names(engine: AsyncEngine) -> None:
    await seed(engine)
    async with get_async_session(engine, read_only=True) as db:
        page = await crud.search_sessions(
            db, query="search", sort="slug", descending=False, limit=1
        )
        rest = await crud.search_sessions(
            db, query="search", sort="slug", descending=False, limit=1, offset=1
        )
    assert page.total == rest.total == 2
    assert [item.session.session_slug for item in page.items + rest.items] == [PARENT, CHILD]
    assert {item.project_name for item in page.items + rest.items} == {"search-app"}


async def test_search_sessions_puts_missing_values_last_both_ways(engine: AsyncEngine) -> None:
    await seed(engine)
    async with get_async_session(engine) as db:
        await crud.create_session(db, {"session_slug": "no-start"})
    async with get_async_session(engine, read_only=True) as db:
        newest = await crud.search_sessions(db, sort="started")
        oldest = await crud.search_sessions(db, sort="started", descending=False)
    assert newest.items[-1].session.session_slug == "no-start"
    assert oldest.items[-1].session.session_slug == "no-start"
    assert oldest.items[0].session.session_slug == OTHER


async def test_search_sessions_refuses_an_unknown_sort(db: AsyncSession) -> None:
    with pytest.raises(InvalidInputError, match="sort"):
        await crud.search_sessions(db, sort="nope")


async def test_list_source_apps_names_each_agent_once(engine: AsyncEngine) -> None:
    await seed(engine)
    async with get_async_session(engine, read_only=True) as db:
        assert await crud.list_source_apps(db) == ["amp", "claude-code"]


async def test_daily_cost_groups_by_utc_day_and_canonical_model(engine: AsyncEngine) -> None:
    await seed(engine)
    async with get_async_session(engine, read_only=True) as db:
        by_model = await crud.list_daily_cost(db, "model")
        by_project = await crud.list_daily_cost(db, "project", since=START - timedelta(days=1))
        latest = await crud.get_latest_usage_at(db)
    day, earlier = START.date(), START.date() - timedelta(days=4)
    assert [(line.day, line.key, line.total_cost) for line in by_model] == [
        (earlier, "gpt-4o", Decimal("1.75")),
        (day, "claude-haiku-4-5", Decimal("0.50")),
        (day, "claude-opus-4-1", Decimal("1.60")),
        (day, "claude-sonnet-4-5", Decimal("1.65")),
    ]
    assert [(line.day, line.key, line.total_tokens) for line in by_project] == [
        (day, "search-app", 1_651_000)
    ]
    assert latest == START
    assert isinstance(by_model[0].day, date)


async def test_daily_cost_refuses_an_unknown_grouping(db: AsyncSession) -> None:
    with pytest.raises(InvalidInputError, match="by"):
        await crud.list_daily_cost(db, "agent")


async def test_model_usage_sums_the_four_token_kinds_per_canonical_model(
    engine: AsyncEngine,
) -> None:
    seeded = await seed(engine)
    async with get_async_session(engine, read_only=True) as db:
        usage = await crud.list_model_usage(db, [seeded.parent_id, seeded.child_id])
        assert await crud.list_model_usage(db, []) == []
    sonnet = next(line for line in usage if line.model == "claude-sonnet-4-5")
    assert (sonnet.runs, sonnet.input_tokens, sonnet.output_tokens) == (2, 210_000, 41_000)
    assert (sonnet.cache_write_tokens, sonnet.cache_read_tokens) == (0, 950_000)
    assert sonnet.total_tokens == 1_201_000 and sonnet.total_cost == Decimal("1.65")
    assert [line.model for line in usage] == [
        "claude-sonnet-4-5",
        "claude-opus-4-1",
        "claude-haiku-4-5",
    ]


async def test_logs_after_a_cursor_are_the_newer_rows_in_stored_order(engine: AsyncEngine) -> None:
    seeded = await seed(engine)
    async with get_async_session(engine, read_only=True) as db:
        cursor = await crud.get_latest_log_cursor(db, session_id=seeded.parent_id)
        assert await crud.get_latest_log_cursor(db, session_id=seeded.other_id) is None
        assert await crud.list_agent_logs_after(db, cursor, session_id=seeded.parent_id) == []
        everything = await crud.list_agent_logs_after(db, None)
    assert len(everything) == 3
    await add_hook_event(engine, seeded.parent_id, "first")
    await add_hook_event(engine, seeded.parent_id, "second")
    await add_hook_event(engine, seeded.other_id, "elsewhere")
    async with get_async_session(engine, read_only=True) as db:
        new = await crud.list_agent_logs_after(db, cursor, session_id=seeded.parent_id)
        one = await crud.list_agent_logs_after(db, cursor, session_id=seeded.parent_id, limit=1)
        after_one = await crud.list_agent_logs_after(
            db, crud.LogCursor(one[0].created_at, one[0].id), session_id=seeded.parent_id
        )
    assert [log.summary for log in new] == ["first", "second"]
    assert [log.summary for log in after_one] == ["second"]


async def test_session_task_dependencies_are_every_edge_of_the_session(
    engine: AsyncEngine,
) -> None:
    seeded = await seed(engine)
    async with get_async_session(engine, read_only=True) as db:
        tasks = {task.plan_ref: task.id for task in await crud.list_tasks(db, seeded.parent_id)}
        edges = await crud.list_session_task_dependencies(db, seeded.parent_id)
        none = await crud.list_session_task_dependencies(db, seeded.other_id)
    assert sorted(edges) == sorted([(tasks["1.2"], tasks["1.1"]), (tasks["1.10"], tasks["1.2"])])
    assert none == []


async def test_event_summaries_are_the_latest_first_without_payloads(engine: AsyncEngine) -> None:
    seeded = await seed(engine)
    async with get_async_session(engine, read_only=True) as db:
        latest = await crud.list_event_summaries(db, seeded.parent_id, limit=2)
        none = await crud.list_event_summaries(db, seeded.other_id)
    assert [event.event_type for event in latest] == ["PostToolUse", "PreToolUse"]
    assert not hasattr(latest[0], "payload") and none == []


async def test_tool_call_spans_are_in_start_order_with_their_outcome(engine: AsyncEngine) -> None:
    seeded = await seed(engine)
    async with get_async_session(engine, read_only=True) as db:
        spans = await crud.list_tool_call_spans(db, seeded.parent_id)
        first = await crud.list_tool_call_spans(db, seeded.parent_id, limit=1)
    assert [(span.tool_name, span.status) for span in spans] == [
        ("Read", "succeeded"),
        ("Bash", "failed"),
        ("Edit", "succeeded"),
    ]
    assert spans[1].error == "exit code 1" and spans[1].duration_ms == 20_000
    assert first == spans[:1]


async def test_a_capped_count_stops_after_the_cap(engine: AsyncEngine) -> None:
    seeded = await seed(engine)
    async with get_async_session(engine, read_only=True) as db:
        assert await crud.count_agent_logs_up_to(db, seeded.parent_id, 10) == 3
        assert await crud.count_agent_logs_up_to(db, seeded.parent_id, 2) == 3
        assert await crud.count_agent_logs_up_to(db, seeded.parent_id, 1) == 2
        assert await crud.count_agent_logs_up_to(db, seeded.other_id, 5) == 0
        with pytest.raises(InvalidInputError, match="cap"):
            await crud.count_agent_logs_up_to(db, seeded.parent_id, -1)
