"""Sync states: what the last sync of each session folder found, one row per folder path.

The filesystem sync (`session_db.sync`) writes one upsert per folder it looks at and one
set-based update for the folders that disappeared, and reads the states back to skip
folders whose files did not change.
"""

import hashlib
import os
import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    BULK_CHUNK,
    DEFAULT_LIMIT,
    enum_filter,
    paginate,
    translating_errors,
    upsert_insert,
)
from session_db.crud.projects import upsert_project
from session_db.errors import InvalidInputError
from session_db.models import Project, SyncState, SyncStatus
from session_db.models.base import new_id, utcnow

ENTITY = "sync_state"
MISSING_MESSAGE = "the session folder no longer exists"


def _lock_key(root_path: str) -> int:
    digest = hashlib.sha256(f"session_db.sync:{root_path}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@translating_errors(ENTITY)
async def claim_project_for_sync(db: AsyncSession, root_path: str) -> uuid.UUID:
    """Hold off other syncs of this project until the transaction ends; return its id.

    PostgreSQL takes a per-project advisory lock (SQLite's write transaction already
    excludes other writers); then the project row is upserted, named after its folder.
    """
    if db.get_bind().dialect.name == "postgresql":
        await db.exec(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(root_path))))
    return await upsert_project(db, root_path)


def _checked_length(field: str, value: str | None) -> str | None:
    """Refuse a value longer than its column on both engines (SQLite would store it)."""
    limit = SyncState.__table__.c[field].type.length  # type: ignore[attr-defined]
    if value is not None and len(value) > limit:
        raise InvalidInputError(ENTITY, field, f"must be at most {limit} characters")
    return value


@translating_errors(ENTITY)
async def upsert_sync_state(
    db: AsyncSession,
    session_dir: str | os.PathLike[str],
    project_id: uuid.UUID,
    status: SyncStatus | str,
    *,
    session_id: uuid.UUID | None = None,
    file_fingerprint: str | None = None,
    error_message: str | None = None,
    warnings: Sequence[str] = (),
    content_hash: str | None = None,
    file_modified_at: datetime | None = None,
) -> uuid.UUID:
    """Record the outcome of one sync of a folder, in one upsert on its path; return the row id.

    Every call stamps `last_attempted_at` and replaces the status, the message, the
    warnings and the fingerprint. A `session_id` of None keeps the one stored. A
    `content_hash` marks a good sync and also sets `last_synced_at` and
    `file_modified_at`; without one, the hash of the last good sync stays, so files put
    back as they were need no new mirror.

    Raises:
        InvalidInputError: The status is not a SyncStatus, a text is too long, or
            `project_id` / `session_id` names no row.
    """
    now = utcnow()
    values: dict[str, Any] = {
        "session_dir": _checked_length("session_dir", str(session_dir)),
        "project_id": project_id,
        "sync_status": enum_filter(SyncStatus, status, ENTITY, "sync_status"),
        "last_attempted_at": now,
        "error_message": error_message,
        "warnings": list(warnings),
        "file_fingerprint": _checked_length("file_fingerprint", file_fingerprint),
        "updated_at": now,
    }
    if session_id is not None:
        values["session_id"] = session_id
    if content_hash is not None:
        values.update(
            content_hash=_checked_length("content_hash", content_hash),
            last_synced_at=now,
            file_modified_at=file_modified_at,
        )
    insert = upsert_insert(db, SyncState).values(id=new_id(), **values)
    statement = insert.on_conflict_do_update(
        index_elements=[SyncState.session_dir],
        set_={name: insert.excluded[name] for name in values if name != "session_dir"},
    ).returning(SyncState.id)
    return (await db.exec(statement)).one()[0]


@translating_errors(ENTITY)
async def mark_sync_states_missing(
    db: AsyncSession, session_dirs: Iterable[str | os.PathLike[str]], message: str = MISSING_MESSAGE
) -> int:
    """Mark these folders' states missing, a few set-based updates in all; return how many.

    Their warnings go (there is nothing left to read); the session and everything else
    a state refers to stay as they are.
    """
    paths = sorted({str(path) for path in session_dirs})
    now = utcnow()
    changed = 0
    # Chunks keep the IN list under SQLite's bound-parameter limit.
    for start in range(0, len(paths), BULK_CHUNK):
        result = await db.exec(
            update(SyncState)
            .where(col(SyncState.session_dir).in_(paths[start : start + BULK_CHUNK]))
            .values(
                sync_status=SyncStatus.MISSING,
                error_message=message,
                warnings=[],
                last_attempted_at=now,
                updated_at=now,
            )
        )
        changed += result.rowcount
    return changed


@translating_errors(ENTITY)
async def get_sync_state(
    db: AsyncSession, project_id: uuid.UUID, session_dir: str | os.PathLike[str]
) -> SyncState | None:
    """Return the state of this folder of the project, or None if it was never synced."""
    statement = select(SyncState).where(
        SyncState.project_id == project_id, SyncState.session_dir == str(session_dir)
    )
    return (await db.exec(statement)).first()


@translating_errors(ENTITY)
async def list_sync_states(
    db: AsyncSession,
    *,
    project_id: uuid.UUID | None = None,
    status: SyncStatus | str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[SyncState]:
    """Return the folder states matching every filter given, by folder path."""
    statement = select(SyncState)
    if project_id is not None:
        statement = statement.where(SyncState.project_id == project_id)
    if (value := enum_filter(SyncStatus, status, ENTITY, "status")) is not None:
        statement = statement.where(SyncState.sync_status == value)
    statement = statement.order_by(SyncState.session_dir)
    return list((await db.exec(paginate(statement, limit, offset))).all())


class SyncMark(NamedTuple):
    """What a project sync needs of a folder's state before it reads the folder."""

    status: SyncStatus
    fingerprint: str | None
    warnings: list[str]


@translating_errors(ENTITY)
async def get_sync_fingerprints(db: AsyncSession, root_path: str) -> dict[str, SyncMark]:
    """Return {folder path: (status, fingerprint, warnings)} of a project's folders, in one query.

    The sync compares these with the files before reading any, so re-opening a project
    whose folders did not change costs this one query (and still reports their warnings).
    """
    rows = await db.exec(
        select(
            SyncState.session_dir,
            SyncState.sync_status,
            SyncState.file_fingerprint,
            SyncState.warnings,
        )
        .join(Project, col(SyncState.project_id) == Project.id)
        .where(Project.root_path == root_path)
    )
    return {
        path: SyncMark(SyncStatus(status), marks, list(warnings or []))
        for path, status, marks, warnings in rows.all()
    }


__all__ = [
    "claim_project_for_sync",
    "get_sync_fingerprints",
    "get_sync_state",
    "list_sync_states",
    "mark_sync_states_missing",
    "upsert_sync_state",
]
