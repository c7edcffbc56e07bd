"""Session folders as the seeds' system really writes them, synced on both engines.

Every fixture here is written by hand from the shapes REFERENCE.md §1 records (never by
our own writers): version 1 and 2 state files, version 2 files carrying version 1 keys,
plans with `task_groups` or `tranches`, and folder names of both patterns. Then the rule
"strict only where it matters": unmapped keys kept, mapped values that cannot be used
ignored with a warning, and the values no database can store refusing only their own
folder, beside a good folder that still syncs in the same batch.
"""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from session_db import crud
from session_db.database import get_async_session
from session_db.models import SyncState
from session_db.sync import SyncOutcome, sync_project

MARKER = "Session state manifest v2 - programmatic updates only"
NULL_HISTORY = {
    f"{phase}_{edge}_at": None
    for phase in ("spec", "plan", "build", "docs")
    for edge in ("started", "completed")
}

# state.json version 2, straight after creation: checkpoints_total null (the seeds'
# StateManager's default), every phase_history key present, fractional seconds, "".
V2_NEW = {
    "$schema": MARKER,
    "session_id": "2026-02-21_db-tracking_j3ehqn",
    "topic": "Database tracking",
    "description": "",
    "session_type": "full",
    "created_at": "2026-02-21T17:30:28.566903+00:00",
    "updated_at": "2026-02-21T17:30:28.566903+00:00",
    "current_phase": "spec",
    "status": "active",
    "phase_history": {**NULL_HISTORY, "spec_started_at": "2026-02-21T17:30:28.566903+00:00"},
    "build_progress": {
        "checkpoints_total": None,
        "checkpoints_completed": [],
        "current_checkpoint": None,
    },
    "git": {"branch": None, "worktree": None, "base_branch": None},
    "commits": [],
    "artifacts": {"spec": "spec.md", "plan": "plan.json", "plan_readable": "plan.md"},
}

# Version 2 in the build: an integer total, a current checkpoint, whole seconds.
V2_BUILDING = {
    **V2_NEW,
    "session_id": "2026-02-17_search_k2m9qx",
    "topic": "Search",
    "description": "Full-text search over sessions",
    "created_at": "2026-02-17T23:04:35+00:00",
    "updated_at": "2026-02-18T09:12:00+00:00",
    "current_phase": "build",
    "phase_history": {
        **NULL_HISTORY,
        "spec_started_at": "2026-02-17T23:04:35+00:00",
        "spec_completed_at": "2026-02-18T08:00:00+00:00",
        "plan_started_at": "2026-02-18T08:00:00+00:00",
        "plan_completed_at": "2026-02-18T08:30:00+00:00",
        "build_started_at": "2026-02-18T08:30:00+00:00",
    },
    "build_progress": {
        "checkpoints_total": 5,
        "checkpoints_completed": [1, 2],
        "current_checkpoint": 3,
    },
    "git": {"branch": "feat/search", "worktree": "/work/trees/search", "base_branch": "main"},
    "commits": [
        {
            "sha": "3f2a9c1",
            "message": "index",
            "checkpoint": 1,
            "created_at": "2026-02-18T10:00:00+00:00",
        }
    ],
}

# Version 2 carrying version 1 keys, and without status, session_type, phase_history,
# git or artifacts; description null.
V2_WITH_V1_KEYS = {
    "$schema": MARKER,
    "session_id": "2026-02-16_sync-design_a1b2c3",
    "topic": "Sync design",
    "description": None,
    "created_at": "2026-02-16T10:00:00+00:00",
    "updated_at": "2026-02-16T12:00:00.5+00:00",
    "current_phase": "plan",
    "build_progress": {
        "checkpoints_total": None,
        "checkpoints_completed": [],
        "current_checkpoint": None,
    },
    "goals": {"high_level": ["mirror the folders"], "mid_level": ["one-way sync"]},
    "granularity": "feature",
    "key_decisions": [
        {"title": "Files are the truth", "rationale": "portable", "date": "2026-02-16"}
    ],
    "open_questions": ["What if a sync fails?"],
    "prior_session": "research_sync_20260214_101500",
    "plan_state": {"approved": False},
    "commits": [],
}

# Version 1: per-phase records, goals as an object (some levels missing), lists of
# objects, and a folder name of the other pattern.
V1_RESEARCH = {
    "session_id": "research_sync_20260214_101500",
    "topic": "How do others sync?",
    "description": "A look around",
    "created_at": "2026-02-14T10:15:00Z",
    "updated_at": "2026-02-14T18:00:00Z",
    "phases": {
        "spec": {
            "status": "finalized",
            "started_at": "2026-02-14T10:15:00Z",
            "finalized_at": "2026-02-14T12:00:00Z",
        },
        "plan": {
            "status": "completed",
            "started_at": "2026-02-14T12:00:00Z",
            "completed_at": "2026-02-14T13:00:00Z",
        },
        "build": {"status": "in_progress", "started_at": "2026-02-14T13:00:00Z"},
    },
    "goals": {"high_level": ["know the options"], "detailed": []},
    "key_decisions": [{"title": "Read, do not write", "rationale": "safe", "date": "2026-02-14"}],
    "open_questions": ["Is polling enough?"],
    "plan_state": {"checkpoints": 1},
    "parent_session": "2026-02-13_umbrella_zz9zz9",
    "prior_session": None,
    "commits": [{"sha": "abc1234", "message": "notes", "date": "2026-02-14"}],
    "doc_updates": [{"file": "README.md", "summary": "sync"}],
    "research_artifacts": [{"path": "research/survey.md"}],
}
V1_GOALS_NULL = {
    "session_id": "2026-01-30_old-thing_q1w2e3",
    "topic": "Old thing",
    "phases": {
        name: {"status": "complete", "completed_at": "2026-01-31T00:00:00+00:00"}
        for name in ("spec", "plan", "build", "docs")
    },
    "goals": None,
    "plan_state": None,
    "parent_session": None,
}
V1_NO_GOALS = {
    "session_id": "2026-01-29_tiny_r4t5y6",
    "topic": "Tiny",
    "phases": {"spec": {"status": "in_progress", "started_at": "2026-01-29T08:00:00Z"}},
}

# plan.json with task_groups and an actions list.
PLAN_GROUPS = {
    "$schema": "plan v2",
    "session_id": "2026-02-17_search_k2m9qx",
    "status": "approved",
    "spec_reference": "spec.md",
    "created_at": "2026-02-18T08:00:00+00:00",
    "updated_at": "2026-02-18T08:30:00+00:00",
    "checkpoints": [
        {
            "id": 1,
            "title": "Index",
            "goal": "an index exists",
            "prerequisites": [],
            "status": "complete",
            "file_context": ["src/index.py"],
            "testing_strategy": "unit tests",
            "task_groups": [
                {
                    "id": "1.1",
                    "title": "Schema",
                    "objective": "tables for the index",
                    "status": "complete",
                    "tasks": [
                        {
                            "id": "1.1.1",
                            "title": "Create the table",
                            "description": "d",
                            "file_path": "src/index.py",
                            "status": "complete",
                            "depends_on": [],
                            "context": {"why": "storage"},
                            "actions": ["write", "test"],
                        },
                        {
                            "id": "1.1.2",
                            "title": "Fill it",
                            "status": "pending",
                            "depends_on": ["1.1.1"],
                            "actions": [],
                        },
                    ],
                }
            ],
        }
    ],
}

# An older plan.json: groups under tranches (id, goal, tasks), action text, subtasks.
PLAN_TRANCHES = {
    "session_id": "research_sync_20260214_101500",
    "status": "draft",
    "checkpoints": [
        {
            "id": 1,
            "title": "Survey",
            "goal": "know the tools",
            "tranches": [
                {
                    "id": "1.1",
                    "goal": "read their docs",
                    "tasks": [
                        {
                            "id": "1.1.1",
                            "title": "Read",
                            "status": "in_progress",
                            "action": "read the docs of three tools",
                            "subtasks": [{"id": "1.1.1.1", "title": "first tool"}, "second tool"],
                        }
                    ],
                }
            ],
        }
    ],
}


def write(root: Path, folder: str, state: Any, plan: Any = None) -> Path:
    path = root / "agents" / "sessions" / folder
    path.mkdir(parents=True, exist_ok=True)
    for name, content in (("state.json", state), ("plan.json", plan)):
        if content is not None:
            data = content if isinstance(content, bytes) else json.dumps(content, indent=2).encode()
            (path / name).write_bytes(data)
    return path


@pytest.fixture
def seeds_project(tmp_path: Path) -> Path:
    root = tmp_path / "seeds-system"
    write(root, V2_NEW["session_id"], V2_NEW)
    write(root, V2_BUILDING["session_id"], V2_BUILDING, PLAN_GROUPS)
    write(root, V2_WITH_V1_KEYS["session_id"], V2_WITH_V1_KEYS)
    write(root, V1_RESEARCH["session_id"], V1_RESEARCH, PLAN_TRANCHES)
    write(root, V1_GOALS_NULL["session_id"], V1_GOALS_NULL)
    write(root, V1_NO_GOALS["session_id"], V1_NO_GOALS)
    return root


async def test_every_shape_of_the_seeds_folders_syncs_without_a_warning(
    engine: AsyncEngine, seeds_project: Path
) -> None:
    report = await sync_project(seeds_project, engine=engine)
    assert report.counts["synchronized"] == 6, [
        (r.session_dir.name, r.message) for r in report.results
    ]
    assert report.problems == [] and report.warnings == []
    async with get_async_session(engine) as db:
        sessions = {s.session_slug: s for s in await crud.list_sessions(db, limit=100)}
        states = (await db.exec(select(SyncState))).all()
    assert {s.sync_status for s in states} == {"synchronized"} and all(
        s.warnings == [] for s in states
    )

    new = sessions[V2_NEW["session_id"]]
    assert (new.phase, new.status, new.checkpoints_total, new.description) == (
        "spec",
        "active",
        0,
        "",
    )
    assert new.started_at == datetime(2026, 2, 21, 17, 30, 28, 566903, tzinfo=UTC)
    assert new.session_metadata["state"] == V2_NEW  # every key, every null, as it is

    building = sessions[V2_BUILDING["session_id"]]
    assert (building.phase, building.checkpoints_total, building.checkpoints_completed) == (
        "build",
        5,
        2,
    )
    assert building.started_at == datetime(2026, 2, 17, 23, 4, 35, tzinfo=UTC)
    assert building.working_dir == "/work/trees/search"

    carried = sessions[V2_WITH_V1_KEYS["session_id"]]
    assert (carried.phase, carried.status, carried.session_type, carried.description) == (
        "plan",
        "active",
        None,
        None,
    )
    assert carried.session_metadata["state"]["goals"] == V2_WITH_V1_KEYS["goals"]
    assert carried.session_metadata["sync"]["state_version"] == 2

    research = sessions[V1_RESEARCH["session_id"]]
    assert (research.phase, research.status, research.title) == (
        "build",
        "active",
        "How do others sync?",
    )
    assert research.session_metadata["sync"]["state_version"] == 1
    assert research.session_metadata["state"] == V1_RESEARCH
    done = sessions[V1_GOALS_NULL["session_id"]]
    assert (done.phase, done.status, done.completed_at) == (
        "complete",
        "completed",
        datetime(2026, 1, 31, tzinfo=UTC),
    )
    assert sessions[V1_NO_GOALS["session_id"]].phase == "spec"

    async with get_async_session(engine) as db:
        # The continuation (v2 prior_session) and the parent (a v1 parent_session,
        # a placeholder until its folder syncs).
        follows = await crud.list_relationships(db, child_session_id=carried.id)
        assert [(r.parent_session_id, r.relationship_type) for r in follows] == [
            (research.id, "continuation")
        ]
        umbrella = await crud.get_session_by_slug(db, "2026-02-13_umbrella_zz9zz9")
        assert research.parent_session_id == umbrella.id and umbrella.title is None

        groups = {g.plan_ref: g for g in await crud.list_task_groups(db, building.id)}
        tasks = {t.plan_ref: t for t in await crud.list_tasks(db, building.id)}
        assert set(groups) == {"1", "1.1"} and groups["1.1"].description == "tables for the index"
        assert groups["1"].group_metadata["testing_strategy"] == "unit tests"
        assert tasks["1.1.1"].task_metadata["actions"] == ["write", "test"]
        assert [t.plan_ref for t in await crud.list_task_dependencies(db, tasks["1.1.2"].id)] == [
            "1.1.1"
        ]

        groups = {g.plan_ref: g for g in await crud.list_task_groups(db, research.id)}
        [read] = await crud.list_tasks(db, research.id)
        assert groups["1.1"].description == "read their docs"  # a tranche's goal
        assert groups["1.1"].parent_group_id == groups["1"].id
        assert (read.plan_ref, read.status) == ("1.1.1", "in_progress")
        assert read.task_metadata["action"] == "read the docs of three tools"
        assert (
            read.task_metadata["subtasks"]
            == PLAN_TRANCHES["checkpoints"][0]["tranches"][0]["tasks"][0]["subtasks"]
        )


async def test_a_value_the_sync_cannot_use_is_a_warning_and_the_rest_of_the_folder_syncs(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    folder = write(root, "odd", V2_BUILDING, PLAN_GROUPS)
    await sync_project(root, engine=engine)
    odd_state = {
        **V2_BUILDING,
        "topic": "Renamed",
        "current_phase": "shipping",
        "build_progress": {"checkpoints_total": "many", "checkpoints_completed": [1, 2, 3]},
    }
    write(
        root, "odd", odd_state, {**PLAN_GROUPS, "checkpoints": {"1": PLAN_GROUPS["checkpoints"][0]}}
    )
    report = await sync_project(root, engine=engine)
    [result] = report.results
    assert result.outcome == SyncOutcome.SYNCHRONIZED and report.problems == []
    assert [w.split(":")[:2] for w in result.warnings] == [
        ["state.json", " current_phase"],
        ["state.json", " build_progress.checkpoints_total"],
        ["plan.json", " checkpoints"],
    ]
    assert "(got 'shipping'); the value is ignored" in result.warnings[0]
    async with get_async_session(engine) as db:
        odd = await crud.get_session_by_slug(db, "odd")
        state = (await db.exec(select(SyncState))).one()
        tasks = await crud.list_tasks(db, odd.id)
    assert (odd.title, odd.checkpoints_completed) == ("Renamed", 3)  # the rest synced
    assert odd.phase == "build"  # an unusable phase reads as if absent: from the history
    assert odd.checkpoints_total == 3  # no usable total: the completed ids are the floor
    assert odd.session_metadata["state"] == odd_state  # the file as it is
    assert len(tasks) == 2  # checkpoints it cannot read leave the plan's rows as they were
    assert (state.sync_status, state.warnings) == ("synchronized", list(result.warnings))

    again = await sync_project(root, engine=engine)  # unchanged: still reported
    assert [(r.outcome, r.warnings) for r in again.results] == [
        (SyncOutcome.UNCHANGED, result.warnings)
    ]
    write(root, "odd", V2_BUILDING, PLAN_GROUPS)  # fixed
    fixed = await sync_project(root, engine=engine)
    assert fixed.warnings == [] and fixed.results[0].outcome == SyncOutcome.SYNCHRONIZED
    async with get_async_session(engine) as db:
        assert (await db.exec(select(SyncState))).one().warnings == []
        odd = await crud.get_session_by_slug(db, "odd")
    assert (odd.phase, odd.checkpoints_total, odd.session_metadata["state"]) == (
        "build",
        5,
        json.loads((folder / "state.json").read_text()),
    )


def deep(levels: int) -> bytes:
    return (
        b'{"$schema": "x", "session_id": "bad", "topic": "t", "notes": '
        + b"[" * levels
        + b"]" * levels
        + b"}"
    )


UNSTORABLE = {
    "nesting-recursion": ("state.json", deep(100_000), "nested more than 256 levels deep"),
    "nesting-past-the-limit": ("state.json", deep(300), "nested more than 256 levels deep"),
    "integer-beyond-64-bits": (
        "state.json",
        b'{"$schema": "x", "session_id": "bad", "notes": {"n": 123456789012345678901234567890}}',
        "holds the integer 12345678901234567890… (30 digits), beyond the 64-bit range",
    ),
    "mapped-integer-beyond-64-bits": (
        "state.json",
        b'{"$schema": "x", "session_id": "bad", "build_progress": '
        b'{"checkpoints_total": 36893488147419103232}}',
        "holds the integer 36893488147419103232, beyond the 64-bit range",
    ),
    "infinity": (
        "state.json",
        b'{"$schema": "x", "session_id": "bad", "notes": [Infinity]}',
        "holds Infinity",
    ),
    "nan": ("state.json", b'{"$schema": "x", "session_id": "bad", "cost": NaN}', "holds NaN"),
    "plan-nan": (
        "plan.json",
        b'{"checkpoints": [{"id": 1, "weight": NaN}]}',
        "plan.json holds NaN",
    ),
    "plan-integer": (
        "plan.json",
        b'{"checkpoints": [{"id": 99999999999999999999}]}',
        "plan.json holds the integer",
    ),
    "plan-nesting": (
        "plan.json",
        b'{"checkpoints": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        "plan.json is nested",
    ),
}


@pytest.mark.parametrize(("name", "content", "reason"), UNSTORABLE.values(), ids=list(UNSTORABLE))
async def test_a_value_no_database_can_store_fails_only_its_folder(
    engine: AsyncEngine, tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    root = tmp_path / "project"
    bad = write(root, "a-bad", V2_NEW if name == "plan.json" else None)
    (bad / name).write_bytes(content)
    write(root, "b-good", V2_BUILDING, PLAN_GROUPS)  # after the bad one, in the same batch
    report = await sync_project(root, engine=engine)
    outcomes = {r.session_dir.name: (r.outcome, r.message) for r in report.results}
    assert outcomes["b-good"] == (SyncOutcome.SYNCHRONIZED, None)
    outcome, message = outcomes["a-bad"]
    assert outcome == SyncOutcome.ERROR and reason in (message or ""), message
    async with get_async_session(engine) as db:
        good = await crud.get_session_by_slug(db, "b-good")
        assert len(await crud.list_tasks(db, good.id)) == 2
        states = {Path(s.session_dir).name: s for s in (await db.exec(select(SyncState))).all()}
        slugs = {s.session_slug for s in await crud.list_sessions(db)}
    assert states["a-bad"].sync_status == "error" and reason in (
        states["a-bad"].error_message or ""
    )
    assert "a-bad" not in slugs and "bad" not in slugs


async def test_a_folder_keeps_its_first_fifty_warnings_and_counts_the_rest(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    root = tmp_path / "project"
    tasks = [{"id": f"1.1.{n}", "title": "t", "status": n} for n in range(60)]  # 60 numbers
    plan = {"checkpoints": [{"id": 1, "task_groups": [{"id": "1.1", "tasks": tasks}]}]}
    write(root, "noisy", V2_NEW, plan)
    [result] = (await sync_project(root, engine=engine)).results
    assert result.outcome == SyncOutcome.SYNCHRONIZED and len(result.warnings) == 50
    assert result.warnings[-1] == "... and 11 more warnings like these"
    async with get_async_session(engine) as db:
        assert (await db.exec(select(SyncState))).one().warnings == list(result.warnings)
        noisy = await crud.get_session_by_slug(db, "noisy")
        assert len(await crud.list_tasks(db, noisy.id, limit=100)) == 60  # all still synced
