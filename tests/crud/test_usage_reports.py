"""Usage reports on both engines: periods in a time zone, sessions, blocks, filters, totals."""

from __future__ import annotations

import asyncio
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from support import SPOTTER
from usage_support import (
    GPT,
    OPUS,
    RESPONSE,
    RESPONSE_TOTAL,
    SONNET,
    SONNET_BEDROCK,
    SONNET_VERTEX,
    a_session,
    responses,
)

from session_db import crud
from session_db.claude.importer import import_transcripts
from session_db.database import get_async_session
from session_db.errors import InvalidInputError, NotFoundError
from session_db.models.reports import UsageQuery, UsageReport


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def report(db: AsyncSession, period: str = "daily", **options: object) -> UsageReport:
    return await crud.list_usage_report(db, UsageQuery(period=period, **options))  # type: ignore[arg-type]


def keys(found: UsageReport) -> list[tuple[str, int]]:
    """Each row's key and how many responses it holds."""
    return [(row.key, sum(row.cost_sources.values())) for row in found.rows]


async def test_daily_buckets_follow_the_time_zones_midnight(db: AsyncSession) -> None:
    session = await a_session(db, "s1")
    # 04:30Z is 23:30 the day before in New York (UTC-5 in February); 05:30Z is 00:30.
    await responses(
        db, session, [utc("2026-02-12 22:30"), utc("2026-02-13 04:30"), utc("2026-02-13 05:30")]
    )
    assert keys(await report(db)) == [("2026-02-12", 1), ("2026-02-13", 2)]
    in_new_york = await report(db, timezone="America/New_York")
    assert keys(in_new_york) == [("2026-02-12", 2), ("2026-02-13", 1)]
    first = in_new_york.rows[0]
    assert first.start == datetime(2026, 2, 12, 5, tzinfo=UTC)  # local midnight
    assert first.end == datetime(2026, 2, 13, 5, tzinfo=UTC)


async def test_daily_buckets_in_a_half_hour_zone_and_across_dst(db: AsyncSession) -> None:
    session = await a_session(db, "s1")
    # India is UTC+5:30: 18:29Z is 23:59 local, 18:31Z is 00:01 the next day.
    await responses(db, session, [utc("2026-02-12 18:29"), utc("2026-02-12 18:31")])
    # New York moves to UTC-4 on 2026-03-08: 04:30Z is 23:30 on the 7th (EST), but on
    # the 9th 04:30Z is 00:30 (EDT).
    await responses(db, session, [utc("2026-03-08 04:30"), utc("2026-03-10 03:30")])
    india = await report(db, timezone="Asia/Kolkata")
    assert keys(india)[:2] == [("2026-02-12", 1), ("2026-02-13", 1)]
    new_york = await report(db, timezone="America/New_York")
    assert keys(new_york)[1:] == [("2026-03-07", 1), ("2026-03-09", 1)]
    march_9 = new_york.rows[-1]
    assert (march_9.start, march_9.end) == (
        datetime(2026, 3, 9, 4, tzinfo=UTC),
        datetime(2026, 3, 10, 4, tzinfo=UTC),
    )


async def test_weekly_rows_are_iso_weeks_and_monthly_rows_months(db: AsyncSession) -> None:
    session = await a_session(db, "s1")
    await responses(
        db,
        session,
        [
            utc("2025-12-28 12:00"),  # a Sunday: 2025-W52
            utc("2025-12-29 12:00"),  # Monday of 2026-W01 (2026-01-01 is a Thursday)
            utc("2026-01-04 12:00"),  # its Sunday
            utc("2026-01-05 12:00"),  # 2026-W02
            utc("2026-02-01 03:00"),  # still January in New York
        ],
    )
    weekly = await report(db, "weekly")
    assert keys(weekly) == [("2025-W52", 1), ("2026-W01", 2), ("2026-W02", 1), ("2026-W05", 1)]
    assert weekly.rows[1].start == utc("2025-12-29 00:00")
    assert weekly.rows[1].end == utc("2026-01-05 00:00")
    assert keys(await report(db, "monthly")) == [("2025-12", 2), ("2026-01", 2), ("2026-02", 1)]
    in_new_york = await report(db, "monthly", timezone="America/New_York")
    assert keys(in_new_york) == [("2025-12", 2), ("2026-01", 3)]


async def test_session_rows_by_slug_ordered_by_last_activity(db: AsyncSession) -> None:
    early = await a_session(db, "4d5611e5-241a-462a-8d15-5122611a9569", title="Fix the parser")
    late = await a_session(db, "amp:T-5928a90d-d53b-488f-a829-4e36442142ee", app="amp")
    await responses(db, late, [utc("2026-02-12 09:00")])
    await responses(db, early, [utc("2026-02-11 09:00"), utc("2026-02-11 10:00")])
    found = await report(db, "session")
    assert keys(found) == [
        ("4d5611e5-241a-462a-8d15-5122611a9569", 2),
        ("amp:T-5928a90d-d53b-488f-a829-4e36442142ee", 1),
    ]
    assert found.rows[0].label == "Fix the parser"
    assert (found.rows[0].start, found.rows[0].end) == (
        utc("2026-02-11 09:00"),
        utc("2026-02-11 10:00"),
    )


async def test_blocks_start_on_the_hour_last_five_hours_and_the_last_is_active(
    db: AsyncSession,
) -> None:
    session = await a_session(db, "s1")
    await responses(
        db,
        session,
        [
            utc("2026-02-12 10:15"),  # block 10:00-15:00
            utc("2026-02-12 11:40"),
            utc("2026-02-12 14:59"),
            utc("2026-02-12 15:00"),  # five hours after the block's start: a new block
            utc("2026-02-12 21:30"),  # after a 6.5 hour gap: a block from 21:00
            utc("2026-02-12 22:10"),
        ],
    )
    found = await report(db, "blocks", now=utc("2026-02-12 23:00"))
    assert [(row.start, row.end, row.active) for row in found.rows] == [
        (utc("2026-02-12 10:00"), utc("2026-02-12 15:00"), False),
        (utc("2026-02-12 15:00"), utc("2026-02-12 20:00"), False),
        (utc("2026-02-12 21:00"), utc("2026-02-13 02:00"), True),
    ]
    assert keys(found) == [
        ("2026-02-12T10:00:00+00:00", 3),
        ("2026-02-12T15:00:00+00:00", 1),
        ("2026-02-12T21:00:00+00:00", 2),
    ]
    assert found.rows[2].label == "2026-02-12 21:00 (active)"
    assert found.rows[2].last_at == utc("2026-02-12 22:10")
    later = await report(db, "blocks", now=utc("2026-02-13 02:00"), timezone="Asia/Tokyo")
    assert not any(row.active for row in later.rows)  # the block has ended
    assert later.rows[0].label == "2026-02-12 19:00"  # shown in the zone, still UTC hours


async def test_breakdown_groups_a_models_ids_under_its_canonical_name(db: AsyncSession) -> None:
    session = await a_session(db, "s1")
    day = utc("2026-02-12 10:00")
    await responses(db, session, [day], model=SONNET, cost="0.25")
    await responses(db, session, [day], model=SONNET_BEDROCK, cost="0.5")
    await responses(db, session, [day], model=SONNET_VERTEX, cost="0.125")
    await responses(db, session, [day, day], model=OPUS, cost="1.5")
    found = await report(db, breakdown=True)
    (row,) = found.rows
    assert row.models == ["claude-opus-4-6", "claude-sonnet-4-5"]  # costliest first
    opus, sonnet = row.breakdown
    assert (opus.key, opus.cost, opus.cost_sources["computed"]) == (OPUS, Decimal(3), 2)
    assert (sonnet.key, sonnet.cost, sonnet.total_tokens) == (
        "claude-sonnet-4-5",
        Decimal("0.875"),
        3 * RESPONSE_TOTAL,
    )
    assert sonnet.input_tokens == 3 * RESPONSE["input_tokens"]
    assert sonnet.cache_write_tokens == 3 * RESPONSE["cache_creation_tokens"]
    assert sonnet.cache_read_tokens == 3 * RESPONSE["cache_read_tokens"]
    assert sonnet.output_tokens == 3 * RESPONSE["output_tokens"]
    assert [line.key for line in found.totals.breakdown] == ["claude-opus-4-6", "claude-sonnet-4-5"]
    assert not (await report(db)).rows[0].breakdown  # only when asked


async def test_filters_by_project_agent_and_time(db: AsyncSession, tmp_path: Path) -> None:
    shop = await crud.create_project(db, {"name": "webshop", "root_path": str(tmp_path)})
    other = await crud.create_project(db, {"name": "other", "root_path": "/srv/other"})
    claude = await a_session(db, "c1", project_id=shop.id)
    amp = await a_session(db, "amp:T-1", app="amp", project_id=other.id)
    codex = await a_session(db, "codex:0199a213-81c0-7800-8aa1-bbab2a035a53", app="codex")
    gemini = await a_session(db, "gemini:3b2a", app="gemini")
    sdk = await a_session(db, "sess-7f3a", project_id=shop.id)  # a session the SDK stored
    await crud.append_sdk_store_entries(db, "-srv-app", "sess-7f3a", None, [{"type": "user"}])
    sdk_child = await a_session(db, "sess-7f3a/agent-a1", parent_id=sdk)
    at = utc("2026-02-12 10:00")
    await responses(db, claude, [at, at + timedelta(days=2)])
    await responses(db, amp, [at], model=SONNET)
    await responses(db, codex, [at], model=GPT)
    await responses(db, gemini, [at], model="gemini-2.5-pro")
    await responses(db, sdk, [at])
    await responses(db, sdk_child, [at], model=SONNET)

    async def count(**options: object) -> int:
        return sum((await report(db, **options)).cost_sources.values())

    assert await count() == 7
    assert await count(project="webshop") == 3
    assert await count(project=str(tmp_path)) == 3  # by root path too
    assert await count(agent="claude-code") == 2
    assert await count(agent="sdk") == 2  # the stored session and its subagent's
    assert await count(agent="amp") == 1
    assert await count(agent="codex") == 1
    assert await count(agent="gemini") == 1
    assert await count(agent="claude-code", project="other") == 0
    assert await count(since=at + timedelta(days=1)) == 1
    assert await count(until=at + timedelta(seconds=1)) == 6
    # A naive time is in the report's zone: 10:00 UTC is 05:00 in New York.
    assert await count(since=datetime(2026, 2, 12, 5, 1), timezone="America/New_York") == 1
    with pytest.raises(NotFoundError):
        await report(db, project="nowhere")


async def test_bad_options_are_refused(db: AsyncSession) -> None:
    with pytest.raises(InvalidInputError, match="timezone"):
        await report(db, timezone="Mars/Olympus_Mons")
    with pytest.raises(InvalidInputError, match="until"):
        await report(db, since=utc("2026-02-12 00:00"), until=utc("2026-02-11 00:00"))


async def test_totals_and_cost_sources_count_every_response(db: AsyncSession) -> None:
    session = await a_session(db, "s1")
    at = utc("2026-02-12 10:00")
    await responses(db, session, [at, at], source="reported", cost="0.123456789")
    await responses(db, session, [at + timedelta(days=1)], cost="0.000000001")
    await responses(db, session, [at], source="unpriced", cost="0", model="glm-4.6")
    found = await report(db)
    assert found.cost_sources == {"reported": 2, "computed": 1, "unpriced": 1}
    assert found.rows[0].cost_sources == {"reported": 2, "computed": 0, "unpriced": 1}
    assert found.totals.cost == Decimal("0.246913579")  # exact, not a float sum
    assert found.totals.total_tokens == 4 * RESPONSE_TOTAL
    assert found.totals.models == ["claude-opus-4-6", "glm-4.6"]
    assert sum(row.cost for row in found.rows) == found.totals.cost


async def test_agent_counters_count_where_a_run_has_no_usage_records(db: AsyncSession) -> None:
    session = await crud.get_session(db, await a_session(db, "parent", app=None))
    started = utc("2026-02-10 08:00")
    # As a session folder's state.json records a run: totals only, no responses.
    await crud.create_agent(
        db,
        {
            "session_id": session.id,
            "agent_type": "build",
            "model": SONNET,
            "input_tokens": 1200,
            "output_tokens": 300,
            "cache_creation_tokens": 10,
            "cache_read_tokens": 5,
            "total_cost": Decimal("0.0081"),
            "started_at": started,
        },
    )
    await crud.create_agent(db, {"session_id": session.id, "agent_type": "plan"})  # nothing
    found = await report(db, breakdown=True)
    (row,) = found.rows
    assert (row.key, row.total_tokens, row.cost) == ("2026-02-10", 1515, Decimal("0.0081"))
    assert row.models == ["claude-sonnet-4-5"]
    assert found.cost_sources == {"reported": 1, "computed": 0, "unpriced": 0}
    # Records of a run replace its counters (they are what the counters add up).
    await responses(db, session.id, [utc("2026-02-11 08:00")])
    assert [r.key for r in (await report(db)).rows] == ["2026-02-10", "2026-02-11"]


async def test_the_real_transcripts_report_the_imported_figures(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    projects = tmp_path / "projects" / "-home-USER-projects-spotter"
    shutil.copytree(SPOTTER, projects, ignore=shutil.ignore_patterns("LICENSE"))
    await import_transcripts(engine, [tmp_path / "projects"])
    async with get_async_session(engine) as db:
        daily = await report(db, breakdown=True)
        sessions = await report(db, "session")
        blocks = await report(db, "blocks")
    # The figures of tests/claude/test_import.py's EXPECTED, per canonical model.
    opus, sonnet = daily.totals.breakdown
    assert (opus.key, opus.cost, opus.total_tokens) == (
        OPUS,
        Decimal("9.663036000"),
        180 + 28_763 + 488_218 + 11_783_397,
    )
    assert (sonnet.key, sonnet.cost, sonnet.output_tokens) == (
        "claude-sonnet-4-5",
        Decimal("0.527264550"),
        136 - 1 + 5_108,
    )
    assert daily.cost_sources == {"reported": 0, "computed": 152, "unpriced": 0}
    figures = {"breakdown", "first_at", "last_at"}  # daily rows show no activity span
    assert sessions.totals.model_dump(exclude=figures) == daily.totals.model_dump(exclude=figures)
    assert [row.key for row in sessions.rows] == [  # the subagent ended first
        "4d5611e5-241a-462a-8d15-5122611a9569/agent-a2898e3",
        "4d5611e5-241a-462a-8d15-5122611a9569",
    ]
    assert sum(row.cost for row in blocks.rows) == daily.totals.cost


async def test_usage_hours_follow_a_larger_count_a_deletion_and_a_deleted_session(
    db: AsyncSession,
) -> None:
    session = await a_session(db, "s1")
    at = utc("2026-02-12 10:15")
    line = {
        "session_id": session,
        "message_id": "msg_01PdWvcjJ6E9BgscDveYt9YV",
        "request_id": "req_011CY4bL6qyZ1BwCsAdgBm6L",
        "model": OPUS,
        **RESPONSE,
        "cost": Decimal("0.1"),
        "cost_source": "computed",
        "occurred_at": at,
    }
    await crud.add_usage_records(db, [line])
    # The response's last line: its full output, and the client's own cost.
    written = await crud.add_usage_records(
        db, [{**line, "output_tokens": 5_108, "cost": Decimal("0.2"), "cost_source": "reported"}]
    )
    found = await report(db)
    assert found.cost_sources == {"reported": 1, "computed": 0, "unpriced": 0}
    assert (found.totals.output_tokens, found.totals.cost) == (5_108, Decimal("0.2"))
    before = await report(db, "blocks")
    await crud.rebuild_usage_hours(db)  # from the records alone: the same figures
    assert await report(db, "blocks") == before
    await crud.delete_usage_records(db, written.values())
    assert (await report(db)).rows == []
    other = await a_session(db, "s2")
    await responses(db, other, [at, at + timedelta(hours=3)])
    assert len((await report(db, "blocks")).rows) == 1
    await crud.delete_session(db, other)
    assert (await report(db, "blocks")).rows == []


async def test_part_hours_at_the_ends_of_a_range_count_exactly(db: AsyncSession) -> None:
    session = await a_session(db, "s1")
    await responses(
        db, session, [utc("2026-02-12 10:10"), utc("2026-02-12 10:50"), utc("2026-02-12 12:20")]
    )
    found = await report(db, since=utc("2026-02-12 10:30"), until=utc("2026-02-12 12:30"))
    assert sum(found.cost_sources.values()) == 2  # 10:50 and 12:20, not 10:10
    within = await report(db, since=utc("2026-02-12 10:05"), until=utc("2026-02-12 10:20"))
    assert sum(within.cost_sources.values()) == 1


async def test_two_writers_of_one_sessions_hour_both_count(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        session = await a_session(db, "s1")
    at = utc("2026-02-12 10:15")
    first_wrote = asyncio.Event()

    async def first() -> None:
        async with get_async_session(engine) as db:
            await responses(db, session, [at])
            first_wrote.set()
            await asyncio.sleep(0.5)  # still open while the second writes the same hour

    async def second() -> None:
        await first_wrote.wait()
        async with get_async_session(engine) as db:
            await responses(db, session, [at + timedelta(minutes=5)])

    await asyncio.gather(first(), second())
    async with get_async_session(engine) as db:
        assert (await report(db)).cost_sources["computed"] == 2
