"""The Claude Agent SDK's session store: transcript entries kept whole, per session key.

A store key is (`project_key`, `session_id`, `subpath`): the main transcript has no
subpath (stored as ""), a subagent's is like `subagents/agent-<id>`. Entries are kept as
the JSON text they were given, so each one loads back exactly as it was appended on both
engines (JSONB would refuse a NUL escape and drop duplicate keys). Each session has one
row holding the next sequence number of its entries, its main transcript's write time
and the SDK's folded summary; appends to a session take that row in turn.
"""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from session_db.models.base import (
    Base,
    check_range,
    created_at_field,
    id_field,
    updated_at_field,
)

# Key parts are refused beyond these lengths rather than cut: cutting would merge keys.
MAX_KEY_CHARS = 255
MAX_SUBPATH_CHARS = 1024


class SdkStoreSession(Base, table=True):
    """One stored session of a project key: its entry sequence, write time and summary."""

    __tablename__ = "sdk_store_sessions"
    __table_args__ = (
        sa.Index(None, "project_key", "session_id", unique=True),
        check_range("next_seq", 0),
        check_range("mtime_ms", 0),
    )

    id: uuid.UUID = id_field()
    project_key: str = Field(max_length=MAX_KEY_CHARS)
    session_id: str = Field(max_length=MAX_KEY_CHARS)
    # The sequence number the next entry of any of the session's keys gets: entries of
    # one key load in this order, which is the order their appends took this row.
    next_seq: int = Field(
        default=0, sa_type=sa.BigInteger, sa_column_kwargs={"server_default": "0"}
    )
    # When the main transcript was last written, in Unix epoch milliseconds (the clock of
    # `list_sessions` and of the summary); None while only subkeys were written.
    mtime_ms: int | None = Field(default=None, sa_type=sa.BigInteger)
    # The SDK's `fold_session_summary` output as JSON text, kept verbatim; None until
    # the main transcript is written.
    summary_json: str | None = Field(default=None, sa_type=sa.Text)
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class SdkStoreEntry(Base, table=True):
    """One transcript entry of a store key, in its key's order, kept as JSON text."""

    __tablename__ = "sdk_store_entries"
    __table_args__ = (
        sa.Index(None, "store_session_id", "subpath", "seq", unique=True),
        # The entry's `uuid` is its idempotency key within its key; entries without one
        # (NULL, which never conflicts) are all kept.
        sa.Index(None, "store_session_id", "subpath", "entry_uuid", unique=True),
        check_range("seq", 0),
    )

    id: uuid.UUID = id_field()
    store_session_id: uuid.UUID = Field(foreign_key="sdk_store_sessions.id", ondelete="CASCADE")
    # "" for the main transcript, so the unique keys hold (NULLs never conflict).
    subpath: str = Field(
        default="", max_length=MAX_SUBPATH_CHARS, sa_column_kwargs={"server_default": ""}
    )
    seq: int = Field(sa_type=sa.BigInteger)
    entry_uuid: str | None = Field(default=None, max_length=MAX_KEY_CHARS)
    entry_json: str = Field(sa_type=sa.Text)
    created_at: datetime = created_at_field()
