"""StateManager: the seeds' workflow on state.json, atomic saves, and the save callback."""

import errno
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import run_python

from session_db.sync.formats import FormatError, parse_state
from session_db.sync.state_manager import (
    InvalidPhaseTransitionError,
    SessionNotFoundError,
    StateError,
    StateManager,
    StateValidationError,
)

SEED_MARKER = "Session state manifest v2 - programmatic updates only"  # REFERENCE.md §1


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "agents" / "sessions" / "2026-02-16_demo_abc123"


def test_create_writes_a_version_2_state_in_the_spec_phase(folder: Path) -> None:
    manager = StateManager.create(folder, topic="Demo", session_type="quick")
    on_disk = json.loads((folder / "state.json").read_text())
    assert on_disk["$schema"] == SEED_MARKER
    assert on_disk["session_id"] == folder.name
    # The seeds' own default until the build is planned, and every history key present.
    assert on_disk["build_progress"] == {
        "checkpoints_total": None,
        "checkpoints_completed": [],
        "current_checkpoint": None,
    }
    assert len(on_disk["phase_history"]) == 8
    assert (on_disk["current_phase"], on_disk["status"]) == ("spec", "active")
    assert on_disk["phase_history"]["spec_started_at"] is not None
    assert parse_state(on_disk).session_type == "quick"
    assert manager.phase == "spec"
    with pytest.raises(FileExistsError):
        StateManager.create(folder, topic="again")


def test_phases_move_forward_one_at_a_time_stamping_history(folder: Path) -> None:
    manager = StateManager.create(folder, topic="Demo")
    with pytest.raises(InvalidPhaseTransitionError, match="the next phase is plan") as caught:
        manager.transition_to("build")
    assert (caught.value.from_phase, caught.value.to_phase) == ("spec", "build")
    assert isinstance(caught.value, StateError)
    with pytest.raises(InvalidPhaseTransitionError, match="unknown phase"):
        manager.transition_to("shipping")
    for phase in ("plan", "build", "docs", "complete"):
        manager.transition_to(phase)
    state = StateManager(folder).load()
    history = state["phase_history"]
    assert all(history[f"{name}_completed_at"] for name in ("spec", "plan", "build", "docs"))
    assert history["docs_started_at"] == history["build_completed_at"]
    assert (state["current_phase"], state["status"]) == ("complete", "complete")
    with pytest.raises(StateError, match="it is complete"):
        manager.transition_to("docs")
    with pytest.raises(StateError, match="is complete"):
        manager.set_status("paused")


def test_status_git_and_commits(folder: Path) -> None:
    manager = StateManager.create(folder, topic="Demo")
    manager.set_status("paused")
    manager.set_git(branch="feat/x", worktree="/tmp/wt")
    manager.set_git(base_branch="main")
    manager.record_commit("abc1234", "first")
    manager.record_commit("abc1234", "first again")  # same sha: recorded once
    with pytest.raises(StateError, match="hexadecimal"):
        manager.record_commit("not-a-sha", "x")
    with pytest.raises(StateError, match="transition_to"):
        manager.set_status("complete")
    with pytest.raises(StateError, match="unknown status"):
        manager.set_status("sleeping")
    state = StateManager(folder).load()
    assert state["status"] == "paused"
    assert state["git"] == {"branch": "feat/x", "worktree": "/tmp/wt", "base_branch": "main"}
    assert [commit["sha"] for commit in state["commits"]] == ["abc1234"]


def test_build_progress(folder: Path) -> None:
    manager = StateManager.create(folder, topic="Demo")
    with pytest.raises(StateError, match="build phase"):
        manager.start_checkpoint(1)
    manager.transition_to("plan")
    manager.transition_to("build")
    with pytest.raises(StateError, match="not planned"):
        manager.complete_checkpoint(1)
    for not_an_id in ("1", 0, True, 1.0):
        with pytest.raises(StateError, match="whole number from 1"):
            manager.start_checkpoint(not_an_id)  # type: ignore[arg-type]
    manager.set_checkpoints_total(2)
    manager.start_checkpoint(1)
    assert manager.state["build_progress"]["current_checkpoint"] == 1
    manager.complete_checkpoint(1)
    manager.complete_checkpoint(1)  # again: a no-op
    manager.complete_checkpoint(2)
    with pytest.raises(StateError, match="already completed"):
        manager.complete_checkpoint(3)
    with pytest.raises(StateError, match="already completed"):
        manager.start_checkpoint(2)
    with pytest.raises(StateError, match="below the 2 checkpoints"):
        manager.set_checkpoints_total(1)
    progress = StateManager(folder).load()["build_progress"]
    assert progress == {
        "checkpoints_total": 2,
        "checkpoints_completed": [1, 2],
        "current_checkpoint": None,
    }
    assert parse_state(StateManager(folder).load()).checkpoints_completed == 2


def test_record_agent_updates_the_entry_with_the_same_sdk_session_id(folder: Path) -> None:
    manager = StateManager.create(folder, topic="Demo")
    manager.record_agent("spec", sdk_session_id="sdk-1", model="claude-sonnet-4-5")
    manager.record_agent("spec", sdk_session_id="sdk-1", status="complete")
    manager.record_agent("build", checkpoint_id=1)
    agents = StateManager(folder).load()["agents"]
    assert [(a["agent_type"], a["status"]) for a in agents] == [
        ("spec", "complete"),
        ("build", "executing"),
    ]
    assert agents[0]["model"] == "claude-sonnet-4-5" and agents[0]["completed_at"]
    with pytest.raises(FormatError, match="status"):
        manager.record_agent("spec", status="sleeping")
    assert len(StateManager(folder).load()["agents"]) == 2  # the refused change left no trace


def test_a_version_1_state_is_upgraded_on_save_keeping_every_key(folder: Path) -> None:
    folder.mkdir(parents=True)
    v1 = {  # REFERENCE.md §1: goals as an object, no created_at, decisions, questions
        "session_id": folder.name,
        "topic": "Old",
        "granularity": "coarse",
        "goals": {"high_level": ["keep me"], "detailed": []},
        "key_decisions": [{"title": "t", "rationale": "r", "date": "2026-01-01"}],
        "open_questions": ["why?"],
        "plan_state": None,
        "prior_session": None,
        "phases": {
            "spec": {
                "status": "finalized",
                "started_at": "2026-01-01T09:00:00Z",
                "finalized_at": "2026-01-02T00:00:00Z",
            }
        },
    }
    (folder / "state.json").write_text(json.dumps(v1))
    manager = StateManager(folder)
    assert manager.phase == "plan"
    manager.transition_to("build")
    saved = json.loads((folder / "state.json").read_text())
    assert saved["$schema"] == SEED_MARKER and saved["current_phase"] == "build"
    assert {key: saved[key] for key in v1 if key != "phases"} == {
        key: value for key, value in v1.items() if key != "phases"
    }
    assert saved["phases"] == v1["phases"]
    assert saved["phase_history"]["spec_completed_at"] == "2026-01-02T00:00:00Z"
    assert saved["phase_history"]["plan_completed_at"] is not None
    assert saved["created_at"] == "2026-01-01T09:00:00Z"  # the earliest time it records
    assert "session_type" not in saved  # never null: the seeds' models refuse that


def test_loading_a_broken_file_raises_format_error(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / "state.json").write_text('{"$schema": "x", "session_id": ')
    with pytest.raises(FormatError, match="not valid JSON"):
        StateManager(folder).load()
    (folder / "state.json").write_text(json.dumps({"$schema": "x", "session_id": "s"}))
    with pytest.raises(StateValidationError, match="topic: Field required"):
        StateManager(folder).load()  # the sync reads it; a manager could not save it


def test_loading_a_folder_without_state_json_names_the_session(folder: Path) -> None:
    with pytest.raises(SessionNotFoundError) as caught:
        StateManager(folder).load()
    assert (caught.value.session_id, caught.value.path) == (folder.name, str(folder / "state.json"))
    assert isinstance(caught.value, FileNotFoundError)


def test_the_callback_runs_after_every_save_and_cannot_break_it(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[Path] = []
    manager = StateManager.create(folder, topic="Demo", on_save_callback=calls.append)
    manager.set_status("paused")
    assert calls == [folder, folder]

    def explode(_: Path) -> None:
        raise RuntimeError("queue is gone")

    manager.on_save_callback = explode
    with caplog.at_level(logging.ERROR):
        manager.set_status("active")
    assert StateManager(folder).load()["status"] == "active"
    assert "on_save_callback failed" in caplog.text and "queue is gone" in caplog.text


def test_a_failed_write_keeps_the_old_file_and_still_calls_back(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    manager = StateManager.create(folder, topic="Demo", on_save_callback=calls.append)
    before = (folder / "state.json").read_bytes()

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("session_db.sync.state_manager.os.fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        manager.set_status("paused")
    monkeypatch.undo()
    assert (folder / "state.json").read_bytes() == before
    assert manager.state["status"] == "active"  # memory follows the file
    assert calls == [folder, folder]
    assert not list(folder.glob(".state.json.*"))  # the temporary file is cleaned up


def test_a_refused_state_is_never_written(folder: Path) -> None:
    manager = StateManager.create(folder, topic="Demo")
    before = (folder / "state.json").read_bytes()
    with pytest.raises(StateError):
        manager.set_checkpoints_total(-1)
    assert (folder / "state.json").read_bytes() == before


def test_importing_the_state_manager_loads_no_database_code(tmp_path: Path) -> None:
    probe = (
        "import sys; import session_db.sync.state_manager; from session_db.sync import "
        "StateManager; heavy = [m for m in ('sqlalchemy', 'sqlmodel', 'session_db.models', "
        "'session_db.database') if m in sys.modules]; print(heavy)"
    )
    result = run_python("-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


WRITER = """
import sys
from session_db.sync.state_manager import StateManager
manager = StateManager(sys.argv[1])
manager.load()
n = 0
print("ready", flush=True)
while True:
    n += 1
    manager._state["description"] = str(n) * 200_000  # about a megabyte per save
    manager._state["generation"] = n
    manager.save()
"""


@pytest.mark.slow
def test_a_writer_killed_mid_save_leaves_a_whole_file(folder: Path, tmp_path: Path) -> None:
    StateManager.create(folder, topic="Demo")
    seen: set[int] = set()
    for attempt in range(12):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(0.05 + 0.037 * attempt)  # land the kill at varied points of a save
        child.send_signal(signal.SIGKILL)
        child.wait()
        state = json.loads((folder / "state.json").read_text())  # never torn
        assert parse_state(state).session_id == folder.name
        generation = state.get("generation", 0)
        assert state.get("description", "") in ("", None, str(generation) * 200_000)
        seen.add(generation)
    assert len(seen) > 1, "the writer never completed a save: the test proved nothing"
