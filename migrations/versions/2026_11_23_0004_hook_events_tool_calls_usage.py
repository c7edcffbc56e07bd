"""Hook events from the spool, tool calls, usage records and transcript imports.

`agent_logs` gains the spool id (a unique index, so a re-delivered event inserts nothing)
and the hook payload fields people filter on. Three new tables: `tool_calls` (a tool's
start paired with its outcome), `usage_records` (one model response's tokens and cost,
unique per message and request id) and `transcript_imports` (how far each transcript
file has been read). Nothing existing changes, so the downgrade only drops what this adds.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 12:38:52.847515
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
    ]


def _tokens(name: str) -> sa.Column:
    return sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)


def upgrade() -> None:
    op.create_table(
        "tool_calls",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("tool_use_id", sa.String(length=255), nullable=True),
        sa.Column("tool_name", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="running", nullable=False),
        sa.Column("tool_input", JSON, nullable=True),
        sa.Column("tool_response", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("is_interrupt", sa.Boolean(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("subagent_session_id", sa.Uuid(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('running', 'succeeded', 'failed')", name=op.f("ck_tool_calls_status_valid")
        ),
        sa.CheckConstraint("duration_ms >= 0", name=op.f("ck_tool_calls_duration_ms_min")),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_tool_calls_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subagent_session_id"],
            ["sessions.id"],
            name=op.f("fk_tool_calls_subagent_session_id_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tool_calls")),
    )
    op.create_index(
        op.f("ix_tool_calls_session_id_started_at"), "tool_calls", ["session_id", "started_at"]
    )
    op.create_index(
        op.f("ix_tool_calls_session_id_tool_use_id"),
        "tool_calls",
        ["session_id", "tool_use_id"],
        unique=True,
    )
    op.create_index(
        op.f("ix_tool_calls_subagent_session_id"), "tool_calls", ["subagent_session_id"]
    )
    op.create_index(op.f("ix_tool_calls_tool_name_status"), "tool_calls", ["tool_name", "status"])

    op.create_table(
        "transcript_imports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=True),
        sa.Column("file_identity", sa.String(length=255), nullable=True),
        sa.Column("byte_offset", sa.BigInteger(), nullable=False),
        sa.Column("lines_read", sa.BigInteger(), nullable=False),
        sa.Column("last_imported_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_transcript_imports_session_id_sessions"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcript_imports")),
        sa.UniqueConstraint("path", name=op.f("uq_transcript_imports_path")),
    )
    op.create_index(op.f("ix_transcript_imports_session_id"), "transcript_imports", ["session_id"])

    op.create_table(
        "usage_records",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("agent_id", sa.Uuid(), nullable=True),
        sa.Column("message_id", sa.String(length=255), nullable=False),
        sa.Column("request_id", sa.String(length=255), server_default="", nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        _tokens("input_tokens"),
        _tokens("output_tokens"),
        _tokens("cache_creation_tokens"),
        _tokens("cache_read_tokens"),
        sa.Column("cost", sa.Numeric(precision=18, scale=9), server_default="0", nullable=False),
        sa.Column("cost_source", sa.String(length=32), server_default="unpriced", nullable=False),
        sa.Column("cost_is_estimate", sa.Boolean(), server_default=sa.true(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "cost_source IN ('reported', 'computed', 'unpriced')",
            name=op.f("ck_usage_records_cost_source_valid"),
        ),
        sa.CheckConstraint(
            "cache_creation_tokens >= 0", name=op.f("ck_usage_records_cache_creation_tokens_min")
        ),
        sa.CheckConstraint(
            "cache_read_tokens >= 0", name=op.f("ck_usage_records_cache_read_tokens_min")
        ),
        sa.CheckConstraint("cost >= 0", name=op.f("ck_usage_records_cost_min")),
        sa.CheckConstraint("input_tokens >= 0", name=op.f("ck_usage_records_input_tokens_min")),
        sa.CheckConstraint("output_tokens >= 0", name=op.f("ck_usage_records_output_tokens_min")),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_usage_records_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_usage_records_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_usage_records")),
    )
    op.create_index(op.f("ix_usage_records_agent_id"), "usage_records", ["agent_id"])
    op.create_index(
        op.f("ix_usage_records_message_id_request_id"),
        "usage_records",
        ["message_id", "request_id"],
        unique=True,
    )
    op.create_index(
        op.f("ix_usage_records_session_id_model"), "usage_records", ["session_id", "model"]
    )

    # Plain ADD COLUMN and CREATE INDEX on both engines: SQLite needs no table copy here.
    op.add_column("agent_logs", sa.Column("spool_id", sa.String(length=64), nullable=True))
    op.add_column(
        "agent_logs", sa.Column("external_session_id", sa.String(length=255), nullable=True)
    )
    op.add_column(
        "agent_logs", sa.Column("external_agent_id", sa.String(length=255), nullable=True)
    )
    op.add_column("agent_logs", sa.Column("agent_type", sa.String(length=128), nullable=True))
    op.add_column("agent_logs", sa.Column("tool_use_id", sa.String(length=255), nullable=True))
    op.add_column("agent_logs", sa.Column("prompt_id", sa.String(length=255), nullable=True))
    op.add_column("agent_logs", sa.Column("permission_mode", sa.String(length=64), nullable=True))
    op.add_column("agent_logs", sa.Column("cwd", sa.Text(), nullable=True))
    op.add_column("agent_logs", sa.Column("transcript_path", sa.Text(), nullable=True))
    op.add_column("agent_logs", sa.Column("source", sa.String(length=64), nullable=True))
    op.add_column("agent_logs", sa.Column("reason", sa.Text(), nullable=True))
    op.create_index(
        op.f("ix_agent_logs_external_session_id_occurred_at"),
        "agent_logs",
        ["external_session_id", "occurred_at"],
    )
    op.create_index(op.f("ix_agent_logs_spool_id"), "agent_logs", ["spool_id"], unique=True)
    op.create_index(op.f("ix_agent_logs_tool_use_id"), "agent_logs", ["tool_use_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_agent_logs_tool_use_id"), table_name="agent_logs")
    op.drop_index(op.f("ix_agent_logs_spool_id"), table_name="agent_logs")
    op.drop_index(op.f("ix_agent_logs_external_session_id_occurred_at"), table_name="agent_logs")
    # Plain DROP COLUMN (SQLite 3.35+): no table copy, and it works with --sql too.
    for column in (
        "reason",
        "source",
        "transcript_path",
        "cwd",
        "permission_mode",
        "prompt_id",
        "tool_use_id",
        "agent_type",
        "external_agent_id",
        "external_session_id",
        "spool_id",
    ):
        op.drop_column("agent_logs", column)
    op.drop_table("usage_records")
    op.drop_table("transcript_imports")
    op.drop_table("tool_calls")
