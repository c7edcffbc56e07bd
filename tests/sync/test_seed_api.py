"""The seeds' own StateManager API, imported from session_db.sync and used as its users do.

Written from REFERENCE.md §1 (the API's names and behaviour, and the file shapes), not
from what our writers produce: the fixtures are hand-made state files, and the files both
managers write are checked against a strict model of the seeds' version 2 file. Then a
file written by either manager is read by the other, and both sync on both engines.
"""

import json
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr
from sqlalchemy.ext.asyncio import AsyncEngine
from support import run_python

from session_db import crud
from session_db.database import get_async_session
from session_db.sync import (
    Artifacts,
    BuildProgress,
    Commit,
    GitContext,
    InvalidPhaseTransitionError,
    Phase,
    PhaseHistory,
    SessionNotFoundError,
    SessionState,
    SessionStateManager,
    SessionType,
    StateManager,
    StateValidationError,
    Status,
    sync_project,
)

MARKER = "Session state manifest v2 - programmatic updates only"
PHASES = ("spec", "plan", "build", "docs")
CREATED = "2026-02-21T17:30:28.566903+00:00"


def new_state(session_id: str, **changes: object) -> dict[str, object]:
    """A state.json as the seeds' system writes one for a new session (REFERENCE.md §1)."""
    history = {f"{p}_{edge}_at": None for p in PHASES for edge in ("started", "completed")}
    return {
        "$schema": MARKER,
        "session_id": session_id,
        "topic": "Dark mode",
        "description": None,
        "session_type": "full",
        "created_at": CREATED,
        "updated_at": CREATED,
        "current_phase": "spec",
        "status": "active",
        "phase_history": {**history, "spec_started_at": CREATED},
        "build_progress": {
            "checkpoints_total": None,
            "checkpoints_completed": [],
            "current_checkpoint": None,
        },
        "git": {"branch": None, "worktree": None, "base_branch": None},
        "commits": [],
        "artifacts": {"spec": "spec.md", "plan": "plan.json", "plan_readable": "plan.md"},
        **changes,
    }


@pytest.fixture
def session_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "agents" / "sessions" / "2026-02-21_dark-mode_a1b2c3"
    folder.mkdir(parents=True)
    (folder / "state.json").write_text(json.dumps(new_state(folder.name), indent=2))
    return folder


def on_disk(folder: Path) -> dict:
    return json.loads((folder / "state.json").read_text())


# A strict model of the seeds' version 2 file, from REFERENCE.md §1: the marker text,
# every phase_history key present, integer checkpoints (null total until planned).
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SeedHistory(_Strict):
    spec_started_at: datetime | None
    spec_completed_at: datetime | None
    plan_started_at: datetime | None
    plan_completed_at: datetime | None
    build_started_at: datetime | None
    build_completed_at: datetime | None
    docs_started_at: datetime | None
    docs_completed_at: datetime | None


class SeedProgress(_Strict):
    checkpoints_total: StrictInt | None
    checkpoints_completed: list[StrictInt]
    current_checkpoint: StrictInt | None


class SeedGit(_Strict):
    branch: StrictStr | None
    worktree: StrictStr | None
    base_branch: StrictStr | None


class SeedCommit(_Strict):
    sha: StrictStr
    message: StrictStr
    checkpoint: StrictInt | None
    created_at: datetime


class SeedArtifacts(_Strict):
    spec: StrictStr
    plan: StrictStr
    plan_readable: StrictStr


class SeedFile(BaseModel):
    model_config = ConfigDict(extra="allow")  # the v1 keys some files carry ride along

    marker: Literal["Session state manifest v2 - programmatic updates only"] = Field(
        alias="$schema"
    )
    session_id: StrictStr
    topic: StrictStr
    description: StrictStr | None
    session_type: Literal["full", "quick", "research"]
    created_at: datetime
    updated_at: datetime
    current_phase: Literal["spec", "plan", "build", "docs", "complete"]
    status: Literal["active", "paused", "complete", "failed"]
    phase_history: SeedHistory
    build_progress: SeedProgress
    git: SeedGit
    commits: list[SeedCommit]
    artifacts: SeedArtifacts


# The API ---------------------------------------------------------------------------------


def test_the_enums_have_the_seeds_lower_case_members() -> None:
    assert [p.name for p in Phase] == ["spec", "plan", "build", "docs", "complete"]
    assert [s.name for s in Status] == ["active", "paused", "complete", "failed"]
    assert [t.name for t in SessionType] == ["full", "quick", "research"]
    assert Phase.plan == "plan" and Status.paused.value == "paused"


def test_load_returns_the_state_as_typed_models(session_dir: Path) -> None:
    manager = SessionStateManager(session_dir)
    state = manager.load()
    assert isinstance(state, SessionState) and manager.state is state
    assert (state.session_id, state.topic, state.description) == (
        session_dir.name,
        "Dark mode",
        None,
    )
    assert (state.current_phase, state.status, state.session_type) == (
        Phase.spec,
        Status.active,
        SessionType.full,
    )
    assert isinstance(state.phase_history, PhaseHistory)
    assert state.phase_history.spec_started_at == datetime(
        2026, 2, 21, 17, 30, 28, 566903, tzinfo=UTC
    )
    assert isinstance(state.build_progress, BuildProgress)
    assert state.build_progress.checkpoints_total is None  # until the build is planned
    assert isinstance(state.git, GitContext) and isinstance(state.artifacts, Artifacts)
    assert state.artifacts.plan_readable == "plan.md" and state.commits == []


def test_state_loads_on_first_use(session_dir: Path) -> None:
    assert SessionStateManager(session_dir).state.topic == "Dark mode"


def test_a_missing_state_json_raises_session_not_found_with_its_id_and_path(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "agents" / "sessions" / "2026-02-22_nothing_zzzzzz"
    with pytest.raises(SessionNotFoundError) as caught:
        SessionStateManager(folder).load()
    assert caught.value.session_id == "2026-02-22_nothing_zzzzzz"
    assert caught.value.path == str(folder / "state.json")


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[]",
        json.dumps(new_state("s", status="done")),
        json.dumps(new_state("s", created_at="yesterday")),
        json.dumps({k: v for k, v in new_state("s").items() if k != "topic"}),
    ],
    ids=["not-json", "not-an-object", "unknown-status", "bad-timestamp", "no-topic"],
)
def test_an_invalid_file_raises_state_validation_error(session_dir: Path, content: str) -> None:
    (session_dir / "state.json").write_text(content)
    with pytest.raises(StateValidationError):
        SessionStateManager(session_dir).load()


def test_a_changed_field_is_written_by_save_which_stamps_updated_at(session_dir: Path) -> None:
    manager = SessionStateManager(session_dir)
    manager.load()
    manager.state.description = "Toggle with system preference"
    manager.state.git.base_branch = "main"
    manager.state.build_progress.checkpoints_completed.append(7)  # in place, still checked
    before = datetime.now(UTC)
    manager.save()
    saved = on_disk(session_dir)
    assert saved["description"] == "Toggle with system preference"
    assert saved["git"]["base_branch"] == "main"
    assert saved["build_progress"]["checkpoints_completed"] == [7]
    assert datetime.fromisoformat(saved["updated_at"]) >= before
    assert saved["created_at"] == "2026-02-21T17:30:28.566903Z"  # the same instant
    assert SessionStateManager(session_dir).load().description == saved["description"]


def test_save_before_anything_was_loaded_is_refused(session_dir: Path) -> None:
    with pytest.raises(RuntimeError, match="load"):
        SessionStateManager(session_dir).save()


def test_save_calls_the_callback_after_writing_and_a_raising_one_never_breaks_it(
    session_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[Path, str]] = []

    def callback(folder: Path) -> None:
        seen.append((folder, on_disk(folder)["status"]))  # the file is already written

    manager = SessionStateManager(session_dir, on_save_callback=callback)
    manager.set_status(Status.paused)
    assert seen == [(session_dir, "paused")]

    def broken(_: Path) -> None:
        raise RuntimeError("the queue is gone")

    manager = SessionStateManager(session_dir, on_save_callback=broken)
    with caplog.at_level(logging.ERROR):
        manager.set_status("active")  # no exception
    assert on_disk(session_dir)["status"] == "active"
    assert "the queue is gone" in caplog.text


def test_phases_move_one_step_forward_stamping_the_history(session_dir: Path) -> None:
    manager = SessionStateManager(session_dir)
    manager.load()
    for wrong in (Phase.build, Phase.complete, Phase.spec, "shipping"):
        with pytest.raises(InvalidPhaseTransitionError):
            manager.transition_to_phase(wrong)
    assert on_disk(session_dir)["current_phase"] == "spec"  # nothing written
    manager.transition_to_phase(Phase.plan)
    manager.transition_to_phase("build")
    history = on_disk(session_dir)["phase_history"]
    assert history["spec_completed_at"] == history["plan_started_at"] is not None
    assert history["plan_completed_at"] == history["build_started_at"] is not None
    assert history["build_completed_at"] is None
    with pytest.raises(InvalidPhaseTransitionError) as caught:
        manager.transition_to_phase(Phase.plan)
    assert (caught.value.from_phase, caught.value.to_phase) == ("build", "plan")
    manager.transition_to_phase(Phase.docs)
    manager.transition_to_phase(Phase.complete)
    saved = on_disk(session_dir)
    assert saved["current_phase"] == "complete"
    assert saved["phase_history"]["docs_completed_at"] is not None
    with pytest.raises(InvalidPhaseTransitionError):
        manager.transition_to_phase(Phase.complete)


def test_build_progress_from_plan_to_the_last_checkpoint(session_dir: Path) -> None:
    manager = SessionStateManager(session_dir)
    manager.load()
    with pytest.raises(ValueError):
        manager.start_checkpoint(1)  # the build is not planned
    with pytest.raises(ValueError):
        manager.complete_checkpoint(1)
    for total in (0, -1):
        with pytest.raises(ValueError):
            manager.init_build_progress(total)
    manager.init_build_progress(3)
    assert on_disk(session_dir)["build_progress"] == {
        "checkpoints_total": 3,
        "checkpoints_completed": [],
        "current_checkpoint": 1,
    }
    manager.start_checkpoint(2)
    assert manager.state.build_progress.current_checkpoint == 2
    manager.complete_checkpoint(1)
    assert manager.state.build_progress.current_checkpoint == 2
    manager.complete_checkpoint(3)
    assert manager.state.build_progress.current_checkpoint is None  # after the last
    for wrong in (1, 4, 0):  # already completed; unknown
        with pytest.raises(ValueError):
            manager.complete_checkpoint(wrong)
    manager.complete_checkpoint(2)
    assert on_disk(session_dir)["build_progress"] == {
        "checkpoints_total": 3,
        "checkpoints_completed": [1, 2, 3],
        "current_checkpoint": 3,
    }


def test_commits_status_and_git(session_dir: Path) -> None:
    manager = SessionStateManager(session_dir)
    manager.add_commit("abc1234", "feat: add theme provider", checkpoint=1)
    manager.add_commit("def5678", "docs")
    manager.set_status(Status.paused)
    manager.set_status("failed")
    with pytest.raises(ValueError):
        manager.set_status("sleeping")
    manager.set_git_branch("feature/dark-mode")
    manager.set_git_worktree(session_dir.parent / "wt")
    saved = on_disk(session_dir)
    assert [(c["sha"], c["message"], c["checkpoint"]) for c in saved["commits"]] == [
        ("abc1234", "feat: add theme provider", 1),
        ("def5678", "docs", None),
    ]
    assert all(datetime.fromisoformat(c["created_at"]) for c in saved["commits"])
    assert isinstance(manager.state.commits[0], Commit)
    assert saved["status"] == "failed"
    assert saved["git"] == {
        "branch": "feature/dark-mode",
        "worktree": str(session_dir.parent / "wt"),
        "base_branch": None,
    }
    manager.set_git_worktree(None)
    assert on_disk(session_dir)["git"]["worktree"] is None


def test_an_invalid_change_is_refused_and_nothing_is_written(session_dir: Path) -> None:
    manager = SessionStateManager(session_dir)
    manager.load()
    before = (session_dir / "state.json").read_bytes()
    with pytest.raises(ValueError):
        manager.state.status = "sleeping"  # type: ignore[assignment]
    manager.state.build_progress.checkpoints_completed.append("one")  # type: ignore[arg-type]
    with pytest.raises(StateValidationError, match="checkpoints_completed"):
        manager.save()
    assert (session_dir / "state.json").read_bytes() == before


def test_keys_the_models_do_not_name_are_kept_through_a_save(session_dir: Path) -> None:
    # A version 2 file carrying version 1 keys, and lacking status, session_type,
    # phase_history, git and artifacts (REFERENCE.md §1).
    carried = {
        key: value
        for key, value in new_state(session_dir.name).items()
        if key not in {"status", "session_type", "phase_history", "git", "artifacts"}
    }
    v1_keys = {
        "goals": {"high_level": ["dark mode"], "mid_level": []},
        "granularity": "feature",
        "key_decisions": [{"title": "CSS variables", "rationale": "runtime", "date": "2026-02-21"}],
        "open_questions": ["per device?"],
        "prior_session": "2026-02-20_theme_q1w2e3",
        "plan_state": None,
    }
    (session_dir / "state.json").write_text(json.dumps({**carried, **v1_keys}))
    manager = SessionStateManager(session_dir)
    assert manager.load().status == Status.active
    manager.transition_to_phase(Phase.plan)
    saved = on_disk(session_dir)
    assert {key: saved[key] for key in v1_keys} == v1_keys
    assert SeedFile.model_validate(saved).current_phase == "plan"  # now a whole v2 file


def test_a_version_1_file_is_read_as_version_2(session_dir: Path) -> None:
    (session_dir / "state.json").write_text(
        json.dumps(
            {
                "session_id": session_dir.name,
                "topic": "Old",
                "created_at": "2026-01-02T00:00:00Z",
                "phases": {"spec": {"status": "finalized", "finalized_at": "2026-01-03T00:00:00Z"}},
                "goals": None,
            }
        )
    )
    manager = SessionStateManager(session_dir)
    state = manager.load()
    assert (state.current_phase, state.phase_history.spec_completed_at) == (
        Phase.plan,
        datetime(2026, 1, 3, tzinfo=UTC),
    )
    manager.transition_to_phase(Phase.build)
    saved = SeedFile.model_validate(on_disk(session_dir))
    assert saved.current_phase == "build" and saved.model_extra == {
        "phases": {"spec": {"status": "finalized", "finalized_at": "2026-01-03T00:00:00Z"}},
        "goals": None,
    }


def test_a_null_session_type_reads_as_absent_in_both_managers(session_dir: Path) -> None:
    # Files an earlier StateManager upgraded from version 1 hold "session_type": null.
    (session_dir / "state.json").write_text(json.dumps(new_state("s", session_type=None)))
    assert SessionStateManager(session_dir).load().session_type == SessionType.full
    ours = StateManager(session_dir)
    assert "session_type" not in ours.load()
    ours.set_status("paused")
    assert "session_type" not in on_disk(session_dir)


def test_concurrent_changes_from_threads_are_all_saved(session_dir: Path) -> None:
    manager = SessionStateManager(session_dir)
    manager.load()
    threads = [
        threading.Thread(target=manager.add_commit, args=(f"{n:07x}", f"commit {n}"))
        for n in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(on_disk(session_dir)["commits"]) == 20


def test_importing_the_seed_api_loads_no_database_code(tmp_path: Path) -> None:
    probe = (
        "import sys; from session_db.sync import SessionStateManager, SessionState, Phase; "
        "heavy = [m for m in ('sqlalchemy', 'sqlmodel', 'session_db.models', "
        "'session_db.database') if m in sys.modules]; print(heavy)"
    )
    result = run_python("-c", probe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# Either manager's file, read by the other and by the seeds' models ----------------------


def test_a_file_written_by_either_manager_is_read_by_the_other(tmp_path: Path) -> None:
    folder = tmp_path / "agents" / "sessions" / "2026-02-21_both_b0th00"
    StateManager.create(folder, topic="Both", session_type="quick")
    fresh = SeedFile.model_validate(on_disk(folder))
    assert fresh.build_progress.checkpoints_total is None and fresh.marker == MARKER

    seeds = SessionStateManager(folder)
    assert seeds.load().session_type == SessionType.quick
    seeds.transition_to_phase(Phase.plan)
    seeds.transition_to_phase(Phase.build)
    seeds.init_build_progress(2)
    SeedFile.model_validate(on_disk(folder))

    ours = StateManager(folder)
    assert ours.load()["build_progress"]["current_checkpoint"] == 1
    ours.complete_checkpoint(1)
    ours.record_commit("abc1234", "first", checkpoint=1)
    ours.set_git(branch="feat/both", worktree="/wt")
    SeedFile.model_validate(on_disk(folder))

    again = SessionStateManager(folder).load()
    assert again.build_progress.checkpoints_completed == [1]
    assert (again.commits[0].sha, again.commits[0].checkpoint) == ("abc1234", 1)
    assert again.git.branch == "feat/both" and again.current_phase == Phase.build
    SessionStateManager(folder).complete_checkpoint(2)
    final = SeedFile.model_validate(on_disk(folder))
    assert (final.build_progress.checkpoints_completed, final.phase_history.build_started_at) == (
        [1, 2],
        again.phase_history.build_started_at,
    )
    assert StateManager(folder).load()["build_progress"]["checkpoints_completed"] == [1, 2]


async def test_folders_either_manager_wrote_sync_without_a_warning(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    sessions = root / "agents" / "sessions"
    StateManager.create(sessions / "ours", topic="Ours")
    (sessions / "seeds").mkdir()
    (sessions / "seeds" / "state.json").write_text(json.dumps(new_state("seeds")))
    seeds = SessionStateManager(sessions / "seeds")
    seeds.transition_to_phase(Phase.plan)
    seeds.transition_to_phase(Phase.build)
    seeds.init_build_progress(4)
    seeds.complete_checkpoint(1)
    seeds.add_commit("abc1234", "first", checkpoint=1)
    seeds.set_status(Status.paused)
    report = await sync_project(root, engine=engine)
    assert report.counts["synchronized"] == 2 and not report.problems and not report.warnings
    async with get_async_session(engine) as db:
        mirrored = await crud.get_session_by_slug(db, "seeds")
        plain = await crud.get_session_by_slug(db, "ours")
    assert (mirrored.phase, mirrored.status) == ("build", "paused")
    assert (mirrored.checkpoints_total, mirrored.checkpoints_completed) == (4, 1)
    assert (plain.phase, plain.checkpoints_total) == ("spec", 0)  # null: not planned yet
