"""agent_logs: an index on (session_id, created_at), for the dashboard's live stream.

The session page's live event stream asks, about once a second, for a session's events
stored after the last one it sent (by `created_at`, when the row was stored, not when the
event happened, so a late delivery still counts as new), and the page starts from the
session's newest stored row. Without this index both read every event of the session:
about 250 ms a look at 100,000 events. Nothing else changes; the downgrade drops it.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 15:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_agent_logs_session_id_created_at"),
        "agent_logs",
        ["session_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_agent_logs_session_id_created_at"), table_name="agent_logs")
