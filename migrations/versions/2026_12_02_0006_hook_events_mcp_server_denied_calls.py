"""Today's Claude Code hook events: the MCP server is promoted, and a denied tool call has its status.

- `agent_logs.mcp_server` and `tool_calls.mcp_server`: the `mcp_server` field of tool
  events, so MCP tools can be told apart (and filtered) without reading payloads.
- `tool_calls.status` may be `denied`: a PermissionDenied event closes its call, which
  never ran. The CHECK is replaced; on SQLite that copies the table (batch mode), since
  SQLite cannot alter a constraint in place.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 02:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS_CHECK = "ck_tool_calls_status_valid"
OLD_STATUSES = "status IN ('running', 'succeeded', 'failed')"
NEW_STATUSES = "status IN ('running', 'succeeded', 'failed', 'denied')"
JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _tool_calls(statuses: str, *, mcp_server: bool) -> sa.Table:
    """`tool_calls` as it stands before a step, for SQLite's table copy.

    Given rather than reflected, so `upgrade --sql` works without a database; it names
    every column, constraint and index, because the copy keeps only what it is given.
    """
    now = sa.func.now()
    return sa.Table(
        "tool_calls",
        sa.MetaData(),
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("tool_use_id", sa.String(length=255), nullable=True),
        sa.Column("tool_name", sa.String(length=128), nullable=True),
        *([sa.Column("mcp_server", sa.String(length=255), nullable=True)] if mcp_server else []),
        sa.Column("status", sa.String(length=32), server_default="running", nullable=False),
        sa.Column("tool_input", JSON, nullable=True),
        sa.Column("tool_response", JSON, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("is_interrupt", sa.Boolean(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.BigInteger(), nullable=True),
        sa.Column("subagent_session_id", sa.Uuid(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=now, nullable=False),
        sa.CheckConstraint(statuses, name=op.f(STATUS_CHECK)),
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
        sa.Index(op.f("ix_tool_calls_session_id_started_at"), "session_id", "started_at"),
        sa.Index(
            op.f("ix_tool_calls_session_id_tool_use_id"), "session_id", "tool_use_id", unique=True
        ),
        sa.Index(op.f("ix_tool_calls_subagent_session_id"), "subagent_session_id"),
        sa.Index(op.f("ix_tool_calls_tool_name_status"), "tool_name", "status"),
    )


def upgrade() -> None:
    op.add_column("agent_logs", sa.Column("mcp_server", sa.String(length=255), nullable=True))
    with op.batch_alter_table(
        "tool_calls", copy_from=_tool_calls(OLD_STATUSES, mcp_server=False)
    ) as batch:
        batch.add_column(sa.Column("mcp_server", sa.String(length=255), nullable=True))
        batch.drop_constraint(op.f(STATUS_CHECK), type_="check")
        batch.create_check_constraint(op.f(STATUS_CHECK), NEW_STATUSES)


def downgrade() -> None:
    # A denied call becomes what the old schema can hold: a failed one, its reason kept.
    op.execute("UPDATE tool_calls SET status = 'failed' WHERE status = 'denied'")
    with op.batch_alter_table(
        "tool_calls", copy_from=_tool_calls(NEW_STATUSES, mcp_server=True)
    ) as batch:
        batch.drop_constraint(op.f(STATUS_CHECK), type_="check")
        batch.create_check_constraint(op.f(STATUS_CHECK), OLD_STATUSES)
        batch.drop_column("mcp_server")
    op.drop_column("agent_logs", "mcp_server")
