"""Transcript imports: how far each transcript file has been read, so imports resume."""

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from session_db.models.base import (
    Base,
    created_at_field,
    id_field,
    timestamp_field,
    updated_at_field,
)


class TranscriptImport(Base, table=True):
    """One row per transcript file: the byte offset just past the last line imported.

    `file_identity` (device, inode and a hash of the first line) tells a file that was
    replaced or truncated from one that grew, so a replaced file is read again from the
    start; the usage key keeps that from counting anything twice.
    """

    __tablename__ = "transcript_imports"

    id: uuid.UUID = id_field()
    # Unique, so at most 1024 characters: PostgreSQL cannot index arbitrarily long keys.
    path: str = Field(max_length=1024, unique=True)
    session_id: uuid.UUID | None = Field(
        default=None, foreign_key="sessions.id", ondelete="SET NULL", index=True
    )
    file_identity: str | None = Field(default=None, max_length=255)
    byte_offset: int = Field(default=0, ge=0, sa_type=sa.BigInteger)
    lines_read: int = Field(default=0, ge=0, sa_type=sa.BigInteger)
    last_imported_at: datetime | None = timestamp_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()
