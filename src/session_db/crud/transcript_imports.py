"""Transcript imports: how far each transcript file has been read, so imports resume.

The importer claims its files' rows at the start of its transaction, which also locks
them (on PostgreSQL; SQLite's write transaction does that already), so two imports of
one file take turns; and records the new offsets at the end of that transaction.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    DEFAULT_LIMIT,
    dialect_insert,
    paginate,
    translating_errors,
)
from session_db.errors import InvalidInputError, NotFoundError
from session_db.models import TranscriptImport
from session_db.models.base import new_id, utcnow

__all__ = [
    "MAX_PATH",
    "claim_transcript_imports",
    "get_transcript_import",
    "get_transcript_imports",
    "list_transcript_imports",
    "record_transcript_imports",
]

ENTITY = "transcript_import"
_TABLE: sa.Table = TranscriptImport.__table__  # type: ignore[attr-defined]
# What an import changes on a file's row.
_PROGRESS = ("session_id", "file_identity", "byte_offset", "lines_read", "last_imported_at")
# The path is unique, so bounded: PostgreSQL cannot index arbitrarily long keys.
MAX_PATH = 1024


@translating_errors(ENTITY)
async def claim_transcript_imports(
    db: AsyncSession, paths: Iterable[str]
) -> dict[str, TranscriptImport]:
    """Return the progress rows of transcript files, created if new, locked until commit.

    One statement for all of them: INSERT … ON CONFLICT (path) DO UPDATE … RETURNING.
    The no-op update takes the row locks on PostgreSQL (in path order, so concurrent
    imports cannot deadlock), so an import of the same files running at the same time
    waits here for this transaction and then sees its offsets; SQLite's write
    transaction does the same. Paths longer than `MAX_PATH` are cut to it.

    Returns:
        {path as given: its row}. The rows are not attached to `db`: change them and
        hand them to `record_transcript_imports`.
    """
    keys = {path: path[:MAX_PATH] for path in paths}
    if not keys:
        return {}
    rows = [
        {"id": new_id(), "path": key, "byte_offset": 0, "lines_read": 0}
        for key in sorted(set(keys.values()))
    ]
    connection = await db.connection()
    # Parameter sets with RETURNING: one multi-row statement, compiled once.
    found = {
        row.path: TranscriptImport(**row._mapping)
        for row in (await connection.execute(_claim(connection.dialect.name), rows)).all()
    }
    return {path: found[key] for path, key in keys.items()}


@functools.cache
def _claim(dialect: str) -> Any:
    """INSERT … ON CONFLICT (path) DO UPDATE (a no-op that locks the row) … RETURNING *.

    Built once: `excluded` is a new alias each time, which costs more than the claim.
    """
    insert = dialect_insert(dialect, _TABLE)
    return insert.on_conflict_do_update(
        index_elements=[_TABLE.c.path], set_={"path": insert.excluded.path}
    ).returning(*_TABLE.c)


@functools.cache
def _progress_update() -> sa.Update:
    """UPDATE a progress row by :b_id to the :b_ values of `_PROGRESS` and `updated_at`."""
    return (
        sa.update(_TABLE)
        .where(_TABLE.c.id == sa.bindparam("b_id"))
        .values({name: sa.bindparam(f"b_{name}") for name in (*_PROGRESS, "updated_at")})
    )


@translating_errors(ENTITY)
async def record_transcript_imports(db: AsyncSession, rows: Iterable[TranscriptImport]) -> None:
    """Write claimed progress rows back: offset, lines read, identity, session, time.

    One UPDATE (an executemany) for all of them.

    Raises:
        InvalidInputError: A `byte_offset` or `lines_read` is negative.
    """
    values = []
    for row in rows:
        for name in ("byte_offset", "lines_read"):
            if getattr(row, name) < 0:
                raise InvalidInputError(ENTITY, name, "must not be negative")
        values.append({f"b_{name}": getattr(row, name) for name in ("id", *_PROGRESS)})
    if not values:
        return
    now = utcnow()
    for value in values:
        value["b_updated_at"] = now
    await (await db.connection()).execute(_progress_update(), values)


@translating_errors(ENTITY)
async def get_transcript_import(db: AsyncSession, path: str) -> TranscriptImport:
    """Return the progress row of the transcript file at `path`, or raise NotFoundError."""
    statement = select(TranscriptImport).where(TranscriptImport.path == path[:MAX_PATH])
    found = (await db.exec(statement)).first()
    if found is None:
        raise NotFoundError(ENTITY, path, field="path")
    return found


@translating_errors(ENTITY)
async def get_transcript_imports(
    db: AsyncSession, paths: Iterable[str]
) -> dict[str, TranscriptImport]:
    """Return the progress rows of the files at `paths` that have one, by path as given.

    A plain read (no lock, unlike `claim_transcript_imports`): what an import may read
    ahead from, to be checked against the claimed row. One statement per 1,000 paths.
    """
    keys = {path: path[:MAX_PATH] for path in paths}
    wanted = sorted(set(keys.values()))
    found: dict[str, TranscriptImport] = {}
    for start in range(0, len(wanted), 1000):
        statement = select(TranscriptImport).where(
            TranscriptImport.path.in_(wanted[start : start + 1000])  # type: ignore[attr-defined]
        )
        found.update((row.path, row) for row in (await db.exec(statement)).all())
    return {path: found[key] for path, key in keys.items() if key in found}


@translating_errors(ENTITY)
async def list_transcript_imports(
    db: AsyncSession,
    *,
    session_id: uuid.UUID | None = None,
    under: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[TranscriptImport]:
    """Return progress rows matching every filter given, by path.

    Args:
        session_id: Files whose lines went to this session.
        under: Files whose path starts with this prefix (a folder, say).
        limit: At most this many (1 to MAX_LIMIT).
        offset: Skip this many first.

    Raises:
        InvalidInputError: `limit` or `offset` is out of range.
    """
    statement = select(TranscriptImport)
    if session_id is not None:
        statement = statement.where(TranscriptImport.session_id == session_id)
    if under is not None:
        # A prefix compared as text: LIKE ignores case on SQLite, not on PostgreSQL.
        prefix = sa.func.substr(TranscriptImport.path, 1, len(under))
        statement = statement.where(prefix == under)
    statement = statement.order_by(TranscriptImport.path)
    return list((await db.exec(paginate(statement, limit, offset))).all())
