"""`session-db events SESSION` and `session-db tools SESSION`, from hook events stored as
the deliverer stores them, on both engines."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hook_support import SESSION, a_session, payload, store_payloads
from sqlalchemy.engine import URL
from support import cli


def test_events_list_in_time_order_with_tool_and_summary(
    cli_db: URL, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(store_payloads(cli_db, a_session()))
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli(capsys, "events", SESSION)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["Time", "(UTC)", "Event", "Tool", "Summary"]
    assert all(len(line) <= 80 for line in lines), out
    events = [line.split()[2] for line in lines[2:]]
    assert events == [
        "SessionStart",
        "UserPromptSubmit",
        "PreToolUse",
        "PostToolUse",
        "PreToolUse",
        "PostToolUseFailure",
        "Stop",
    ]
    assert lines[2].startswith("01-15 08:00:00")
    assert "Fix the failing login test" in lines[3]  # whitespace runs folded to one line
    assert "Bash" in lines[4] and "pytest -q tests/test_login.py" in lines[4]
    assert lines[7].rstrip().endswith("…")  # the failure's path and error, cut to fit


def test_events_filter_by_type_and_tool_and_json_keeps_everything(
    cli_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(store_payloads(cli_db, a_session()))
    code, out, err = cli(capsys, "events", SESSION, "--type", "pretooluse", "--json")
    assert code == 0, err
    found = json.loads(out)
    assert [(e["event_type"], e["tool_name"]) for e in found] == [
        ("PreToolUse", "Bash"),
        ("PreToolUse", "Edit"),
    ]
    assert found[1]["payload"]["tool_input"]["file_path"] == "/home/dev/webshop/app/login.py"
    code, out, _ = cli(
        capsys, "events", SESSION, "--type", "PreToolUse", "--type", "Stop", "--tool", "Edit"
    )
    assert code == 0 and "Edit" in out and "Bash" not in out and "Stop" not in out
    failure = json.loads(
        cli(capsys, "events", SESSION, "--type", "PostToolUseFailure", "--json")[1]
    )
    assert "String to replace not found in file. String: a" in failure[0]["summary"]
    code, out, _ = cli(capsys, "events", SESSION, "--tool", "WebFetch")
    assert (code, out) == (0, "No events match.\n")


def test_limit_keeps_the_latest_and_says_so(
    cli_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(store_payloads(cli_db, a_session()))
    code, out, _ = cli(capsys, "events", SESSION, "--limit", "2")
    assert code == 0
    assert "PostToolUseFailure" in out and "Stop" in out and "SessionStart" not in out
    assert "the latest 2 events; --limit shows more" in out


@pytest.mark.parametrize(
    ("args", "flag", "says"),
    [
        (["--type", "PreToolCall"], "--type", "is not a hook event; one of: PreToolUse"),
        (["--limit", "0"], "--limit", "1"),
    ],
)
def test_bad_event_options_are_usage_errors_naming_the_flag(
    cli_db: URL, capsys: pytest.CaptureFixture[str], args: list[str], flag: str, says: str
) -> None:
    asyncio.run(store_payloads(cli_db, a_session()))
    code, out, err = cli(capsys, "events", SESSION, *args)
    flat = " ".join(err.replace("│", " ").split())
    assert code == 2 and out == "" and f"'{flag}'" in flat and says in flat


def test_an_unknown_session_is_one_line(cli_db: URL, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("events", "tools"):
        code, out, err = cli(capsys, command, "nope")
        assert code == 1 and out == "" and err.count("\n") == 1 and "not found" in err


def test_tools_list_duration_status_and_error(
    cli_db: URL, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(store_payloads(cli_db, a_session()))
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli(capsys, "tools", SESSION)
    assert code == 0, err
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    bash, edit = lines[2], lines[3]
    assert "Bash" in bash and "2.4 s" in bash and "succeeded" in bash
    assert "pytest -q tests/test_login.py" in bash
    assert "Edit" in edit and "failed" in edit and "String to replace not found" in edit
    assert lines[-1] == "2 tool calls, 1 failed or denied"
    failed = json.loads(cli(capsys, "tools", SESSION, "--status", "failed", "--json")[1])
    assert [c["tool_name"] for c in failed] == ["Edit"]
    assert failed[0]["error"] == "String to replace not found in file.\nString: a"
    assert [
        c["tool_name"]
        for c in json.loads(cli(capsys, "tools", SESSION, "--tool", "Bash", "--json")[1])
    ] == ["Bash"]
    assert json.loads(cli(capsys, "tools", SESSION, "--json")[1])[0]["duration_ms"] == 2350
    code, out, _ = cli(capsys, "tools", SESSION, "--status", "denied")
    assert (code, out) == (0, "No tool calls match.\n")
    code, _, err = cli(capsys, "tools", SESSION, "--status", "broken")
    assert code == 2 and "'--status'" in err


@pytest.mark.slow
def test_follow_prints_an_event_stored_after_it_started(cli_db: URL, tmp_path: Path) -> None:
    asyncio.run(store_payloads(cli_db, a_session()))
    env = {
        **os.environ,
        "SESSION_DB_URL": cli_db.render_as_string(hide_password=False),
        "COLUMNS": "100",
    }
    follower = subprocess.Popen(
        [str(Path(sys.executable).with_name("session-db")), "events", SESSION, "--follow"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert follower.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    # A thread reads: select() on the pipe misses lines already in the reader's buffer.
    threading.Thread(
        target=lambda: [lines.put(line) for line in follower.stdout], daemon=True
    ).start()  # type: ignore[union-attr]

    def next_line(within: float) -> str:
        try:
            return lines.get(timeout=within)
        except queue.Empty:
            raise AssertionError(f"no line within {within} s") from None

    try:
        first = [next_line(30) for _ in range(7)]  # what was there: the whole session
        assert "SessionStart" in first[0] and "Stop" in first[-1]
        time.sleep(1.5)  # a poll or two with nothing new
        note = payload("Notification", message="Claude needs your permission to use Bash")
        asyncio.run(store_payloads(cli_db, [note], start_s=60))
        line = next_line(10)
        assert "Notification" in line and "Claude needs your permission to use Bash" in line
        assert line.startswith("01-15 08:01:00")
        follower.send_signal(signal.SIGINT)
        follower.wait(timeout=30)
        err = follower.stderr.read()  # type: ignore[union-attr]
    finally:
        if follower.poll() is None:
            follower.kill()
    time.sleep(0.2)
    assert follower.returncode == 130 and lines.empty()  # nothing printed twice
    assert "Traceback" not in err and err.count("\n") <= 1
