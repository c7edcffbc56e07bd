"""The Claude Agent SDK's session store: transcript entries per session key, and summaries.

Two new tables. `sdk_store_sessions` has a row per (project key, session id): the next
sequence number of its entries, its main transcript's write time (epoch ms) and the SDK's
folded summary (JSON text, kept verbatim). `sdk_store_entries` holds each entry as the
JSON text it was appended as, under its session row and subpath ("" for the main
transcript), unique per key by sequence number and by the entry's `uuid`. Nothing
existing changes, so the downgrade only drops what this adds.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 02:21:17
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _created_at() -> sa.Column:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
    )


def upgrade() -> None:
    op.create_table(
        "sdk_store_sessions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_key", sa.String(length=255), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=False),
        sa.Column("next_seq", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("mtime_ms", sa.BigInteger(), nullable=True),
        sa.Column("summary_json", sa.Text(), nullable=True),
        _created_at(),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint("mtime_ms >= 0", name=op.f("ck_sdk_store_sessions_mtime_ms_min")),
        sa.CheckConstraint("next_seq >= 0", name=op.f("ck_sdk_store_sessions_next_seq_min")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sdk_store_sessions")),
    )
    op.create_index(
        op.f("ix_sdk_store_sessions_project_key_session_id"),
        "sdk_store_sessions",
        ["project_key", "session_id"],
        unique=True,
    )
    op.create_table(
        "sdk_store_entries",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("store_session_id", sa.Uuid(), nullable=False),
        sa.Column("subpath", sa.String(length=1024), server_default="", nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("entry_uuid", sa.String(length=255), nullable=True),
        sa.Column("entry_json", sa.Text(), nullable=False),
        _created_at(),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_sdk_store_entries_seq_min")),
        sa.ForeignKeyConstraint(
            ["store_session_id"],
            ["sdk_store_sessions.id"],
            name=op.f("fk_sdk_store_entries_store_session_id_sdk_store_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sdk_store_entries")),
    )
    op.create_index(
        op.f("ix_sdk_store_entries_store_session_id_subpath_entry_uuid"),
        "sdk_store_entries",
        ["store_session_id", "subpath", "entry_uuid"],
        unique=True,
    )
    op.create_index(
        op.f("ix_sdk_store_entries_store_session_id_subpath_seq"),
        "sdk_store_entries",
        ["store_session_id", "subpath", "seq"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("sdk_store_entries")  # its indexes go with it
    op.drop_table("sdk_store_sessions")
