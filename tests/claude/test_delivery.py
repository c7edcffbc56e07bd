"""Hook events from the spool to the database: what they build, exactly once, never lost."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from faults import install_refusal, remove_refusal
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import NullPool
from sqlmodel import select

from session_db import crud
from session_db.claude import spool
from session_db.claude.deliver import (
    DeliveryReport,
    deliver_pending,
    follow,
    pending_events,
    read_batch_file,
)
from session_db.claude.events import store_events, subagent_slug
from session_db.config import Settings
from session_db.database import create_engine, get_async_session
from session_db.errors import DatabaseError, DatabaseNotMigratedError, DatabaseUnavailableError
from session_db.models import (
    AgentLog,
    Project,
    Session,
    SessionRelationship,
    SessionRole,
    SessionStatus,
    SpawnReason,
    ToolCall,
    ToolCallStatus,
)

SESSION = "0b9c1a2e-7d7e-4a55-9d5a-6f3c2b1a0e99"
AGENT = "a5f3e21"
T0 = 1_800_000_000 * 10**9  # a fixed instant, in nanoseconds


def spool_event(
    directory: Path, payload: dict[str, Any], *, at_s: float, project_dir: str | None = None
) -> str:
    """Append one event as the hook would, received `at_s` seconds after T0."""
    received = T0 + int(at_s * 1e9)
    spool_id = spool.new_spool_id(received)
    line = spool.spool_line(json.dumps(payload).encode(), spool_id, received, project_dir)
    spool.append_line(str(directory), line)
    return spool_id


def run_on(url: URL, work: Any) -> Any:
    """Run `work(engine)` in a fresh event loop with an engine of its own.

    The sync tests below run child processes between database looks, each look with its
    own loop; pooled connections must not outlive the loop they were made in.
    """

    async def go() -> Any:
        engine = create_engine(Settings(_env_file=None), url=url, poolclass=NullPool)  # type: ignore[call-arg]
        try:
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def count_logs(engine: AsyncEngine) -> int:
    async with get_async_session(engine) as db:
        return await crud.count_agent_logs(db)


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp((T0 + int(seconds * 1e9)) / 1e9, UTC)


def base(event: str, **fields: Any) -> dict[str, Any]:
    return {
        "session_id": SESSION,
        "transcript_path": f"/home/u/.claude/projects/-work-app/{SESSION}.jsonl",
        "cwd": "/work/app/src",
        "permission_mode": "default",
        "hook_event_name": event,
        **fields,
    }


def a_session_of_events(directory: Path) -> None:
    """A session with a subagent, tool calls old and new, a failure, and its end."""
    explore = {"subagent_type": "Explore", "description": "Find the parser", "prompt": "..."}
    events = [
        base("SessionStart", source="startup", model="claude-opus-4-6"),
        base("UserPromptSubmit", prompt="find the parser", prompt_id="p-1"),
        base("PreToolUse", tool_name="Agent", tool_input=explore, tool_use_id="toolu_A"),
        base("SubagentStart", agent_id=AGENT, agent_type="Explore", prompt="..."),
        base(
            "PreToolUse",
            agent_id=AGENT,
            agent_type="Explore",
            tool_name="Read",
            tool_input={"file_path": "/work/app/parser.py"},
            tool_use_id="toolu_R",
        ),
        base(
            "PostToolUseFailure",
            agent_id=AGENT,
            agent_type="Explore",
            tool_name="Read",
            tool_input={"file_path": "/work/app/parser.py"},
            tool_use_id="toolu_R",
            error="File does not exist.",
            is_interrupt=False,
        ),
        base("SubagentStop", agent_id=AGENT, agent_type="Explore", stop_hook_active=False),
        base(
            "PostToolUse",
            tool_name="Agent",
            tool_input=explore,
            tool_use_id="toolu_A",
            tool_response={"status": "completed", "agentId": AGENT, "content": []},
        ),
        # A mid-2025 payload: no tool_use_id, no cwd, no permission mode.
        {
            "session_id": SESSION,
            "hook_event_name": "PreToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "ls"},
        },
        {
            "session_id": SESSION,
            "hook_event_name": "PostToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "ls"},
            "tool_response": {"stdout": "a\nb"},
        },
        base("Notification", message="Claude needs your permission", notification_type="x"),
        base("BrandNewEvent", permission_mode="someNewMode", novel={"nested": [1, 2]}),
        base("Stop", stop_hook_active=False),
        base("SessionEnd", reason="prompt_input_exit"),
    ]
    for index, payload in enumerate(events):
        spool_event(directory, payload, at_s=index * 2, project_dir="/work/app")


@pytest.fixture
async def delivered_session(engine: AsyncEngine, tmp_path: Path) -> AsyncEngine:
    """The engine, after `a_session_of_events` was spooled and delivered."""
    a_session_of_events(tmp_path)
    report = await deliver_pending(engine, str(tmp_path), import_transcripts=False)
    assert (report.delivered, report.duplicates, report.rejected) == (14, 0, 0)
    assert not pending_events(str(tmp_path))
    return engine


async def parent_and_child(engine: AsyncEngine) -> tuple[Session, Session]:
    async with get_async_session(engine, read_only=True) as db:
        parent = await crud.get_session_by_slug(db, SESSION)
        child = await crud.get_session_by_slug(db, subagent_slug(SESSION, AGENT))
    return parent, child


async def test_delivery_builds_the_session_with_its_project_span_and_end(
    delivered_session: AsyncEngine,
) -> None:
    parent, _ = await parent_and_child(delivered_session)
    async with get_async_session(delivered_session, read_only=True) as db:
        project = await db.get(Project, parent.project_id)
    assert project is not None and project.root_path == "/work/app"  # CLAUDE_PROJECT_DIR
    assert parent.working_dir == "/work/app"
    assert (parent.started_at, parent.ended_at) == (at(0), at(26))
    assert parent.status == SessionStatus.COMPLETED and parent.duration_ms == 26_000
    assert parent.session_metadata["start_source"] == "startup"
    assert parent.session_metadata["end_reason"] == "prompt_input_exit"


async def test_delivery_builds_the_subagent_linked_under_its_parent(
    delivered_session: AsyncEngine,
) -> None:
    parent, child = await parent_and_child(delivered_session)
    assert child.session_role == SessionRole.SUBAGENT
    assert child.parent_session_id == parent.id and child.project_id == parent.project_id
    assert (child.name, child.title) == ("Explore", "Find the parser")
    assert child.status == SessionStatus.COMPLETED
    assert (child.started_at, child.ended_at) == (at(4), at(14))
    async with get_async_session(delivered_session, read_only=True) as db:
        link = (await db.exec(select(SessionRelationship))).one()
        tree = await crud.get_session_tree(db, parent.id)
    assert (link.parent_session_id, link.child_session_id) == (parent.id, child.id)
    assert link.spawn_reason == SpawnReason.TASK_TOOL
    assert [node.session_id for node in tree.children] == [child.id]


async def test_delivery_pairs_tool_calls_old_and_new(delivered_session: AsyncEngine) -> None:
    parent, child = await parent_and_child(delivered_session)
    async with get_async_session(delivered_session, read_only=True) as db:
        calls = {c.tool_name: c for c in (await db.exec(select(ToolCall))).all()}
    assert set(calls) == {"Agent", "Read", "Bash"}
    agent_call, read, bash = calls["Agent"], calls["Read"], calls["Bash"]
    assert agent_call.session_id == parent.id and agent_call.subagent_session_id == child.id
    assert agent_call.status == ToolCallStatus.SUCCEEDED and agent_call.duration_ms == 10_000
    assert agent_call.tool_response["agentId"] == AGENT
    assert read.session_id == child.id and read.status == ToolCallStatus.FAILED
    assert (read.error, read.is_interrupt, read.duration_ms) == (
        "File does not exist.",
        False,
        2_000,
    )
    # The payload without a tool_use_id is paired by tool and input.
    assert bash.tool_use_id is None and bash.status == ToolCallStatus.SUCCEEDED
    assert bash.duration_ms == 2_000 and bash.tool_response == {"stdout": "a\nb"}


async def test_delivery_stores_every_event_with_its_promoted_fields(
    delivered_session: AsyncEngine,
) -> None:
    parent, child = await parent_and_child(delivered_session)
    async with get_async_session(delivered_session, read_only=True) as db:
        logs = (await db.exec(select(AgentLog).order_by(AgentLog.occurred_at))).all()
    assert len(logs) == 14 and len({log.spool_id for log in logs}) == 14
    by_type = {log.event_type: log for log in logs}
    assert by_type["SessionEnd"].reason == "prompt_input_exit"
    assert by_type["SessionStart"].source == "startup"
    assert by_type["UserPromptSubmit"].prompt_id == "p-1"
    assert by_type["SubagentStart"].external_agent_id == AGENT
    assert by_type["SubagentStart"].agent_type == "Explore"
    assert by_type["SubagentStart"].session_id == child.id
    assert by_type["SubagentStart"].parent_session_id == parent.id
    old = [log for log in logs if log.tool_name == "Bash"]
    assert [log.cwd for log in old] == [None, None]


async def test_delivery_keeps_an_event_newer_than_this_code_whole(
    delivered_session: AsyncEngine,
) -> None:
    async with get_async_session(delivered_session, read_only=True) as db:
        new = (await db.exec(select(AgentLog).where(AgentLog.event_type == "BrandNewEvent"))).one()
    assert new.permission_mode == "someNewMode" and new.payload["novel"] == {"nested": [1, 2]}
    assert new.cwd == "/work/app/src" and new.transcript_path.endswith(f"{SESSION}.jsonl")
    assert new.external_session_id == SESSION


async def test_an_event_without_a_session_id_is_kept(engine: AsyncEngine, tmp_path: Path) -> None:
    spool_event(tmp_path, {"hook_event_name": "Notification", "message": "hi"}, at_s=0)
    spool_event(tmp_path, {}, at_s=1)
    report = await deliver_pending(engine, str(tmp_path), import_transcripts=False)
    assert report.delivered == 2
    async with get_async_session(engine) as db:
        logs = (await db.exec(select(AgentLog))).all()
        assert sorted(log.event_type for log in logs) == ["Notification", "unknown"]
        session = await db.get(Session, logs[0].session_id)
        assert session is not None and session.session_slug == "claude-code:unattributed"


async def test_redelivery_inserts_nothing_twice(engine: AsyncEngine, tmp_path: Path) -> None:
    """A pass that stopped after some chunks committed is repeated: the rest, once."""
    a_session_of_events(tmp_path)
    batch = spool.rotate(str(tmp_path))
    assert batch is not None
    events = [event for event, _ in read_batch_file(batch)[0]]
    async with get_async_session(engine) as db:  # the first 5 made it before the "crash"
        assert len((await store_events(db, events[:5])).stored) == 5
    report = await deliver_pending(engine, str(tmp_path), import_transcripts=False)
    assert (report.delivered, report.duplicates) == (9, 5)
    async with get_async_session(engine) as db:
        assert await crud.count_agent_logs(db) == 14
        calls = (await db.exec(select(ToolCall))).all()
        assert len(calls) == 3
        assert all(call.status != ToolCallStatus.RUNNING for call in calls)
        parent = await crud.get_session_by_slug(db, SESSION)
        assert parent.agent_count == 1  # the subagent was linked once
    # A batch with duplicated lines (one event spooled twice) stores it once.
    line = spool.spool_line(b'{"session_id":"x"}', spool.new_spool_id(T0), T0, None)
    spool.append_line(str(tmp_path), line)
    spool.append_line(str(tmp_path), line)
    report = await deliver_pending(engine, str(tmp_path), import_transcripts=False)
    assert (report.delivered, report.duplicates) == (1, 1)


def _unreachable_url(engine: AsyncEngine, tmp_path: Path) -> str:
    if engine.dialect.name == "sqlite":
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("x")
        return f"sqlite+aiosqlite:///{blocker}/db.sqlite"
    return "postgresql+asyncpg://postgres@127.0.0.1:9/nowhere"  # port 9: nothing listens


async def test_database_down_or_unmigrated_loses_nothing(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    a_session_of_events(spool_dir)
    settings = Settings(_env_file=None, connect_timeout=2)  # type: ignore[call-arg]
    down = create_engine(settings, url=_unreachable_url(engine, tmp_path))
    with pytest.raises(DatabaseUnavailableError):
        await deliver_pending(down, str(spool_dir))
    await down.dispose()
    empty = create_engine(settings, url=f"sqlite+aiosqlite:///{tmp_path / 'empty.sqlite'}")
    with pytest.raises(DatabaseNotMigratedError, match="session-db db upgrade"):
        await deliver_pending(empty, str(spool_dir))
    await empty.dispose()
    assert pending_events(str(spool_dir))
    report = await deliver_pending(engine, str(spool_dir), import_transcripts=False)
    assert report.delivered == 14
    assert spool.batch_files(str(spool_dir)) == []


async def test_an_event_the_database_refuses_is_set_aside_not_blocking(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await install_refusal(engine)
    try:
        for index in range(5):
            tool = "Poison" if index == 2 else "Read"
            spool_event(
                tmp_path, base("PreToolUse", tool_name=tool, tool_use_id=f"t{index}"), at_s=index
            )
        spool.append_line(str(tmp_path), b"torn line without a header\n")
        report = await deliver_pending(engine, str(tmp_path), import_transcripts=False)
    finally:
        await remove_refusal(engine)
    assert (report.delivered, report.rejected) == (4, 2)
    rejected = (tmp_path / spool.REJECTED_FILE).read_text().splitlines()
    reasons = [json.loads(line)["reason"] for line in rejected]
    assert any("poison" in reason for reason in reasons)
    assert any("no header separator" in reason for reason in reasons)
    assert "Poison" in "".join(json.loads(line)["line"] for line in rejected)
    assert "rejected" in (tmp_path / spool.DELIVERER_LOG).read_text()
    async with get_async_session(engine) as db:
        assert await crud.count_agent_logs(db) == 4


DELIVER_SLOWLY = """
import asyncio, sys
from session_db.claude.deliver import deliver_pending
from session_db.config import Settings
from session_db.database import create_engine
engine = create_engine(Settings(_env_file=None), url=sys.argv[1])
asyncio.run(deliver_pending(engine, sys.argv[2], batch_size=5, import_transcripts=False))
"""


@pytest.mark.slow
def test_a_deliverer_killed_mid_batch_leaves_exactly_once_delivery(
    db_url: URL, engine: AsyncEngine, tmp_path: Path
) -> None:
    pairs = 2000
    lines = []
    for index in range(pairs):
        tool = {"tool_name": "Bash", "tool_use_id": f"toolu_{index}", "tool_input": {"n": index}}
        for offset, payload in (
            (0.0, base("PreToolUse", **tool)),
            (0.5, base("PostToolUse", **tool, tool_response="ok")),
        ):
            received = T0 + int((index + offset) * 1e9)
            raw = json.dumps(payload).encode()
            lines.append(spool.spool_line(raw, spool.new_spool_id(received), received, None))
    spool.append_line(str(tmp_path), b"".join(lines))
    url = db_url.render_as_string(hide_password=False)
    child = subprocess.Popen([sys.executable, "-c", DELIVER_SLOWLY, url, str(tmp_path)])
    deadline = time.monotonic() + 60
    while run_on(db_url, count_logs) < 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    child.send_signal(signal.SIGKILL)
    child.wait()
    partial = run_on(db_url, count_logs)
    assert 0 < partial < 2 * pairs, "the kill must land mid-delivery for this test to mean much"
    assert spool.batch_files(str(tmp_path)), "the interrupted batch stays in the spool"

    report = run_on(db_url, lambda e: deliver_pending(e, str(tmp_path), import_transcripts=False))
    assert report.delivered == 2 * pairs - partial
    # The restart resumes where the killed pass had settled its batch: it re-reads at most
    # the chunk that was in flight (5 events), not the whole file.
    assert report.duplicates <= 5

    async def check(engine: AsyncEngine) -> None:
        async with get_async_session(engine) as db:
            assert await crud.count_agent_logs(db) == 2 * pairs
            distinct = sa.select(sa.func.count(sa.distinct(AgentLog.spool_id)))
            assert (await db.exec(distinct)).one()[0] == 2 * pairs  # type: ignore[index]
            calls = (await db.exec(select(ToolCall))).all()
            assert len(calls) == pairs
            assert {call.status for call in calls} == {ToolCallStatus.SUCCEEDED}
            assert {call.duration_ms for call in calls} == {500}

    run_on(db_url, check)
    assert not pending_events(str(tmp_path))


def test_the_hook_starts_a_deliverer_and_events_arrive_within_seconds(
    db_url: URL, engine: AsyncEngine, tmp_path: Path
) -> None:
    spool_dir = tmp_path / "spool"
    env = {
        **os.environ,
        "SESSION_DB_URL": db_url.render_as_string(hide_password=False),
        "SESSION_DB_SPOOL_DIR": str(spool_dir),
    }
    env.pop("SESSION_DB_AUTO_DELIVER", None)
    script = Path(sys.executable).with_name("session-db")
    payload = json.dumps(base("SessionStart", source="startup")).encode()
    started = time.monotonic()
    done = subprocess.run([str(script), "hook"], input=payload, env=env, capture_output=True)
    assert (done.returncode, done.stdout) == (0, b"")

    def delivered() -> int:
        return run_on(db_url, count_logs)

    while delivered() == 0 and time.monotonic() - started < 20:
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    pid = spool.deliverer_pid(str(spool_dir))
    try:
        assert delivered() == 1, (spool_dir / spool.DELIVERER_LOG).read_text()
        assert elapsed < 10
        assert pid is not None and pid != os.getpid()
        # A second event while it runs: no second deliverer, delivered by the same one.
        subprocess.run(
            [str(script), "hook"], input=payload.replace(b"startup", b"resume"), env=env, check=True
        )
        deadline = time.monotonic() + 10
        while delivered() < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert delivered() == 2
        assert spool.deliverer_pid(str(spool_dir)) == pid
    finally:
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while spool.deliverer_running(str(spool_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not spool.deliverer_running(str(spool_dir)), "SIGTERM stops the deliverer"


async def test_follow_delivers_leaves_when_idle_and_defers_to_a_running_one(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    for index in range(3):
        spool_event(tmp_path, base("PreToolUse", tool_use_id=f"t{index}"), at_s=index)
    reports: list[DeliveryReport] = []
    started = await asyncio.wait_for(
        follow(engine, str(tmp_path), linger=0.3, poll=0.05, on_report=reports.append), 20
    )
    assert started is True
    assert sum(report.delivered for report in reports) == 3
    assert not spool.deliverer_running(str(tmp_path)), "it let go of the lock when it left"
    held = spool.FileLock(str(tmp_path), spool.DELIVERER_LOCK)
    assert held.acquire(blocking=False)
    try:
        assert await follow(engine, str(tmp_path), linger=0.1) is False
    finally:
        held.release()


async def test_follow_keeps_retrying_while_the_database_is_down(
    engine: AsyncEngine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="session_db.claude.deliver")
    spool_dir = tmp_path / "spool"
    spool_event(spool_dir, base("Stop"), at_s=0)
    settings = Settings(_env_file=None, connect_timeout=2)  # type: ignore[call-arg]
    down = create_engine(settings, url=_unreachable_url(engine, tmp_path))
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(1.5, stop.set)
    try:
        # linger=0 would leave at once if it counted a failing database as idle.
        assert await asyncio.wait_for(follow(down, str(spool_dir), linger=0, stop=stop), 20)
    finally:
        await down.dispose()
    assert stop.is_set() and pending_events(str(spool_dir))
    retries = [r for r in caplog.records if "delivery failed, retrying" in r.getMessage()]
    assert retries, caplog.text
    # Said in the command line's words, in one line: what is wrong and what to do.
    expected = (
        "cannot open the SQLite database"
        if engine.dialect.name == "sqlite"
        else "cannot connect to PostgreSQL on 127.0.0.1:9: connection refused"
    )
    for record in retries:
        message = record.getMessage()
        assert expected in message and "\n" not in message, message
        assert record.exc_info is None


async def test_an_unwritable_rejected_file_delays_only_the_rejects(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Valid events are delivered; the batch stays until its bad lines can be set aside."""
    for index in range(3):
        spool_event(tmp_path, base("Notification", message=f"n{index}"), at_s=index)
    spool.append_line(str(tmp_path), b"a torn line without its header\n")
    spool_event(tmp_path, base("Stop", stop_hook_active=False), at_s=5)
    # A folder where the rejected file should be: appending to it fails like a full disk.
    (tmp_path / spool.REJECTED_FILE).mkdir()
    report = await deliver_pending(engine, str(tmp_path), import_transcripts=False)
    assert (report.delivered, report.rejected) == (4, 0)
    assert await count_logs(engine) == 4
    batches = spool.batch_files(str(tmp_path))
    assert len(batches) == 1, "the batch waits, holding the line not yet set aside"

    (tmp_path / spool.REJECTED_FILE).rmdir()
    report = await deliver_pending(engine, str(tmp_path), import_transcripts=False)
    assert (report.delivered, report.rejected) == (0, 1)
    assert report.duplicates == 4  # re-read from where it was settled, found stored
    assert not pending_events(str(tmp_path))
    rejected = (tmp_path / spool.REJECTED_FILE).read_text().splitlines()
    assert [json.loads(line)["line"] for line in rejected] == ["a torn line without its header\n"]
    assert await count_logs(engine) == 4


async def test_a_rejected_file_that_fails_once_doubles_no_line(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After one failed append, the batch's later bad lines wait too, and go in once."""
    for index in range(2):
        spool_event(tmp_path, base("Notification", message=f"n{index}"), at_s=index)
        spool.append_line(str(tmp_path), b"torn line %d without its header\n" % index)
    append, failures = spool.append_line, []

    def full_once(directory: str, line: bytes, name: str = spool.LIVE_FILE) -> None:
        if name == spool.REJECTED_FILE and not failures:
            failures.append(name)
            raise OSError(errno.ENOSPC, "No space left on device")
        append(directory, line, name)

    monkeypatch.setattr(spool, "append_line", full_once)
    first = await deliver_pending(engine, str(tmp_path), batch_size=2, import_transcripts=False)
    second = await deliver_pending(engine, str(tmp_path), batch_size=2, import_transcripts=False)

    assert failures and (first.delivered, first.rejected) == (2, 0)
    assert (second.duplicates, second.rejected) == (2, 2)
    rejected = (tmp_path / spool.REJECTED_FILE).read_text().splitlines()
    assert sorted(json.loads(line)["line"] for line in rejected) == [
        "torn line 0 without its header\n",
        "torn line 1 without its header\n",
    ]
    assert not pending_events(str(tmp_path)) and await count_logs(engine) == 2


async def test_a_hostile_line_between_valid_events_fails_alone(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """Too deep to parse, too large to store, not an object: each is set aside with why."""
    spool_event(tmp_path, base("Notification", message="before"), at_s=0)
    deep = b'{"session_id":"' + SESSION.encode() + b'","tool_input":' + b"[" * 10_000
    deep += b"]" * 10_000 + b"}"
    huge = json.dumps(base("PostToolUse", tool_response="x" * 9_000_000)).encode()
    for at_s, raw in ((1, deep), (2, huge), (3, b"[1, 2, 3]")):
        received = T0 + int(at_s * 1e9)
        line = spool.spool_line(raw, spool.new_spool_id(received), received, None)
        spool.append_line(str(tmp_path), line)
    spool_event(tmp_path, base("Notification", message="after"), at_s=4)
    report = await deliver_pending(engine, str(tmp_path), import_transcripts=False)
    assert (report.delivered, report.rejected) == (2, 3)
    reasons = [
        json.loads(line)["reason"]
        for line in (tmp_path / spool.REJECTED_FILE).read_text().splitlines()
    ]
    assert any("nested too deeply" in reason for reason in reasons)
    assert any("exceeds" in reason for reason in reasons)
    assert any("is a list" in reason for reason in reasons)
    async with get_async_session(engine) as db:
        logs = await crud.list_agent_logs(db)
    assert [log.payload.get("message") for log in logs] == ["before", "after"]


@contextlib.asynccontextmanager
async def read_only(engine: AsyncEngine, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """An engine on the same database made read-only: a SQLite file opened read-only, a
    PostgreSQL database whose transactions are read-only (a standby after a failover)."""
    url = engine.url
    if engine.dialect.name == "sqlite":
        url = make_url(f"sqlite+aiosqlite:///file:{url.database}?mode=ro&uri=true")
    else:
        async with engine.begin() as connection:
            await connection.exec_driver_sql(
                f'ALTER DATABASE "{url.database}" SET default_transaction_read_only = on'
            )
    frozen = create_engine(Settings(_env_file=None), url=url, poolclass=NullPool)  # type: ignore[call-arg]
    try:
        yield frozen
    finally:
        await frozen.dispose()
        if engine.dialect.name == "postgresql":
            await engine.dispose()  # its pooled connections were made read-only too
            async with engine.begin() as connection:
                await connection.exec_driver_sql("SET TRANSACTION READ WRITE")
                await connection.exec_driver_sql(
                    f'ALTER DATABASE "{url.database}" RESET default_transaction_read_only'
                )
            await engine.dispose()


async def test_a_read_only_database_sets_no_event_aside(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """The database refusing every write is not any event's fault: the pass stops."""
    a_session_of_events(tmp_path)
    async with read_only(engine, tmp_path) as frozen:
        with pytest.raises(DatabaseError, match=r"read-?only"):
            await deliver_pending(frozen, str(tmp_path), import_transcripts=False)
    assert not (tmp_path / spool.REJECTED_FILE).exists()
    assert pending_events(str(tmp_path))
    assert await count_logs(engine) == 0
    report = await deliver_pending(engine, str(tmp_path), import_transcripts=False)
    assert (report.delivered, report.rejected) == (14, 0)


async def test_a_bug_of_ours_sets_no_event_aside(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only what the database refuses is an event's fault; anything else stops the pass."""
    from session_db.claude import events

    a_session_of_events(tmp_path)

    async def broken(*_: Any, **__: Any) -> None:
        raise RuntimeError("a bug in applying events")

    monkeypatch.setattr(events, "record_session_activity", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        await deliver_pending(engine, str(tmp_path), import_transcripts=False)
    assert not (tmp_path / spool.REJECTED_FILE).exists()
    assert await count_logs(engine) == 0  # the chunk's transaction rolled back whole
    monkeypatch.undo()
    report = await deliver_pending(engine, str(tmp_path), import_transcripts=False)
    assert (report.delivered, report.rejected) == (14, 0)
