"""Sync states keep the warnings of a folder's last read.

A folder whose files hold a mapped key with a value the sync cannot use still syncs;
`sync_states.warnings` lists those values, one line each, until the files change.
Existing rows get an empty list.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 01:21:56.791046
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "sync_states",
        sa.Column(
            "warnings",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            server_default=sa.text("'[]'"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("sync_states", "warnings")
