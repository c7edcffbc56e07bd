"""Task plans: task groups, tasks and their dependencies inside a session (seed 002).

Seed 002 kept dependencies as JSON lists (`depends_on`, `blocks`); here they are rows of
`task_dependencies`, so the database can enforce them and queries can join them. `blocks`
is the same edge read the other way, so it is not stored twice.
"""

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, Optional

import sqlalchemy as sa
from sqlmodel import Field, Relationship

from session_db.models.base import (
    Base,
    InputModel,
    check_in,
    check_range,
    count_field,
    created_at_field,
    enum_field,
    id_field,
    json_field,
    text_field,
    timestamp_field,
    updated_at_field,
)


class TaskStatus(StrEnum):
    """Where a task is."""

    PENDING = "pending"
    IN_PROGRESS = "in_progress"
    BLOCKED = "blocked"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"


class TaskGroupBase(Base):
    """Fields a caller sets on a task group."""

    session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE")
    group_name: str = Field(max_length=255)
    description: str | None = text_field()
    parent_group_id: uuid.UUID | None = Field(
        default=None, foreign_key="task_groups.id", ondelete="CASCADE", index=True
    )
    group_level: int = count_field()
    position_in_session: int = count_field()
    specialist_focus: str | None = Field(default=None, max_length=128)
    estimated_effort: int = count_field()
    priority: int = Field(default=3, ge=1, le=5, sa_column_kwargs={"server_default": "3"})
    markdown_section: str | None = text_field()
    # The id the plan file gives it ("1" for a checkpoint, "1.1" for a group), the key
    # the filesystem sync upserts on; plan fields with no column of their own.
    plan_ref: str | None = Field(default=None, max_length=64)
    group_metadata: dict[str, Any] = json_field()


class TaskGroup(TaskGroupBase, table=True):
    """A group of tasks; its counts and progress are rolled up from its tasks."""

    __tablename__ = "task_groups"
    __table_args__ = (
        # Also serves "the groups of a session".
        sa.UniqueConstraint("session_id", "group_name"),
        sa.CheckConstraint("parent_group_id <> id", name="not_own_parent"),
        check_range("group_level", 0),
        check_range("position_in_session", 0),
        check_range("estimated_effort", 0),
        check_range("priority", 1, 5),
        check_range("completed_tasks", 0),
        check_range("progress_percentage", 0, 100),
        sa.CheckConstraint("completed_tasks <= total_tasks", name="completed_within_total"),
        sa.Index(None, "session_id", "plan_ref", unique=True),
    )

    id: uuid.UUID = id_field()
    total_tasks: int = count_field()
    completed_tasks: int = count_field()
    progress_percentage: float = Field(
        default=0.0, ge=0, le=100, sa_column_kwargs={"server_default": "0"}
    )
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()

    tasks: list["Task"] = Relationship(
        back_populates="group", sa_relationship_kwargs={"lazy": "raise"}
    )


class TaskGroupCreate(TaskGroupBase, InputModel):
    """Input to create a task group."""


class TaskGroupUpdate(InputModel):
    """Input to change a task group; unset fields stay as they are."""

    group_name: str | None = Field(default=None, max_length=255)
    description: str | None = None
    specialist_focus: str | None = Field(default=None, max_length=128)
    estimated_effort: int | None = Field(default=None, ge=0)
    priority: int | None = Field(default=None, ge=1, le=5)
    position_in_session: int | None = Field(default=None, ge=0)
    markdown_section: str | None = None
    group_metadata: dict[str, Any] | None = None


class TaskBase(Base):
    """Fields a caller sets on a task.

    `complexity_level`, `specialist_type` and `verification_status` are open vocabularies
    in seed 002 (only their defaults are named), so they carry no CHECK.
    """

    session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE")
    group_id: uuid.UUID | None = Field(
        default=None, foreign_key="task_groups.id", ondelete="SET NULL", index=True
    )
    parent_task_id: uuid.UUID | None = Field(
        default=None, foreign_key="tasks.id", ondelete="CASCADE", index=True
    )
    title: str = Field(max_length=500)
    description: str | None = text_field()
    specialist_type: str | None = Field(default=None, max_length=128)
    complexity_level: str = Field(
        default="moderate", max_length=32, sa_column_kwargs={"server_default": "moderate"}
    )
    status: TaskStatus = enum_field(TaskStatus, TaskStatus.PENDING)
    progress_percentage: float = Field(
        default=0.0, ge=0, le=100, sa_column_kwargs={"server_default": "0"}
    )
    position_in_group: int = count_field()
    estimated_effort: int | None = Field(default=None, ge=0)
    actual_effort: int | None = Field(default=None, ge=0)
    markdown_section: str | None = text_field()
    file_operations_count: int = count_field()
    verification_status: str = Field(
        default="pending", max_length=32, sa_column_kwargs={"server_default": "pending"}
    )
    started_at: datetime | None = timestamp_field()
    completed_at: datetime | None = timestamp_field()
    # The plan file's id ("1.1.1"), the key the filesystem sync upserts on; plan fields
    # with no column of their own (file_path, context, actions).
    plan_ref: str | None = Field(default=None, max_length=64)
    task_metadata: dict[str, Any] = json_field()


class Task(TaskBase, table=True):
    """A task; `level`, `root_task_id` and `hierarchy_path` derive from its parent."""

    __tablename__ = "tasks"
    __table_args__ = (
        sa.CheckConstraint("parent_task_id <> id", name="not_own_parent"),
        check_in("status", TaskStatus),
        check_range("level", 0),
        check_range("progress_percentage", 0, 100),
        check_range("position_in_group", 0),
        check_range("estimated_effort", 0),
        check_range("actual_effort", 0),
        check_range("file_operations_count", 0),
        sa.Index(None, "session_id", "hierarchy_path"),
        sa.Index(None, "session_id", "status"),
        sa.Index(None, "session_id", "group_id"),
        sa.Index(None, "session_id", "plan_ref", unique=True),
    )

    id: uuid.UUID = id_field()
    root_task_id: uuid.UUID | None = Field(
        default=None, foreign_key="tasks.id", ondelete="CASCADE", index=True
    )
    level: int = count_field()
    hierarchy_path: str | None = text_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()

    group: Optional["TaskGroup"] = Relationship(
        back_populates="tasks", sa_relationship_kwargs={"lazy": "raise"}
    )


class TaskCreate(TaskBase, InputModel):
    """Input to create a task; `session_id` and `title` are required."""


class TaskUpdate(InputModel):
    """Input to change a task; unset fields stay as they are."""

    group_id: uuid.UUID | None = None
    title: str | None = Field(default=None, max_length=500)
    description: str | None = None
    specialist_type: str | None = Field(default=None, max_length=128)
    complexity_level: str | None = Field(default=None, max_length=32)
    status: TaskStatus | None = None
    progress_percentage: float | None = Field(default=None, ge=0, le=100)
    position_in_group: int | None = Field(default=None, ge=0)
    estimated_effort: int | None = Field(default=None, ge=0)
    actual_effort: int | None = Field(default=None, ge=0)
    markdown_section: str | None = None
    file_operations_count: int | None = Field(default=None, ge=0)
    verification_status: str | None = Field(default=None, max_length=32)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    task_metadata: dict[str, Any] | None = None


class TaskDependency(Base, table=True):
    """`task_id` cannot start before `depends_on_task_id` is done."""

    __tablename__ = "task_dependencies"
    __table_args__ = (sa.CheckConstraint("task_id <> depends_on_task_id", name="not_self"),)

    task_id: uuid.UUID = Field(foreign_key="tasks.id", ondelete="CASCADE", primary_key=True)
    # Indexed for the reverse question: which tasks does this one block?
    depends_on_task_id: uuid.UUID = Field(
        foreign_key="tasks.id", ondelete="CASCADE", primary_key=True, index=True
    )
    created_at: datetime = created_at_field()
