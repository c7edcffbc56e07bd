"""A problem stays visible until it is fixed: every sync, `sync --json` and `watch` list
each folder still in error with its reason, and `sync` exits 3 while any is; on both engines.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from support import cli

from session_db import crud
from session_db.database import get_async_session
from session_db.sync import SyncOutcome, sync_project, sync_session
from session_db.sync.folders import fingerprint

MARKER = "Session state manifest v2 - programmatic updates only"
GOOD = {
    "$schema": MARKER,
    "session_id": "good",
    "topic": "Good",
    "created_at": "2026-02-17T23:04:35+00:00",
    "updated_at": "2026-02-17T23:04:35+00:00",
    "current_phase": "build",
    "build_progress": {"checkpoints_total": None, "checkpoints_completed": []},
}
REASONS = {
    "broken": "state.json is not valid JSON (line 1, column 2",
    "nameless": "state.json has no usable identity: session_id is missing",
    "notes": "the folder has no state.json",
}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A good folder, one with a warning, and three the sync cannot take."""
    root = tmp_path / "project"
    sessions = root / "agents" / "sessions"
    for name, content in (
        ("good", GOOD),
        ("odd", {**GOOD, "session_id": "odd", "status": "sleeping"}),
        ("broken", "{"),
        ("nameless", {"$schema": MARKER, "topic": "No id"}),
    ):
        (sessions / name).mkdir(parents=True)
        text = content if isinstance(content, str) else json.dumps(content)
        (sessions / name / "state.json").write_text(text)
    (sessions / "notes").mkdir()
    (sessions / "notes" / "spec.md").write_text("# a draft, no state yet")
    return root


def problems(report) -> dict[str, tuple[str, str]]:
    return {r.session_dir.name: (r.outcome.value, r.message) for r in report.problems}


async def test_every_sync_reports_the_folders_still_in_error_with_their_reasons(
    engine: AsyncEngine, project: Path
) -> None:
    first = await sync_project(project, engine=engine)
    again = await sync_project(project, engine=engine)
    for report in (first, again):
        found = problems(report)
        assert set(found) == set(REASONS)
        assert all(REASONS[name] in message for name, (_, message) in found.items())
        assert found["notes"][0] == "unrecognised" and found["broken"][0] == "error"
        [odd] = report.warnings
        assert odd.session_dir.name == "odd" and "status" in odd.warnings[0]
    assert again.counts == {
        "synchronized": 0,
        "unchanged": 2,
        "error": 2,
        "unrecognised": 1,
        "missing": 0,
    }
    # One folder through sync_session (the pool's path) says the same.
    async with get_async_session(engine) as db:
        broken = await sync_session(db, project, "broken")
        odd = await sync_session(db, project, "odd")
    assert (broken.outcome, REASONS["broken"] in (broken.message or "")) == ("error", True)
    assert (odd.outcome, odd.warnings) == (SyncOutcome.UNCHANGED, again.warnings[0].warnings)

    (project / "agents/sessions/broken/state.json").write_text(
        json.dumps({**GOOD, "session_id": "b"})
    )
    fixed = await sync_project(project, engine=engine)
    assert set(problems(fixed)) == {"nameless", "notes"}
    assert [r.outcome for r in fixed.results if r.session_dir.name == "broken"] == ["synchronized"]


async def test_a_folder_left_in_error_by_an_earlier_reader_is_read_again_unchanged(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    # What an upgrade from a stricter reader leaves: an error recorded with the files'
    # current fingerprint. The folder must be read again, not skipped as unchanged.
    root = tmp_path / "project"
    folder = root / "agents/sessions/v1-goals"
    folder.mkdir(parents=True)
    v1 = {"session_id": "v1-goals", "goals": {"high_level": ["g"]}, "phases": {}}
    (folder / "state.json").write_text(json.dumps(v1))
    async with get_async_session(engine) as db:
        project_id = await crud.claim_project_for_sync(db, str(root.resolve()))
        await crud.upsert_sync_state(
            db,
            folder.resolve(),
            project_id,
            "error",
            file_fingerprint=fingerprint(folder),
            error_message="state.json: goals: Input should be a valid list",
        )
    report = await sync_project(root, engine=engine)
    assert [(r.session_dir.name, r.outcome) for r in report.results] == [
        ("v1-goals", SyncOutcome.SYNCHRONIZED)
    ]
    async with get_async_session(engine) as db:
        [state] = await crud.list_sync_states(db)
        session = await crud.get_session_by_slug(db, "v1-goals")
    assert (state.sync_status, state.error_message) == ("synchronized", None)
    assert session.session_metadata["state"]["goals"] == {"high_level": ["g"]}


def test_sync_lists_problems_and_warnings_and_exits_3_until_they_are_fixed(
    cli_db: URL, capsys: pytest.CaptureFixture[str], project: Path
) -> None:
    for good in ("synchronized", "unchanged"):  # the second run says the same of the rest
        code, out, err = cli(capsys, "sync", str(project))
        assert code == 3
        lines = out.splitlines()
        assert lines[0] == f"{project}: 5 folders: 2 {good}, 2 error, 1 unrecognised"
        for name, reason in REASONS.items():
            outcome = "unrecognised" if name == "notes" else "error"
            assert [line for line in lines if line.startswith(f"  {name}: {outcome}: {reason}")]
        assert [line for line in lines if line.startswith("  odd: warning: state.json: status:")]
        assert len(lines) == 5
        assert err == "session-db: 3 folders not synced: broken, nameless, notes\n"

    code, out, err = cli(capsys, "sync", str(project), "--json")
    report = json.loads(out)
    assert code == 3 and err.count("\n") == 1
    assert {Path(p["session_dir"]).name: p["outcome"] for p in report["problems"]} == {
        "broken": "error",
        "nameless": "error",
        "notes": "unrecognised",
    }
    assert all(REASONS[Path(p["session_dir"]).name] in p["message"] for p in report["problems"])
    [odd] = report["warnings"]
    assert Path(odd["session_dir"]).name == "odd" and "status" in odd["warnings"][0]

    sessions = project / "agents/sessions"
    for name in ("broken", "nameless"):
        (sessions / name / "state.json").write_text(json.dumps({**GOOD, "session_id": name}))
    (sessions / "notes" / "state.json").write_text(json.dumps({**GOOD, "session_id": "notes"}))
    (sessions / "odd" / "state.json").write_text(json.dumps({**GOOD, "session_id": "odd"}))
    code, out, err = cli(capsys, "sync", str(project), "--json")
    assert (code, err, json.loads(out)["problems"], json.loads(out)["warnings"]) == (0, "", [], [])
    code, out, err = cli(capsys, "sync", str(project))
    assert (code, err) == (0, "") and len(out.splitlines()) == 1


@pytest.mark.slow
def test_watch_lists_the_folders_in_error_and_says_when_one_is_fixed(
    cli_db: URL, tmp_path: Path, project: Path
) -> None:
    env = {**os.environ, "SESSION_DB_URL": cli_db.render_as_string(hide_password=False)}
    watcher = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("session-db")),
            "watch",
            str(project),
            "--delay",
            "0.1",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert watcher.stdout is not None
    seen: list[str] = []

    def read_until(text: str) -> None:
        deadline = time.monotonic() + 30
        while not any(text in line for line in seen):
            assert time.monotonic() < deadline, f"watch never said {text!r}: {seen}"
            seen.append(watcher.stdout.readline())  # type: ignore[union-attr]

    try:
        read_until("watching")
        assert "3 in error" in seen[0]
        for name, reason in REASONS.items():
            read_until(f"{name}: ")
            assert any(line.startswith(f"{name}: ") and reason in line for line in seen)
        read_until("odd: warning: state.json: status")
        sessions = project / "agents/sessions"
        (sessions / "broken" / "state.json").write_text(json.dumps({**GOOD, "session_id": "b"}))
        read_until("broken: fixed (synchronized)")
        (sessions / "good" / "state.json").write_text("[")
        read_until("good: error: state.json is not valid JSON")
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, err
    assert "stopped:" in out
