"""Placeholder for revision 0009, which another branch adds (an index on sessions).

It changes nothing: it exists only so that 0010 (usage_hours) has its parent on this
branch. When the branches meet, the real 0009 replaces this file.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 15:20:00
"""

from collections.abc import Sequence

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
