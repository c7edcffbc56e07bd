"""Today's Claude Code transcripts (REFERENCE.md §3), imported on both engines.

Every transcript here is written by hand from the documented line shapes, not by our own
writer: ccusage's dedupe and sidechain replay rule, `cost-state` (the client's own cost,
per model), the lines that name a session, `pr-link`, fast mode's premium, and the line
types that only have to be survived.

Prices are Anthropic's list prices on 2026-04-01 (flat, below any long-context tier):
claude-opus-4-6 $5 / $25 per million input / output tokens, claude-sonnet-4-5 $3 / $15.
"""

from __future__ import annotations

import itertools
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from session_db import crud
from session_db.claude.importer import import_transcripts
from session_db.database import get_async_session
from session_db.models import Agent, CostSource, Session, UsageRecord

SESSION = "7a1c0e52-3b9d-4c2e-9f10-5d6e7f8a9b0c"
OPUS, SONNET, HAIKU = "claude-opus-4-6", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"
# 1,000 input and 1,000 output tokens at list price.
OPUS_COST, SONNET_COST = Decimal("0.03"), Decimal("0.018")

_uuids = itertools.count(1)


def at(second: int) -> str:
    """A timestamp in Claude Code's own form, `second` seconds into the session."""
    return f"2026-04-01T10:{second // 60:02d}:{second % 60:02d}.000Z"


def envelope(kind: str, second: int = 0, **fields: Any) -> dict[str, Any]:
    """A line with the envelope every Claude Code line carries."""
    return {
        "type": kind,
        "uuid": f"u-{next(_uuids)}",
        "parentUuid": None,
        "isSidechain": False,
        "sessionId": SESSION,
        "version": "2.1.339",
        "gitBranch": "main",
        "cwd": "/work/app",
        "timestamp": at(second),
        **fields,
    }


def assistant(
    message_id: str,
    request_id: str,
    second: int = 0,
    *,
    model: str = OPUS,
    output: int = 1_000,
    cache_read: int = 0,
    sidechain: bool = False,
    speed: str | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """An assistant line: one API response's usage (1,000 input tokens)."""
    usage: dict[str, Any] = {
        "input_tokens": 1_000,
        "output_tokens": output,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "service_tier": "standard",
    }
    if speed is not None:
        usage["speed"] = speed
    message = {"id": message_id, "type": "message", "role": "assistant", "model": model}
    return envelope(
        "assistant",
        second,
        requestId=request_id,
        isSidechain=sidechain,
        message={**message, "content": [{"type": "text", "text": "ok"}], "usage": usage},
        **fields,
    )


def cost_state(second: int | None, **models: Decimal | str) -> dict[str, Any]:
    """A `cost-state` line: the client's running total, per model (keys as given)."""
    usage = {
        model.replace("__", "."): {
            "inputTokens": 1_000,
            "outputTokens": 1_000,
            "cacheReadInputTokens": 0,
            "cacheCreationInputTokens": 0,
            "costUSD": float(cost),
            "webSearchRequests": 0,
        }
        for model, cost in models.items()
    }
    line: dict[str, Any] = {
        "type": "cost-state",
        "sessionId": SESSION,
        "totalCostUSD": float(sum(Decimal(str(cost)) for cost in models.values())),
        "modelUsage": usage,
    }
    if second is not None:
        line["timestamp"] = at(second)
    return line


def folder(tmp_path: Path) -> Path:
    path = tmp_path / "projects" / "-work-app"
    (path / SESSION / "subagents").mkdir(parents=True, exist_ok=True)
    return path


def main_file(tmp_path: Path) -> Path:
    return folder(tmp_path) / f"{SESSION}.jsonl"


def agent_file(tmp_path: Path, agent_id: str) -> Path:
    return folder(tmp_path) / SESSION / "subagents" / f"agent-{agent_id}.jsonl"


def write(path: Path, *lines: dict[str, Any] | str, append: bool = False) -> Path:
    with path.open("a" if append else "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return path


def sidechain_of(agent_id: str, *lines: dict[str, Any]) -> list[dict[str, Any]]:
    """Lines as a subagent or `/btw` aside writes them: isSidechain, its agentId."""
    return [{**line, "isSidechain": True, "agentId": agent_id} for line in lines]


async def records(engine: AsyncEngine) -> dict[str, UsageRecord]:
    async with get_async_session(engine) as db:
        return {r.message_id: r for r in (await db.exec(select(UsageRecord))).all()}


async def session(engine: AsyncEngine, slug: str = SESSION) -> Session:
    async with get_async_session(engine) as db:
        return await crud.get_session_by_slug(db, slug)


async def import_all(engine: AsyncEngine, tmp_path: Path, *paths: Path) -> None:
    report = await import_transcripts(engine, list(paths) or [tmp_path / "projects"])
    assert report.errors == []


# --- ccusage's dedupe and sidechain replay rule -----------------------------------------------


async def test_a_sidechain_replay_of_a_parent_message_under_a_new_request_id_is_not_counted(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    write(main_file(tmp_path), assistant("msg_p1", "req_p1", 1), assistant("msg_p2", "req_p2", 2))
    # A /btw aside replays the parent's first message (its cache reads too) under a new
    # request id, then answers with a response of its own.
    write(
        agent_file(tmp_path, "aside1"),
        *sidechain_of(
            "aside1",
            assistant("msg_p1", "req_s1", 3, cache_read=50_000),
            assistant("msg_s1", "req_s2", 4),
        ),
    )
    await import_all(engine, tmp_path)
    stored = await records(engine)
    assert sorted(stored) == ["msg_p1", "msg_p2", "msg_s1"]
    parent, aside = await session(engine), await session(engine, f"{SESSION}/agent-aside1")
    assert (stored["msg_p1"].request_id, stored["msg_p1"].session_id) == ("req_p1", parent.id)
    assert stored["msg_s1"].session_id == aside.id
    assert (parent.total_tokens, aside.total_tokens) == (4_000, 2_000)
    assert (parent.total_cost, aside.total_cost) == (2 * OPUS_COST, OPUS_COST)


@pytest.mark.parametrize("first", ["parent", "sidechain"])
async def test_a_replay_and_its_parent_line_imported_apart_count_once_as_the_parent_s(
    engine: AsyncEngine, tmp_path: Path, first: str
) -> None:
    parent_lines = [assistant("msg_p1", "req_p1", 1)]
    aside_lines = sidechain_of(
        "aside1",
        assistant("msg_p1", "req_s1", 3, cache_read=50_000),
        assistant("msg_s1", "req_s2", 4),
    )
    main, aside = main_file(tmp_path), agent_file(tmp_path, "aside1")
    if first == "parent":
        await import_all(engine, tmp_path, write(main, *parent_lines))
        await import_all(engine, tmp_path, write(aside, *aside_lines))
    else:  # the replay is stored first, then the parent's own line takes its place
        await import_all(engine, tmp_path, write(aside, *aside_lines))
        assert "msg_p1" in await records(engine)
        await import_all(engine, tmp_path, write(main, *parent_lines))
    stored = await records(engine)
    parent, child = await session(engine), await session(engine, f"{SESSION}/agent-aside1")
    assert sorted(stored) == ["msg_p1", "msg_s1"]
    assert (stored["msg_p1"].request_id, stored["msg_p1"].session_id) == ("req_p1", parent.id)
    assert stored["msg_p1"].cache_read_tokens == 0
    assert (parent.total_tokens, child.total_tokens) == (2_000, 2_000)
    assert child.total_cost == OPUS_COST


@pytest.mark.parametrize("together", [True, False], ids=["one-import", "two-imports"])
async def test_on_one_key_the_main_conversation_line_beats_a_sidechain_line_with_more_tokens(
    engine: AsyncEngine, tmp_path: Path, together: bool
) -> None:
    aside = write(
        agent_file(tmp_path, "a7"),
        *sidechain_of("a7", assistant("msg_x", "req_x", 1, output=5_000)),
    )
    if not together:
        await import_all(engine, tmp_path, aside)
        assert (await records(engine))["msg_x"].output_tokens == 5_000
    write(main_file(tmp_path), assistant("msg_x", "req_x", 2, output=10))
    await import_all(engine, tmp_path)
    record = (await records(engine))["msg_x"]
    parent, child = await session(engine), await session(engine, f"{SESSION}/agent-a7")
    assert (record.output_tokens, record.session_id) == (10, parent.id)
    assert (parent.total_tokens, child.total_tokens) == (1_010, 0)


async def test_sidechain_copies_of_one_message_keep_the_larger_and_main_lines_stay_apart(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    write(
        agent_file(tmp_path, "b1"), *sidechain_of("b1", assistant("msg_q", "req_a", 1, output=100))
    )
    write(
        agent_file(tmp_path, "b2"), *sidechain_of("b2", assistant("msg_q", "req_b", 2, output=300))
    )
    # Two responses of the main conversation that happen to share a message id.
    write(main_file(tmp_path), assistant("msg_m", "req_1", 3), assistant("msg_m", "req_2", 4))
    await import_all(engine, tmp_path)
    async with get_async_session(engine) as db:
        rows = (await db.exec(select(UsageRecord.message_id, UsageRecord.output_tokens))).all()
    assert sorted(rows) == [("msg_m", 1_000), ("msg_m", 1_000), ("msg_q", 300)]


# --- cost-state: the client's own cost wins, per model ------------------------------------------


async def _agents(engine: AsyncEngine) -> dict[tuple[str, str | None], Agent]:
    async with get_async_session(engine) as db:
        slugs = {s.id: s.session_slug for s in (await db.exec(select(Session))).all()}
        return {(slugs[a.session_id], a.model): a for a in (await db.exec(select(Agent))).all()}


async def _cost_by_model(engine: AsyncEngine) -> dict[str, Decimal]:
    async with get_async_session(engine) as db:
        return {
            line.key: line.total_cost for line in await crud.list_cost_breakdown(db, by="model")
        }


async def test_the_client_reported_cost_wins_over_the_estimates_per_model(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    write(
        agent_file(tmp_path, "c1"),
        *sidechain_of("c1", assistant("msg_s", "req_s", 2, model=SONNET)),
    )
    # Bedrock's id of Opus and a 1M-context suffix still meet the usage of their model; the
    # Haiku requests (titles, say) appear in no transcript.
    write(
        main_file(tmp_path),
        assistant("msg_1", "req_1", 1),
        assistant("msg_2", "req_2", 3),
        cost_state(4, **{"us__anthropic__claude-opus-4-6-v1": "1.2", f"{SONNET}[1m]": "0.3"}),
        cost_state(5, **{OPUS: "1.2", SONNET: "0.3", HAIKU: "0.05"}),
    )
    await import_all(engine, tmp_path)
    parent, child = await session(engine), await session(engine, f"{SESSION}/agent-c1")
    assert (parent.total_cost, child.total_cost) == (Decimal("1.25"), Decimal("0.3"))
    assert await _cost_by_model(engine) == {  # grouped under canonical names
        "claude-opus-4-6": Decimal("1.2"),
        "claude-sonnet-4-5": Decimal("0.3"),
        "claude-haiku-4-5": Decimal("0.05"),
    }
    agents = await _agents(engine)
    opus, haiku = agents[(SESSION, OPUS)], agents[(SESSION, HAIKU)]
    assert opus.agent_metadata["cost_source"] == "reported"
    assert opus.agent_metadata["cost_is_estimate"] is False
    assert (opus.input_tokens, opus.num_turns) == (2_000, 2)  # tokens stay the records'
    assert (haiku.total_cost, haiku.input_tokens, haiku.num_turns) == (Decimal("0.05"), 0, 0)
    # The records keep their own estimates: the report is per model, not per response.
    stored = await records(engine)
    assert {r.cost for r in stored.values()} == {OPUS_COST, SONNET_COST}
    assert {r.cost_source for r in stored.values()} == {CostSource.COMPUTED}
    async with get_async_session(engine) as db:
        rollup = await crud.get_session_rollup(db, parent.id)
    assert rollup.total_cost == Decimal("1.55")


async def test_one_model_s_reported_cost_is_split_over_its_agents_by_their_estimates(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    # Opus served the main conversation (two responses) and a compaction run (one).
    write(
        folder(tmp_path) / SESSION / "subagents" / "agent-acompact-0a1b2c.jsonl",
        *sidechain_of("acompact-0a1b2c", assistant("msg_c", "req_c", 1)),
    )
    write(
        main_file(tmp_path),
        assistant("msg_1", "req_1", 2),
        assistant("msg_2", "req_2", 3),
        cost_state(4, **{OPUS: "1"}),
    )
    await import_all(engine, tmp_path)
    async with get_async_session(engine) as db:
        costs = {a.agent_type: a.total_cost for a in (await db.exec(select(Agent))).all()}
    assert costs == {"main": Decimal("0.666666667"), "compact": Decimal("0.333333333")}
    assert (await session(engine)).total_cost == Decimal("1")


async def test_responses_after_a_cost_state_add_their_estimate_and_a_later_one_replaces_it(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    main = write(
        main_file(tmp_path),
        assistant("msg_1", "req_1", 1),
        cost_state(2, **{OPUS: "1.2", HAIKU: "0.05"}),
    )
    await import_all(engine, tmp_path)
    assert (await session(engine)).total_cost == Decimal("1.25")
    # Resumed: a response after the client's figure counts at our estimate until the next.
    write(main, assistant("msg_2", "req_2", 10), append=True)
    await import_all(engine, tmp_path)
    assert (await session(engine)).total_cost == Decimal("1.25") + OPUS_COST
    write(main, cost_state(None, **{OPUS: "1.5"}), append=True)  # no timestamp: the last seen
    await import_all(engine, tmp_path)
    assert (await session(engine)).total_cost == Decimal("1.5")
    agents = await _agents(engine)
    assert agents[(SESSION, HAIKU)].total_cost == 0  # the latest figures no longer name it
    assert "cost_source" not in agents[(SESSION, HAIKU)].agent_metadata
    async with get_async_session(engine) as db:
        kept = (await crud.get_session(db, (await session(engine)).id)).session_metadata
    assert kept["claude_cost_state"]["models"] == {
        OPUS: {
            "cost_usd": "1.5",
            "input_tokens": 1_000,
            "output_tokens": 1_000,
            "cache_read_tokens": 0,
            "cache_creation_tokens": 0,
        }
    }
    assert kept["claude_cost_state"]["at"] == "2026-04-01T10:00:10+00:00"


# --- Names and pull requests ----------------------------------------------------------------


async def test_a_custom_title_beats_an_ai_title_beats_a_summary_the_latest_of_each_kind(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    main = main_file(tmp_path)
    steps: list[tuple[dict[str, Any], str]] = [
        (
            {"type": "summary", "summary": "Fix the flaky login test", "leafUuid": "u-1"},
            "Fix the flaky login test",
        ),
        (envelope("ai-title", 1, aiTitle="Login test fixes"), "Login test fixes"),
        (envelope("ai-title", 2, aiTitle="Login test retries"), "Login test retries"),
        (envelope("custom-title", 3, customTitle="  auth-hardening  "), "auth-hardening"),
        (envelope("ai-title", 4, aiTitle="Auth retries and timeouts"), "auth-hardening"),
        ({"type": "summary", "summary": "Later summary", "leafUuid": "u-9"}, "auth-hardening"),
        (envelope("custom-title", 5, customTitle="auth v2"), "auth v2"),
    ]
    write(main, assistant("msg_1", "req_1", 0))
    for line, expected in steps:  # one import per line: the ranking holds across imports
        write(main, line, append=True)
        await import_all(engine, tmp_path)
        assert (await session(engine)).name == expected
    assert (await session(engine)).session_metadata["claude_titles"] == {
        "custom_title": "auth v2",
        "ai_title": "Auth retries and timeouts",
        "summary": "Later summary",
    }


async def test_pull_request_links_are_kept_once_each_with_their_latest_figures(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    url = "https://github.com/acme/app/pull/42"
    write(
        main_file(tmp_path),
        assistant("msg_1", "req_1", 0),
        envelope("pr-link", 1, prNumber=42, prUrl=url, prRepository="acme/app"),
        envelope(
            "pr-link",
            2,
            prNumber=7,
            prUrl="https://github.com/acme/lib/pull/7",
            prRepository="acme/lib",
        ),
        envelope("pr-link", 3, prNumber=42, prUrl=url, prRepository="acme/app-renamed"),
    )
    await import_all(engine, tmp_path)
    write(
        main_file(tmp_path),
        envelope("pr-link", 4, prNumber=8, prRepository="acme/lib"),
        append=True,
    )
    await import_all(engine, tmp_path)
    assert (await session(engine)).session_metadata["pull_requests"] == [
        {"number": 7, "url": "https://github.com/acme/lib/pull/7", "repository": "acme/lib"},
        {"number": 42, "url": url, "repository": "acme/app-renamed"},
        {"number": 8, "url": None, "repository": "acme/lib"},
    ]


# --- Fast mode ----------------------------------------------------------------------------------


async def test_fast_mode_usage_is_priced_at_six_times_the_opus_4_6_rate(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    write(
        main_file(tmp_path),
        assistant("msg_std", "req_1", 1, speed="standard"),
        assistant("msg_fast", "req_2", 2, speed="fast"),
        assistant("msg_sonnet_fast", "req_3", 3, model=SONNET, speed="fast"),
        assistant("msg_sonnet", "req_4", 4, model=SONNET),
    )
    await import_all(engine, tmp_path)
    stored = await records(engine)
    assert (stored["msg_std"].cost, stored["msg_fast"].cost) == (OPUS_COST, 6 * OPUS_COST)
    assert stored["msg_fast"].cost_source == CostSource.COMPUTED
    # No fast price of Sonnet is known: unpriced, not priced at the standard rate; its
    # standard usage is still priced.
    sonnet_fast, sonnet = stored["msg_sonnet_fast"], stored["msg_sonnet"]
    assert (sonnet_fast.cost, sonnet_fast.cost_source) == (0, CostSource.UNPRICED)
    assert (sonnet.cost, sonnet.cost_source) == (SONNET_COST, CostSource.COMPUTED)


# --- Everything else: kept or skipped, never fatal ------------------------------------------------


async def test_other_line_types_are_kept_or_skipped_and_a_bad_line_fails_alone(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    lines: list[dict[str, Any] | str] = [
        envelope("permission-mode", 0, permissionMode="acceptEdits"),
        envelope("agent-name", 0, agentName="reviewer"),
        envelope("tag", 0, tag="release"),
        {
            "type": "file-history-snapshot",
            "messageId": "u-1",
            "snapshot": {"trackedFileBackups": {}},
        },
        envelope("queue-operation", 1, operation="enqueue", content="next"),
        envelope("progress", 1, data={"type": "hook_progress", "hookEvent": "PreToolUse"}),
        envelope("system", 1, subtype="turn_duration", durationMs=1200),
        envelope("frobnicate-9000", 2, whatever=[1, {"x": None}]),  # newer than this code
        assistant("msg_1", "req_1", 3, costUSD=float("nan")),  # NaN: the stdlib reads it
        "{not json",  # bad
        "[1, 2, 3]",  # JSON, but not a line of a transcript: bad
        envelope("custom-title", 4, customTitle=42),  # the wrong shape: ignored
        envelope("ai-title", 4, aiTitle="Line\u0000with a NUL and a lone \ud800 surrogate"),
        envelope("pr-link", 5, prNumber="forty-two"),  # neither a number nor a URL: ignored
        envelope("cost-state", 6, totalCostUSD="lots", modelUsage="everything"),  # ignored
        envelope("continued-in", 7, continuedInSessionId="0b5e1c9a-0000-4000-8000-000000000002"),
        envelope("permission-mode", 8, permissionMode="plan"),  # the latest wins
    ]
    write(main_file(tmp_path), *lines)
    report = await import_transcripts(engine, [tmp_path / "projects"])
    assert report.errors == []
    assert (report.lines, report.bad_lines, report.responses) == (len(lines), 2, 1)
    imported = await session(engine)
    metadata = imported.session_metadata
    assert {key: metadata.get(key) for key in ("permission_mode", "agent_name", "tag")} == {
        "permission_mode": "plan",
        "agent_name": "reviewer",
        "tag": "release",
    }
    assert metadata["continued_in_session_id"] == "0b5e1c9a-0000-4000-8000-000000000002"
    assert "claude_cost_state" not in metadata and "pull_requests" not in metadata
    assert imported.name == "Line\ufffdwith a NUL and a lone \ufffd surrogate"
    record = (await records(engine))["msg_1"]
    assert (record.cost, record.cost_source) == (OPUS_COST, CostSource.COMPUTED)
