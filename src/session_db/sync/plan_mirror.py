"""plan.json mirrored into a session's task groups, tasks and dependencies.

Checkpoints become top-level task groups, their task groups (or an older plan's
tranches) nested groups, their tasks tasks; every row keeps its plan id in `plan_ref`,
the key the upserts use, and the plan's other keys (`actions` or `action`, `subtasks`,
`file_path`, ...) in its metadata, as they are. Rows a caller created without a plan id
are never touched.
"""

import uuid
from typing import Any

from pydantic import BaseModel
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud.tasks import (
    DONE,
    delete_plan_rows_except,
    refresh_session_progress,
    set_plan_dependencies,
    upsert_plan_task_groups,
    upsert_plan_tasks,
)
from session_db.models import TaskStatus
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

    Groups and tasks a caller created without a plan id are left alone. A plan whose
    checkpoints could not be read (`plan.checkpoints` is None) changes nothing: the rows
    of its last good reading stay.
    """
    if plan is not None and plan.checkpoints is None:
        return
    checkpoints = (plan.checkpoints or []) if plan else []
    group_ids: dict[str, uuid.UUID] = {}
    if checkpoints:
        group_ids |= await upsert_plan_task_groups(
            db,
            session_id,
            [
                _group_row(
                    session_id,
                    cp.id,
                    cp.title,
                    cp.goal,
                    0,
                    index,
                    None,
                    cp,
                    exclude={"id", "title", "goal", "task_groups", "tranches"},
                )
                for index, cp in enumerate(checkpoints)
            ],
        )
        rows = []
        for cp in checkpoints:
            for group in cp.groups:
                rows.append(
                    _group_row(
                        session_id,
                        group.id,
                        group.title,
                        group.objective or group.goal,
                        1,
                        len(rows),
                        group_ids[cp.id],
                        group,
                        exclude={"id", "title", "objective", "goal", "tasks"},
                        checkpoint=cp.id,
                    )
                )
        if rows:
            group_ids |= await upsert_plan_task_groups(db, session_id, rows)
    task_ids = await _upsert_tasks(db, session_id, plan, group_ids) if plan else {}
    await delete_plan_rows_except(db, session_id, tasks=list(task_ids), groups=list(group_ids))
    if plan:
        edges = {
            (task_ids[task.id], task_ids[needed])
            for _, _, task in plan_tasks(plan)
            for needed in dict.fromkeys(task.depends_on)
        }
        await set_plan_dependencies(db, task_ids.values(), edges)
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
    return {
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


async def _upsert_tasks(
    db: AsyncSession, session_id: uuid.UUID, plan: Plan, group_ids: dict[str, uuid.UUID]
) -> dict[str, uuid.UUID]:
    rows = []
    positions: dict[str, int] = {}
    for _, group, task in plan_tasks(plan):
        status = _TASK_STATUS.get((task.status or "pending").strip().lower(), TaskStatus.PENDING)
        position = positions[group.id] = positions.get(group.id, -1) + 1
        rows.append(
            {
                "session_id": session_id,
                "group_id": group_ids[group.id],
                "plan_ref": task.id,
                "title": task.title or task.id,  # the id names a task without a title
                "description": task.description,
                "status": status,
                "progress_percentage": 100.0 if status in DONE else 0.0,
                "position_in_group": position,
                "task_metadata": _metadata(task, {"id", "title", "description", "depends_on"}),
            }
        )
    return await upsert_plan_tasks(db, session_id, rows) if rows else {}
