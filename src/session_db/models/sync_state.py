"""Sync state: what the last filesystem → database sync of each session folder found.

Seed 002's `markdown_sync_state` tracked a two-way sync; seed 003 chose a one-way sync
(files are the truth), so the db→markdown fields are gone and the row is keyed by the
session directory. A folder that is not a session (another tool's `state.json`) still gets
a row, with no session and the reason in `error_message`. A folder that synced with
values the mirror could not use keeps them, one line each, in `warnings`.
"""

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field

from session_db.models.base import (
    Base,
    check_in,
    created_at_field,
    enum_field,
    id_field,
    json_field,
    text_field,
    timestamp_field,
    updated_at_field,
)


class SyncStatus(StrEnum):
    """Outcome of the last sync of a folder."""

    PENDING = "pending"
    SYNCHRONIZED = "synchronized"
    ERROR = "error"
    UNRECOGNISED = "unrecognised"
    MISSING = "missing"


class SyncState(Base, table=True):
    """One row per session directory ever synced."""

    __tablename__ = "sync_states"
    __table_args__ = (
        check_in("sync_status", SyncStatus),
        sa.Index(None, "sync_status"),
    )

    id: uuid.UUID = id_field()
    project_id: uuid.UUID | None = Field(
        default=None, foreign_key="projects.id", ondelete="CASCADE", index=True
    )
    session_id: uuid.UUID | None = Field(
        default=None, foreign_key="sessions.id", ondelete="CASCADE", index=True
    )
    # Unique, so at most 1024 characters: PostgreSQL cannot index arbitrarily long keys.
    session_dir: str = Field(max_length=1024, unique=True)
    sync_status: SyncStatus = enum_field(SyncStatus, SyncStatus.PENDING)
    content_hash: str | None = Field(default=None, max_length=128)
    # (mtime, size) of the files, compared before reading them: the cheap skip.
    file_fingerprint: str | None = Field(default=None, max_length=128)
    file_modified_at: datetime | None = timestamp_field()
    last_synced_at: datetime | None = timestamp_field()
    last_attempted_at: datetime | None = timestamp_field()
    error_message: str | None = text_field()
    # Mapped keys of the last read whose values were ignored (the rest of the folder synced).
    warnings: list[str] = json_field(default_factory=list)
    file_monitor_active: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
