"""The database itself refuses bad rows: every CHECK, UNIQUE and foreign key, on both engines.

Each case starts from a complete, valid set of rows (so every constraint is shown to admit
good data), then breaks exactly one rule and expects the error to name that constraint.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.database import get_async_session
from session_db.models import (
    ActiveSession,
    Agent,
    AgentLog,
    Project,
    Session,
    SessionMode,
    SessionModeBinding,
    SessionRelationship,
    SyncState,
    Task,
    TaskDependency,
    TaskGroup,
    Thread,
    ThreadMessage,
)


@dataclass
class World:
    """Ids of one valid row in every table."""

    project: uuid.UUID
    parent: uuid.UUID
    child: uuid.UUID
    agent: uuid.UUID
    log: uuid.UUID
    relationship: uuid.UUID
    group: uuid.UUID
    task: uuid.UUID
    subtask: uuid.UUID
    thread: uuid.UUID
    message: uuid.UUID
    mode: uuid.UUID
    sync_state: uuid.UUID


@pytest.fixture
async def world(engine: AsyncEngine) -> World:
    """Insert and commit one valid row in every table."""
    project = Project(name="demo", root_path="/work/demo")
    parent = Session(session_slug="parent", project_id=project.id, started_at=datetime.now(UTC))
    child = Session(
        session_slug="child",
        project_id=project.id,
        parent_session_id=parent.id,
        session_role="subagent",
    )
    agent = Agent(session_id=parent.id, agent_type="build", status="executing")
    log = AgentLog(
        session_id=child.id,
        agent_id=agent.id,
        parent_session_id=parent.id,
        event_type="PreToolUse",
        session_depth=1,
    )
    relationship = SessionRelationship(
        parent_session_id=parent.id, child_session_id=child.id, spawn_reason="task_tool"
    )
    group = TaskGroup(session_id=parent.id, group_name="backend")
    task = Task(session_id=parent.id, group_id=group.id, title="schema")
    subtask = Task(
        session_id=parent.id,
        group_id=group.id,
        title="naming",
        parent_task_id=task.id,
        root_task_id=task.id,
        level=1,
    )
    thread = Thread(session_id=parent.id, name="design")
    message = ThreadMessage(thread_id=thread.id, role="user", content="hi", idx=0)
    mode = SessionMode(mode_name="dev", yaml_file_path="/modes/dev.yaml")
    sync_state = SyncState(
        project_id=project.id, session_id=parent.id, session_dir="/work/demo/agents/sessions/parent"
    )
    async with get_async_session(engine) as db:
        db.add(project)
        db.add_all([parent, child])
        await db.flush()
        db.add_all([agent, relationship, group, thread, mode, sync_state])
        await db.flush()
        db.add_all([log, task, message])
        await db.flush()
        db.add_all(
            [
                subtask,
                ActiveSession(session_id=parent.id),
                SessionModeBinding(session_id=parent.id, mode_id=mode.id),
            ]
        )
        await db.flush()
        db.add(TaskDependency(task_id=subtask.id, depends_on_task_id=task.id))
    return World(
        project.id,
        parent.id,
        child.id,
        agent.id,
        log.id,
        relationship.id,
        group.id,
        task.id,
        subtask.id,
        thread.id,
        message.id,
        mode.id,
        sync_state.id,
    )


async def _expect_violation(
    engine: AsyncEngine, constraint: str, sql: str, **params: object
) -> None:
    """Run `sql` and require it to fail on `constraint`, leaving nothing written."""
    with pytest.raises(IntegrityError) as caught:
        async with engine.begin() as connection:
            await connection.execute(text(sql), params)
    message = str(caught.value.orig)
    assert constraint in message or _is_sqlite_unique_on(constraint, message), message


def _is_sqlite_unique_on(constraint: str, message: str) -> bool:
    # SQLite names the columns of a failed UNIQUE/PRIMARY KEY, not the constraint.
    return message.startswith("UNIQUE constraint failed") and constraint.startswith(("uq_", "pk_"))


def _id(value: uuid.UUID, engine: AsyncEngine) -> str:
    # Uuid columns are stored as 32 hex digits on SQLite and as uuid on PostgreSQL.
    return value.hex if engine.dialect.name == "sqlite" else str(value)


CHECK_CASES = [
    ("sessions", "parent", "phase = 'shipping'", "ck_sessions_phase_valid"),
    ("sessions", "parent", "status = 'sleeping'", "ck_sessions_status_valid"),
    ("sessions", "parent", "session_type = 'huge'", "ck_sessions_session_type_valid"),
    ("sessions", "parent", "session_role = 'boss'", "ck_sessions_session_role_valid"),
    ("sessions", "parent", "priority = 0", "ck_sessions_priority_range"),
    ("sessions", "parent", "priority = 6", "ck_sessions_priority_range"),
    ("sessions", "parent", "progress_percentage = -0.5", "ck_sessions_progress_percentage_range"),
    ("sessions", "parent", "progress_percentage = 100.5", "ck_sessions_progress_percentage_range"),
    ("sessions", "parent", "agent_count = -1", "ck_sessions_agent_count_min"),
    ("sessions", "parent", "total_tokens = -1", "ck_sessions_total_tokens_min"),
    ("sessions", "parent", "total_cost = -0.01", "ck_sessions_total_cost_min"),
    ("sessions", "parent", "duration_ms = -1", "ck_sessions_duration_ms_min"),
    ("sessions", "parent", "completed_tasks = -1", "ck_sessions_completed_tasks_min"),
    (
        "sessions",
        "parent",
        "total_tasks = 1, completed_tasks = 2",
        "ck_sessions_completed_within_total",
    ),
    ("sessions", "parent", "parent_session_id = id", "ck_sessions_not_own_parent"),
    ("sessions", "parent", "checkpoints_completed = -1", "ck_sessions_checkpoints_completed_min"),
    (
        "sessions",
        "parent",
        "checkpoints_total = 1, checkpoints_completed = 2",
        "ck_sessions_checkpoints_within_total",
    ),
    ("agents", "agent", "status = 'napping'", "ck_agents_status_valid"),
    ("agents", "agent", "input_tokens = -1", "ck_agents_input_tokens_min"),
    ("agents", "agent", "output_tokens = -1", "ck_agents_output_tokens_min"),
    ("agents", "agent", "cache_creation_tokens = -1", "ck_agents_cache_creation_tokens_min"),
    ("agents", "agent", "cache_read_tokens = -1", "ck_agents_cache_read_tokens_min"),
    ("agents", "agent", "total_cost = -1", "ck_agents_total_cost_min"),
    ("agents", "agent", "checkpoint_id = -1", "ck_agents_checkpoint_id_min"),
    ("agents", "agent", "num_turns = -1", "ck_agents_num_turns_min"),
    ("agents", "agent", "duration_ms = -1", "ck_agents_duration_ms_min"),
    ("agent_logs", "log", "event_category = 'gossip'", "ck_agent_logs_event_category_valid"),
    ("agent_logs", "log", "session_depth = -1", "ck_agent_logs_session_depth_min"),
    ("agent_logs", "log", "parent_session_id = session_id", "ck_agent_logs_parent_not_self"),
    (
        "session_relationships",
        "relationship",
        "child_session_id = parent_session_id",
        "ck_session_relationships_parent_not_child",
    ),
    (
        "session_relationships",
        "relationship",
        "relationship_type = 'cousin'",
        "ck_session_relationships_relationship_type_valid",
    ),
    (
        "session_relationships",
        "relationship",
        "spawn_reason = 'boredom'",
        "ck_session_relationships_spawn_reason_valid",
    ),
    (
        "session_relationships",
        "relationship",
        "delegation_type = 'chaotic'",
        "ck_session_relationships_delegation_type_valid",
    ),
    (
        "session_relationships",
        "relationship",
        "depth_level = 0",
        "ck_session_relationships_depth_level_min",
    ),
    ("task_groups", "group", "priority = 9", "ck_task_groups_priority_range"),
    (
        "task_groups",
        "group",
        "progress_percentage = 101",
        "ck_task_groups_progress_percentage_range",
    ),
    (
        "task_groups",
        "group",
        "total_tasks = 1, completed_tasks = 3",
        "ck_task_groups_completed_within_total",
    ),
    ("task_groups", "group", "parent_group_id = id", "ck_task_groups_not_own_parent"),
    ("task_groups", "group", "group_level = -1", "ck_task_groups_group_level_min"),
    ("task_groups", "group", "estimated_effort = -1", "ck_task_groups_estimated_effort_min"),
    ("tasks", "task", "status = 'dreaming'", "ck_tasks_status_valid"),
    ("tasks", "task", "parent_task_id = id", "ck_tasks_not_own_parent"),
    ("tasks", "task", "progress_percentage = 150", "ck_tasks_progress_percentage_range"),
    ("tasks", "task", "level = -1", "ck_tasks_level_min"),
    ("tasks", "task", "estimated_effort = -2", "ck_tasks_estimated_effort_min"),
    ("tasks", "task", "actual_effort = -2", "ck_tasks_actual_effort_min"),
    ("tasks", "task", "file_operations_count = -1", "ck_tasks_file_operations_count_min"),
    ("threads", "thread", "status = 'deleted'", "ck_threads_status_valid"),
    ("thread_messages", "message", "role = 'robot'", "ck_thread_messages_role_valid"),
    ("thread_messages", "message", "idx = -1", "ck_thread_messages_idx_min"),
    ("sync_states", "sync_state", "sync_status = 'maybe'", "ck_sync_states_sync_status_valid"),
]


@pytest.mark.parametrize(
    ("table", "row", "assignment", "constraint"),
    CHECK_CASES,
    ids=[case[3] + ":" + case[2] for case in CHECK_CASES],
)
async def test_check_constraint_refuses_bad_value(
    engine: AsyncEngine, world: World, table: str, row: str, assignment: str, constraint: str
) -> None:
    row_id = _id(getattr(world, row), engine)
    await _expect_violation(
        engine, constraint, f"UPDATE {table} SET {assignment} WHERE id = :id", id=row_id
    )


async def test_session_cannot_end_before_it_starts(engine: AsyncEngine, world: World) -> None:
    async with get_async_session(engine) as db:
        parent = await db.get(Session, world.parent)
        assert parent is not None and parent.started_at is not None
        too_early = parent.started_at - timedelta(seconds=1)
    await _expect_violation(
        engine,
        "ck_sessions_ends_after_start",
        "UPDATE sessions SET ended_at = :ended WHERE id = :id",
        ended=too_early.replace(tzinfo=None) if engine.dialect.name == "sqlite" else too_early,
        id=_id(world.parent, engine),
    )


async def test_active_session_is_a_singleton(engine: AsyncEngine, world: World) -> None:
    await _expect_violation(
        engine,
        "ck_active_session_singleton",
        "INSERT INTO active_session (id, session_id, activated_at) VALUES (2, :sid, :now)",
        sid=_id(world.child, engine),
        now=datetime.now(UTC).replace(tzinfo=None),
    )
    await _expect_violation(
        engine,
        "pk_active_session",
        "INSERT INTO active_session (id, session_id, activated_at) VALUES (1, :sid, :now)",
        sid=_id(world.child, engine),
        now=datetime.now(UTC).replace(tzinfo=None),
    )


async def test_task_cannot_depend_on_itself(engine: AsyncEngine, world: World) -> None:
    await _expect_violation(
        engine,
        "ck_task_dependencies_not_self",
        "INSERT INTO task_dependencies (task_id, depends_on_task_id, created_at) "
        "VALUES (:t, :t, CURRENT_TIMESTAMP)",
        t=_id(world.task, engine),
    )


UNIQUE_CASES = [
    ("uq_sessions_session_slug", "UPDATE sessions SET session_slug = 'parent' WHERE id = :child"),
    (
        "uq_projects_root_path",
        "INSERT INTO projects (id, name, root_path, project_metadata, created_at, updated_at) "
        "VALUES (:new, 'again', '/work/demo', '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    ),
    (
        "uq_session_relationships_parent_session_id_child_session_id",
        "INSERT INTO session_relationships (id, parent_session_id, child_session_id, "
        "relationship_type, spawn_metadata, depth_level, created_at) "
        "VALUES (:new, :parent, :child, 'parent/child', '{}', 1, CURRENT_TIMESTAMP)",
    ),
    (
        "uq_thread_messages_thread_id_idx",
        "INSERT INTO thread_messages (id, thread_id, role, content, idx, created_at) "
        "VALUES (:new, :thread, 'assistant', 'again', 0, CURRENT_TIMESTAMP)",
    ),
    (
        "uq_task_groups_session_id_group_name",
        "INSERT INTO task_groups (id, session_id, group_name, group_level, position_in_session, "
        "estimated_effort, priority, total_tasks, completed_tasks, progress_percentage, "
        "created_at, updated_at) VALUES (:new, :parent, 'backend', 0, 0, 0, 3, 0, 0, 0, "
        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    ),
    (
        "uq_session_modes_yaml_file_path",
        "INSERT INTO session_modes (id, mode_name, yaml_file_path, specialist_roles, "
        "default_complexity, auto_task_routing, is_valid, created_at, updated_at) VALUES "
        "(:new, 'copy', '/modes/dev.yaml', '[]', 'moderate', false, true, CURRENT_TIMESTAMP, "
        "CURRENT_TIMESTAMP)",
    ),
    (
        "uq_sync_states_session_dir",
        "INSERT INTO sync_states (id, session_dir, sync_status, file_monitor_active, created_at, "
        "updated_at) VALUES (:new, '/work/demo/agents/sessions/parent', 'pending', true, "
        "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    ),
    (
        "pk_task_dependencies",
        "INSERT INTO task_dependencies (task_id, depends_on_task_id, created_at) "
        "VALUES (:subtask, :task, CURRENT_TIMESTAMP)",
    ),
    (
        "pk_session_mode_bindings",
        "INSERT INTO session_mode_bindings (session_id, mode_id, bound_at) "
        "VALUES (:parent, :mode, CURRENT_TIMESTAMP)",
    ),
]


@pytest.mark.parametrize(("constraint", "sql"), UNIQUE_CASES, ids=[c[0] for c in UNIQUE_CASES])
async def test_unique_constraint_refuses_duplicate(
    engine: AsyncEngine, world: World, constraint: str, sql: str
) -> None:
    params = {
        name: _id(getattr(world, name), engine)
        for name in ("parent", "child", "thread", "task", "subtask", "mode")
        if f":{name}" in sql
    }
    if ":new" in sql:
        params["new"] = _id(uuid.uuid4(), engine)
    await _expect_violation(engine, constraint, sql, **params)


async def test_foreign_key_refuses_unknown_session(engine: AsyncEngine, world: World) -> None:
    # Proves SQLite runs with PRAGMA foreign_keys=ON, as PostgreSQL always does.
    await _expect_violation(
        engine,
        "fk_agents_session_id_sessions"
        if engine.dialect.name == "postgresql"
        else "FOREIGN KEY constraint failed",
        "UPDATE agents SET session_id = :missing WHERE id = :id",
        missing=_id(uuid.uuid4(), engine),
        id=_id(world.agent, engine),
    )


async def _count(engine: AsyncEngine, table: str, where: str = "1 = 1", **params: object) -> int:
    async with engine.connect() as connection:
        result = await connection.execute(
            text(f"SELECT count(*) FROM {table} WHERE {where}"), params
        )
        return int(result.scalar_one())


async def _delete(engine: AsyncEngine, table: str, row_id: uuid.UUID) -> None:
    async with engine.begin() as connection:
        await connection.execute(
            text(f"DELETE FROM {table} WHERE id = :id"), {"id": _id(row_id, engine)}
        )


async def test_deleting_a_session_cascades_to_everything_it_owns(
    engine: AsyncEngine, world: World
) -> None:
    owned = [
        "agents",
        "task_groups",
        "tasks",
        "task_dependencies",
        "threads",
        "thread_messages",
        "session_relationships",
        "active_session",
        "session_mode_bindings",
        "sync_states",
    ]
    for table in owned:
        assert await _count(engine, table) > 0, table
    await _delete(engine, "sessions", world.parent)
    for table in owned:
        assert await _count(engine, table) == 0, table
    # The child survives its parent, detached; its own log stays, with no agent and no parent.
    assert await _count(engine, "sessions") == 1
    assert await _count(engine, "sessions", "parent_session_id IS NULL") == 1
    assert await _count(engine, "agent_logs", "agent_id IS NULL AND parent_session_id IS NULL") == 1


async def test_deleting_a_child_session_deletes_its_logs_and_edges(
    engine: AsyncEngine, world: World
) -> None:
    await _delete(engine, "sessions", world.child)
    assert await _count(engine, "agent_logs") == 0
    assert await _count(engine, "session_relationships") == 0
    assert await _count(engine, "sessions") == 1


async def test_deleting_an_agent_keeps_its_logs(engine: AsyncEngine, world: World) -> None:
    await _delete(engine, "agents", world.agent)
    assert await _count(engine, "agent_logs", "agent_id IS NULL") == 1


async def test_deleting_a_project_detaches_sessions_and_drops_sync_state(
    engine: AsyncEngine, world: World
) -> None:
    await _delete(engine, "projects", world.project)
    assert await _count(engine, "sessions", "project_id IS NULL") == 2
    assert await _count(engine, "sync_states") == 0


async def test_deleting_a_thread_deletes_its_messages(engine: AsyncEngine, world: World) -> None:
    await _delete(engine, "threads", world.thread)
    assert await _count(engine, "thread_messages") == 0
    assert await _count(engine, "sessions") == 2


async def test_deleting_a_task_deletes_subtasks_and_dependencies(
    engine: AsyncEngine, world: World
) -> None:
    await _delete(engine, "tasks", world.task)
    assert await _count(engine, "tasks") == 0
    assert await _count(engine, "task_dependencies") == 0


async def test_deleting_a_task_group_keeps_its_tasks(engine: AsyncEngine, world: World) -> None:
    await _delete(engine, "task_groups", world.group)
    assert await _count(engine, "tasks", "group_id IS NULL") == 2


async def test_deleting_a_mode_deletes_its_bindings(engine: AsyncEngine, world: World) -> None:
    await _delete(engine, "session_modes", world.mode)
    assert await _count(engine, "session_mode_bindings") == 0
