"""The run recorder, fed recorded SDK messages (built with the SDK's own classes): the
session and agent with the resume id, usage once per response, the client's cost."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    SystemMessage,
    TaskStartedMessage,
    TextBlock,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db import crud
from session_db.claude.importer import LIVE_REQUEST_ID
from session_db.database import get_async_session
from session_db.models import AgentStatus, CostSource
from session_db.sdk import RunRecorder, SessionDBStore

SID = "7c1f2a9e-0b3d-4e5f-8a6b-1c2d3e4f5a6b"
MODEL = "claude-sonnet-4-5-20250929"


def init(session_id: str = SID, model: str = MODEL) -> SystemMessage:
    return SystemMessage(
        subtype="init",
        data={
            "type": "system",
            "subtype": "init",
            "uuid": "init-1",
            "session_id": session_id,
            "apiKeySource": "none",
            "claude_code_version": "2.1.337",
            "cwd": "/work/app",
            "tools": ["Read", "Bash"],
            "mcp_servers": [],
            "model": model,
            "permissionMode": "acceptEdits",
            "slash_commands": [],
            "output_style": "default",
            "skills": [],
            "plugins": [],
        },
    )


def assistant(
    message_id: str, output: int, *, session_id: str = SID, parent: str | None = None
) -> AssistantMessage:
    return AssistantMessage(
        content=[TextBlock(text="working on it")],
        model=MODEL,
        usage={
            "input_tokens": 12,
            "output_tokens": output,
            "cache_creation_input_tokens": 100,
            "cache_read_input_tokens": 2_000,
        },
        message_id=message_id,
        session_id=session_id,
        uuid=f"{message_id}-{output}",
        parent_tool_use_id=parent,
    )


def result(*, is_error: bool = False, cost: float = 0.0421, **more: Any) -> ResultMessage:
    return ResultMessage(
        subtype="error_during_execution" if is_error else "success",
        duration_ms=5_400,
        duration_api_ms=4_100,
        is_error=is_error,
        num_turns=2,
        session_id=SID,
        total_cost_usd=cost,
        usage={"input_tokens": 24, "output_tokens": 90, "cache_read_input_tokens": 4_000},
        model_usage={
            MODEL: {
                "inputTokens": 24,
                "outputTokens": 90,
                "cacheReadInputTokens": 4_000,
                "cacheCreationInputTokens": 200,
                "webSearchRequests": 0,
                "costUSD": cost,
                "contextWindow": 200_000,
                "maxOutputTokens": 64_000,
            }
        },
        result="done",
        **more,
    )


async def _records(engine: AsyncEngine) -> list[tuple[str, str, int]]:
    async with get_async_session(engine, read_only=True) as db:
        return sorted(
            (r.message_id, r.request_id, r.output_tokens) for r in await crud.list_usage_records(db)
        )


async def test_the_init_message_creates_the_session_and_the_agent_with_its_resume_id(
    engine: AsyncEngine,
) -> None:
    recorder = RunRecorder(engine)
    await recorder.record(init())
    await recorder.record(init())  # the next turn's init: the same rows, updated
    async with get_async_session(engine, read_only=True) as db:
        agent = await crud.get_agent_by_sdk_session_id(db, SID)
        session = await crud.get_session_by_slug(db, SID)
        agents = await crud.list_agents(db, session_id=session.id)
    assert [a.id for a in agents] == [agent.id] == [recorder.agent_id]
    assert (agent.agent_type, agent.model, agent.status) == ("main", MODEL, AgentStatus.EXECUTING)
    assert agent.started_at is not None
    assert session.working_dir == "/work/app" and session.project_id is not None
    assert session.session_metadata["claude_version"] == "2.1.337"
    assert session.session_metadata["permission_mode"] == "acceptEdits"
    assert recorder.session_id == SID


async def test_assistant_messages_count_each_response_once_as_an_estimate(
    engine: AsyncEngine,
) -> None:
    recorder = RunRecorder(engine)
    await recorder.record(init())
    # One response arrives as a message per content block, the first with a streaming
    # placeholder for its output; a subagent's message is its transcript's to count.
    for message in (
        assistant("msg_1", 1),
        assistant("msg_1", 40),
        assistant("msg_2", 50),
        assistant("msg_sub", 9, parent="toolu_1"),
        TaskStartedMessage(
            subtype="task_started", data={}, task_id="t", description="d", uuid="u", session_id=SID
        ),
    ):
        await recorder.record(message)
    assert await _records(engine) == [
        ("msg_1", LIVE_REQUEST_ID, 40),
        ("msg_2", LIVE_REQUEST_ID, 50),
    ]
    async with get_async_session(engine, read_only=True) as db:
        agent = await crud.get_agent_by_sdk_session_id(db, SID)
        records = await crud.list_usage_records(db)
    assert (agent.input_tokens, agent.output_tokens, agent.cache_read_tokens) == (24, 90, 4_000)
    assert all(r.cost_source == CostSource.COMPUTED and r.cost_is_estimate for r in records)
    assert agent.total_cost == sum((r.cost for r in records), Decimal(0)) > 0


async def test_the_result_records_the_clients_cost_over_the_estimates(
    engine: AsyncEngine,
) -> None:
    recorder = RunRecorder(engine)
    await recorder.record(init())
    await recorder.record(assistant("msg_1", 40))
    await recorder.record(assistant("msg_2", 50))
    await recorder.record(result())
    async with get_async_session(engine, read_only=True) as db:
        agent = await crud.get_agent_by_sdk_session_id(db, SID)
        session = await crud.get_session_by_slug(db, SID)
    assert agent.total_cost == Decimal("0.042100000") == session.total_cost
    assert agent.agent_metadata["cost_source"] == "reported"
    assert (agent.status, agent.num_turns, agent.duration_ms) == (AgentStatus.COMPLETE, 2, 5_400)
    assert agent.completed_at is not None
    sdk_result = agent.agent_metadata["sdk_result"]
    assert sdk_result["total_cost_usd"] == 0.0421 and sdk_result["duration_api_ms"] == 4_100
    assert sdk_result["usage"]["output_tokens"] == 90
    assert sdk_result["model_usage"][MODEL]["cacheCreationInputTokens"] == 200
    state = session.session_metadata["claude_cost_state"]
    assert state["total_cost_usd"] == "0.0421"
    assert state["models"][MODEL]["cache_creation_tokens"] == 200
    # A later result is the newer running total: it replaces the figures.
    await recorder.record(result(cost=0.05))
    async with get_async_session(engine, read_only=True) as db:
        assert (await crud.get_session_by_slug(db, SID)).total_cost == Decimal("0.05")


async def test_a_failed_result_marks_the_agent_failed_with_its_errors(
    engine: AsyncEngine,
) -> None:
    recorder = RunRecorder(engine)
    await recorder.record(init())
    await recorder.record(result(is_error=True, errors=["tool crashed", "gave up"]))
    async with get_async_session(engine, read_only=True) as db:
        agent = await crud.get_agent_by_sdk_session_id(db, SID)
    assert agent.status == AgentStatus.FAILED
    assert agent.error_message == "tool crashed; gave up"


async def test_messages_without_an_init_still_find_their_session_and_model(
    engine: AsyncEngine,
) -> None:
    recorder = RunRecorder(engine)  # started mid-run: no init message seen
    await recorder.record(assistant("msg_1", 40))
    await recorder.record(result())
    async with get_async_session(engine, read_only=True) as db:
        agent = await crud.get_agent_by_sdk_session_id(db, SID)
    assert (agent.model, agent.total_cost, agent.num_turns) == (MODEL, Decimal("0.0421"), 2)


@pytest.mark.parametrize("first", ["recorder", "store"])
async def test_a_response_seen_live_and_its_transcript_line_count_once(
    engine: AsyncEngine, first: str
) -> None:
    recorder, store = RunRecorder(engine), SessionDBStore(engine)
    key = {"project_key": "-work-app", "session_id": SID}
    line = {
        "type": "assistant",
        "uuid": "msg_1-40",
        "sessionId": SID,
        "requestId": "req_1",
        "timestamp": "2026-02-12T16:02:23.545Z",
        "message": {"id": "msg_1", "model": MODEL, "usage": assistant("msg_1", 40).usage},
    }
    steps = [recorder.record(assistant("msg_1", 40)), store.append(key, [line])]  # type: ignore[arg-type,list-item]
    for step in steps if first == "recorder" else steps[::-1]:
        await step
    assert await _records(engine) == [("msg_1", "req_1", 40)]  # the transcript's line
    await recorder.record(assistant("msg_1", 40))  # seen live again: still once
    assert await _records(engine) == [("msg_1", "req_1", 40)]


async def test_live_responses_and_transcript_lines_racing_count_each_response_once(
    engine: AsyncEngine,
) -> None:
    recorder, store = RunRecorder(engine), SessionDBStore(engine)
    key = {"project_key": "-work-app", "session_id": SID}
    await recorder.record(init())

    def line(n: int) -> dict[str, Any]:
        return {
            "type": "assistant",
            "uuid": f"line-{n}",
            "sessionId": SID,
            "requestId": f"req_{n}",
            "timestamp": "2026-02-12T16:02:23.545Z",
            "message": {"id": f"msg_{n}", "model": MODEL, "usage": assistant("m", 40).usage},
        }

    await asyncio.gather(
        *(
            step
            for n in range(20)
            for step in (recorder.record(assistant(f"msg_{n}", 40)), store.append(key, [line(n)]))  # type: ignore[arg-type,list-item]
        )
    )
    assert await _records(engine) == sorted((f"msg_{n}", f"req_{n}", 40) for n in range(20))
