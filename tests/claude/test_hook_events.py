"""Every hook event of Claude Code 2.1.33x, through the real hook and the deliverer.

The payloads are written from the hooks reference (REFERENCE.md §2: the common fields,
then each event's own), not from anything session_db writes. One session goes through
all 34 events in a plausible order; the tests check what each kind of event means for
tool calls, the session's status, title and model, and the MCP server.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hook_events_reference import AGENT, CWD, EVENT_NAMES, SESSION, SESSION_EVENTS, common
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from session_db.claude import spool
from session_db.claude.deliver import deliver_pending
from session_db.claude.events import parse_line, store_events, subagent_slug
from session_db.database import get_async_session
from session_db.models import AgentLog, Session, SessionStatus, ToolCall, ToolCallStatus

SCRIPT = Path(sys.executable).with_name("session-db")


@pytest.fixture(scope="module")
def hooked_spool(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spool the installed `session-db hook` leaves after every payload, in order."""
    folder = tmp_path_factory.mktemp("spool")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SESSION_DB_") and key != "CLAUDE_PROJECT_DIR"
    }
    env |= {"SESSION_DB_SPOOL_DIR": str(folder), "SESSION_DB_AUTO_DELIVER": "0"}
    for payload in SESSION_EVENTS:
        done = subprocess.run(
            [str(SCRIPT), "hook"],
            input=json.dumps(payload).encode(),
            env=env,
            capture_output=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
    return folder


async def delivered(engine: AsyncEngine, hooked_spool: Path, tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    shutil.copytree(hooked_spool, folder)
    report = await deliver_pending(engine, str(folder), import_transcripts=False)
    assert (report.delivered, report.rejected) == (len(SESSION_EVENTS), 0)


async def the_session(engine: AsyncEngine) -> Session:
    async with get_async_session(engine) as db:
        return (await db.exec(select(Session).where(Session.session_slug == SESSION))).one()


async def calls_by_id(engine: AsyncEngine) -> dict[str, ToolCall]:
    async with get_async_session(engine) as db:
        return {call.tool_use_id: call for call in (await db.exec(select(ToolCall))).all()}


def test_the_payloads_cover_every_event_of_claude_code() -> None:
    from session_db.claude.settings_file import HOOK_EVENTS

    assert set(HOOK_EVENTS) == EVENT_NAMES
    assert len(EVENT_NAMES) == 34


async def test_every_event_is_stored_with_its_name(
    engine: AsyncEngine, hooked_spool: Path, tmp_path: Path
) -> None:
    await delivered(engine, hooked_spool, tmp_path)
    async with get_async_session(engine) as db:
        logs = (await db.exec(select(AgentLog))).all()
    assert len(logs) == len(SESSION_EVENTS)
    assert {log.event_type for log in logs} == EVENT_NAMES


async def test_permission_denied_closes_its_call_as_denied_with_the_reason(
    engine: AsyncEngine, hooked_spool: Path, tmp_path: Path
) -> None:
    await delivered(engine, hooked_spool, tmp_path)
    bash = (await calls_by_id(engine))["tu-bash"]
    assert bash.status == ToolCallStatus.DENIED
    assert bash.error == "The user denied this command"
    assert bash.ended_at is not None and bash.started_at is not None


async def test_reported_duration_is_the_calls_duration(
    engine: AsyncEngine, hooked_spool: Path, tmp_path: Path
) -> None:
    await delivered(engine, hooked_spool, tmp_path)
    calls = await calls_by_id(engine)
    assert (calls["tu-mcp"].status, calls["tu-mcp"].duration_ms) == (ToolCallStatus.SUCCEEDED, 1234)
    assert (calls["tu-read"].status, calls["tu-read"].duration_ms) == (ToolCallStatus.FAILED, 7)
    assert calls["tu-read"].error == "File does not exist."


async def test_post_tool_batch_completes_the_calls_it_lists(
    engine: AsyncEngine, hooked_spool: Path, tmp_path: Path
) -> None:
    await delivered(engine, hooked_spool, tmp_path)
    calls = await calls_by_id(engine)
    glob = calls["tu-glob"]
    assert glob.status == ToolCallStatus.SUCCEEDED
    assert glob.tool_response == {"filenames": ["app.py"]}
    assert glob.ended_at is not None
    # A call whose own outcome came first keeps it.
    assert (calls["tu-grep"].duration_ms, calls["tu-grep"].tool_response) == (5, {"matches": 3})


async def test_mcp_server_is_promoted_on_events_and_calls(
    engine: AsyncEngine, hooked_spool: Path, tmp_path: Path
) -> None:
    await delivered(engine, hooked_spool, tmp_path)
    assert (await calls_by_id(engine))["tu-mcp"].mcp_server == "github"
    async with get_async_session(engine) as db:
        servers = (
            await db.exec(
                select(AgentLog.event_type, AgentLog.mcp_server).where(
                    AgentLog.mcp_server.is_not(None)
                )
            )  # type: ignore[union-attr]
        ).all()
    assert sorted(servers) == [("PostToolUse", "github"), ("PreToolUse", "github")]


async def test_stop_failure_marks_the_session_failed_with_the_error(
    engine: AsyncEngine, hooked_spool: Path, tmp_path: Path
) -> None:
    await delivered(engine, hooked_spool, tmp_path)
    session = await the_session(engine)
    # SessionEnd after a failed turn leaves it failed.
    assert session.status == SessionStatus.FAILED
    assert session.session_metadata["error"] == "rate_limit"
    assert session.session_metadata["error_details"] == "429 Too Many Requests"
    assert session.completed_at is not None


async def test_titles_and_model_switches_name_the_session(
    engine: AsyncEngine, hooked_spool: Path, tmp_path: Path
) -> None:
    await delivered(engine, hooked_spool, tmp_path)
    session = await the_session(engine)
    assert session.title == "Fix the login bug"  # the latest session_title wins
    assert session.session_metadata["model"] == "claude-sonnet-4-5-20250929"
    assert session.session_metadata["previous_model"] == "claude-opus-4-5-20251101"
    assert session.session_metadata["start_source"] == "startup"


async def test_post_compact_keeps_the_summary(
    engine: AsyncEngine, hooked_spool: Path, tmp_path: Path
) -> None:
    await delivered(engine, hooked_spool, tmp_path)
    async with get_async_session(engine) as db:
        summary = (
            await db.exec(select(AgentLog.summary).where(AgentLog.event_type == "PostCompact"))
        ).one()
    assert summary == "The login form posts to /api/login."


async def test_subagent_events_build_the_child_session(
    engine: AsyncEngine, hooked_spool: Path, tmp_path: Path
) -> None:
    await delivered(engine, hooked_spool, tmp_path)
    async with get_async_session(engine) as db:
        child = (
            await db.exec(
                select(Session).where(Session.session_slug == subagent_slug(SESSION, AGENT))
            )
        ).one()
    assert child.status == SessionStatus.COMPLETED
    assert child.parent_session_id == (await the_session(engine)).id


def events_of(payloads: list[dict[str, Any]], start_s: int = 0) -> list[Any]:
    """HookEvents as the deliverer reads them, one second apart."""
    lines = []
    for offset, payload in enumerate(payloads):
        received = (1_800_000_000 + start_s + offset) * 10**9
        spool_id = spool.new_spool_id(received)
        lines.append(
            parse_line(spool.spool_line(json.dumps(payload).encode(), spool_id, received, CWD))
        )
    return lines


async def test_a_new_prompt_after_a_failure_lets_the_session_complete(
    engine: AsyncEngine,
) -> None:
    payloads = [
        common("SessionStart", source="startup"),
        common("StopFailure", error="overloaded"),
        common("UserPromptSubmit", prompt="try again"),
        common("Stop", stop_hook_active=False),
        common("SessionEnd", reason="prompt_input_exit"),
    ]
    for event in events_of(payloads):  # one event per transaction: the rule holds across chunks
        async with get_async_session(engine) as db:
            await store_events(db, [event])
    session = await the_session(engine)
    assert session.status == SessionStatus.COMPLETED
    assert session.session_metadata["error"] == "overloaded"  # the last error stays on record


async def test_a_fork_keeps_its_source_model_and_title(engine: AsyncEngine) -> None:
    payloads = [
        common(
            "SessionStart",
            source="fork",
            model="claude-opus-4-5-20251101",
            session_title="Try the other approach",
        )
    ]
    async with get_async_session(engine) as db:
        await store_events(db, events_of(payloads))
    session = await the_session(engine)
    assert session.session_metadata["start_source"] == "fork"
    assert session.session_metadata["model"] == "claude-opus-4-5-20251101"
    assert session.title == "Try the other approach"


async def test_an_event_newer_than_this_code_is_stored_as_it_is(engine: AsyncEngine) -> None:
    payload = common("HypotheticalFutureEvent", brand_new_field={"nested": [1, 2]})
    async with get_async_session(engine) as db:
        stored = await store_events(db, events_of([payload]))
    assert len(stored.stored) == 1
    async with get_async_session(engine) as db:
        log = (await db.exec(select(AgentLog))).one()
    assert log.event_type == "HypotheticalFutureEvent"
    assert log.payload["brand_new_field"] == {"nested": [1, 2]}
