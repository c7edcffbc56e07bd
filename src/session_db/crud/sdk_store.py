"""The Claude Agent SDK session store's rows: entries appended per key, summaries, reads.

An append is a few statements whatever its size: one upsert of the session's row, which
reserves the entries' sequence numbers (and, on PostgreSQL, locks the row until commit,
so appends to one session take turns and a summary fold is never lost; SQLite's write
transaction does the same), then one insert per page of entries that skips an entry
whose `uuid` its key holds already. Entries are stored as the JSON text they were given
and load back equal to it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import jsoncodec
from session_db.crud._base import translating_errors, upsert_insert
from session_db.crud._bulk import insert_rows
from session_db.errors import InvalidInputError
from session_db.models.base import new_id, utcnow
from session_db.models.sdk_store import (
    MAX_KEY_CHARS,
    MAX_SUBPATH_CHARS,
    SdkStoreEntry,
    SdkStoreSession,
)

__all__ = [
    "SdkStoreAppend",
    "append_sdk_store_entries",
    "delete_sdk_store_entries",
    "find_sdk_store_entries",
    "list_sdk_store_sessions",
    "list_sdk_store_subkeys",
    "list_sdk_store_summaries",
    "load_sdk_store_entries",
    "lock_sdk_session",
    "save_sdk_store_summary",
]

ENTITY = "sdk_store_entry"
_SESSIONS: sa.Table = SdkStoreSession.__table__  # type: ignore[attr-defined]
_ENTRIES: sa.Table = SdkStoreEntry.__table__  # type: ignore[attr-defined]
MAIN = ""  # the subpath column's value for the main transcript


@dataclass(frozen=True)
class SdkStoreAppend:
    """What one append stored.

    Attributes:
        store_session_id: The session's row in `sdk_store_sessions`.
        new: (index in the batch, JSON text) of each entry stored now, in order: not
            those whose `uuid` the key held already or that repeat one earlier in the batch.
        mtime_ms: The main transcript's write time after this append (epoch ms; None
            while only subkeys were written).
        summary: The session's folded summary before this append (None: none yet).
    """

    store_session_id: uuid.UUID
    new: list[tuple[int, str]]
    mtime_ms: int | None
    summary: dict[str, Any] | None


def _key_part(name: str, value: Any, limit: int) -> str:
    """A key part as stored, or InvalidInputError: cutting one would merge two keys."""
    if not isinstance(value, str):
        raise InvalidInputError(ENTITY, name, "must be a string")
    if len(value) > limit:
        raise InvalidInputError(ENTITY, name, f"must be at most {limit} characters")
    return value


def _subpath(value: str | None) -> str:
    """The stored subpath: "" for the main transcript (None)."""
    if value is None:
        return MAIN
    if value == MAIN:
        raise InvalidInputError(ENTITY, "subpath", "must not be empty (omit it for the main key)")
    return _key_part("subpath", value, MAX_SUBPATH_CHARS)


def _idempotency_key(entry: Mapping[str, Any]) -> str | None:
    """An entry's `uuid` as stored; one too long for the column is stored as its digest."""
    value = entry.get("uuid")
    if not isinstance(value, str) or not value:
        return None
    if len(value) <= MAX_KEY_CHARS:
        return value
    return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _lock_key(session_id: str) -> int:
    digest = hashlib.sha256(f"session_db.sdk:{session_id}".encode("utf-8", "surrogatepass"))
    return int.from_bytes(digest.digest()[:8], "big", signed=True)


@translating_errors(ENTITY)
async def lock_sdk_session(db: AsyncSession, session_id: str) -> None:
    """Hold off other writers of this Claude session id (store and run recorder) until commit.

    PostgreSQL takes a transaction-level advisory lock on the id; SQLite's write
    transaction excludes other writers already. What a store append and the run
    recorder write of one session (a response seen live, then its transcript line) is
    then decided by one of them at a time.
    """
    if db.get_bind().dialect.name == "postgresql":
        await db.exec(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(session_id))))


@translating_errors(ENTITY)
async def append_sdk_store_entries(
    db: AsyncSession,
    project_key: str,
    session_id: str,
    subpath: str | None,
    entries: Sequence[Mapping[str, Any]],
) -> SdkStoreAppend:
    """Append entries to a store key in the order given, each `uuid` once per key.

    Entries without a `uuid` are all appended. One upsert of the session's row reserves
    their sequence numbers (and holds the row until commit); then one insert per page of
    entries, ON CONFLICT (key, uuid) DO NOTHING. An append to the main key (`subpath`
    None) moves the session's write time on, strictly: a later append never gets an
    earlier or equal time.

    Raises:
        InvalidInputError: A key part is not a string or too long, `subpath` is "", or
            an entry is not a JSON object.
    """
    project_key = _key_part("project_key", project_key, MAX_KEY_CHARS)
    session_id = _key_part("session_id", session_id, MAX_KEY_CHARS)
    stored_subpath = _subpath(subpath)
    batch: list[tuple[int, str | None, str]] = []  # (index, uuid, JSON text)
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise InvalidInputError(f"{ENTITY}s[{index}]", None, "must be a JSON object")
        key = _idempotency_key(entry)
        if key is not None:
            if key in seen:
                continue  # a uuid the batch gave already: the first one stands
            seen.add(key)
        try:
            text = jsoncodec.dumps(entry)
        except (TypeError, ValueError, RecursionError) as error:
            raise InvalidInputError(f"{ENTITY}s[{index}]", None, f"not JSON ({error})") from None
        batch.append((index, key, text))
    main = stored_subpath == MAIN
    now = utcnow()
    now_ms = int(time.time() * 1000)
    insert = upsert_insert(db, SdkStoreSession).values(
        id=new_id(),
        project_key=project_key,
        session_id=session_id,
        next_seq=len(batch),
        mtime_ms=now_ms if main else None,
        created_at=now,
        updated_at=now,
    )
    changes: dict[str, Any] = {"next_seq": _SESSIONS.c.next_seq + len(batch), "updated_at": now}
    if main:
        stored = _SESSIONS.c.mtime_ms
        changes["mtime_ms"] = sa.case(
            (sa.or_(stored.is_(None), stored < now_ms), now_ms), else_=stored + 1
        )
    statement = insert.on_conflict_do_update(
        index_elements=[_SESSIONS.c.project_key, _SESSIONS.c.session_id], set_=changes
    ).returning(
        _SESSIONS.c.id, _SESSIONS.c.next_seq, _SESSIONS.c.mtime_ms, _SESSIONS.c.summary_json
    )
    connection = await db.connection()
    store_session_id, next_seq, mtime_ms, summary_json = (await connection.execute(statement)).one()
    first = next_seq - len(batch)
    rows = [
        {
            "id": new_id(),
            "store_session_id": store_session_id,
            "subpath": stored_subpath,
            "seq": first + offset,
            "entry_uuid": key,
            "entry_json": text,
            "created_at": now,
        }
        for offset, (_, key, text) in enumerate(batch)
    ]
    written = await insert_rows(
        db,
        _ENTRIES,
        rows,
        skip_conflicts_on=["store_session_id", "subpath", "entry_uuid"],
        returning=["seq"],
    )
    kept = {seq for (seq,) in written}
    new = [(index, text) for offset, (index, _, text) in enumerate(batch) if first + offset in kept]
    summary = None if summary_json is None else jsoncodec.loads(summary_json.encode())
    return SdkStoreAppend(store_session_id, new, mtime_ms, summary)


@translating_errors(ENTITY)
async def save_sdk_store_summary(
    db: AsyncSession, store_session_id: uuid.UUID, summary: Mapping[str, Any]
) -> None:
    """Store a session's folded summary verbatim, as JSON text (one UPDATE).

    Raises:
        InvalidInputError: The summary is not JSON-serialisable.
    """
    try:
        text = jsoncodec.dumps(dict(summary))
    except (TypeError, ValueError, RecursionError) as error:
        raise InvalidInputError("sdk_store_session", "summary", f"not JSON ({error})") from None
    connection = await db.connection()
    await connection.execute(
        sa.update(_SESSIONS)
        .where(_SESSIONS.c.id == store_session_id)
        .values(summary_json=text, updated_at=utcnow())
    )


def _session_filter(project_key: str, session_id: str) -> Any:
    return sa.and_(_SESSIONS.c.project_key == project_key, _SESSIONS.c.session_id == session_id)


@translating_errors(ENTITY)
async def load_sdk_store_entries(
    db: AsyncSession, project_key: str, session_id: str, subpath: str | None = None
) -> list[Any] | None:
    """Return a store key's entries in append order, or None for a key never written."""
    statement = (
        sa.select(_ENTRIES.c.entry_json)
        .select_from(_ENTRIES.join(_SESSIONS, _SESSIONS.c.id == _ENTRIES.c.store_session_id))
        .where(_session_filter(project_key, session_id), _ENTRIES.c.subpath == _subpath(subpath))
        .order_by(_ENTRIES.c.seq)
    )
    connection = await db.connection()
    texts = (await connection.execute(statement)).scalars().all()
    return [jsoncodec.loads(text.encode()) for text in texts] if texts else None


@translating_errors(ENTITY)
async def find_sdk_store_entries(
    db: AsyncSession, store_session_id: uuid.UUID, subpath: str | None, containing: str
) -> list[str]:
    """Return the JSON text of a key's entries whose text contains `containing`, in order.

    A scan of that key's entries (LIKE; on SQLite it ignores ASCII case): for finding a
    few lines of a transcript, such as the parent's Task result naming a subagent.
    """
    statement = (
        sa.select(_ENTRIES.c.entry_json)
        .where(
            _ENTRIES.c.store_session_id == store_session_id,
            _ENTRIES.c.subpath == _subpath(subpath),
            _ENTRIES.c.entry_json.contains(containing, autoescape=True),
        )
        .order_by(_ENTRIES.c.seq)
    )
    connection = await db.connection()
    return list((await connection.execute(statement)).scalars().all())


@translating_errors(ENTITY)
async def list_sdk_store_sessions(db: AsyncSession, project_key: str) -> list[tuple[str, int]]:
    """Return (session id, main transcript's write time in epoch ms) of a project key's
    sessions whose main transcript was written, by session id."""
    statement = (
        sa.select(_SESSIONS.c.session_id, _SESSIONS.c.mtime_ms)
        .where(_SESSIONS.c.project_key == project_key, _SESSIONS.c.mtime_ms.is_not(None))
        .order_by(_SESSIONS.c.session_id)
    )
    connection = await db.connection()
    return [(session_id, int(mtime)) for session_id, mtime in await connection.execute(statement)]


@translating_errors(ENTITY)
async def list_sdk_store_summaries(db: AsyncSession, project_key: str) -> list[dict[str, Any]]:
    """Return the folded summaries of a project key's sessions, by session id."""
    statement = (
        sa.select(_SESSIONS.c.summary_json)
        .where(_SESSIONS.c.project_key == project_key, _SESSIONS.c.summary_json.is_not(None))
        .order_by(_SESSIONS.c.session_id)
    )
    connection = await db.connection()
    texts = (await connection.execute(statement)).scalars().all()
    return [jsoncodec.loads(text.encode()) for text in texts]


@translating_errors(ENTITY)
async def list_sdk_store_subkeys(db: AsyncSession, project_key: str, session_id: str) -> list[str]:
    """Return the subpaths with entries under a session (not the main transcript), sorted."""
    statement = (
        sa.select(_ENTRIES.c.subpath)
        .select_from(_ENTRIES.join(_SESSIONS, _SESSIONS.c.id == _ENTRIES.c.store_session_id))
        .where(_session_filter(project_key, session_id), _ENTRIES.c.subpath != MAIN)
        .distinct()
        .order_by(_ENTRIES.c.subpath)
    )
    connection = await db.connection()
    return list((await connection.execute(statement)).scalars().all())


@translating_errors(ENTITY)
async def delete_sdk_store_entries(
    db: AsyncSession, project_key: str, session_id: str, subpath: str | None = None
) -> int:
    """Delete a store key's entries; the main key (`subpath` None) takes its subkeys, its
    summary and its session's row with it. Returns how many entries went.

    Only the stored transcript goes: the session's rows in `sessions`, `agents` and
    `usage_records` stay (delete those with `delete_session`).
    """
    stored_subpath = _subpath(subpath)
    session_row = sa.select(_SESSIONS.c.id).where(_session_filter(project_key, session_id))
    entries = sa.delete(_ENTRIES).where(_ENTRIES.c.store_session_id.in_(session_row))
    if stored_subpath != MAIN:
        entries = entries.where(_ENTRIES.c.subpath == stored_subpath)
    connection = await db.connection()
    deleted = (await connection.execute(entries)).rowcount
    if stored_subpath == MAIN:
        await connection.execute(
            sa.delete(_SESSIONS).where(_session_filter(project_key, session_id))
        )
    return int(deleted)
