"""`session-db hook`: the installed console script, run as Claude Code runs it.

Every test starts real processes of the console script with a payload on stdin and reads
the spool files they leave in a temporary folder: no mocks. The hook always runs with
`SESSION_DB_SPOOL_DIR` in tmp_path and `SESSION_DB_AUTO_DELIVER=0`, except in the tests
about starting a deliverer (which use a SQLite file in tmp_path).
"""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import platformdirs
import pytest
from support import cli_subprocess

from session_db.claude import hook, spool
from session_db.claude.deliver import read_batch_file
from session_db.claude.events import HookEvent, clean_text, parse_line

SCRIPT = Path(sys.executable).with_name("session-db")
SESSION_ID = "4d5611e5-241a-462a-8d15-5122611a9569"
TRANSCRIPT = f"/home/user/.claude/projects/-home-user-app/{SESSION_ID}.jsonl"
HEADER_KEYS = {"spool_id", "received_at_ns", "project_dir"}
# A line already in the live file before a run: the hook must append after it.
EARLIER_LINE = (
    b'{"spool_id":"0000000000000001aaaaaaaaaaaaaaaa","received_at_ns":1,"project_dir":null}'
    b'\t{"hook_event_name":"Earlier"}\n'
)
LATER_LINE = (
    b'{"spool_id":"0000000000000002bbbbbbbbbbbbbbbb","received_at_ns":2,"project_dir":null}'
    b'\t{"hook_event_name":"Later"}\n'
)
# Spool ids seen across the parametrized runs of this module: each must be new.
SEEN_SPOOL_IDS: set[str] = set()


# --- running the hook ----------------------------------------------------------------------


def hook_env(spool_folder: Path, **changes: str | None) -> dict[str, str]:
    """This environment without session-db or Claude Code settings, spooling to tmp."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("SESSION_DB_") and key != "CLAUDE_PROJECT_DIR"
    }
    env["SESSION_DB_SPOOL_DIR"] = str(spool_folder)
    env["SESSION_DB_AUTO_DELIVER"] = "0"
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_hook(
    env: dict[str, str], stdin: bytes, *, cwd: Path, umask: int = -1
) -> tuple[subprocess.CompletedProcess[bytes], int, int]:
    """Run `session-db hook`; return the process and the clock before and after it."""
    assert SCRIPT.exists(), f"the console script is not installed at {SCRIPT}"
    before = time.time_ns()
    done = subprocess.run(
        [str(SCRIPT), "hook"],
        input=stdin,
        capture_output=True,
        env=env,
        cwd=cwd,
        timeout=60,
        umask=umask,
    )
    after = time.time_ns()
    return done, before, after


def assert_quiet_success(done: subprocess.CompletedProcess[bytes]) -> None:
    assert done.returncode == 0, done.stderr
    assert done.stdout == b""
    assert done.stderr == b""


def spool_lines(path: Path) -> list[bytes]:
    """The lines of a spool file, split as the deliverer reads them (at LF only)."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"{path.name} ends in a torn line: {data[-80:]!r}"
    return [line + b"\n" for line in data[:-1].split(b"\n")]


def utc(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / 1e9, UTC)


def assert_event(line: bytes, sent: bytes, before: int, after: int) -> HookEvent:
    """Check one spooled line against the payload sent and the time of the run."""
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert b"\r" not in line
    header_bytes, _ = spool.split_line(line)
    header = json.loads(header_bytes)
    assert set(header) == HEADER_KEYS
    assert before <= header["received_at_ns"] <= after
    event = parse_line(line)
    assert event.payload == json.loads(sent)
    assert len(event.spool_id) == 32 and int(event.spool_id, 16) >= 0
    # The id sorts by time: its first 16 hex digits are the nanoseconds received.
    assert int(event.spool_id[:16], 16) == header["received_at_ns"]
    assert event.received_at.tzinfo is not None
    slack = timedelta(microseconds=1)  # datetime keeps microseconds
    assert utc(before) - slack <= event.received_at <= utc(after) + slack
    return event


# --- payloads of every documented hook event, in two generations ---------------------------

MID, CURRENT = "mid2025", "current"
PROJECT = "/home/dév/проект app"
TEXT = (
    "Réécris ça 🚀 — 中文, עברית, naïve, e\u0301, line\u2028sep\u2029para, "
    'nel\u0085, bom\ufeff, del\x7f, quote " and back\\slash'
)
MID_TOOL_INPUT = {"command": "ls -la\ncat 'a\tb'", "description": "List files"}
TOOL_INPUT = {
    "file_path": "/home/dév/проект app/src/módulo.py",
    "old_string": "def f():\n\treturn 'a\tb'\r\n",
    "new_string": 'def f():\n\treturn "quoted" \\ back\\slash 🚀\n\n\t\t',
    "replace_all": False,
}
AGENT = {"agent_id": "a2898e3", "agent_type": "Explore"}


def specific_fields(name: str, shape: str, variant: str) -> dict[str, Any]:
    """The fields of one event type beyond the common ones."""
    current = shape == CURRENT
    tool_input = TOOL_INPUT if current else MID_TOOL_INPUT
    tool = {"tool_name": "Edit" if current else "Bash", "tool_input": tool_input}
    if current:
        tool["tool_use_id"] = "toolu_01ABCDEFGHIJKLMNOPQRSTUV"
    if name == "SessionStart":
        fields: dict[str, Any] = {"source": variant}
        if current:
            fields |= {"model": "claude-opus-4-5-20251101", "agent_type": "code-reviewer"}
        return fields
    if name == "SessionEnd":
        return {"reason": "prompt_input_exit" if current else "clear"}
    if name == "UserPromptSubmit":
        return {"prompt": TEXT if current else "Fix the failing test\nthen run it"}
    if name == "PreToolUse":
        return tool
    if name == "PostToolUse":
        response: Any = (
            {"filePath": TOOL_INPUT["file_path"], "structuredPatch": [], "userModified": False}
            if current
            else {"stdout": "total 0\n\tx", "stderr": "", "interrupted": False, "isImage": False}
        )
        return tool | {"tool_response": response} | (AGENT if current else {})
    if name == "PostToolUseFailure":
        return tool | {"error": "Exit code 1\n\tTraceback…", "is_interrupt": current}
    if name == "PermissionRequest":
        suggestion = {
            "type": "addRules",
            "rules": [{"toolName": "Bash", "ruleContent": "npm test:*"}],
            "behavior": "allow",
            "destination": "localSettings",
        }
        return tool | {"permission_suggestions": [suggestion]}
    if name == "PermissionDenied":
        return tool | {"reason": "Denied by the auto-mode classifier"}
    if name == "Notification":
        fields = {"message": "Claude needs your permission to use Bash"}
        if current:
            fields |= {"notification_type": "permission_prompt", "title": "Permission ✋"}
        return fields
    if name == "Stop":
        fields = {"stop_hook_active": current}
        if current:
            fields["last_assistant_message"] = "Done.\n\n```py\n\tprint('ok')\n```\n" + TEXT
        return fields
    if name == "StopFailure":
        return {
            "error": "rate_limit",
            "error_details": "429 Too Many Requests",
            "last_assistant_message": TEXT if current else "",
        }
    if name == "SubagentStart":
        return AGENT | {"prompt": TEXT if current else "Find the config loader"}
    if name == "SubagentStop":
        fields = {
            "stop_hook_active": False,
            "agent_id": AGENT["agent_id"],
            "agent_transcript_path": f"/home/user/.claude/projects/x/{SESSION_ID}"
            "/subagents/agent-a2898e3.jsonl",
        }
        if current:
            fields |= {"agent_type": AGENT["agent_type"], "last_assistant_message": TEXT}
        return fields
    if name == "PreCompact":
        return {
            "trigger": "manual" if current else "auto",
            "custom_instructions": "Keep the TODO list\n\t- all of it" if current else "",
        }
    if name == "PostCompact":
        return {"trigger": "auto", "compact_summary": "Summary: " + TEXT}
    if name == "Setup":
        return {"trigger": "init" if current else "maintenance"}
    if name == "FutureThing":
        return {
            "brand_new": {
                "nested": [1, 2.5, -3e-7, None, True, False, "x", {}, []],
                "big": 123456789012345678901234567890,
                "negative": -0.0001,
            },
            "flag": None,
            "ratio": 0.1,
            "ключ": "значение\n\tи табуляция",
            "": "empty key",
            "list_of_objects": [{"a": {"b": {"c": [TEXT]}}}],
        }
    raise AssertionError(f"no fields for {name}")


def make_payload(name: str, shape: str, variant: str) -> dict[str, Any]:
    common: dict[str, Any] = {"session_id": SESSION_ID, "transcript_path": TRANSCRIPT}
    if shape == CURRENT:
        common |= {
            "cwd": PROJECT,
            "permission_mode": "acceptEdits",
            "prompt_id": "prm_7f3a9c2e-1b4d-4e8f-9a6b-0c1d2e3f4a5b",
        }
    return common | {"hook_event_name": name} | specific_fields(name, shape, variant)


def serialize(payload: dict[str, Any], style: str) -> bytes:
    """Payload bytes as a hook might receive them, in several JSON layouts."""
    if style == "compact":
        return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    if style == "ascii":  # \u escapes, emoji as surrogate pairs
        return (json.dumps(payload) + "\n").encode()
    if style == "pretty":
        return (json.dumps(payload, indent=2, ensure_ascii=False) + "\n").encode()
    if style == "tabs-crlf":  # raw TABs and CRLFs between tokens
        text = json.dumps(payload, indent="\t", ensure_ascii=False)
        return (text.replace("\n", "\r\n") + "\r\n").encode()
    if style == "padded":
        return b" \n\t " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n  \t\n"
    raise AssertionError(style)


STYLES = ("compact", "ascii", "pretty", "tabs-crlf", "padded")
EVENT_NAMES = (
    "SessionEnd",
    "UserPromptSubmit",
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PermissionRequest",
    "PermissionDenied",
    "Notification",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "Setup",
    "FutureThing",
)


def event_cases() -> list[Any]:
    cases = []
    plan = [(MID, "SessionStart", "startup"), (MID, "SessionStart", "resume")]
    plan += [(MID, name, "") for name in EVENT_NAMES]
    plan += [(CURRENT, "SessionStart", "clear"), (CURRENT, "SessionStart", "compact")]
    plan += [(CURRENT, name, "") for name in EVENT_NAMES]
    for index, (shape, name, variant) in enumerate(plan):
        style = STYLES[index % len(STYLES)]
        case_id = "-".join(part for part in (shape, name, variant, style) if part)
        cases.append(pytest.param(shape, name, variant, style, id=case_id))
    return cases


@pytest.mark.parametrize(("shape", "name", "variant", "style"), event_cases())
def test_every_event_type_is_spooled_as_sent(
    tmp_path: Path, shape: str, name: str, variant: str, style: str
) -> None:
    payload = make_payload(name, shape, variant)
    sent = serialize(payload, style)
    folder = tmp_path / "spool"
    folder.mkdir()
    live = folder / spool.LIVE_FILE
    live.write_bytes(EARLIER_LINE)
    # Current payloads come with CLAUDE_PROJECT_DIR; older runs had it unset or empty.
    project = PROJECT if shape == CURRENT else None
    env = hook_env(folder, CLAUDE_PROJECT_DIR=project)
    if shape == MID and name.startswith("P"):
        env["CLAUDE_PROJECT_DIR"] = ""

    done, before, after = run_hook(env, sent, cwd=tmp_path)

    assert_quiet_success(done)
    lines = spool_lines(live)
    assert len(lines) == 2 and lines[0] == EARLIER_LINE
    event = assert_event(lines[1], sent, before, after)
    assert event.payload == payload
    assert event.name == name
    assert event.project_dir == project
    assert event.spool_id not in SEEN_SPOOL_IDS | {parse_line(EARLIER_LINE).spool_id}
    SEEN_SPOOL_IDS.add(event.spool_id)
    # Nothing else: no rejection, no log, and no deliverer check (auto delivery is off).
    assert sorted(os.listdir(folder)) == [spool.LIVE_FILE]


def test_the_cases_cover_every_event_type_in_both_shapes() -> None:
    seen = {(values[0], values[1]) for values in (case.values for case in event_cases())}
    names = {"SessionStart", *EVENT_NAMES}
    assert seen == {(shape, name) for shape in (MID, CURRENT) for name in names}
    sources = {case.values[2] for case in event_cases() if case.values[1] == "SessionStart"}
    assert sources == {"startup", "resume", "clear", "compact"}
    assert len(event_cases()) <= 40


# --- input that is not an event ------------------------------------------------------------


@pytest.mark.parametrize(
    ("stdin", "kept"),
    [
        pytest.param(b"{broken", b"{broken", id="malformed"),
        pytest.param(b"[1,2]", b"[1,2]", id="array"),
        pytest.param(b'"x"\n', b'"x"', id="string"),
        pytest.param(b"[\n  1,\r\n  2\n]\n", b"[   1,    2 ]", id="multiline-array"),
        pytest.param(b"", None, id="empty"),
        pytest.param(b" \n\t\r\n  ", None, id="whitespace"),
    ],
)
def test_input_that_is_not_an_event_is_not_spooled(
    tmp_path: Path, stdin: bytes, kept: bytes | None
) -> None:
    folder = tmp_path / "spool"
    folder.mkdir()
    live = folder / spool.LIVE_FILE
    live.write_bytes(EARLIER_LINE)

    done, before, after = run_hook(hook_env(folder), stdin, cwd=tmp_path)

    assert_quiet_success(done)
    assert live.read_bytes() == EARLIER_LINE
    log = (folder / spool.HOOK_LOG).read_text(encoding="utf-8").splitlines()
    assert len(log) == 1
    rejected = folder / spool.REJECTED_FILE
    if kept is None:
        assert "empty input" in log[0]
        assert not rejected.exists()
        return
    lines = spool_lines(rejected)
    assert len(lines) == 1
    header_bytes, body = spool.split_line(lines[0])
    assert body == kept
    header = json.loads(header_bytes)
    assert set(header) == HEADER_KEYS
    assert before <= header["received_at_ns"] <= after
    assert f"rejected {header['spool_id']}" in log[0]
    assert "not a JSON object" in log[0]


# --- file modes ----------------------------------------------------------------------------


def test_spool_folder_and_files_are_private(tmp_path: Path) -> None:
    folder = tmp_path / "data" / "spool"  # neither exists yet
    env = hook_env(folder)
    good = json.dumps(make_payload("Stop", CURRENT, "")).encode()
    # With no umask at all, the modes are exactly what the hook asks for.
    assert_quiet_success(run_hook(env, good, cwd=tmp_path, umask=0)[0])
    assert_quiet_success(run_hook(env, b"{broken", cwd=tmp_path, umask=0)[0])

    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in (spool.LIVE_FILE, spool.REJECTED_FILE, spool.HOOK_LOG, spool.FAILURES_FILE):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600, name


# --- what the hook imports -----------------------------------------------------------------

HEAVY_MODULES = ("sqlalchemy", "pydantic", "typer", "rich", "json", "pathlib")


@pytest.mark.parametrize(
    "entry",
    [pytest.param([str(SCRIPT)], id="console-script"), pytest.param(["-m", "session_db"], id="-m")],
)
def test_the_hook_imports_nothing_heavy(tmp_path: Path, entry: list[str]) -> None:
    folder = tmp_path / "spool"
    payload = json.dumps(make_payload("PreToolUse", CURRENT, "")).encode()
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *entry, "hook"],
        input=payload,
        capture_output=True,
        env=hook_env(folder),
        cwd=tmp_path,
        timeout=60,
    )

    assert done.returncode == 0 and done.stdout == b""
    report = done.stderr.decode("utf-8", "replace").splitlines()
    imported = {
        line.split("|")[-1].strip()
        for line in report
        if line.startswith("import time:") and "imported package" not in line
    }
    assert [line for line in report if not line.startswith("import time:")] == []
    # The report is real: the hook's own modules are in it, and the event was spooled.
    assert {"session_db.claude.hook", "session_db.claude.spool"} <= imported
    assert len(spool_lines(folder / spool.LIVE_FILE)) == 1
    heavy = sorted(
        name
        for name in imported
        if any(name == module or name.startswith(module + ".") for module in HEAVY_MODULES)
    )
    assert heavy == []


# --- a spool that cannot be written --------------------------------------------------------


def immutable(path: Path) -> None:
    """Make `path` unwritable for everyone, root included (chattr +i), or skip."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr (e2fsprogs) is needed to make a folder root cannot write")
    done = subprocess.run(["chattr", "+i", str(path)], capture_output=True, check=False)
    if done.returncode != 0:  # no CAP_LINUX_IMMUTABLE, or a file system without it
        pytest.skip(f"chattr +i is not allowed here: {done.stderr!r}")


def mutable(path: Path) -> None:
    if shutil.which("chattr") is not None:
        subprocess.run(["chattr", "-i", str(path)], capture_output=True, check=False)


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("under-a-file", "ENOTDIR"),
        ("is-a-file", "EEXIST"),
        ("read-only-folder", "EPERM"),
        ("read-only-live-file", "EPERM"),
    ],
)
def test_an_unwritable_spool_prints_nothing_exits_0_and_counts_the_event(
    tmp_path: Path, where: str, reason: str
) -> None:
    blocker = tmp_path / "blocker"
    if where in ("under-a-file", "is-a-file"):
        blocker.write_bytes(b"not a folder\n")
        folder = blocker / "spool" if where == "under-a-file" else blocker
    else:
        blocker.mkdir(mode=0o700)
        folder = blocker
        if where == "read-only-live-file":
            (folder / spool.LIVE_FILE).write_bytes(EARLIER_LINE)
            locked = folder / spool.LIVE_FILE
        else:
            locked = folder
    runtime = tmp_path / "run"
    runtime.mkdir()
    env = hook_env(folder, XDG_RUNTIME_DIR=str(runtime))
    payload = json.dumps(make_payload("UserPromptSubmit", CURRENT, "")).encode()
    try:
        if where.startswith("read-only"):
            immutable(locked)
        for _ in range(2):
            done, _, _ = run_hook(env, payload, cwd=tmp_path)
            assert_quiet_success(done)
        status = cli_subprocess("hook", "status", "--json", env=env, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        failures = json.loads(status.stdout)["append_failures"]
        text = cli_subprocess("hook", "status", env=env, cwd=tmp_path)
    finally:
        if where.startswith("read-only"):
            mutable(locked)

    assert failures["count"] == 2 and failures["by_reason"] == {reason: 2}
    assert str(folder) in failures["last_message"]
    assert text.returncode == 0 and "2 events could not be spooled" in text.stdout
    assert reason in text.stdout
    if where in ("under-a-file", "is-a-file"):
        assert blocker.read_bytes() == b"not a folder\n"
    elif where == "read-only-folder":  # nothing was written there
        assert os.listdir(folder) == []
    else:
        assert (folder / spool.LIVE_FILE).read_bytes() == EARLIER_LINE
    assert sorted(os.listdir(tmp_path)) == ["blocker", "run"]
    if where != "read-only-live-file":  # counted in the fallback folder, the user's alone
        assert stat.S_IMODE((runtime / "session-db").stat().st_mode) == 0o700


# --- many hooks at once --------------------------------------------------------------------


def big_payload(index: int) -> bytes:
    """A distinct ~20 KB PostToolUse payload; every third one pretty-printed."""
    rng = random.Random(index)
    alphabet = 'abcdefghijklmnopqrstuvwxyz \n\t"\\é中🚀{}[],:'
    output = "".join(rng.choice(alphabet) for _ in range(15_000))
    payload = make_payload("PostToolUse", CURRENT, "") | {
        "tool_use_id": f"toolu_{index:04d}",
        "tool_response": {"stdout": output, "index": index},
    }
    if index % 3 == 0:
        return json.dumps(payload, indent=2, ensure_ascii=False).encode()
    return json.dumps(payload, ensure_ascii=index % 2 == 0).encode()


def start_hooks(
    env: dict[str, str], folder: Path, indexes: range
) -> list[tuple[subprocess.Popen[bytes], bytes]]:
    """Start one hook per index at once, each reading its payload from a file."""
    started = []
    for index in indexes:
        payload = big_payload(index)
        source = folder / f"payload-{index}.json"
        source.write_bytes(payload)
        with source.open("rb") as stdin:
            process = subprocess.Popen(
                [str(SCRIPT), "hook"],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                cwd=folder,
            )
        started.append((process, payload))
    return started


def finish(started: list[tuple[subprocess.Popen[bytes], bytes]]) -> None:
    for process, _ in started:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        assert stdout == b""
        assert stderr == b""


def payload_key(payload: bytes) -> str:
    return json.dumps(json.loads(payload), sort_keys=True)


def test_concurrent_hooks_write_whole_lines(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    started = start_hooks(hook_env(folder), inputs, range(40))
    finish(started)
    sent = [payload for _, payload in started]
    assert all(19_000 <= len(payload) <= 40_000 for payload in sent)

    lines = spool_lines(folder / spool.LIVE_FILE)
    events = [parse_line(line) for line in lines]
    assert len(events) == 40
    assert sorted(json.dumps(e.payload, sort_keys=True) for e in events) == sorted(
        payload_key(payload) for payload in sent
    )
    assert len({event.spool_id for event in events}) == 40
    assert not (folder / spool.HOOK_LOG).exists()


@pytest.mark.slow
def test_rotation_during_appends_loses_and_repeats_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    env = hook_env(folder)
    stop = threading.Event()
    delivered: list[bytes] = []
    batches: list[str] = []
    failures: list[BaseException] = []

    def deliver_until_stopped() -> None:
        # As the deliverer does: rotate, then read the batch at once and delete it. A
        # write that lands in a batch after rotate() returned would be lost or torn.
        try:
            while not stop.is_set():
                batch = spool.rotate(str(folder))
                if batch is not None:
                    batches.append(batch)
                    delivered.extend(spool_lines(Path(batch)))
                    os.unlink(batch)
        except BaseException as error:
            failures.append(error)

    deliverer = threading.Thread(target=deliver_until_stopped)
    deliverer.start()
    sent: list[bytes] = []
    try:
        for wave in range(4):
            started = start_hooks(env, inputs, range(wave * 15, wave * 15 + 15))
            finish(started)
            sent += [payload for _, payload in started]
    finally:
        stop.set()
        deliverer.join(timeout=30)

    assert failures == []
    assert len(batches) >= 2, "the rotation never raced the writers"
    assert len(set(batches)) == len(batches)
    assert spool.batch_files(str(folder)) == []
    live = folder / spool.LIVE_FILE
    remaining = spool_lines(live) if live.exists() and live.stat().st_size else []
    events = [parse_line(line) for line in delivered + remaining]  # torn lines do not parse
    assert len(events) == 60
    assert sorted(json.dumps(e.payload, sort_keys=True) for e in events) == sorted(
        payload_key(payload) for payload in sent
    )
    assert len({event.spool_id for event in events}) == 60
    assert not (folder / spool.HOOK_LOG).exists()


def wait_until_blocked_on_flock(pid: int, timeout: float = 10.0) -> None:
    """Wait until process `pid` waits for an flock (Linux lists waiters in /proc/locks)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in Path("/proc/locks").read_text().splitlines():
            fields = entry.split()
            if "->" in fields and "FLOCK" in fields and str(pid) in fields:
                return
        time.sleep(0.005)
    raise AssertionError(f"process {pid} never waited for the spool lock")


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux /proc/locks")
def test_rotation_waits_for_a_writer_and_a_late_writer_moves_to_the_new_file(
    tmp_path: Path,
) -> None:
    """The hand-off, step by step: no timing luck needed, unlike the race above."""
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    live = folder / spool.LIVE_FILE
    live.write_bytes(EARLIER_LINE)
    # This test is a writer in the middle of an append: it holds the live file's lock.
    writer = spool.FileLock(str(folder), spool.LIVE_FILE)
    assert writer.acquire(blocking=False)
    sent = json.dumps(make_payload("PreToolUse", CURRENT, "")).encode()
    try:
        source = tmp_path / "payload.json"
        source.write_bytes(sent)
        with source.open("rb") as stdin:
            hook = subprocess.Popen(
                [str(SCRIPT), "hook"],
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=hook_env(folder),
                cwd=tmp_path,
            )
        wait_until_blocked_on_flock(hook.pid)  # it opened the live file, waits to append

        rotated: list[str | None] = []
        rotator = threading.Thread(target=lambda: rotated.append(spool.rotate(str(folder))))
        rotator.start()
        deadline = time.monotonic() + 10
        while live.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert not live.exists(), "rotate() did not rename the live file"
        live.write_bytes(LATER_LINE)  # another writer has started the next live file
        rotator.join(timeout=0.3)
        assert rotator.is_alive(), "rotate() returned while a writer held the lock"
    finally:
        writer.release()
    rotator.join(timeout=10)
    stdout, stderr = hook.communicate(timeout=30)

    assert (hook.returncode, stdout, stderr) == (0, b"", b"")
    (batch,) = rotated
    assert batch is not None and spool.batch_files(str(folder)) == [batch]
    # The hook opened the old file, found it rotated away, and appended to the new one.
    assert Path(batch).read_bytes() == EARLIER_LINE
    later, line = spool_lines(live)
    assert later == LATER_LINE
    assert parse_line(line).payload == json.loads(sent)


@pytest.mark.parametrize(
    "torn",
    [
        pytest.param(LATER_LINE[:-12], id="torn-in-the-payload"),
        pytest.param(LATER_LINE[:30], id="torn-in-the-header"),
        pytest.param(LATER_LINE[: LATER_LINE.index(b"\t") + 1], id="torn-at-the-tab"),
    ],
)
def test_a_torn_last_line_does_not_swallow_the_next_event(tmp_path: Path, torn: bytes) -> None:
    """A line torn by a power loss or an older version stays alone; ours is whole."""
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    live = folder / spool.LIVE_FILE
    live.write_bytes(EARLIER_LINE + torn)
    sent = json.dumps(make_payload("PostToolUse", CURRENT, "")).encode()

    done, before, after = run_hook(hook_env(folder), sent, cwd=tmp_path)

    assert_quiet_success(done)
    earlier, torn_line, ours = spool_lines(live)
    assert (earlier, torn_line) == (EARLIER_LINE, torn + b"\n")
    assert_event(ours, sent, before, after)
    # The deliverer reads the earlier event and ours, and sets the torn line aside.
    parsed, bad = read_batch_file(str(live))
    assert [event.name for event, _ in parsed] == ["Earlier", "PostToolUse"]
    assert [line for line, _ in bad] == [torn + b"\n"]


# --- the header's JSON string encoder ------------------------------------------------------

TRICKY = [
    "",
    '"',
    "\\",
    '\\"',
    '\\\\"',
    "ends with a backslash\\",
    "\\u0041 is not A",
    "".join(chr(code) for code in range(0x20)),
    "\x7f\u0085\u2028\u2029\ufeff\ufffd",
    "🚀 中文 עברית e\u0301",
    "/slashes//and\ttabs\nand\r\nnewlines",
    "/home/dev/caf\udce9",  # a folder's byte that is not UTF-8, as os.environ holds it
]
ALPHABET = [chr(code) for code in range(0x20)] + list(
    '"\\/ aZ0u{}[]:,\x7f\u0085\u2028\u2029\ufeffé中🚀'
)


def test_json_string_round_trips_tricky_text() -> None:
    rng = random.Random(20250601)
    generated = [
        "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 24))) for _ in range(3000)
    ]
    assert spool.json_string(None) == b"null"
    for text in TRICKY + generated:
        encoded = spool.json_string(text)
        assert json.loads(encoded) == text, repr(text)
        assert encoded[:1] == b'"' and encoded[-1:] == b'"'
        assert not any(byte < 0x20 for byte in encoded), repr(text)
        line = spool.spool_line(b'{"a":1}', "00" * 16, 5, text)
        event = parse_line(line)
        # NUL and unpaired surrogates become U+FFFD (the documented normalisation).
        assert event.project_dir == (clean_text(text) or None), repr(text)
        assert event.payload == {"a": 1}


def test_a_project_dir_with_quotes_and_backslashes_round_trips(tmp_path: Path) -> None:
    project = '/home/me/we"ird\\dir\\ with\ttab and\nnewline é 🚀\\'
    folder = tmp_path / "spool"
    sent = json.dumps(make_payload("SessionStart", CURRENT, "startup")).encode()

    done, before, after = run_hook(hook_env(folder, CLAUDE_PROJECT_DIR=project), sent, cwd=tmp_path)

    assert_quiet_success(done)
    (line,) = spool_lines(folder / spool.LIVE_FILE)
    event = assert_event(line, sent, before, after)
    assert event.project_dir == project


def test_a_project_dir_that_is_not_utf8_is_read_with_a_replacement_character(
    tmp_path: Path,
) -> None:
    # The folder's bytes as the OS hands them; os.environ holds \xe9 as "\udce9".
    project = os.fsdecode(b"/home/dev/caf\xe9")
    folder = tmp_path / "spool"
    sent = json.dumps(make_payload("SessionStart", CURRENT, "startup")).encode()

    done, before, after = run_hook(hook_env(folder, CLAUDE_PROJECT_DIR=project), sent, cwd=tmp_path)

    assert_quiet_success(done)
    (line,) = spool_lines(folder / spool.LIVE_FILE)
    event = assert_event(line, sent, before, after)
    assert event.project_dir == "/home/dev/caf\ufffd"


# --- starting a deliverer ------------------------------------------------------------------


def stop_wrongly_started_deliverer(folder: Path, running: spool.FileLock) -> None:
    """After a failure: hold the lock until a deliverer started by mistake has given up
    on it (it then exits); end one that took the lock anyway, by the pid it wrote."""
    time.sleep(5)
    running.release()
    time.sleep(1)
    pid = spool.deliverer_pid(str(folder))
    if pid is not None:
        os.kill(pid, signal.SIGTERM)


def test_no_deliverer_is_started_while_one_holds_the_lock(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    # Auto delivery on (the default); anything started by mistake stays inside tmp_path.
    env = hook_env(
        folder,
        SESSION_DB_AUTO_DELIVER=None,
        SESSION_DB_DATA_DIR=str(tmp_path / "data"),
        SESSION_DB_URL=f"sqlite+aiosqlite:///{tmp_path / 'data' / 'never.sqlite'}",
    )
    running = spool.FileLock(str(folder), spool.DELIVERER_LOCK)
    assert running.acquire(blocking=False)
    try:
        sent = json.dumps(make_payload("Stop", CURRENT, "")).encode()
        done, before, after = run_hook(env, sent, cwd=tmp_path)
        assert_quiet_success(done)
        (line,) = spool_lines(folder / spool.LIVE_FILE)
        assert_event(line, sent, before, after)

        # A background deliverer opens deliverer.log as it starts: none may appear.
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            assert not (folder / spool.DELIVERER_LOG).exists()
            time.sleep(0.05)
        assert spool.deliverer_running(str(folder))
        assert not spool.FileLock(str(folder), spool.DELIVERER_LOCK).acquire(blocking=False)
        assert (folder / spool.DELIVERER_LOCK).read_bytes() == b""  # no deliverer's pid
    finally:
        if (folder / spool.DELIVERER_LOG).exists():
            stop_wrongly_started_deliverer(folder, running)
        running.release()
    # Released, the lock is free: nobody else was holding it.
    again = spool.FileLock(str(folder), spool.DELIVERER_LOCK)
    assert again.acquire(blocking=False)
    again.release()
    # (The first append to a new live file also made the failure counter, still at 0.)
    assert sorted(os.listdir(folder)) == [spool.DELIVERER_LOCK, spool.LIVE_FILE, "spool-failures"]
    assert spool.append_failures(str(folder)).count == 0


def delivered_rows(database: Path) -> tuple[int, int, set[str]]:
    """Rows in agent_logs, distinct spool ids among them, and their tool_use_ids."""
    with sqlite3.connect(database, timeout=30) as connection:
        rows = connection.execute("SELECT spool_id, tool_use_id FROM agent_logs").fetchall()
    return len(rows), len({spool_id for spool_id, _ in rows}), {tool for _, tool in rows}


def stop_deliverer(folder: Path) -> None:
    """SIGTERM the deliverer holding the lock, by the pid it wrote; wait for the lock."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        probe = spool.FileLock(str(folder), spool.DELIVERER_LOCK)
        if probe.acquire(blocking=False):
            probe.release()
            return
        pid = spool.deliverer_pid(str(folder))
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
        time.sleep(0.1)
    raise AssertionError("the deliverer did not stop")


@pytest.mark.slow
def test_a_burst_of_hooks_starts_one_deliverer_and_hands_it_the_lock(
    tmp_path: Path, sqlite_template: Path
) -> None:
    folder = tmp_path / "spool"
    database = tmp_path / "events.sqlite"
    shutil.copyfile(sqlite_template, database)
    env = hook_env(
        folder,
        SESSION_DB_AUTO_DELIVER=None,
        SESSION_DB_DATA_DIR=str(tmp_path / "data"),
        SESSION_DB_URL=f"sqlite+aiosqlite:///{database}",
    )
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    names = {f"toolu_burst_{index:02d}" for index in range(50)}
    started = []
    try:
        for name in sorted(names):
            source = inputs / f"{name}.json"
            payload = make_payload("PreToolUse", CURRENT, "") | {"tool_use_id": name}
            source.write_bytes(json.dumps(payload).encode())
            with source.open("rb") as stdin:
                started.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "session_db", "hook"],
                        stdin=stdin,
                        stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE,
                        env=env,
                        cwd=tmp_path,
                    )
                )
        for process in started:
            stdout, stderr = process.communicate(timeout=120)
            assert (process.returncode, stdout, stderr) == (0, b"", b"")
        hooks = {process.pid for process in started}

        # Every hook has exited, and the lock is held: by the deliverer, handed over.
        probe = spool.FileLock(str(folder), spool.DELIVERER_LOCK)
        assert not probe.acquire(blocking=False), "no one holds the deliverer lock"
        deadline = time.monotonic() + 90
        while delivered_rows(database)[0] < 50 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert delivered_rows(database) == (50, 50, names)
        pid = spool.deliverer_pid(str(folder))
        assert pid is not None and pid not in hooks
        time.sleep(2)  # a deliverer started by a late hook has had time to say so
        log = (folder / spool.DELIVERER_LOG).read_text().splitlines()
        starts = [line for line in log if "deliverer started" in line]
        assert len(starts) == 1, "\n".join(starts)
        assert f"pid={pid} " in starts[0] and "the lock the hook handed over" in starts[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        assert command[-5:-1] == [b"--follow", b"--background", b"--lock-fd", b"3"]
        lock_path = os.path.realpath(folder / spool.DELIVERER_LOCK)
        assert os.readlink(f"/proc/{pid}/fd/3") == lock_path
        # ...and not inheritable there: the deliverer's own children do not get it.
        flags = Path(f"/proc/{pid}/fdinfo/3").read_text().split("flags:")[1].split()[0]
        assert int(flags, 8) & os.O_CLOEXEC
        assert not probe.acquire(blocking=False)
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
        stop_deliverer(folder)
    assert spool.append_failures(str(folder)).count == 0
    assert not (folder / spool.HOOK_LOG).exists()


def test_a_hook_that_cannot_start_the_deliverer_lets_go_of_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "spool"
    monkeypatch.setenv("SESSION_DB_SPOOL_DIR", str(folder))
    monkeypatch.delenv("SESSION_DB_AUTO_DELIVER", raising=False)
    spawned: list[tuple[Any, ...]] = []

    def no_spawn(*args: Any, **kwargs: Any) -> int:
        spawned.append((args, kwargs))
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "posix_spawn", no_spawn)
    sent = json.dumps(make_payload("Stop", CURRENT, "")).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(sent)))

    assert hook.run() == 0

    assert capsys.readouterr() == ("", "")
    (line,) = spool_lines(folder / spool.LIVE_FILE)
    assert parse_line(line).name == "Stop"
    ((args, kwargs),) = spawned  # it tried, with the lock as fd 3
    assert args[1][-2:] == ["--lock-fd", "3"]
    dup2 = kwargs["file_actions"][0]
    assert dup2[0] == os.POSIX_SPAWN_DUP2 and dup2[2] == 3
    assert "starting a deliverer failed: OSError" in (folder / spool.HOOK_LOG).read_text()
    # The lock is free again, and no descriptor of it is left open in this process.
    probe = spool.FileLock(str(folder), spool.DELIVERER_LOCK)
    assert probe.acquire(blocking=False)
    probe.release()
    lock_path = os.path.realpath(folder / spool.DELIVERER_LOCK)
    open_files = [os.path.realpath(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")]
    assert lock_path not in open_files


def test_a_deliverer_handed_a_wrong_lock_fd_takes_the_lock_itself(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    other = tmp_path / "not-the-lock"
    other.write_bytes(b"")
    env = hook_env(
        folder,
        SESSION_DB_DATA_DIR=str(tmp_path / "data"),
        SESSION_DB_URL=f"sqlite+aiosqlite:///{tmp_path / 'data' / 'never.sqlite'}",
    )
    deliverer = [sys.executable, "-m", "session_db", "ingest", "--follow", "--background"]
    with other.open("rb") as handle:
        fd = handle.fileno()
        done = subprocess.run(
            [*deliverer, "--linger", "0.2", "--lock-fd", str(fd)],
            env=env,
            cwd=tmp_path,
            pass_fds=(fd,),
            capture_output=True,
            timeout=60,
        )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    log = (folder / spool.DELIVERER_LOG).read_text()
    assert f"--lock-fd {fd} is not the deliverer lock" in log
    assert "deliverer started, taking the lock itself" in log
    assert (folder / spool.DELIVERER_LOCK).read_bytes().strip().isdigit()  # its pid


# --- the default data folder ---------------------------------------------------------------


def test_default_data_dir_matches_platformdirs_here() -> None:
    expected = platformdirs.user_data_dir("session-db", appauthor=False)
    assert spool.default_data_dir() == expected
    assert spool.default_data_dir(dict(os.environ)) == expected


@pytest.mark.parametrize("xdg", ["absolute", "relative", "empty", "unset"])
def test_default_data_dir_follows_xdg_data_home_like_platformdirs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, xdg: str
) -> None:
    value = {
        "absolute": str(tmp_path / "xdg data"),
        "relative": "relative/data",
        "empty": "",
        "unset": None,
    }[xdg]
    if value is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", value)
    expected = platformdirs.user_data_dir("session-db", appauthor=False)
    if xdg == "absolute":
        assert expected == os.path.join(value, "session-db")
    else:
        assert expected == os.path.join(os.path.expanduser("~"), ".local/share/session-db")

    assert spool.default_data_dir() == expected
    given = {} if value is None else {"XDG_DATA_HOME": value}
    assert spool.default_data_dir(given) == expected
    assert spool.spool_dir(given) == os.path.join(expected, "spool")


@pytest.mark.parametrize(
    ("home", "xdg"),
    [
        pytest.param("", None, id="empty-HOME"),
        pytest.param("relative-home", None, id="relative-HOME"),
        pytest.param(None, " {tmp}/xdg", id="XDG_DATA_HOME-with-leading-space"),
    ],
)
def test_default_data_dir_matches_platformdirs_in_unusual_environments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: str | None, xdg: str | None
) -> None:
    if home is not None:
        monkeypatch.setenv("HOME", home)
    if xdg is None:
        monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    else:
        monkeypatch.setenv("XDG_DATA_HOME", xdg.format(tmp=tmp_path))
    expected = platformdirs.user_data_dir("session-db", appauthor=False)
    assert spool.default_data_dir() == expected
