"""plan.json mirrored into a session's task groups, tasks and dependencies.

Checkpoints become top-level task groups, their task groups nested groups, their tasks
tasks; every row keeps its plan id in `plan_ref`, the key the upserts use. Rows a caller
created without a plan id are never touched.
"""

import uuid
from typing import Any

from pydantic import BaseModel
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import BULK_CHUNK, bulk_upsert, coerce_input, upsert_insert
from session_db.crud.tasks import DONE, refresh_session_progress
from session_db.models import (
    Task,
    TaskCreate,
    TaskDependency,
    TaskGroup,
    TaskGroupCreate,
    TaskStatus,
)
from session_db.models.base import new_id
from session_db.sync.formats import Plan, plan_tasks

# plan.json's task statuses vary between writers; anything else reads as pending and
# keeps its own word in task_metadata["status"].
_TASK_STATUS = {
    "pending": TaskStatus.PENDING,
    "todo": TaskStatus.PENDING,
    "not_started": TaskStatus.PENDING,
    "in_progress": TaskStatus.IN_PROGRESS,
    "in-progress": TaskStatus.IN_PROGRESS,
    "active": TaskStatus.IN_PROGRESS,
    "started": TaskStatus.IN_PROGRESS,
    "blocked": TaskStatus.BLOCKED,
    "complete": TaskStatus.COMPLETED,
    "completed": TaskStatus.COMPLETED,
    "done": TaskStatus.COMPLETED,
    "failed": TaskStatus.FAILED,
    "cancelled": TaskStatus.CANCELLED,
    "canceled": TaskStatus.CANCELLED,
    "skipped": TaskStatus.SKIPPED,
}


async def mirror_plan(db: AsyncSession, session_id: uuid.UUID, plan: Plan | None) -> None:
    """Make the session's plan-derived groups, tasks and dependencies match plan.json.

    Groups and tasks a caller created without a plan id are left alone.
    """
    checkpoints = plan.checkpoints if plan else []
    group_ids: dict[str, uuid.UUID] = {}
    if checkpoints:
        group_ids |= await _upsert_groups(
            db,
            session_id,
            [
                _group_row(
                    session_id,
                    str(cp.id),
                    cp.title,
                    cp.goal,
                    0,
                    index,
                    None,
                    cp,
                    exclude={"id", "title", "goal", "task_groups"},
                )
                for index, cp in enumerate(checkpoints)
            ],
        )
        rows = []
        for cp in checkpoints:
            for group in cp.task_groups:
                rows.append(
                    _group_row(
                        session_id,
                        group.id,
                        group.title,
                        group.objective,
                        1,
                        len(rows),
                        group_ids[str(cp.id)],
                        group,
                        exclude={"id", "title", "objective", "tasks"},
                        checkpoint=cp.id,
                    )
                )
        if rows:
            group_ids |= await _upsert_groups(db, session_id, rows)
    task_ids = await _upsert_tasks(db, session_id, plan, group_ids) if plan else {}
    await db.exec(
        delete(Task).where(
            col(Task.session_id) == session_id,
            col(Task.plan_ref).is_not(None),
            col(Task.plan_ref).not_in(list(task_ids)),
        )
    )
    await db.exec(
        delete(TaskGroup).where(
            col(TaskGroup.session_id) == session_id,
            col(TaskGroup.plan_ref).is_not(None),
            col(TaskGroup.plan_ref).not_in(list(group_ids)),
        )
    )
    if plan:
        await _mirror_dependencies(db, plan, task_ids)
    await refresh_session_progress(db, session_id)


def _metadata(item: BaseModel, exclude: set[str], **more: Any) -> dict[str, Any]:
    kept = item.model_dump(mode="json", exclude=exclude, exclude_none=True)
    return {**kept, **more}


def _group_row(
    session_id: uuid.UUID,
    ref: str,
    title: str | None,
    description: str | None,
    level: int,
    position: int,
    parent_id: uuid.UUID | None,
    item: BaseModel,
    *,
    exclude: set[str],
    **more: Any,
) -> dict[str, Any]:
    values = {
        "session_id": session_id,
        "plan_ref": ref,
        # Group names are unique per session; the plan id keeps two "Setup" groups apart.
        "group_name": f"{ref} {title}".strip()[:255] if title else ref,
        "description": description,
        "group_level": level,
        "position_in_session": position,
        "parent_group_id": parent_id,
        "group_metadata": _metadata(item, exclude, **more),
    }
    return coerce_input(TaskGroupCreate, values, "task_group").model_dump(include=set(values))


async def _upsert_groups(
    db: AsyncSession, session_id: uuid.UUID, rows: list[dict[str, Any]]
) -> dict[str, uuid.UUID]:
    return await bulk_upsert(
        db,
        TaskGroup,
        [{"id": new_id(), **row} for row in rows],
        [TaskGroup.session_id, TaskGroup.plan_ref],
        skip={"session_id", "plan_ref"},
    )


async def _upsert_tasks(
    db: AsyncSession, session_id: uuid.UUID, plan: Plan, group_ids: dict[str, uuid.UUID]
) -> dict[str, uuid.UUID]:
    rows = []
    positions: dict[str, int] = {}
    for _, group, task in plan_tasks(plan):
        status = _TASK_STATUS.get((task.status or "pending").strip().lower(), TaskStatus.PENDING)
        position = positions[group.id] = positions.get(group.id, -1) + 1
        task_id = new_id()
        values = {
            "session_id": session_id,
            "group_id": group_ids[group.id],
            "plan_ref": task.id,
            "title": task.title,
            "description": task.description,
            "status": status,
            "progress_percentage": 100.0 if status in DONE else 0.0,
            "position_in_group": position,
            "task_metadata": _metadata(task, {"id", "title", "description", "depends_on"}),
        }
        checked = coerce_input(TaskCreate, values, "task").model_dump(include=set(values))
        rows.append({"id": task_id, "hierarchy_path": f"/{task_id}", **checked})
    if not rows:
        return {}
    return await bulk_upsert(
        db,
        Task,
        rows,
        [Task.session_id, Task.plan_ref],
        skip={"session_id", "plan_ref", "hierarchy_path"},
    )


async def _mirror_dependencies(
    db: AsyncSession, plan: Plan, task_ids: dict[str, uuid.UUID]
) -> None:
    wanted = {
        (task_ids[task.id], task_ids[needed])
        for _, _, task in plan_tasks(plan)
        for needed in dict.fromkeys(task.depends_on)
    }
    ids = list(task_ids.values())
    existing: set[tuple[uuid.UUID, uuid.UUID]] = set()
    for start in range(0, len(ids), BULK_CHUNK):
        chunk = ids[start : start + BULK_CHUNK]
        existing |= set(
            (
                await db.exec(
                    select(TaskDependency.task_id, TaskDependency.depends_on_task_id).where(
                        col(TaskDependency.task_id).in_(chunk)
                    )
                )
            ).all()
        )
    plan_ids = set(ids)
    stale = {edge for edge in existing - wanted if edge[1] in plan_ids}
    for task_id, needed in stale:
        await db.exec(
            delete(TaskDependency).where(
                col(TaskDependency.task_id) == task_id,
                col(TaskDependency.depends_on_task_id) == needed,
            )
        )
    missing = sorted(wanted - existing)
    for start in range(0, len(missing), BULK_CHUNK):
        rows = [
            {"task_id": task_id, "depends_on_task_id": needed}
            for task_id, needed in missing[start : start + BULK_CHUNK]
        ]
        await db.exec(upsert_insert(db, TaskDependency).values(rows).on_conflict_do_nothing())
