"""Task plans (seed 002): groups, tasks, dependencies, progress and readiness.

A task under a parent takes the parent's session, `level + 1`, the parent's root and
the parent's path plus its own id. Progress is recomputed from the tasks themselves
after every change, for the task's group and for the session: counters never drift.
"""

import uuid
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from pydantic import BaseModel
from sqlalchemy import and_, bindparam, func
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    BULK_CHUNK,
    DEFAULT_LIMIT,
    apply_update,
    build_row,
    bulk_upsert,
    coerce_input,
    enum_filter,
    get_or_raise,
    paginate,
    remove,
    save,
    translating_errors,
    update_row,
    upsert_insert,
)
from session_db.errors import ConflictError, InvalidInputError, NotFoundError
from session_db.models import (
    Session,
    Task,
    TaskCreate,
    TaskDependency,
    TaskGroup,
    TaskGroupCreate,
    TaskGroupUpdate,
    TaskStatus,
    TaskUpdate,
)
from session_db.models.base import new_id, utcnow

TASK = "task"
GROUP = "task_group"
# Finished tasks: they count as done for progress and for the tasks that wait on them.
DONE = (TaskStatus.COMPLETED, TaskStatus.SKIPPED)


@translating_errors(GROUP)
async def create_task_group(
    db: AsyncSession, data: TaskGroupCreate | Mapping[str, Any]
) -> TaskGroup:
    """Create a task group; a nested group takes its parent's level + 1.

    Raises:
        ConflictError: The session already has a group of this name.
        InvalidInputError: The parent group belongs to another session.
    """
    group_in = coerce_input(TaskGroupCreate, data, GROUP)
    derived: dict[str, Any] = {}
    if group_in.parent_group_id is not None:
        parent = await get_or_raise(db, TaskGroup, group_in.parent_group_id, GROUP)
        if parent.session_id != group_in.session_id:
            raise InvalidInputError(GROUP, "parent_group_id", "belongs to another session")
        derived["group_level"] = parent.group_level + 1
    return await save(db, build_row(TaskGroup, group_in, GROUP, **derived), GROUP)


@translating_errors(GROUP)
async def get_task_group(db: AsyncSession, group_id: uuid.UUID) -> TaskGroup:
    """Return the group with this id, or raise NotFoundError."""
    return await get_or_raise(db, TaskGroup, group_id, GROUP)


@translating_errors(GROUP)
async def list_task_groups(db: AsyncSession, session_id: uuid.UUID) -> list[TaskGroup]:
    """Return a session's groups in plan order."""
    statement = (
        select(TaskGroup)
        .where(TaskGroup.session_id == session_id)
        .order_by(TaskGroup.position_in_session, TaskGroup.group_name)
    )
    return list((await db.exec(statement)).all())


@translating_errors(GROUP)
async def update_task_group(
    db: AsyncSession, group_id: uuid.UUID, data: TaskGroupUpdate | Mapping[str, Any]
) -> TaskGroup:
    """Change the fields the caller set; counts and progress follow the tasks."""
    return await update_row(db, TaskGroup, group_id, TaskGroupUpdate, data, GROUP)


@translating_errors(GROUP)
async def delete_task_group(db: AsyncSession, group_id: uuid.UUID) -> None:
    """Delete a group (and its nested groups); its tasks stay, ungrouped; progress is recounted."""
    group = await get_or_raise(db, TaskGroup, group_id, GROUP)
    await remove(db, group, GROUP)
    await _refresh_progress(db, group.session_id)


@translating_errors(TASK)
async def create_task(db: AsyncSession, data: TaskCreate | Mapping[str, Any]) -> Task:
    """Create a task, deriving its level, root and hierarchy path, and roll progress up.

    Raises:
        NotFoundError: The session, group or parent task does not exist.
        InvalidInputError: The group or parent task belongs to another session.
    """
    task_in = coerce_input(TaskCreate, data, TASK)
    await get_or_raise(db, Session, task_in.session_id, "session")
    if task_in.group_id is not None:
        group = await get_or_raise(db, TaskGroup, task_in.group_id, GROUP)
        if group.session_id != task_in.session_id:
            raise InvalidInputError(TASK, "group_id", "belongs to another session")
    task_id = new_id()
    derived: dict[str, Any] = {"id": task_id, "hierarchy_path": f"/{task_id}"}
    if task_in.parent_task_id is not None:
        parent = await get_or_raise(db, Task, task_in.parent_task_id, TASK)
        if parent.session_id != task_in.session_id:
            raise InvalidInputError(TASK, "parent_task_id", "belongs to another session")
        derived.update(
            level=parent.level + 1,
            root_task_id=parent.root_task_id or parent.id,
            hierarchy_path=f"{parent.hierarchy_path}/{task_id}",
        )
    task = await save(db, build_row(Task, task_in, TASK, **derived), TASK)
    await _refresh_progress(db, task.session_id)
    return task


@translating_errors(TASK)
async def get_task(db: AsyncSession, task_id: uuid.UUID) -> Task:
    """Return the task with this id, or raise NotFoundError."""
    return await get_or_raise(db, Task, task_id, TASK)


@translating_errors(TASK)
async def list_tasks(
    db: AsyncSession,
    session_id: uuid.UUID,
    *,
    group_id: uuid.UUID | None = None,
    status: TaskStatus | str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[Task]:
    """Return a session's tasks in hierarchy order (a parent before its subtasks)."""
    statement = select(Task).where(Task.session_id == session_id)
    if group_id is not None:
        statement = statement.where(Task.group_id == group_id)
    if (value := enum_filter(TaskStatus, status, TASK, "status")) is not None:
        statement = statement.where(Task.status == value)
    statement = statement.order_by(Task.position_in_group, Task.hierarchy_path)
    return list((await db.exec(paginate(statement, limit, offset))).all())


@translating_errors(TASK)
async def update_task(
    db: AsyncSession, task_id: uuid.UUID, data: TaskUpdate | Mapping[str, Any]
) -> Task:
    """Change the fields the caller set; status changes stamp times and roll progress up.

    Completing a task sets its progress to 100 and `completed_at` (unless given); starting
    one sets `started_at`.
    """
    changes = coerce_input(TaskUpdate, data, TASK)
    task = await get_or_raise(db, Task, task_id, TASK)
    if changes.group_id is not None and changes.group_id != task.group_id:
        group = await get_or_raise(db, TaskGroup, changes.group_id, GROUP)
        if group.session_id != task.session_id:
            raise InvalidInputError(TASK, "group_id", "belongs to another session")
    changed = apply_update(task, changes, TASK)
    if "status" in changed:
        now = utcnow()
        if task.status in DONE:
            task.progress_percentage = 100.0
            if "completed_at" not in changed:
                task.completed_at = task.completed_at or now
        elif task.status == TaskStatus.IN_PROGRESS and task.started_at is None:
            task.started_at = now
    await save(db, task, TASK)
    await _refresh_progress(db, task.session_id)
    return task


@translating_errors(TASK)
async def delete_task(db: AsyncSession, task_id: uuid.UUID) -> None:
    """Delete a task, its subtasks and its dependency edges, and roll progress up."""
    task = await get_or_raise(db, Task, task_id, TASK)
    session_id = task.session_id
    await remove(db, task, TASK)
    await _refresh_progress(db, session_id)


async def _refresh_progress(db: AsyncSession, session_id: uuid.UUID) -> None:
    """Recount total and completed tasks for every group of a session and for the session.

    A group counts its own tasks and those of the groups nested below it, so a plan
    checkpoint shows the progress of all its groups.
    """
    own: dict[uuid.UUID | None, tuple[int, int]] = {
        group_id: (total, done)
        for group_id, total, done in (
            await db.exec(
                select(
                    Task.group_id,
                    func.count(Task.id),
                    func.count(Task.id).filter(Task.status.in_(DONE)),
                )
                .where(Task.session_id == session_id)
                .group_by(Task.group_id)
            )
        ).all()
    }
    # Fresh rows, not the identity map's copies: bulk writes may have changed them.
    groups = (
        await db.exec(
            select(TaskGroup)
            .where(TaskGroup.session_id == session_id)
            .execution_options(populate_existing=True)
        )
    ).all()
    children: dict[uuid.UUID | None, list[TaskGroup]] = {}
    for group in groups:
        children.setdefault(group.parent_group_id, []).append(group)

    def subtree(group: TaskGroup, depth: int = 0) -> tuple[int, int]:
        total, done = own.get(group.id, (0, 0))
        if depth < 64:  # group nesting is acyclic by construction; the bound is a guard
            for child in children.get(group.id, []):
                child_total, child_done = subtree(child, depth + 1)
                total, done = total + child_total, done + child_done
        return total, done

    for group in groups:
        total, done = subtree(group)
        if (group.total_tasks, group.completed_tasks) != (total, done):
            group.total_tasks, group.completed_tasks = total, done
            group.progress_percentage = _percent(done, total)
            db.add(group)
    session = await db.get(Session, session_id, populate_existing=True)
    if session is None:
        raise NotFoundError("session", session_id)
    total = sum(count for count, _ in own.values())
    done = sum(count for _, count in own.values())
    session.total_tasks, session.completed_tasks = total, done
    session.progress_percentage = _percent(done, total)
    db.add(session)
    await db.flush()


@translating_errors(TASK)
async def refresh_session_progress(db: AsyncSession, session_id: uuid.UUID) -> None:
    """Recount task progress for a session and all its groups (after bulk task writes).

    Raises:
        NotFoundError: There is no such session.
    """
    await _refresh_progress(db, session_id)


def _percent(done: int, total: int) -> float:
    return round(100.0 * done / total, 2) if total else 0.0


@translating_errors(TASK)
async def add_task_dependency(
    db: AsyncSession, task_id: uuid.UUID, depends_on_task_id: uuid.UUID
) -> TaskDependency:
    """Record that `task_id` waits for `depends_on_task_id`.

    Raises:
        InvalidInputError: The tasks are the same, in different sessions, or the edge
            would make a cycle.
        ConflictError: The dependency exists already.
        NotFoundError: Either task does not exist.
    """
    if task_id == depends_on_task_id:
        raise InvalidInputError(TASK, "depends_on_task_id", "a task cannot depend on itself")
    locked = select(Task).where(Task.id.in_([task_id, depends_on_task_id])).order_by(Task.id)
    tasks = {t.id: t for t in (await db.exec(locked.with_for_update())).all()}
    for wanted in (task_id, depends_on_task_id):
        if wanted not in tasks:
            raise NotFoundError(TASK, wanted)
    if tasks[task_id].session_id != tasks[depends_on_task_id].session_id:
        raise InvalidInputError(TASK, "depends_on_task_id", "belongs to another session")
    if task_id in await _prerequisites(db, depends_on_task_id):
        raise InvalidInputError(TASK, "depends_on_task_id", "the dependency would make a cycle")
    edge = TaskDependency(task_id=task_id, depends_on_task_id=depends_on_task_id)
    try:
        return await save(db, edge, "task_dependency")
    except ConflictError:
        raise ConflictError(
            "task_dependency",
            "depends_on_task_id",
            f"task {task_id} already depends on {depends_on_task_id}",
        ) from None


async def _prerequisites(db: AsyncSession, task_id: uuid.UUID) -> set[uuid.UUID]:
    """Every task `task_id` waits for, directly or through others."""
    # UNION (not UNION ALL) over ids alone ends by itself, even on a cycle.
    base = select(TaskDependency.depends_on_task_id.label("task_id"))
    cte = base.where(TaskDependency.task_id == task_id).cte("prerequisites", recursive=True)
    step = select(TaskDependency.depends_on_task_id).join(
        cte, TaskDependency.task_id == cte.c.task_id
    )
    cte = cte.union(step)
    return set((await db.exec(select(cte.c.task_id))).all())


@translating_errors(TASK)
async def remove_task_dependency(
    db: AsyncSession, task_id: uuid.UUID, depends_on_task_id: uuid.UUID
) -> None:
    """Remove a dependency, or raise NotFoundError if there is none."""
    edge = await db.get(TaskDependency, (task_id, depends_on_task_id))
    if edge is None:
        raise NotFoundError("task_dependency", f"{task_id} -> {depends_on_task_id}")
    await remove(db, edge, "task_dependency")


@translating_errors(TASK)
async def list_task_dependencies(db: AsyncSession, task_id: uuid.UUID) -> list[Task]:
    """Return the tasks `task_id` waits for directly."""
    statement = (
        select(Task)
        .join(TaskDependency, TaskDependency.depends_on_task_id == Task.id)
        .where(TaskDependency.task_id == task_id)
        .order_by(Task.hierarchy_path)
    )
    return list((await db.exec(statement)).all())


@translating_errors(TASK)
async def list_blocked_tasks(db: AsyncSession, task_id: uuid.UUID) -> list[Task]:
    """Return the tasks that wait for `task_id` directly (seed 002's `blocks`)."""
    statement = (
        select(Task)
        .join(TaskDependency, TaskDependency.task_id == Task.id)
        .where(TaskDependency.depends_on_task_id == task_id)
        .order_by(Task.hierarchy_path)
    )
    return list((await db.exec(statement)).all())


@translating_errors(TASK)
async def list_ready_tasks(db: AsyncSession, session_id: uuid.UUID) -> list[Task]:
    """Return the session's pending tasks whose dependencies are all completed or skipped."""
    prerequisite = Task.__table__.alias("prerequisite")  # type: ignore[attr-defined]
    unfinished = (
        select(TaskDependency.task_id)
        .join(prerequisite, prerequisite.c.id == TaskDependency.depends_on_task_id)
        .where(and_(TaskDependency.task_id == Task.id, prerequisite.c.status.not_in(DONE)))
    )
    statement = (
        select(Task)
        .where(
            Task.session_id == session_id, Task.status == TaskStatus.PENDING, ~unfinished.exists()
        )
        .order_by(Task.position_in_group, Task.hierarchy_path)
    )
    return list((await db.exec(statement)).all())


@translating_errors(TASK)
async def list_session_task_dependencies(
    db: AsyncSession, session_id: uuid.UUID
) -> list[tuple[uuid.UUID, uuid.UUID]]:
    """Return every (task_id, depends_on_task_id) edge among a session's tasks, in one read."""
    statement = (
        select(TaskDependency.task_id, TaskDependency.depends_on_task_id)
        .join(Task, Task.id == TaskDependency.task_id)
        .where(Task.session_id == session_id)
        .order_by(TaskDependency.task_id, TaskDependency.depends_on_task_id)
    )
    return [(row[0], row[1]) for row in (await db.exec(statement)).all()]


# The plan mirror ------------------------------------------------------------------------
# The filesystem sync keeps a session's plan rows (those with a `plan_ref`, the plan
# file's id) equal to its plan.json with these set-based writes. Rows created without a
# plan id are never touched. They flush nothing and leave progress to
# `refresh_session_progress`, which the caller runs once after all of them.


def _plan_rows(
    model: type[TaskGroupCreate] | type[TaskCreate],
    items: Sequence[BaseModel | Mapping[str, Any]],
    session_id: uuid.UUID,
    entity: str,
) -> list[dict[str, Any]]:
    """Validate plan rows of one session; keep only the fields each item gave."""
    rows = []
    for item in items:
        checked = coerce_input(model, item, entity)  # type: ignore[arg-type]
        if checked.session_id != session_id:
            raise InvalidInputError(entity, "session_id", "belongs to another session")
        if not checked.plan_ref:
            raise InvalidInputError(entity, "plan_ref", "a plan row needs its plan id")
        given = set(item) if isinstance(item, Mapping) else checked.model_fields_set
        rows.append(checked.model_dump(include=given | {"session_id", "plan_ref"}))
    return rows


def _by_shape(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Rows grouped by the fields they set: the rows of one statement share their columns."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        shapes.setdefault(tuple(sorted(row)), []).append(row)
    return list(shapes.values())


@translating_errors(GROUP)
async def upsert_plan_task_groups(
    db: AsyncSession,
    session_id: uuid.UUID,
    groups: Sequence[TaskGroupCreate | Mapping[str, Any]],
) -> dict[str, uuid.UUID]:
    """Insert or update a session's groups on their plan ids; return {plan id: group id}.

    Only the fields each group gives are written; a few statements for any number of groups.

    Raises:
        InvalidInputError: A group has no plan id, belongs to another session, or is invalid.
        ConflictError: A group name is taken by another group of the session.
    """
    rows = _plan_rows(TaskGroupCreate, groups, session_id, GROUP)
    written: dict[str, uuid.UUID] = {}
    for shape in _by_shape(rows):
        written |= await bulk_upsert(
            db,
            TaskGroup,
            [{"id": new_id(), **row} for row in shape],
            [TaskGroup.session_id, TaskGroup.plan_ref],
            skip={"session_id", "plan_ref"},
        )
    return written


@translating_errors(TASK)
async def upsert_plan_tasks(
    db: AsyncSession,
    session_id: uuid.UUID,
    tasks: Sequence[TaskCreate | Mapping[str, Any]],
) -> dict[str, uuid.UUID]:
    """Insert or update a session's top-level tasks on their plan ids; return {plan id: task id}.

    Only the fields each task gives are written; a few statements for any number of tasks.

    Raises:
        InvalidInputError: A task has no plan id, belongs to another session, has a
            parent task (plan tasks are top-level), or is invalid.
    """
    rows = _plan_rows(TaskCreate, tasks, session_id, TASK)
    if any(row.get("parent_task_id") is not None for row in rows):
        raise InvalidInputError(TASK, "parent_task_id", "plan tasks are top-level")
    written: dict[str, uuid.UUID] = {}
    for shape in _by_shape(rows):
        ids = [new_id() for _ in shape]
        written |= await bulk_upsert(
            db,
            Task,
            # A new top-level task's path is its own id; an existing task keeps its path.
            [
                {"id": task_id, "hierarchy_path": f"/{task_id}", **row}
                for task_id, row in zip(ids, shape, strict=True)
            ],
            [Task.session_id, Task.plan_ref],
            skip={"session_id", "plan_ref", "hierarchy_path"},
        )
    return written


@translating_errors(TASK)
async def delete_plan_rows_except(
    db: AsyncSession, session_id: uuid.UUID, *, tasks: Collection[str], groups: Collection[str]
) -> None:
    """Delete the session's plan tasks and groups whose plan ids are not in `tasks` / `groups`.

    Tasks and groups without a plan id stay. Two statements.
    """
    await db.exec(
        delete(Task).where(
            col(Task.session_id) == session_id,
            col(Task.plan_ref).is_not(None),
            col(Task.plan_ref).not_in(list(tasks)),
        )
    )
    await db.exec(
        delete(TaskGroup).where(
            col(TaskGroup.session_id) == session_id,
            col(TaskGroup.plan_ref).is_not(None),
            col(TaskGroup.plan_ref).not_in(list(groups)),
        )
    )


@translating_errors(TASK)
async def set_plan_dependencies(
    db: AsyncSession,
    task_ids: Collection[uuid.UUID],
    edges: Collection[tuple[uuid.UUID, uuid.UUID]],
) -> None:
    """Make the dependencies between these tasks exactly `edges` (task, the task it waits for).

    Edges to or from any other task stay. Unlike `add_task_dependency` this checks no
    cycles: the plan file is the truth, and a plan that waits on itself is its own problem.

    Raises:
        InvalidInputError: An edge names a task outside `task_ids`, or a task waits for itself.
    """
    ids = list(dict.fromkeys(task_ids))
    known = set(ids)
    wanted = set(edges)
    if any(task not in known or needed not in known for task, needed in wanted):
        raise InvalidInputError("task_dependency", None, "an edge names a task outside the plan")
    existing: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for start in range(0, len(ids), BULK_CHUNK):
        chunk = ids[start : start + BULK_CHUNK]
        found = await db.exec(
            select(TaskDependency.task_id, TaskDependency.depends_on_task_id).where(
                col(TaskDependency.task_id).in_(chunk)
            )
        )
        existing |= {(task, needed) for task, needed in found.all() if needed in known}
    stale = sorted(existing - wanted)
    if stale:
        edge = TaskDependency.__table__  # type: ignore[attr-defined]
        # One statement for every stale edge (an executemany), not one per edge.
        await db.exec(
            edge.delete().where(
                edge.c.task_id == bindparam("stale_task"),
                edge.c.depends_on_task_id == bindparam("stale_needed"),
            ),
            params=[{"stale_task": task, "stale_needed": needed} for task, needed in stale],
        )
    missing = sorted(wanted - existing)
    for start in range(0, len(missing), BULK_CHUNK):
        rows = [
            {"task_id": task, "depends_on_task_id": needed}
            for task, needed in missing[start : start + BULK_CHUNK]
        ]
        await db.exec(upsert_insert(db, TaskDependency).values(rows).on_conflict_do_nothing())


__all__ = [
    "add_task_dependency",
    "create_task",
    "create_task_group",
    "delete_plan_rows_except",
    "delete_task",
    "delete_task_group",
    "get_task",
    "get_task_group",
    "list_blocked_tasks",
    "list_ready_tasks",
    "list_session_task_dependencies",
    "list_task_dependencies",
    "list_task_groups",
    "list_tasks",
    "refresh_session_progress",
    "remove_task_dependency",
    "set_plan_dependencies",
    "update_task",
    "update_task_group",
    "upsert_plan_task_groups",
    "upsert_plan_tasks",
]
