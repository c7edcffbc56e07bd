"""The spool under faults: a full disk, failing writes and fsyncs, and hostile files.

An append is all or nothing, a failed one is counted where `hook status` shows it (even
on a full disk), and the hook exits 0 having printed nothing, whatever it meets. The
full-disk test mounts a small tmpfs as the spool folder (it needs root); the in-process
tests inject failing writes and fsyncs and run everywhere.
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from support import cli

from session_db.claude import hook, spool
from session_db.claude.deliver import deliver_pending
from session_db.claude.events import parse_line
from session_db.database import get_async_session
from session_db.models import AgentLog

SCRIPT = Path(sys.executable).with_name("session-db")
SESSION_ID = "6f1d3c2b-9a8e-4f7d-8c6b-5a4e3d2c1b0a"
EARLIER_LINE = (
    b'{"spool_id":"0000000000000001aaaaaaaaaaaaaaaa","received_at_ns":1,"project_dir":null}'
    b'\t{"session_id":"' + SESSION_ID.encode() + b'","hook_event_name":"Earlier"}\n'
)
HEADER_KEYS = {"spool_id", "received_at_ns", "project_dir"}


def payload(index: int, size: int = 200) -> bytes:
    """A distinct PreToolUse event of about `size` bytes, known by its tool_use_id."""
    event = {
        "session_id": SESSION_ID,
        "transcript_path": f"/home/u/.claude/projects/-app/{SESSION_ID}.jsonl",
        "cwd": "/home/u/app",
        "hook_event_name": "PreToolUse",
        "tool_name": "Bash",
        "tool_use_id": f"toolu_{index:04d}",
        "tool_input": {"command": "x" * size, "n": f"{index:04d}"},
    }
    return json.dumps(event).encode()


def hook_env(folder: Path, **changes: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SESSION_DB_")}
    env.pop("CLAUDE_PROJECT_DIR", None)
    return env | {"SESSION_DB_SPOOL_DIR": str(folder), "SESSION_DB_AUTO_DELIVER": "0"} | changes


def run_hook(env: dict[str, str], stdin: bytes, cwd: Path) -> None:
    """Run `session-db hook` as Claude Code does; it must exit 0 having printed nothing."""
    done = subprocess.run(
        [str(SCRIPT), "hook"], input=stdin, capture_output=True, env=env, cwd=cwd, timeout=20
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def assert_whole_lines(path: Path) -> list[bytes]:
    """Every line of a spool file is a header, a TAB and a JSON object; return them."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"{path.name} ends in a torn line: {data[-80:]!r}"
    lines = [line + b"\n" for line in data[:-1].split(b"\n")]
    for line in lines:
        header, body = spool.split_line(line)
        assert set(json.loads(header)) == HEADER_KEYS
        assert isinstance(json.loads(body), dict)
    return lines


def tool_use_ids(lines: list[bytes]) -> list[str]:
    return [parse_line(line).payload["tool_use_id"] for line in lines]


# --- a real full disk ------------------------------------------------------------------------


@contextmanager
def small_tmpfs(folder: Path, size_kib: int) -> Iterator[None]:
    """Mount a tmpfs of `size_kib` KiB on `folder` (root only), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; the in-process fault tests cover the rest")
    folder.mkdir()
    options = f"size={size_kib}k,mode=0700"
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=True)


async def test_a_full_disk_tears_no_line_counts_each_failure_and_loses_nothing_spooled(
    engine: AsyncEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    folder = tmp_path / "spool"
    env = hook_env(folder)
    live = folder / spool.LIVE_FILE
    spooled: list[str] = []  # tool_use_ids whose hook found room
    failed: list[str] = []  # and those whose hook did not
    with small_tmpfs(folder, 128):
        filler = folder / "filler"
        filler.write_bytes(b"\0" * 48 * 1024)
        index = 0

        def one_hook(expect: str | None = None) -> bool:
            nonlocal index
            index += 1
            before = live.read_bytes() if live.exists() else b""
            run_hook(env, payload(index, 5000), tmp_path)
            after = assert_whole_lines(live)
            name = f"toolu_{index:04d}"
            kept = after != [] and tool_use_ids(after)[-1] == name
            if kept:
                assert live.read_bytes().startswith(before)
                spooled.append(name)
            else:  # the file is exactly as it was: not a byte of the failed append
                assert live.read_bytes() == before
                failed.append(name)
            assert expect is None or kept == (expect == "kept"), name
            return kept

        assert one_hook("kept")
        # The first append made the failure counter, full size, while there was room.
        assert (folder / spool.FAILURES_FILE).stat().st_size == spool.FAILURES_SIZE
        assert spool.append_failures(str(folder)).count == 0
        while one_hook():
            assert index < 40, "the disk never filled up"
        for _ in range(4):  # and again, on a disk that stays full
            one_hook("failed")

        failures = spool.append_failures(str(folder))
        assert failures.count == len(failed) == 5
        assert failures.last_error == "ENOSPC"
        assert failures.last_message is not None and "No space left" in failures.last_message
        assert tool_use_ids(assert_whole_lines(live)) == spooled
        monkeypatch.setenv("SESSION_DB_SPOOL_DIR", str(folder))
        code, out, err = cli(capsys, "hook", "status", "--json")
        assert code == 0, err
        status = json.loads(out)["append_failures"]
        assert (status["count"], status["last_error"]) == (5, "ENOSPC")
        code, out, _ = cli(capsys, "hook", "status")
        assert code == 0 and "5 events could not be spooled: 5 ENOSPC" in out
        assert "No space left" in out

        filler.unlink()
        for _ in range(5):
            one_hook("kept")
        assert spool.append_failures(str(folder)).count == 5
        assert tool_use_ids(assert_whole_lines(live)) == spooled

        report = await deliver_pending(engine, str(folder), import_transcripts=False)

    assert report.delivered == len(spooled) and report.rejected == 0
    async with get_async_session(engine) as db:
        rows = (await db.exec(sa.select(AgentLog.tool_use_id, AgentLog.spool_id))).all()
    assert sorted(tool for tool, _ in rows) == sorted(spooled)
    assert len({spool_id for _, spool_id in rows}) == len(rows) == len(spooled)


# --- failing writes and fsyncs, injected -----------------------------------------------------


def fault(kind: str, live: Path) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """An os.write and an os.fsync that fail as `kind` says, once, on the live file only."""
    real_write, real_fsync = os.write, os.fsync
    identity = (live.stat().st_dev, live.stat().st_ino)
    calls = {"write": 0, "fsync": 0}

    def ours(fd: int) -> bool:
        opened = os.fstat(fd)
        return (opened.st_dev, opened.st_ino) == identity

    def write(fd: int, data: Any) -> int:
        if kind == "fsync-EIO" or not ours(fd):
            return real_write(fd, data)
        calls["write"] += 1
        if calls["write"] == 1 and kind == "EIO":
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        if calls["write"] == 1:  # half of it fits...
            return real_write(fd, bytes(data[: len(data) // 2]))
        if calls["write"] == 2:  # ...and the rest does not
            if kind == "interrupted":
                raise KeyboardInterrupt
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        if kind == "fsync-EIO" and ours(fd):
            calls["fsync"] += 1
            if calls["fsync"] == 1:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_fsync(fd)

    return write, fsync


def run_hook_here(monkeypatch: pytest.MonkeyPatch, stdin: bytes) -> int:
    """Run the hook in this process, as `session-db hook` would, reading `stdin`."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    return hook.run()


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        pytest.param("ENOSPC", "ENOSPC", id="half-written-then-ENOSPC"),
        pytest.param("EIO", "EIO", id="write-EIO"),
        pytest.param("fsync-EIO", "EIO", id="fsync-EIO"),
        pytest.param("interrupted", "KeyboardInterrupt", id="half-written-then-interrupted"),
    ],
)
def test_a_failed_append_leaves_the_file_as_it_was_and_is_counted(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    kind: str,
    error: str,
) -> None:
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    live = folder / spool.LIVE_FILE
    live.write_bytes(EARLIER_LINE)
    spool.append_line(str(folder), spool.spool_line(payload(0), "00" * 16, 1, None))
    before = live.read_bytes()
    monkeypatch.setenv("SESSION_DB_SPOOL_DIR", str(folder))
    monkeypatch.setenv("SESSION_DB_AUTO_DELIVER", "0")
    write, fsync = fault(kind, live)

    with monkeypatch.context() as patched:
        patched.setattr(os, "write", write)
        patched.setattr(os, "fsync", fsync)
        assert run_hook_here(patched, payload(1, 10_000)) == 0

    assert live.read_bytes() == before
    failures = spool.append_failures(str(folder))
    assert (failures.count, failures.last_error) == (1, error)
    assert failures.last_at_ns is not None
    log = (folder / spool.HOOK_LOG).read_text().splitlines()
    assert len(log) == 1 and "hook failed: " in log[0]
    assert capsys.readouterr() == ("", "")
    # The next event goes right after the last whole line.
    assert run_hook_here(monkeypatch, payload(2)) == 0
    lines = assert_whole_lines(live)
    assert lines[:2] == before.splitlines(keepends=True)
    assert tool_use_ids(lines[1:]) == ["toolu_0000", "toolu_0002"]
    assert spool.append_failures(str(folder)).count == 1


def test_the_failure_counter_survives_concurrent_failures(tmp_path: Path) -> None:
    """Eight processes count 25 failures each under the counter's lock: 200, not fewer."""
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    script = (
        "import errno, sys\n"
        "from session_db.claude import spool\n"
        "for _ in range(25):\n"
        "    spool.record_append_failure(sys.argv[1], OSError(errno.EIO, 'injected'))\n"
    )
    children = [subprocess.Popen([sys.executable, "-c", script, str(folder)]) for _ in range(8)]
    assert [child.wait(timeout=60) for child in children] == [0] * 8
    failures = spool.append_failures(str(folder))
    assert (failures.count, failures.last_error) == (200, "EIO")
    assert (folder / spool.FAILURES_FILE).stat().st_size == spool.FAILURES_SIZE


# --- hostile files in the spool folder -------------------------------------------------------


def make_fifo(path: Path) -> None:
    os.mkfifo(path, 0o600)


def folder_at(path: Path) -> None:
    path.mkdir()


HOSTILE: dict[str, tuple[Callable[[Path], object], int | None, bool]] = {
    # name: (what to set up in the spool folder, failures counted after one hook (None:
    # the counter is unusable), whether the event is spooled)
    "live-file-is-a-fifo": (lambda f: make_fifo(f / spool.LIVE_FILE), 1, False),
    "live-file-is-a-folder": (lambda f: folder_at(f / spool.LIVE_FILE), 1, False),
    "counter-is-garbage": (
        lambda f: (
            (f / spool.FAILURES_FILE).write_bytes(b"\xff\x00 x y 12\n" * 100),
            folder_at(f / spool.LIVE_FILE),
        ),
        1,
        False,
    ),
    "counter-is-a-fifo": (
        lambda f: (make_fifo(f / spool.FAILURES_FILE), folder_at(f / spool.LIVE_FILE)),
        None,
        False,
    ),
    "counter-is-a-symlink": (
        lambda f: (
            (f / spool.FAILURES_FILE).symlink_to(f.parent / "elsewhere"),
            folder_at(f / spool.LIVE_FILE),
        ),
        None,
        False,
    ),
    "deliverer-lock-is-a-folder": (lambda f: folder_at(f / spool.DELIVERER_LOCK), None, True),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_spool_files_never_hang_or_fail_the_hook(tmp_path: Path, case: str) -> None:
    setup, counted, spooled = HOSTILE[case]
    folder = tmp_path / "spool"
    folder.mkdir(mode=0o700)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"not the counter\n")
    setup(folder)
    # Auto delivery on, so the hook tries for the deliverer lock; none can start here
    # (only a hook that spooled its event tries, and that one finds a folder).
    env = hook_env(
        folder,
        SESSION_DB_AUTO_DELIVER="1",
        SESSION_DB_DATA_DIR=str(tmp_path / "data"),
        SESSION_DB_URL=f"sqlite+aiosqlite:///{tmp_path / 'data' / 'never.sqlite'}",
    )
    run_hook(env, payload(7), tmp_path)  # within 20 s: a FIFO must not block it

    live = folder / spool.LIVE_FILE
    log = (folder / spool.HOOK_LOG).read_text().splitlines()
    assert len(log) == 1
    if spooled:
        assert tool_use_ids(assert_whole_lines(live)) == ["toolu_0007"]
        assert "starting a deliverer failed: IsADirectoryError" in log[0]
    else:
        assert not live.is_file()
        assert "hook failed: " in log[0]
    if counted is not None:
        failures = spool.append_failures(str(folder))
        assert failures.count == counted
        assert failures.last_error == ("EINVAL" if "fifo" in case else "EISDIR")
    elif not spooled:  # the counter is unusable: hook.log is the record, and has it
        assert "hook failed: IsADirectoryError" in log[0]
    assert elsewhere.read_bytes() == b"not the counter\n"


@pytest.mark.parametrize(
    ("closing", "spooled"),
    [pytest.param("<&-", False, id="no-stdin"), pytest.param(">&- 2>&-", True, id="no-stdout")],
)
def test_closed_standard_streams_do_not_fail_the_hook(
    tmp_path: Path, closing: str, spooled: bool
) -> None:
    folder = tmp_path / "spool"
    source = tmp_path / "payload.json"
    source.write_bytes(payload(3))
    with source.open("rb") as stdin:
        done = subprocess.run(
            ["sh", "-c", f'exec {closing}; exec "$0" hook', str(SCRIPT)],
            stdin=stdin,
            capture_output=True,
            env=hook_env(folder),
            timeout=20,
        )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")
    if spooled:
        assert tool_use_ids(assert_whole_lines(folder / spool.LIVE_FILE)) == ["toolu_0003"]
    else:  # nothing to read: counted as a lost event, and logged
        assert spool.append_failures(str(folder)).count == 1
        assert "hook failed: " in (folder / spool.HOOK_LOG).read_text()
