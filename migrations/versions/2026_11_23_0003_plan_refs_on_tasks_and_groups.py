"""Tasks and task groups carry the plan file's ids; sync state keeps a file fingerprint.

`plan_ref` is "1" / "1.1" for groups and "1.1.1" for tasks in plan.json; a unique
index per session (not a constraint: SQLite can add an index without copying the table,
and ON CONFLICT can target it on both engines). The new JSON columns keep the plan's
other fields; existing rows get an empty object. `sync_states.file_fingerprint` holds
the files' (mtime, size), so an unchanged folder is skipped without being read.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 01:30:29.633928
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sync_states", sa.Column("file_fingerprint", sa.String(length=128), nullable=True)
    )
    op.add_column("task_groups", sa.Column("plan_ref", sa.String(length=64), nullable=True))
    op.add_column(
        "task_groups",
        sa.Column(
            "group_metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.create_index(
        op.f("ix_task_groups_session_id_plan_ref"),
        "task_groups",
        ["session_id", "plan_ref"],
        unique=True,
    )
    op.add_column("tasks", sa.Column("plan_ref", sa.String(length=64), nullable=True))
    op.add_column(
        "tasks",
        sa.Column(
            "task_metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
    )
    op.create_index(
        op.f("ix_tasks_session_id_plan_ref"), "tasks", ["session_id", "plan_ref"], unique=True
    )


def downgrade() -> None:
    op.drop_column("sync_states", "file_fingerprint")
    op.drop_index(op.f("ix_tasks_session_id_plan_ref"), table_name="tasks")
    op.drop_column("tasks", "task_metadata")
    op.drop_column("tasks", "plan_ref")
    op.drop_index(op.f("ix_task_groups_session_id_plan_ref"), table_name="task_groups")
    op.drop_column("task_groups", "group_metadata")
    op.drop_column("task_groups", "plan_ref")
