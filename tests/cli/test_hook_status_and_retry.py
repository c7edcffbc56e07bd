"""`hook status` says where the hook is installed and what was lost or rejected, and
`ingest --retry-rejected` brings rejected events back, each exactly once."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from faults import install_refusal, remove_refusal
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool
from sqlmodel import select
from support import cli, isolated_settings

from session_db.claude import deliver, spool
from session_db.claude.settings_file import DEFAULT_EVENTS, hook_command
from session_db.database import create_engine, get_async_session
from session_db.models import AgentLog

SESSION = "0b7f4a8e-5a43-4a51-9d3c-2f0c3b3b9e11"


@pytest.fixture
def cli_env(cli_db: URL, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The test database, a private spool and Claude config; returns the spool folder."""
    monkeypatch.setenv("SESSION_DB_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("SESSION_DB_AUTO_DELIVER", "0")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "claude-config"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("CLAUDE_PROJECT_DIR", raising=False)
    return tmp_path / "spool"


def event_line(index: int, tool: str = "Read") -> bytes:
    """A PreToolUse hook event as Claude Code sends it, as the hook spools it."""
    payload = {
        "session_id": SESSION,
        "transcript_path": f"/home/u/.claude/projects/-home-u-app/{SESSION}.jsonl",
        "cwd": "/home/u/app",
        "permission_mode": "default",
        "hook_event_name": "PreToolUse",
        "tool_name": tool,
        "tool_input": {"file_path": f"/home/u/app/f{index}.py"},
        "tool_use_id": f"toolu_{index:04d}",
    }
    received = 1_767_000_000_000_000_000 + index
    return spool.spool_line(
        json.dumps(payload).encode(), spool.new_spool_id(received), received, None
    )


def json_out(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def rejected_lines(folder: Path) -> list[bytes]:
    path = folder / spool.REJECTED_FILE
    return (
        [line for line in path.read_bytes().splitlines() if line.strip()] if path.exists() else []
    )


def test_status_names_each_settings_file_and_the_events_the_hook_is_registered_for(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "app"
    (project / ".claude").mkdir(parents=True)
    shared = {  # a teammate's shared settings: ours on one event, theirs on another
        "hooks": {
            "PreToolUse": [
                {"matcher": "*", "hooks": [{"type": "command", "command": hook_command()}]}
            ],
            "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
        }
    }
    (project / ".claude" / "settings.json").write_text(json.dumps(shared))
    code, _, err = cli(capsys, "hook", "install", "--project", str(project))
    assert code == 0, err

    status = json_out(capsys, "hook", "status", "--project", str(project))

    hook = status["hook"]
    assert isinstance(hook, dict) and hook["installed"] is True
    by_scope = {row["scope"]: row for row in hook["settings"]}
    assert by_scope["user"]["path"] == str(tmp_path / "claude-config" / "settings.json")
    assert by_scope["user"]["installed"] is False
    assert by_scope["project"]["events"] == ["PreToolUse"]
    assert by_scope["local"]["path"] == str(project / ".claude" / "settings.local.json")
    assert sorted(by_scope["local"]["events"]) == sorted(DEFAULT_EVENTS)
    code, out, _ = cli(capsys, "hook", "status", "--project", str(project))
    assert code == 0 and out.startswith("hook installed\n")
    assert "1 event: PreToolUse" in out and f"every event ({len(DEFAULT_EVENTS)} events)" in out

    (project / ".claude" / "settings.json").write_text("{not json")
    code, out, _ = cli(capsys, "hook", "status", "--project", str(project))
    assert code == 0 and "unreadable" in out and "invalid JSON" in out


def test_status_shows_the_latest_rejected_events_with_reasons_and_counts_the_rest(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [event_line(0)] + [b"torn line %d\n" % i for i in range(6)]
    spool.append_line(str(cli_env), b"".join(lines))
    assert json_out(capsys, "ingest")["rejected"] == 6
    env = {**os.environ, "SESSION_DB_SPOOL_DIR": str(cli_env), "SESSION_DB_AUTO_DELIVER": "0"}
    done = subprocess_hook(env, tmp_path, b"this is not JSON")
    assert done.returncode == 0 and done.stdout == done.stderr == b""

    status = json_out(capsys, "hook", "status", "--rejected", "3")

    assert status["rejected"] == 7
    recent = status["rejected_recent"]
    assert isinstance(recent, list) and len(recent) == 3
    assert "rejected by the hook" in recent[-1]["reason"] and recent[-1]["spool_id"]
    assert all("no header separator" in item["reason"] for item in recent[:2])
    assert all(item["rejected_at"] for item in recent[:2])
    code, out, _ = cli(capsys, "hook", "status", "--rejected", "3")
    assert code == 0 and "rejected: 7 events" in out and "and 4 earlier rejected events" in out
    assert "--retry-rejected" in out and "no header separator" in out


def subprocess_hook(
    env: dict[str, str], cwd: Path, stdin: bytes
) -> subprocess.CompletedProcess[bytes]:
    script = Path(sys.executable).with_name("session-db")
    return subprocess.run(
        [str(script), "hook"], input=stdin, env=env, cwd=cwd, capture_output=True, timeout=60
    )


async def stored_tools(url: URL) -> list[str]:
    engine = create_engine(isolated_settings(), url=url, poolclass=NullPool)
    try:
        async with get_async_session(engine) as db:
            rows = (await db.exec(select(AgentLog.tool_name, AgentLog.spool_id))).all()
    finally:
        await engine.dispose()
    assert len({spool_id for _, spool_id in rows}) == len(rows)  # none twice
    return sorted(tool for tool, _ in rows)


async def with_engine(url: URL, work) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(isolated_settings(), url=url, poolclass=NullPool)
    try:
        await work(engine)
    finally:
        await engine.dispose()


def test_retry_rejected_brings_back_what_the_database_now_takes_and_keeps_the_rest_once(
    cli_env: Path, cli_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(with_engine(cli_db, install_refusal))  # the database refuses Poison rows
    try:
        lines = [event_line(1), event_line(2, tool="Poison"), b"a torn line\n", event_line(3)]
        spool.append_line(str(cli_env), b"".join(lines))
        first = json_out(capsys, "ingest")
        assert (first["delivered"], first["rejected"]) == (2, 2)
    finally:
        asyncio.run(with_engine(cli_db, remove_refusal))  # fixed, outside session-db
    assert asyncio.run(stored_tools(cli_db)) == ["Read", "Read"]
    assert len(rejected_lines(cli_env)) == 2

    retried = json_out(capsys, "ingest", "--retry-rejected")

    assert retried["retried"] == {"requeued": 2, "delivered": 1, "duplicates": 0, "rejected": 1}
    assert asyncio.run(stored_tools(cli_db)) == ["Poison", "Read", "Read"]
    still = rejected_lines(cli_env)
    assert len(still) == 1 and json.loads(still[0])["line"] == "a torn line\n"
    assert "no header separator" in json.loads(still[0])["reason"]
    assert spool.batch_files(str(cli_env)) == []

    code, out, err = cli(capsys, "ingest", "--retry-rejected")  # again: the same one, once
    assert code == 0, err
    assert "re-queued 1 rejected event: 0 delivered, 1 rejected again" in out
    assert len(rejected_lines(cli_env)) == 1
    assert json_out(capsys, "hook", "status")["rejected"] == 1
    code, out, _ = cli(capsys, "ingest", "--retry-rejected")
    assert code == 0 and "re-queued 1 rejected event" in out
    assert asyncio.run(stored_tools(cli_db)) == ["Poison", "Read", "Read"]


def test_retry_rejected_with_nothing_rejected_says_so(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "ingest", "--retry-rejected")
    assert code == 0, err
    assert out.splitlines() == ["no rejected events to retry", "delivered 0 events"]
    code, _, err = cli(capsys, "ingest", "--retry-rejected", "--follow")
    assert code == 2 and "--retry-rejected" in err


def records(*lines: bytes) -> bytes:
    """Rejected-file records as the deliverer writes them."""
    return b"".join(
        (json.dumps({"rejected_at": 1.5, "reason": "r", "line": line.decode()}) + "\n").encode()
        for line in lines
    )


@pytest.mark.parametrize("crash", ["after-rename", "mid-batch-write", "after-batch-fsync"])
def test_a_requeue_cut_short_by_a_crash_loses_and_doubles_nothing(
    tmp_path: Path, crash: str
) -> None:
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    lines = [event_line(i) for i in range(5)]
    ident = "00000000000000000001-abcd0123"
    moved = folder / f"{deliver.REQUEUE_PREFIX}{ident}.jsonl"
    temp = folder / f"{spool.BATCH_PREFIX}{ident}{spool.BATCH_SUFFIX}.tmp"
    # The files a crash leaves at each step of requeue_rejected.
    if crash in ("after-rename", "mid-batch-write"):
        moved.write_bytes(records(*lines))
    if crash == "mid-batch-write":
        temp.write_bytes(b"".join(lines[:2]) + lines[2][:10])
    if crash == "after-batch-fsync":
        temp.write_bytes(b"".join(lines))
    # What was rejected since, in the new rejected file.
    later = event_line(9)
    (folder / spool.REJECTED_FILE).write_bytes(records(later))
    count, _ = deliver.rejected_events(str(folder))
    assert count == (6 if crash != "after-batch-fsync" else 1)  # none hidden meanwhile

    made = deliver.requeue_rejected(str(folder))

    assert [count for _, count in made] == [5, 1]
    batched = b"".join(Path(path).read_bytes() for path, _ in made)
    assert sorted(batched.splitlines(keepends=True)) == sorted([*lines, later])
    assert sorted(os.listdir(folder)) == sorted(Path(path).name for path, _ in made)
    assert deliver.requeue_rejected(str(folder)) == []


def test_a_line_rejected_twice_counts_and_is_requeued_once(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A crash between setting a line aside and recording how far its batch was settled
    # makes the next pass set it aside again: the rejected file holds it twice.
    cli_env.mkdir(mode=0o700)
    twice, once = b"a torn line\n", event_line(4, tool="Poison")
    (cli_env / spool.REJECTED_FILE).write_bytes(records(twice, once) + records(twice))

    assert json_out(capsys, "hook", "status")["rejected"] == 2
    made = deliver.requeue_rejected(str(cli_env))

    assert [count for _, count in made] == [2]
    ((batch, _),) = made
    assert sorted(Path(batch).read_bytes().splitlines(keepends=True)) == sorted([twice, once])


@pytest.mark.parametrize("crash", ["after-rename", "after-batch-fsync"])
def test_a_requeue_cut_short_by_a_crash_is_finished_by_the_next_delivery_pass(
    cli_env: Path, cli_db: URL, capsys: pytest.CaptureFixture[str], crash: str
) -> None:
    cli_env.mkdir(mode=0o700)
    lines = [event_line(i) for i in range(3)]
    ident = "00000000000000000001-abcd0123"
    if crash == "after-rename":  # the rejected file renamed, its batch not written
        (cli_env / f"{deliver.REQUEUE_PREFIX}{ident}.jsonl").write_bytes(records(*lines))
    else:  # the batch written and the requeue file gone, the batch not published
        (cli_env / f"{spool.BATCH_PREFIX}{ident}{spool.BATCH_SUFFIX}.tmp").write_bytes(
            b"".join(lines)
        )
    status = json_out(capsys, "hook", "status")
    assert (status["waiting"], status["rejected"]) == (
        (0, 3) if crash == "after-rename" else (3, 0)
    )
    assert deliver.pending_events(str(cli_env))

    done = json_out(capsys, "ingest")  # a plain pass, no --retry-rejected

    assert (done["delivered"], done["rejected"]) == (3, 0)
    assert asyncio.run(stored_tools(cli_db)) == ["Read"] * 3
    leftovers = [
        name
        for name in os.listdir(cli_env)
        if name.startswith((deliver.REQUEUE_PREFIX, spool.BATCH_PREFIX))
    ]
    assert leftovers == []
    assert not deliver.pending_events(str(cli_env))
