"""Initial schema: every table of the seven domains, with named constraints and indexes.

Reviewed by hand after autogenerate: timestamps default to the portable `sa.func.now()`
(CURRENT_TIMESTAMP on SQLite), and the downgrade drops everything the upgrade created.

Revision ID: 0001
Revises:
Create Date: 2026-11-23 01:01:25.278514
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("root_path", sa.String(length=1024), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "project_metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("root_path", name=op.f("uq_projects_root_path")),
    )
    op.create_table(
        "session_modes",
        sa.Column("mode_name", sa.String(length=255), nullable=False),
        sa.Column("yaml_file_path", sa.String(length=1024), nullable=False),
        sa.Column("yaml_content_hash", sa.String(length=128), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column(
            "specialist_roles",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column(
            "default_complexity", sa.String(length=32), server_default="moderate", nullable=False
        ),
        sa.Column(
            "auto_task_routing", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("is_valid", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("last_validated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "validation_errors",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_modes")),
        sa.UniqueConstraint("yaml_file_path", name=op.f("uq_session_modes_yaml_file_path")),
    )
    op.create_table(
        "sessions",
        sa.Column("session_slug", sa.String(length=255), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("working_dir", sa.String(length=4096), nullable=True),
        sa.Column("source_app", sa.String(length=64), nullable=True),
        sa.Column("session_type", sa.String(length=32), nullable=True),
        sa.Column("session_role", sa.String(length=32), server_default="main", nullable=False),
        sa.Column("category", sa.String(length=64), nullable=True),
        sa.Column("phase", sa.String(length=32), server_default="created", nullable=False),
        sa.Column("status", sa.String(length=32), server_default="active", nullable=False),
        sa.Column("parent_session_id", sa.Uuid(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("agent_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column("total_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "total_cost", sa.Numeric(precision=18, scale=9), server_default="0", nullable=False
        ),
        sa.Column("priority", sa.Integer(), server_default="3", nullable=False),
        sa.Column("progress_percentage", sa.Float(), server_default="0", nullable=False),
        sa.Column("total_tasks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completed_tasks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("activated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("estimated_completion_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "session_metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "phase IN ('created', 'spec', 'plan', 'build', 'docs', 'complete', 'failed')",
            name=op.f("ck_sessions_phase_valid"),
        ),
        sa.CheckConstraint(
            "session_role IN ('main', 'subagent', 'wave', 'continuation', 'isolated')",
            name=op.f("ck_sessions_session_role_valid"),
        ),
        sa.CheckConstraint(
            "session_type IN ('full', 'quick', 'research')",
            name=op.f("ck_sessions_session_type_valid"),
        ),
        sa.CheckConstraint(
            "status IN ('active', 'paused', 'completed', 'failed', 'timeout', 'cancelled', 'archived')",
            name=op.f("ck_sessions_status_valid"),
        ),
        sa.CheckConstraint("agent_count >= 0", name=op.f("ck_sessions_agent_count_min")),
        sa.CheckConstraint(
            "completed_tasks <= total_tasks", name=op.f("ck_sessions_completed_within_total")
        ),
        sa.CheckConstraint("completed_tasks >= 0", name=op.f("ck_sessions_completed_tasks_min")),
        sa.CheckConstraint("duration_ms >= 0", name=op.f("ck_sessions_duration_ms_min")),
        sa.CheckConstraint("ended_at >= started_at", name=op.f("ck_sessions_ends_after_start")),
        sa.CheckConstraint("parent_session_id <> id", name=op.f("ck_sessions_not_own_parent")),
        sa.CheckConstraint("priority BETWEEN 1 AND 5", name=op.f("ck_sessions_priority_range")),
        sa.CheckConstraint(
            "progress_percentage BETWEEN 0 AND 100",
            name=op.f("ck_sessions_progress_percentage_range"),
        ),
        sa.CheckConstraint("total_cost >= 0", name=op.f("ck_sessions_total_cost_min")),
        sa.CheckConstraint("total_tokens >= 0", name=op.f("ck_sessions_total_tokens_min")),
        sa.ForeignKeyConstraint(
            ["parent_session_id"],
            ["sessions.id"],
            name=op.f("fk_sessions_parent_session_id_sessions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_sessions_project_id_projects"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("session_slug", name=op.f("uq_sessions_session_slug")),
    )
    op.create_index(
        op.f("ix_sessions_last_activity_at"), "sessions", ["last_activity_at"], unique=False
    )
    op.create_index(
        op.f("ix_sessions_parent_session_id"), "sessions", ["parent_session_id"], unique=False
    )
    op.create_index(op.f("ix_sessions_phase"), "sessions", ["phase"], unique=False)
    op.create_index(op.f("ix_sessions_priority"), "sessions", ["priority"], unique=False)
    op.create_index(op.f("ix_sessions_project_id"), "sessions", ["project_id"], unique=False)
    op.create_index(op.f("ix_sessions_session_role"), "sessions", ["session_role"], unique=False)
    op.create_index(op.f("ix_sessions_session_type"), "sessions", ["session_type"], unique=False)
    op.create_index(op.f("ix_sessions_source_app"), "sessions", ["source_app"], unique=False)
    op.create_index(op.f("ix_sessions_started_at"), "sessions", ["started_at"], unique=False)
    op.create_index(op.f("ix_sessions_status"), "sessions", ["status"], unique=False)
    op.create_table(
        "active_session",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column(
            "activated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "context_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.CheckConstraint("id = 1", name=op.f("ck_active_session_singleton")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_active_session_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_active_session")),
    )
    op.create_table(
        "agents",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("agent_type", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("model_alias", sa.String(length=64), nullable=True),
        sa.Column("sdk_session_id", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cache_creation_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "total_cost", sa.Numeric(precision=18, scale=9), server_default="0", nullable=False
        ),
        sa.Column("num_turns", sa.Integer(), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "agent_metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'executing', 'complete', 'failed')",
            name=op.f("ck_agents_status_valid"),
        ),
        sa.CheckConstraint(
            "cache_creation_tokens >= 0", name=op.f("ck_agents_cache_creation_tokens_min")
        ),
        sa.CheckConstraint("cache_read_tokens >= 0", name=op.f("ck_agents_cache_read_tokens_min")),
        sa.CheckConstraint("checkpoint_id >= 0", name=op.f("ck_agents_checkpoint_id_min")),
        sa.CheckConstraint("duration_ms >= 0", name=op.f("ck_agents_duration_ms_min")),
        sa.CheckConstraint("input_tokens >= 0", name=op.f("ck_agents_input_tokens_min")),
        sa.CheckConstraint("num_turns >= 0", name=op.f("ck_agents_num_turns_min")),
        sa.CheckConstraint("output_tokens >= 0", name=op.f("ck_agents_output_tokens_min")),
        sa.CheckConstraint("total_cost >= 0", name=op.f("ck_agents_total_cost_min")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_agents_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
    )
    op.create_index(op.f("ix_agents_agent_type"), "agents", ["agent_type"], unique=False)
    op.create_index(op.f("ix_agents_sdk_session_id"), "agents", ["sdk_session_id"], unique=False)
    op.create_index(op.f("ix_agents_session_id"), "agents", ["session_id"], unique=False)
    op.create_index(
        op.f("ix_agents_session_id_status"), "agents", ["session_id", "status"], unique=False
    )
    op.create_table(
        "session_mode_bindings",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("mode_id", sa.Uuid(), nullable=False),
        sa.Column(
            "bound_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "binding_context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["mode_id"],
            ["session_modes.id"],
            name=op.f("fk_session_mode_bindings_mode_id_session_modes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_session_mode_bindings_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("session_id", "mode_id", name=op.f("pk_session_mode_bindings")),
    )
    op.create_index(
        op.f("ix_session_mode_bindings_mode_id"), "session_mode_bindings", ["mode_id"], unique=False
    )
    op.create_table(
        "session_relationships",
        sa.Column("parent_session_id", sa.Uuid(), nullable=False),
        sa.Column("child_session_id", sa.Uuid(), nullable=False),
        sa.Column(
            "relationship_type", sa.String(length=32), server_default="parent/child", nullable=False
        ),
        sa.Column("spawn_reason", sa.String(length=32), nullable=True),
        sa.Column("delegation_type", sa.String(length=32), nullable=True),
        sa.Column(
            "spawn_metadata",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("depth_level", sa.Integer(), server_default="1", nullable=False),
        sa.Column("session_path", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "delegation_type IN ('parallel', 'sequential', 'isolated')",
            name=op.f("ck_session_relationships_delegation_type_valid"),
        ),
        sa.CheckConstraint(
            "relationship_type IN ('parent/child', 'sibling', 'continuation', 'wave_member')",
            name=op.f("ck_session_relationships_relationship_type_valid"),
        ),
        sa.CheckConstraint(
            "spawn_reason IN ('subagent_delegation', 'wave_orchestration', 'task_tool', 'continuation')",
            name=op.f("ck_session_relationships_spawn_reason_valid"),
        ),
        sa.CheckConstraint(
            "depth_level >= 1", name=op.f("ck_session_relationships_depth_level_min")
        ),
        sa.CheckConstraint(
            "parent_session_id <> child_session_id",
            name=op.f("ck_session_relationships_parent_not_child"),
        ),
        sa.ForeignKeyConstraint(
            ["child_session_id"],
            ["sessions.id"],
            name=op.f("fk_session_relationships_child_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["parent_session_id"],
            ["sessions.id"],
            name=op.f("fk_session_relationships_parent_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_session_relationships")),
        sa.UniqueConstraint(
            "parent_session_id",
            "child_session_id",
            name=op.f("uq_session_relationships_parent_session_id_child_session_id"),
        ),
    )
    op.create_index(
        op.f("ix_session_relationships_child_session_id"),
        "session_relationships",
        ["child_session_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_session_relationships_created_at"),
        "session_relationships",
        ["created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_session_relationships_parent_session_id_relationship_type"),
        "session_relationships",
        ["parent_session_id", "relationship_type"],
        unique=False,
    )
    op.create_index(
        op.f("ix_session_relationships_relationship_type"),
        "session_relationships",
        ["relationship_type"],
        unique=False,
    )
    op.create_table(
        "sync_states",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=True),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("session_dir", sa.String(length=1024), nullable=False),
        sa.Column("sync_status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("content_hash", sa.String(length=128), nullable=True),
        sa.Column("file_modified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_synced_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column(
            "file_monitor_active", sa.Boolean(), server_default=sa.text("true"), nullable=False
        ),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "sync_status IN ('pending', 'synchronized', 'error', 'unrecognised', 'missing')",
            name=op.f("ck_sync_states_sync_status_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_sync_states_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_sync_states_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_states")),
        sa.UniqueConstraint("session_dir", name=op.f("uq_sync_states_session_dir")),
    )
    op.create_index(op.f("ix_sync_states_project_id"), "sync_states", ["project_id"], unique=False)
    op.create_index(op.f("ix_sync_states_session_id"), "sync_states", ["session_id"], unique=False)
    op.create_index(
        op.f("ix_sync_states_sync_status"), "sync_states", ["sync_status"], unique=False
    )
    op.create_table(
        "task_groups",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("group_name", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("parent_group_id", sa.Uuid(), nullable=True),
        sa.Column("group_level", sa.Integer(), server_default="0", nullable=False),
        sa.Column("position_in_session", sa.Integer(), server_default="0", nullable=False),
        sa.Column("specialist_focus", sa.String(length=128), nullable=True),
        sa.Column("estimated_effort", sa.Integer(), server_default="0", nullable=False),
        sa.Column("priority", sa.Integer(), server_default="3", nullable=False),
        sa.Column("markdown_section", sa.Text(), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("total_tasks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("completed_tasks", sa.Integer(), server_default="0", nullable=False),
        sa.Column("progress_percentage", sa.Float(), server_default="0", nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "completed_tasks <= total_tasks", name=op.f("ck_task_groups_completed_within_total")
        ),
        sa.CheckConstraint("completed_tasks >= 0", name=op.f("ck_task_groups_completed_tasks_min")),
        sa.CheckConstraint(
            "estimated_effort >= 0", name=op.f("ck_task_groups_estimated_effort_min")
        ),
        sa.CheckConstraint("group_level >= 0", name=op.f("ck_task_groups_group_level_min")),
        sa.CheckConstraint("parent_group_id <> id", name=op.f("ck_task_groups_not_own_parent")),
        sa.CheckConstraint(
            "position_in_session >= 0", name=op.f("ck_task_groups_position_in_session_min")
        ),
        sa.CheckConstraint("priority BETWEEN 1 AND 5", name=op.f("ck_task_groups_priority_range")),
        sa.CheckConstraint(
            "progress_percentage BETWEEN 0 AND 100",
            name=op.f("ck_task_groups_progress_percentage_range"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_group_id"],
            ["task_groups.id"],
            name=op.f("fk_task_groups_parent_group_id_task_groups"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_task_groups_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_groups")),
        sa.UniqueConstraint(
            "session_id", "group_name", name=op.f("uq_task_groups_session_id_group_name")
        ),
    )
    op.create_index(
        op.f("ix_task_groups_parent_group_id"), "task_groups", ["parent_group_id"], unique=False
    )
    op.create_table(
        "threads",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=32), server_default="active", nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('active', 'archived')", name=op.f("ck_threads_status_valid")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_threads_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_threads")),
    )
    op.create_index(op.f("ix_threads_created_at"), "threads", ["created_at"], unique=False)
    op.create_index(
        op.f("ix_threads_session_id_updated_at"),
        "threads",
        ["session_id", "updated_at"],
        unique=False,
    )
    op.create_index(op.f("ix_threads_status"), "threads", ["status"], unique=False)
    op.create_index(op.f("ix_threads_updated_at"), "threads", ["updated_at"], unique=False)
    op.create_table(
        "agent_logs",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("parent_session_id", sa.Uuid(), nullable=True),
        sa.Column("session_depth", sa.Integer(), server_default="0", nullable=False),
        sa.Column("wave_id", sa.String(length=128), nullable=True),
        sa.Column(
            "delegation_context",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("event_category", sa.String(length=32), server_default="hook", nullable=False),
        sa.Column("event_type", sa.String(length=128), nullable=False),
        sa.Column("source_app", sa.String(length=64), nullable=True),
        sa.Column("tool_name", sa.String(length=128), nullable=True),
        sa.Column(
            "tool_input",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "tool_output",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column(
            "occurred_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "event_category IN ('hook', 'response', 'phase')",
            name=op.f("ck_agent_logs_event_category_valid"),
        ),
        sa.CheckConstraint(
            "parent_session_id <> session_id", name=op.f("ck_agent_logs_parent_not_self")
        ),
        sa.CheckConstraint("session_depth >= 0", name=op.f("ck_agent_logs_session_depth_min")),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_logs_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["parent_session_id"],
            ["sessions.id"],
            name=op.f("fk_agent_logs_parent_session_id_sessions"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_agent_logs_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_logs")),
    )
    op.create_index(op.f("ix_agent_logs_agent_id"), "agent_logs", ["agent_id"], unique=False)
    op.create_index(
        op.f("ix_agent_logs_event_type_occurred_at"),
        "agent_logs",
        ["event_type", "occurred_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_agent_logs_parent_session_id"), "agent_logs", ["parent_session_id"], unique=False
    )
    op.create_index(
        op.f("ix_agent_logs_session_depth_event_type"),
        "agent_logs",
        ["session_depth", "event_type"],
        unique=False,
    )
    op.create_index(
        op.f("ix_agent_logs_session_id_occurred_at"),
        "agent_logs",
        ["session_id", "occurred_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_agent_logs_wave_id_occurred_at"),
        "agent_logs",
        ["wave_id", "occurred_at"],
        unique=False,
    )
    op.create_table(
        "tasks",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("group_id", sa.Uuid(), nullable=True),
        sa.Column("parent_task_id", sa.Uuid(), nullable=True),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("specialist_type", sa.String(length=128), nullable=True),
        sa.Column(
            "complexity_level", sa.String(length=32), server_default="moderate", nullable=False
        ),
        sa.Column("status", sa.String(length=32), server_default="pending", nullable=False),
        sa.Column("progress_percentage", sa.Float(), server_default="0", nullable=False),
        sa.Column("position_in_group", sa.Integer(), server_default="0", nullable=False),
        sa.Column("estimated_effort", sa.Integer(), nullable=True),
        sa.Column("actual_effort", sa.Integer(), nullable=True),
        sa.Column("markdown_section", sa.Text(), nullable=True),
        sa.Column("file_operations_count", sa.Integer(), server_default="0", nullable=False),
        sa.Column(
            "verification_status", sa.String(length=32), server_default="pending", nullable=False
        ),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("root_task_id", sa.Uuid(), nullable=True),
        sa.Column("level", sa.Integer(), server_default="0", nullable=False),
        sa.Column("hierarchy_path", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'in_progress', 'blocked', 'completed', 'failed', 'cancelled', 'skipped')",
            name=op.f("ck_tasks_status_valid"),
        ),
        sa.CheckConstraint("actual_effort >= 0", name=op.f("ck_tasks_actual_effort_min")),
        sa.CheckConstraint("estimated_effort >= 0", name=op.f("ck_tasks_estimated_effort_min")),
        sa.CheckConstraint(
            "file_operations_count >= 0", name=op.f("ck_tasks_file_operations_count_min")
        ),
        sa.CheckConstraint("level >= 0", name=op.f("ck_tasks_level_min")),
        sa.CheckConstraint("parent_task_id <> id", name=op.f("ck_tasks_not_own_parent")),
        sa.CheckConstraint("position_in_group >= 0", name=op.f("ck_tasks_position_in_group_min")),
        sa.CheckConstraint(
            "progress_percentage BETWEEN 0 AND 100", name=op.f("ck_tasks_progress_percentage_range")
        ),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["task_groups.id"],
            name=op.f("fk_tasks_group_id_task_groups"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["parent_task_id"],
            ["tasks.id"],
            name=op.f("fk_tasks_parent_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["root_task_id"],
            ["tasks.id"],
            name=op.f("fk_tasks_root_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_tasks_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tasks")),
    )
    op.create_index(op.f("ix_tasks_group_id"), "tasks", ["group_id"], unique=False)
    op.create_index(op.f("ix_tasks_parent_task_id"), "tasks", ["parent_task_id"], unique=False)
    op.create_index(op.f("ix_tasks_root_task_id"), "tasks", ["root_task_id"], unique=False)
    op.create_index(
        op.f("ix_tasks_session_id_group_id"), "tasks", ["session_id", "group_id"], unique=False
    )
    op.create_index(
        op.f("ix_tasks_session_id_hierarchy_path"),
        "tasks",
        ["session_id", "hierarchy_path"],
        unique=False,
    )
    op.create_index(
        op.f("ix_tasks_session_id_status"), "tasks", ["session_id", "status"], unique=False
    )
    op.create_table(
        "thread_messages",
        sa.Column("thread_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "role IN ('user', 'assistant', 'system')", name=op.f("ck_thread_messages_role_valid")
        ),
        sa.CheckConstraint("idx >= 0", name=op.f("ck_thread_messages_idx_min")),
        sa.ForeignKeyConstraint(
            ["thread_id"],
            ["threads.id"],
            name=op.f("fk_thread_messages_thread_id_threads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_thread_messages")),
        sa.UniqueConstraint("thread_id", "idx", name=op.f("uq_thread_messages_thread_id_idx")),
    )
    op.create_index(
        op.f("ix_thread_messages_created_at"), "thread_messages", ["created_at"], unique=False
    )
    op.create_index(op.f("ix_thread_messages_role"), "thread_messages", ["role"], unique=False)
    op.create_table(
        "task_dependencies",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("depends_on_task_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "task_id <> depends_on_task_id", name=op.f("ck_task_dependencies_not_self")
        ),
        sa.ForeignKeyConstraint(
            ["depends_on_task_id"],
            ["tasks.id"],
            name=op.f("fk_task_dependencies_depends_on_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_task_dependencies_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", "depends_on_task_id", name=op.f("pk_task_dependencies")),
    )
    op.create_index(
        op.f("ix_task_dependencies_depends_on_task_id"),
        "task_dependencies",
        ["depends_on_task_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_task_dependencies_depends_on_task_id"), table_name="task_dependencies")
    op.drop_table("task_dependencies")
    op.drop_index(op.f("ix_thread_messages_role"), table_name="thread_messages")
    op.drop_index(op.f("ix_thread_messages_created_at"), table_name="thread_messages")
    op.drop_table("thread_messages")
    op.drop_index(op.f("ix_tasks_session_id_status"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_session_id_hierarchy_path"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_session_id_group_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_root_task_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_parent_task_id"), table_name="tasks")
    op.drop_index(op.f("ix_tasks_group_id"), table_name="tasks")
    op.drop_table("tasks")
    op.drop_index(op.f("ix_agent_logs_wave_id_occurred_at"), table_name="agent_logs")
    op.drop_index(op.f("ix_agent_logs_session_id_occurred_at"), table_name="agent_logs")
    op.drop_index(op.f("ix_agent_logs_session_depth_event_type"), table_name="agent_logs")
    op.drop_index(op.f("ix_agent_logs_parent_session_id"), table_name="agent_logs")
    op.drop_index(op.f("ix_agent_logs_event_type_occurred_at"), table_name="agent_logs")
    op.drop_index(op.f("ix_agent_logs_agent_id"), table_name="agent_logs")
    op.drop_table("agent_logs")
    op.drop_index(op.f("ix_threads_updated_at"), table_name="threads")
    op.drop_index(op.f("ix_threads_status"), table_name="threads")
    op.drop_index(op.f("ix_threads_session_id_updated_at"), table_name="threads")
    op.drop_index(op.f("ix_threads_created_at"), table_name="threads")
    op.drop_table("threads")
    op.drop_index(op.f("ix_task_groups_parent_group_id"), table_name="task_groups")
    op.drop_table("task_groups")
    op.drop_index(op.f("ix_sync_states_sync_status"), table_name="sync_states")
    op.drop_index(op.f("ix_sync_states_session_id"), table_name="sync_states")
    op.drop_index(op.f("ix_sync_states_project_id"), table_name="sync_states")
    op.drop_table("sync_states")
    op.drop_index(
        op.f("ix_session_relationships_relationship_type"), table_name="session_relationships"
    )
    op.drop_index(
        op.f("ix_session_relationships_parent_session_id_relationship_type"),
        table_name="session_relationships",
    )
    op.drop_index(op.f("ix_session_relationships_created_at"), table_name="session_relationships")
    op.drop_index(
        op.f("ix_session_relationships_child_session_id"), table_name="session_relationships"
    )
    op.drop_table("session_relationships")
    op.drop_index(op.f("ix_session_mode_bindings_mode_id"), table_name="session_mode_bindings")
    op.drop_table("session_mode_bindings")
    op.drop_index(op.f("ix_agents_session_id_status"), table_name="agents")
    op.drop_index(op.f("ix_agents_session_id"), table_name="agents")
    op.drop_index(op.f("ix_agents_sdk_session_id"), table_name="agents")
    op.drop_index(op.f("ix_agents_agent_type"), table_name="agents")
    op.drop_table("agents")
    op.drop_table("active_session")
    op.drop_index(op.f("ix_sessions_status"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_started_at"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_source_app"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_session_type"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_session_role"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_project_id"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_priority"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_phase"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_parent_session_id"), table_name="sessions")
    op.drop_index(op.f("ix_sessions_last_activity_at"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_table("session_modes")
    op.drop_table("projects")
