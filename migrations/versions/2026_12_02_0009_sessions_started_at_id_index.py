"""Index `sessions (started_at, id)`: the default order of list_sessions, off an index.

`list_sessions` now lists the latest started first, ties by id in the same direction.
The composite index serves that order (scanned backwards) and every started_at range
the single-column `ix_sessions_started_at` served, so it replaces that index. The
downgrade puts the single-column index back.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 15:20:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_sessions_started_at_id", "sessions", ["started_at", "id"])
    op.drop_index("ix_sessions_started_at", table_name="sessions")


def downgrade() -> None:
    op.create_index("ix_sessions_started_at", "sessions", ["started_at"])
    op.drop_index("ix_sessions_started_at_id", table_name="sessions")
