"""Usage records: the tokens and cost of one model response, counted once.

A response is keyed by (`message_id`, `request_id`): Claude Code writes one response as
several transcript lines, and may replay it into another file, so the key (not the line)
is what is counted. Every cost says where it came from (`cost_source`) and whether it is
an estimate: a cost the client reported is exact, one computed from list prices is not.
"""

import uuid
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

from session_db.models.base import (
    TOKEN_COLUMNS,
    Base,
    InputModel,
    UTCDateTime,
    check_in,
    check_range,
    created_at_field,
    enum_field,
    id_field,
    money_field,
    timestamp_field,
    token_field,
    updated_at_field,
)


class CostSource(StrEnum):
    """Where a stored cost came from."""

    REPORTED = "reported"
    COMPUTED = "computed"
    UNPRICED = "unpriced"


class UsageRecord(Base, table=True):
    """One model response's token counts and cost, attributed to a session and agent."""

    __tablename__ = "usage_records"
    __table_args__ = (
        check_in("cost_source", CostSource),
        *(check_range(column, 0) for column in TOKEN_COLUMNS),
        check_range("cost", 0),
        sa.Index(None, "message_id", "request_id", unique=True),
        sa.Index(None, "session_id", "model"),
    )

    id: uuid.UUID = id_field()
    session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE")
    agent_id: uuid.UUID | None = Field(
        default=None, foreign_key="agents.id", ondelete="SET NULL", index=True
    )
    message_id: str = Field(max_length=255)
    # "" when the client wrote none, so the unique key still holds (NULLs never conflict).
    request_id: str = Field(default="", max_length=255, sa_column_kwargs={"server_default": ""})
    model: str = Field(max_length=128)
    input_tokens: int = token_field()
    output_tokens: int = token_field()
    cache_creation_tokens: int = token_field()
    cache_read_tokens: int = token_field()
    cost: Decimal = money_field()
    cost_source: CostSource = enum_field(CostSource, CostSource.UNPRICED)
    cost_is_estimate: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    occurred_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


# The columns' own bounds, so a value out of range is refused alike on both engines
# (SQLite would store a cost PostgreSQL's NUMERIC(18, 9) refuses; neither takes a count
# past BIGINT).
MAX_TOKENS = 2**63 - 1
MAX_COST = Decimal("999999999.999999999")


class UsageRecordCreate(InputModel):
    """Input to record one model response's usage; (message_id, request_id) is its key."""

    session_id: uuid.UUID
    agent_id: uuid.UUID | None = None
    message_id: str = Field(max_length=255)
    request_id: str = Field(default="", max_length=255)
    model: str = Field(max_length=128)
    input_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS)
    output_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS)
    cache_creation_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS)
    cache_read_tokens: int = Field(default=0, ge=0, le=MAX_TOKENS)
    cost: Decimal = Field(default=Decimal(0), ge=0, le=MAX_COST)
    cost_source: CostSource = CostSource.UNPRICED
    cost_is_estimate: bool = True
    occurred_at: datetime | None = None

    @property
    def total_tokens(self) -> int:
        """Input, output, cache-write and cache-read tokens together."""
        return sum(getattr(self, column) for column in TOKEN_COLUMNS)


class UsageHour(Base, table=True):
    """The usage records of one session, UTC hour, model and cost source, added up.

    Kept by `crud.add_usage_records` and `crud.delete_usage_records` (each recomputes
    the hours it touched from the records), so usage reports read a few thousand rows a
    year instead of every response. Read-only to everyone else.
    """

    __tablename__ = "usage_hours"
    __table_args__ = (
        check_in("cost_source", CostSource),
        sa.Index(None, "hour"),
    )

    session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE", primary_key=True)
    hour: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    model: str = Field(max_length=128, primary_key=True)
    cost_source: str = Field(max_length=16, primary_key=True)
    responses: int = Field(
        default=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"}
    )
    input_tokens: int = token_field()
    output_tokens: int = token_field()
    cache_creation_tokens: int = token_field()
    cache_read_tokens: int = token_field()
    cost: Decimal = money_field()
    first_at: datetime = Field(sa_type=UTCDateTime)
    last_at: datetime = Field(sa_type=UTCDateTime)
