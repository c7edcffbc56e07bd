"""The one-way sync, on both engines: folders in, rows out, and every way a folder breaks."""

import asyncio
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from faults import Saboteur, faulty_engine
from sqlalchemy import select as core_select
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession
from support import isolated_settings
from sync_support import PLAN, write_plan

from session_db import crud
from session_db.database import create_engine, get_async_session
from session_db.errors import ConflictError, InvalidInputError, NotFoundError, PathEscapeError
from session_db.models import (
    Agent,
    AgentLog,
    Project,
    Session,
    SessionRelationship,
    SyncState,
    Task,
    TaskDependency,
    TaskGroup,
    metadata,
)
from session_db.sync import StateManager, SyncOutcome, sync_project, sync_session


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project with a parent in build (plan, agent), its child, and a v1 predecessor."""
    root = tmp_path / "project"
    sessions = root / "agents" / "sessions"
    parent = StateManager.create(sessions / "parent", topic="Parent work", prior_session="old")
    parent.transition_to("plan")
    parent.transition_to("build")
    parent.set_checkpoints_total(2)
    parent.start_checkpoint(1)
    parent.complete_checkpoint(1)
    parent.record_agent("build", sdk_session_id="sdk-build-1", model="claude-sonnet-4-5")
    write_plan(sessions / "parent", PLAN)
    StateManager.create(sessions / "child", topic="Child", parent_session="parent")
    (sessions / "old").mkdir()
    (sessions / "old" / "state.json").write_text(
        json.dumps(
            {
                "session_id": "old",
                "topic": "Legacy",
                "phases": {
                    "spec": {"status": "finalized", "finalized_at": "2026-01-02T00:00:00Z"},
                    "plan": {"status": "finalized", "completed_at": "2026-01-03T00:00:00+00:00"},
                    "build": {"started_at": None},
                },
                "key_decisions": ["keep the files"],
            }
        )
    )
    return root


async def rows(engine: AsyncEngine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, without the columns a re-sync may legitimately touch."""
    volatile = {"updated_at", "last_attempted_at", "last_synced_at"}
    snapshot = {}
    async with engine.connect() as connection:
        for table in metadata.sorted_tables:
            result = await connection.execute(core_select(table))
            snapshot[table.name] = sorted(
                ({k: v for k, v in row._mapping.items() if k not in volatile} for row in result),
                key=repr,
            )
    return snapshot


async def by_slug(db: AsyncSession, slug: str) -> Session:
    return await crud.get_session_by_slug(db, slug)


@pytest.fixture
async def synced(engine: AsyncEngine, project: Path) -> AsyncEngine:
    """The engine, after one sync of the three-folder project."""
    report = await sync_project(project, engine=engine)
    assert report.counts["synchronized"] == 3 and not report.problems
    return engine


async def test_a_project_sync_reports_progress_folder_by_folder(
    engine: AsyncEngine, project: Path
) -> None:
    progress: list[tuple[str, int, int]] = []
    report = await sync_project(
        project,
        engine=engine,
        on_progress=lambda r, done, total: progress.append((r.session_dir.name, done, total)),
    )
    assert report.counts["synchronized"] == 3 and not report.problems
    assert progress == [("child", 1, 3), ("old", 2, 3), ("parent", 3, 3)]


async def test_a_project_sync_mirrors_each_sessions_state(
    synced: AsyncEngine, project: Path
) -> None:
    async with get_async_session(synced, read_only=True) as db:
        project_row = (await db.exec(select(Project))).one()
        parent = await by_slug(db, "parent")
        old = await by_slug(db, "old")
    assert project_row.root_path == str(project.resolve())
    assert (parent.title, parent.phase, parent.status) == ("Parent work", "build", "active")
    assert parent.project_id == project_row.id and parent.session_type == "full"
    assert (parent.checkpoints_total, parent.checkpoints_completed) == (2, 1)
    assert (parent.total_tasks, parent.completed_tasks) == (3, 1)
    assert parent.session_metadata["state"]["artifacts"]["spec"] == "spec.md"
    assert parent.session_metadata["sync"]["state_version"] == 2
    assert (old.phase, old.session_type) == ("build", None)
    assert old.session_metadata["state"]["key_decisions"] == ["keep the files"]


async def test_a_project_sync_links_children_and_continuations(synced: AsyncEngine) -> None:
    async with get_async_session(synced, read_only=True) as db:
        parent = await by_slug(db, "parent")
        old = await by_slug(db, "old")
        child = await by_slug(db, "child")
        children = await crud.list_children(db, parent.id)
        continuation = await crud.list_relationships(db, child_session_id=parent.id)
    assert child.parent_session_id == parent.id
    assert [c.session.session_slug for c in children] == ["child"]
    assert [(r.parent_session_id, r.relationship_type) for r in continuation] == [
        (old.id, "continuation")
    ]


async def test_a_project_sync_mirrors_the_plan_with_readiness(synced: AsyncEngine) -> None:
    async with get_async_session(synced, read_only=True) as db:
        parent = await by_slug(db, "parent")
        groups = {g.plan_ref: g for g in await crud.list_task_groups(db, parent.id)}
        tasks = {t.plan_ref: t for t in await crud.list_tasks(db, parent.id)}
        ready = [t.plan_ref for t in await crud.list_ready_tasks(db, parent.id)]
    assert set(groups) == {"1", "1.1", "2", "2.1"}
    assert groups["1.1"].parent_group_id == groups["1"].id
    assert groups["1.1"].group_name == "1.1 Schema"
    assert (groups["1"].total_tasks, groups["1"].completed_tasks) == (2, 1)
    assert tasks["1.1.1"].status == "completed"
    assert tasks["2.1.1"].status == "pending"  # an unknown word reads as pending...
    assert tasks["2.1.1"].task_metadata["status"] == "wip"  # ...and is kept
    assert tasks["1.1.2"].task_metadata["file_path"] == "migrations/0001.py"
    assert ready == ["1.1.2"]


async def test_a_project_sync_records_agents_and_each_folders_sync_state(
    synced: AsyncEngine,
) -> None:
    async with get_async_session(synced, read_only=True) as db:
        parent = await by_slug(db, "parent")
        agents = await crud.list_agents(db, session_id=parent.id)
        states = (await db.exec(select(SyncState).order_by(SyncState.session_dir))).all()
    assert [(a.agent_type, a.sdk_session_id, a.model) for a in agents] == [
        ("build", "sdk-build-1", "claude-sonnet-4-5")
    ]
    assert [(Path(s.session_dir).name, s.sync_status) for s in states] == [
        ("child", "synchronized"),
        ("old", "synchronized"),
        ("parent", "synchronized"),
    ]
    assert all(len(s.content_hash or "") == 64 and s.last_synced_at for s in states)


async def test_syncing_again_changes_nothing(engine: AsyncEngine, project: Path) -> None:
    await sync_project(project, engine=engine)
    before = await rows(engine)
    again = await sync_project(project, engine=engine)
    assert again.counts["unchanged"] == 3
    assert await rows(engine) == before
    forced = await sync_project(project, engine=engine, force=True)
    assert forced.counts["synchronized"] == 3
    assert await rows(engine) == before


async def test_unchanged_files_are_not_read_and_touched_files_are_hashed(
    engine: AsyncEngine, project: Path
) -> None:
    await sync_project(project, engine=engine)
    state_file = project / "agents/sessions/child/state.json"
    stat = state_file.stat()
    # Same size and modification time: the sync trusts the fingerprint and does not read.
    text = state_file.read_text()
    state_file.write_text(text.replace('"Child"', '"Chold"'))
    os.utime(state_file, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    report = await sync_project(project, engine=engine)
    assert report.counts["unchanged"] == 3
    async with get_async_session(engine) as db:
        assert (await by_slug(db, "child")).title == "Child"
    # Touched with the same bytes: read, hashed, found equal, not mirrored again.
    state_file.write_text(text)
    before = await rows(engine)
    async with get_async_session(engine) as db:
        result = await sync_session(db, project, "child")
    assert result.outcome == SyncOutcome.UNCHANGED
    after = await rows(engine)
    fingerprints = [s["file_fingerprint"] for s in after["sync_states"]]
    assert after["sessions"] == before["sessions"]
    assert fingerprints != [s["file_fingerprint"] for s in before["sync_states"]]


async def test_plan_edits_are_mirrored_and_rows_without_a_plan_id_are_kept(
    engine: AsyncEngine, project: Path
) -> None:
    await sync_project(project, engine=engine)
    async with get_async_session(engine) as db:
        parent = await by_slug(db, "parent")
        manual = await crud.create_task(db, {"session_id": parent.id, "title": "by hand"})
        first_ids = {t.plan_ref: t.id for t in await crud.list_tasks(db, parent.id)}
    plan = json.loads(json.dumps(PLAN))
    plan["checkpoints"].pop()  # checkpoint 2 and its task go
    tasks = plan["checkpoints"][0]["task_groups"][0]["tasks"]
    tasks[1]["depends_on"] = []
    tasks[1]["status"] = "done"
    plan["checkpoints"][0]["task_groups"][0]["title"] = "Models"
    write_plan(project / "agents/sessions/parent", plan)
    async with get_async_session(engine) as db:
        result = await sync_session(db, project, "parent")
    assert result.outcome == SyncOutcome.SYNCHRONIZED
    async with get_async_session(engine) as db:
        parent = await by_slug(db, "parent")
        tasks = {t.plan_ref: t for t in await crud.list_tasks(db, parent.id)}
        assert set(tasks) == {"1.1.1", "1.1.2", None}
        assert tasks["1.1.1"].id == first_ids["1.1.1"]  # updated in place, not replaced
        assert tasks[None].id == manual.id
        assert tasks["1.1.2"].status == "completed"
        assert await crud.list_task_dependencies(db, tasks["1.1.2"].id) == []
        groups = {g.plan_ref: g for g in await crud.list_task_groups(db, parent.id)}
        assert set(groups) == {"1", "1.1"} and groups["1.1"].group_name == "1.1 Models"
        assert (parent.total_tasks, parent.completed_tasks) == (3, 2)
    (project / "agents/sessions/parent/plan.json").unlink()
    async with get_async_session(engine) as db:
        await sync_session(db, project, "parent")
    async with get_async_session(engine) as db:
        parent = await by_slug(db, "parent")
        assert [t.id for t in await crud.list_tasks(db, parent.id)] == [manual.id]
        assert await crud.list_task_groups(db, parent.id) == []


BAD_FILES = {
    "malformed": (
        "state.json",
        '{"$schema": "x", "session_id": "parent",,}',
        "error",
        "not valid JSON",
    ),
    "truncated": ("state.json", None, "error", "not valid JSON"),
    "no-identity": ("state.json", {"session_id": "  "}, "error", "no usable identity"),
    "not-an-object": ("state.json", "[1, 2]", "unrecognised", "holds a JSON list"),
    "foreign": (
        "state.json",
        '{"name": "eslint-config", "rules": {}}',
        "unrecognised",
        "not a session state",
    ),
    "plan-not-an-object": ("plan.json", '"a plan"', "error", "not a plan object"),
    "infinity": (
        "state.json",
        '{"$schema": "x", "session_id": "p", "n": -Infinity}',
        "error",
        "-Infinity",
    ),
    "not-utf8": ("state.json", b'{"$schema": "\xff"}', "error", "not UTF-8"),
}


@pytest.mark.parametrize(
    ("name", "content", "status", "message"), BAD_FILES.values(), ids=list(BAD_FILES)
)
async def test_a_broken_file_is_recorded_and_the_last_good_rows_stay(
    engine: AsyncEngine, project: Path, name: str, content: Any, status: str, message: str
) -> None:
    await sync_project(project, engine=engine)
    good = await rows(engine)
    path = project / "agents/sessions/parent" / name
    whole = path.read_bytes()
    if content is None:
        data = whole[: len(whole) // 2]
    elif isinstance(content, dict):
        data = json.dumps({**json.loads(whole), **content}).encode()
    else:
        data = content if isinstance(content, bytes) else content.encode()
    path.write_bytes(data)
    report = await sync_project(project, engine=engine)
    assert [(r.session_dir.name, r.outcome) for r in report.problems] == [("parent", status)]
    assert message in (report.problems[0].message or "")
    after = await rows(engine)
    for table in ("sessions", "tasks", "task_groups", "task_dependencies", "agents"):
        assert after[table] == good[table], table
    async with get_async_session(engine) as db:
        state = (
            await db.exec(select(SyncState).where(SyncState.session_dir.endswith("parent")))
        ).one()
        assert (state.sync_status, message in state.error_message) == (status, True)
    # Unchanged, the broken folder is read again and still reported; repaired, it syncs.
    again = await sync_project(project, engine=engine)
    assert again.counts["unchanged"] == 2 and again.counts[status] == 1
    assert [(r.session_dir.name, r.message) for r in again.problems] == [
        ("parent", report.problems[0].message)
    ]
    path.write_bytes(whole)
    repaired = await sync_project(project, engine=engine)
    assert [r.outcome for r in repaired.results if r.session_dir.name == "parent"] == [
        SyncOutcome.UNCHANGED  # the same bytes as the last good sync: rows already match
    ]
    async with get_async_session(engine) as db:
        state = (
            await db.exec(select(SyncState).where(SyncState.session_dir.endswith("parent")))
        ).one()
        assert (state.sync_status, state.error_message) == ("synchronized", None)


async def test_a_folder_without_state_json_is_unrecognised_and_the_batch_goes_on(
    engine: AsyncEngine, project: Path
) -> None:
    (project / "agents/sessions/notes").mkdir()
    (project / "agents/sessions/notes/spec.md").write_text("# not a session")
    report = await sync_project(project, engine=engine)
    assert report.counts == {
        "synchronized": 3,
        "unchanged": 0,
        "error": 0,
        "unrecognised": 1,
        "missing": 0,
    }
    assert "has no state.json" in (report.problems[0].message or "")


async def test_a_vanished_folder_is_marked_missing_and_its_rows_and_logs_stay(
    engine: AsyncEngine, project: Path
) -> None:
    await sync_project(project, engine=engine)
    async with get_async_session(engine) as db:
        child = await by_slug(db, "child")
        await crud.create_agent_log(db, {"session_id": child.id, "event_type": "PreToolUse"})
    shutil.rmtree(project / "agents/sessions/child")
    report = await sync_project(project, engine=engine)
    assert [(r.session_dir.name, r.outcome) for r in report.results][-1] == ("child", "missing")
    async with get_async_session(engine) as db:
        assert (await by_slug(db, "child")).id == child.id
        assert len((await db.exec(select(AgentLog))).all()) == 1
        result = await sync_session(db, project, "child")
        assert result.outcome == SyncOutcome.MISSING
        with pytest.raises(NotFoundError, match="never"):
            await sync_session(db, project, "never")
    assert (await sync_project(project, engine=engine)).counts["missing"] == 0  # said once


@pytest.mark.parametrize(
    "where",
    ["../outside", "agents/sessions/../../outside", "agents/sessions/a/b", "/etc", "..", "a\\b"],
)
async def test_paths_that_escape_the_project_are_refused(
    db: AsyncSession, project: Path, where: str
) -> None:
    with pytest.raises(PathEscapeError):
        await sync_session(db, project, where)


async def test_links_out_of_the_tree_are_refused_and_recorded(
    engine: AsyncEngine, project: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    StateManager.create(outside / "stolen", topic="Not ours")
    (tmp_path / "secret.json").write_text(json.dumps({"$schema": "x", "session_id": "s"}))
    sessions = project / "agents/sessions"
    (sessions / "linked").symlink_to(outside / "stolen", target_is_directory=True)
    (sessions / "sneaky").mkdir()
    (sessions / "sneaky/state.json").symlink_to(tmp_path / "secret.json")
    (sessions / "inside").symlink_to(sessions / "child", target_is_directory=True)
    report = await sync_project(project, engine=engine)
    problems = {r.session_dir.name: r.message for r in report.problems}
    assert set(problems) == {"linked", "sneaky"}
    assert all("outside the project root" in (message or "") for message in problems.values())
    async with get_async_session(engine) as db:
        slugs = {s.session_slug for s in await crud.list_sessions(db)}
    assert "linked" not in slugs and "sneaky" not in slugs
    assert "inside" in slugs  # a link that stays inside the tree is fine


async def test_a_slug_owned_by_another_project_is_not_taken_over(
    engine: AsyncEngine, project: Path, tmp_path: Path
) -> None:
    await sync_project(project, engine=engine)
    other = tmp_path / "other"
    StateManager.create(other / "agents/sessions/child", topic="Same name, other project")
    report = await sync_project(other, engine=engine)
    assert [r.outcome for r in report.results] == [SyncOutcome.ERROR]
    assert "already belongs to another project" in (report.results[0].message or "")
    async with get_async_session(engine) as db:
        assert (await by_slug(db, "child")).title == "Child"


async def test_a_placeholder_parent_is_filled_in_when_its_folder_syncs(
    engine: AsyncEngine, project: Path
) -> None:
    async with get_async_session(engine) as db:
        await sync_session(db, project, "child")
    async with get_async_session(engine) as db:
        placeholder = await by_slug(db, "parent")
        assert placeholder.title is None
    async with get_async_session(engine) as db:
        await sync_session(db, project, "parent")
    async with get_async_session(engine) as db:
        parent = await by_slug(db, "parent")
        assert parent.id == placeholder.id and parent.title == "Parent work"
        assert parent.agent_count == 1  # the child, counted once


@pytest.mark.slow
async def test_two_syncers_of_one_project_at_once_make_no_duplicates(
    db_url: URL, engine: AsyncEngine, project: Path
) -> None:
    sessions = project / "agents/sessions"
    for n in range(20):
        manager = StateManager.create(
            sessions / f"extra-{n:02}", topic=f"Extra {n}", parent_session="parent"
        )
        write_plan(manager.session_dir, PLAN)
    second = create_engine(isolated_settings(), url=db_url)
    try:
        reports = await asyncio.gather(
            sync_project(project, engine=engine, force=True),
            sync_project(project, engine=second, force=True),
            sync_project(project, engine=second),
        )
    finally:
        await second.dispose()
    assert all(not report.problems for report in reports)
    async with get_async_session(engine) as db:
        count = {
            table.__tablename__: len((await db.exec(select(table))).all())
            for table in (
                Session,
                Task,
                TaskGroup,
                TaskDependency,
                SessionRelationship,
                Agent,
                SyncState,
                Project,
            )
        }
        parent = await by_slug(db, "parent")
    assert count == {
        "sessions": 23,
        "tasks": 63,
        "task_groups": 84,
        "task_dependencies": 42,
        "session_relationships": 22,
        "agents": 1,
        "sync_states": 23,
        "projects": 1,
    }
    assert parent.agent_count == 21


async def test_a_missing_project_root_is_not_found_not_a_database_outage(
    db: AsyncSession, tmp_path: Path
) -> None:
    with pytest.raises(NotFoundError, match="does not exist"):
        await sync_session(db, tmp_path / "no-such-project", "child")


async def test_other_writers_metadata_and_hand_made_dependencies_survive_a_sync(
    engine: AsyncEngine, project: Path
) -> None:
    await sync_project(project, engine=engine)
    async with get_async_session(engine) as db:
        parent = await by_slug(db, "parent")
        metadata = {**parent.session_metadata, "hooks": {"cwd": "/x"}, "note": "kept"}
        metadata["state"] = {"stale": True}  # the sync's own key: replaced whole
        await crud.update_session(db, parent.id, {"session_metadata": metadata})
        plan_tasks = {t.plan_ref: t.id for t in await crud.list_tasks(db, parent.id)}
        manual = await crud.create_task(db, {"session_id": parent.id, "title": "by hand"})
        await crud.add_task_dependency(db, plan_tasks["2.1.1"], manual.id)
        await crud.add_task_dependency(db, manual.id, plan_tasks["1.1.1"])
    report = await sync_project(project, engine=engine, force=True)
    assert report.counts["synchronized"] == 3
    async with get_async_session(engine) as db:
        parent = await by_slug(db, "parent")
        kept = parent.session_metadata
        assert (kept["hooks"], kept["note"]) == ({"cwd": "/x"}, "kept")
        assert "stale" not in kept["state"] and kept["state"]["topic"] == "Parent work"
        waits = await crud.list_task_dependencies(db, plan_tasks["2.1.1"])
        assert {task.plan_ref for task in waits} == {"1.1.2", None}  # the plan's and ours
        waits = await crud.list_task_dependencies(db, manual.id)
        assert [task.id for task in waits] == [plan_tasks["1.1.1"]]


async def test_a_permanent_fault_outside_the_mirror_sets_aside_only_its_folder(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    root = tmp_path
    while len(str(root)) < 900:  # folder paths near sync_states' 1,024 characters
        root = root / ("d" * min(200, 901 - len(str(root))))
    sessions = root / "agents/sessions"
    StateManager.create(sessions / "short", topic="Fits")
    StateManager.create(sessions / f"long-{'x' * 120}", topic="Too long a path")
    report = await sync_project(root, engine=engine)
    outcomes = sorted((r.session_dir.name[:5], r.outcome) for r in report.results)
    assert outcomes == [("long-", SyncOutcome.ERROR), ("short", SyncOutcome.SYNCHRONIZED)]
    assert "session_dir: must be at most 1024 characters" in (report.problems[0].message or "")
    async with get_async_session(engine) as db:
        # The long folder's mirror was rolled back with its savepoint; the other stays.
        assert [s.session_slug for s in await crud.list_sessions(db)] == ["short"]
        assert [Path(s.session_dir).name for s in await crud.list_sync_states(db)] == ["short"]


@pytest.mark.slow
async def test_faults_mid_sync_retry_their_transaction_and_every_folder_syncs_once(
    db_url: URL, engine: AsyncEngine, project: Path
) -> None:
    sessions = project / "agents/sessions"
    StateManager.create(sessions / "doomed", topic="Doomed")
    await sync_project(project, engine=engine)
    shutil.rmtree(sessions / "doomed")  # known, and now gone: to be marked missing
    for n in range(21):
        manager = StateManager.create(sessions / f"extra-{n:02}", topic=f"Extra {n}")
        write_plan(manager.session_dir, PLAN)
    faulty = faulty_engine(db_url)
    if db_url.get_backend_name() == "sqlite":
        breaks: dict[int, int | str] = {1: 1, 3: 1, 5: 1, 9: 1}
    else:
        # The fingerprint read at its first statement; batches before their first
        # statement, mid-mirror, at commit, late, and by a lock timeout on a live
        # connection; the missing mark at its first statement.
        breaks = {1: 1, 3: 1, 5: 40, 7: "commit", 9: 90, 11: "lock", 13: 1}
    saboteur = Saboteur(faulty, breaks)
    progress: list[tuple[str, int]] = []
    try:
        report = await sync_project(
            project,
            engine=faulty,
            batch_size=5,
            on_progress=lambda result, done, _: progress.append((result.session_dir.name, done)),
        )
    finally:
        saboteur.release()
        await faulty.dispose()
    assert saboteur.broken == sorted(breaks), saboteur.broken  # every fault happened
    names = [result.session_dir.name for result in report.results]
    assert sorted(names) == sorted(
        [*(f"extra-{n:02}" for n in range(21)), "child", "doomed", "old", "parent"]
    )
    assert len(names) == len(set(names)) == 25  # each folder reported once
    assert [done for _, done in progress] == list(range(1, 25))  # doomed is not progress
    assert not report.problems
    assert report.counts["missing"] == 1 and report.counts["synchronized"] == 21
    async with get_async_session(engine) as db:
        states = (await db.exec(select(SyncState))).all()
        assert {
            (s.sync_status, s.error_message) for s in states if "doomed" not in s.session_dir
        } == {("synchronized", None)}
        count = {
            table.__tablename__: len((await db.exec(select(table))).all())
            for table in (Session, Task, TaskGroup, TaskDependency, SyncState)
        }
    assert count == {
        "sessions": 25,
        "tasks": 3 + 21 * 3,
        "task_groups": 4 + 21 * 4,
        "task_dependencies": 2 + 21 * 2,
        "sync_states": 25,
    }
    again = await sync_project(project, engine=engine)
    assert again.counts["unchanged"] == 24 and again.counts["missing"] == 0


# The CRUD writes the mirror is made of ---------------------------------------------------


async def test_a_session_upsert_on_its_slug_writes_what_it_is_given(db: AsyncSession) -> None:
    mine = await crud.upsert_project(db, "/mine")
    other = await crud.upsert_project(db, "/other")
    values = {"session_slug": "s", "project_id": mine, "title": "First"}
    session_id = await crud.upsert_session_by_slug(
        db, {**values, "session_metadata": {"state": {"a": 1}, "note": "theirs"}}
    )
    await crud.update_session(db, session_id, {"description": "by hand"})
    again = await crud.upsert_session_by_slug(
        db,
        {**values, "title": "Second", "session_metadata": {"state": {"b": 2}, "label": "text"}},
    )
    db.expunge_all()
    session = await crud.get_session(db, session_id)
    assert again == session_id
    assert (session.title, session.description) == ("Second", "by hand")  # only fields given
    assert session.session_metadata == {"state": {"b": 2}, "note": "theirs", "label": "text"}
    with pytest.raises(ConflictError, match="already belongs to another project"):
        await crud.upsert_session_by_slug(db, {"session_slug": "s", "project_id": other})
    with pytest.raises(InvalidInputError, match="double quote"):
        await crud.upsert_session_by_slug(db, {**values, "session_metadata": {'a"b': 1}})
    with pytest.raises(InvalidInputError, match="phase"):
        await crud.upsert_session_by_slug(db, {**values, "phase": "testing"})
    assert [s.title for s in await crud.list_sessions(db)] == ["Second"]


async def test_agents_upserted_under_their_ids_keep_other_writers_fields(
    db: AsyncSession,
) -> None:
    session_id = await crud.ensure_session(db, "s")
    elsewhere = await crud.ensure_session(db, "t")
    build, plan = uuid.uuid4(), uuid.uuid4()
    await crud.upsert_agents(db, {build: {"session_id": session_id, "agent_type": "build"}})
    await crud.update_agent(db, build, {"input_tokens": 10, "model": "m1"})
    await crud.upsert_agents(
        db,
        {
            build: {"session_id": elsewhere, "agent_type": "build", "status": "complete"},
            plan: {"session_id": session_id, "agent_type": "plan", "model": "m2"},
        },
    )
    db.expunge_all()
    agent = await crud.get_agent(db, build)
    assert (agent.session_id, agent.status) == (session_id, "complete")  # never moves
    assert (agent.input_tokens, agent.model) == (10, "m1")  # not given: kept
    assert (await crud.get_agent(db, plan)).model == "m2"
    with pytest.raises(InvalidInputError, match="agent_type"):
        await crud.upsert_agents(db, {uuid.uuid4(): {"session_id": session_id}})


async def test_plan_rows_are_upserted_pruned_and_linked_by_plan_id(db: AsyncSession) -> None:
    session_id = await crud.ensure_session(db, "s")
    groups = await crud.upsert_plan_task_groups(
        db, session_id, [{"session_id": session_id, "plan_ref": "1", "group_name": "1 A"}]
    )
    rows = [
        {"session_id": session_id, "plan_ref": ref, "title": ref, "group_id": groups["1"]}
        for ref in ("1.1", "1.2", "1.3")
    ]
    tasks = await crud.upsert_plan_tasks(db, session_id, rows)
    assert await crud.upsert_plan_tasks(db, session_id, rows) == tasks  # updated in place
    manual = await crud.create_task(db, {"session_id": session_id, "title": "by hand"})
    await crud.add_task_dependency(db, tasks["1.1"], manual.id)
    await crud.set_plan_dependencies(
        db, tasks.values(), {(tasks["1.2"], tasks["1.1"]), (tasks["1.3"], tasks["1.1"])}
    )
    await crud.set_plan_dependencies(db, tasks.values(), {(tasks["1.3"], tasks["1.2"])})

    async def waits_for(task_id: uuid.UUID) -> set[str | None]:
        return {task.plan_ref for task in await crud.list_task_dependencies(db, task_id)}

    assert await waits_for(tasks["1.1"]) == {None}  # the hand-made edge stays
    assert await waits_for(tasks["1.2"]) == set()
    assert await waits_for(tasks["1.3"]) == {"1.2"}
    await crud.delete_plan_rows_except(db, session_id, tasks=["1.1", "1.3"], groups=[])
    await crud.refresh_session_progress(db, session_id)
    assert {t.plan_ref for t in await crud.list_tasks(db, session_id)} == {"1.1", "1.3", None}
    assert await crud.list_task_groups(db, session_id) == []
    assert (await crud.get_session(db, session_id)).total_tasks == 3

    other = await crud.ensure_session(db, "t")
    for bad, problem in (
        ({"session_id": session_id, "title": "no plan id"}, "plan_ref"),
        ({"session_id": other, "plan_ref": "9", "title": "x"}, "another session"),
        (
            {"session_id": session_id, "plan_ref": "9", "title": "x", "parent_task_id": manual.id},
            "top-level",
        ),
    ):
        with pytest.raises(InvalidInputError, match=problem):
            await crud.upsert_plan_tasks(db, session_id, [bad])
    with pytest.raises(InvalidInputError, match="outside the plan"):
        await crud.set_plan_dependencies(db, [tasks["1.1"]], {(tasks["1.1"], manual.id)})
