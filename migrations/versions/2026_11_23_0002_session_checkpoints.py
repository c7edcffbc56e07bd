"""Sessions count build checkpoints (state.json's build_progress).

Seed 003 asks the database for "sessions with more than N checkpoints"; two counters
and an index make that a plain query. Written by hand, since autogenerate does not see
CHECK constraints.

SQLite cannot add a CHECK constraint to an existing table without copying the table,
but a column added with ADD COLUMN may carry its own. So on SQLite the counters arrive
with their rules attached: no copy of a possibly large table, and the `--sql` dry run
needs no live database to reflect from.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 01:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMPLETED_MIN = "ck_sessions_checkpoints_completed_min"
WITHIN_TOTAL = "ck_sessions_checkpoints_within_total"


def _is_sqlite() -> bool:
    return op.get_context().dialect.name == "sqlite"


def upgrade() -> None:
    if _is_sqlite():
        op.execute("ALTER TABLE sessions ADD COLUMN checkpoints_total INTEGER DEFAULT '0' NOT NULL")
        op.execute(
            "ALTER TABLE sessions ADD COLUMN checkpoints_completed INTEGER DEFAULT '0' NOT NULL "
            f"CONSTRAINT {COMPLETED_MIN} CHECK (checkpoints_completed >= 0) "
            f"CONSTRAINT {WITHIN_TOTAL} CHECK (checkpoints_completed <= checkpoints_total)"
        )
    else:
        op.add_column(
            "sessions",
            sa.Column("checkpoints_total", sa.Integer(), server_default="0", nullable=False),
        )
        op.add_column(
            "sessions",
            sa.Column("checkpoints_completed", sa.Integer(), server_default="0", nullable=False),
        )
        op.create_check_constraint(op.f(COMPLETED_MIN), "sessions", "checkpoints_completed >= 0")
        op.create_check_constraint(
            op.f(WITHIN_TOTAL), "sessions", "checkpoints_completed <= checkpoints_total"
        )
    op.create_index(op.f("ix_sessions_checkpoints_total"), "sessions", ["checkpoints_total"])


def downgrade() -> None:
    op.drop_index(op.f("ix_sessions_checkpoints_total"), table_name="sessions")
    if _is_sqlite():
        # Dropping a column drops the CHECKs written on it; completed goes first because
        # its rule mentions total.
        op.execute("ALTER TABLE sessions DROP COLUMN checkpoints_completed")
        op.execute("ALTER TABLE sessions DROP COLUMN checkpoints_total")
    else:
        op.drop_constraint(op.f(WITHIN_TOTAL), "sessions", type_="check")
        op.drop_constraint(op.f(COMPLETED_MIN), "sessions", type_="check")
        op.drop_column("sessions", "checkpoints_completed")
        op.drop_column("sessions", "checkpoints_total")
