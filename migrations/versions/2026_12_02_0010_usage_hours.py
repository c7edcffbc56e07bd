"""Usage records summed per session, UTC hour, model and cost source: `usage_hours`.

Usage reports read this instead of every response (a year of a million records is a
few tens of thousands of rows here). `crud.add_usage_records` and
`crud.delete_usage_records` keep it, recomputing the hours they touch; deleting a
session deletes its rows. The upgrade fills it from the records already stored; the
downgrade drops it (the records are untouched).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 15:20:01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOKENS = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")


def upgrade() -> None:
    op.create_table(
        "usage_hours",
        sa.Column("session_id", sa.Uuid(), nullable=False),
        sa.Column("hour", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("cost_source", sa.String(length=16), nullable=False),
        sa.Column("responses", sa.BigInteger(), server_default="0", nullable=False),
        *(sa.Column(name, sa.BigInteger(), server_default="0", nullable=False) for name in TOKENS),
        sa.Column("cost", sa.Numeric(precision=18, scale=9), server_default="0", nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "cost_source IN ('reported', 'computed', 'unpriced')",
            name=op.f("ck_usage_hours_cost_source_valid"),
        ),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["sessions.id"],
            name=op.f("fk_usage_hours_session_id_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "session_id", "hour", "model", "cost_source", name=op.f("pk_usage_hours")
        ),
    )
    op.create_index(op.f("ix_usage_hours_hour"), "usage_hours", ["hour"], unique=False)
    moment = "coalesce(occurred_at, created_at)"
    if op.get_bind().dialect.name == "sqlite":
        hour = f"substr({moment}, 1, 13) || ':00:00.000000'"
        cost = "sum(cast(round(cost * 1000000000) AS INTEGER)) / 1000000000.0"
    else:
        hour = f"timezone('UTC', date_trunc('hour', timezone('UTC', {moment})))"
        cost = "sum(cost)"
    sums = ", ".join(f"sum({name})" for name in TOKENS)
    op.execute(
        f"INSERT INTO usage_hours (session_id, hour, model, cost_source, responses,"
        f" {', '.join(TOKENS)}, cost, first_at, last_at)"
        f" SELECT session_id, {hour}, model, cost_source, count(*), {sums}, {cost},"
        f" min({moment}), max({moment})"
        f" FROM usage_records GROUP BY 1, 2, 3, 4"
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_usage_hours_hour"), table_name="usage_hours")
    op.drop_table("usage_hours")
