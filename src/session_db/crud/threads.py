"""Threads and their messages (seed 004's API, in Python naming)."""

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    build_row,
    coerce_input,
    create_row,
    delete_row,
    enum_filter,
    get_or_raise,
    integrity_error,
    paginate,
    save,
    translating_errors,
    update_row,
    upsert_insert,
)
from session_db.crud._bulk import excluded, insert_rows
from session_db.errors import InvalidInputError, NotFoundError
from session_db.models import (
    MessageRole,
    Thread,
    ThreadCreate,
    ThreadMessage,
    ThreadMessageCreate,
    ThreadMessageUpdate,
    ThreadStatus,
    ThreadSummary,
    ThreadUpdate,
)
from session_db.models.base import new_id, utcnow

ENTITY = "thread"
MESSAGE = "thread_message"


@translating_errors(ENTITY)
async def create_thread(db: AsyncSession, data: ThreadCreate | Mapping[str, Any]) -> Thread:
    """Create a thread in a session.

    Raises:
        NotFoundError: `session_id` names no session.
    """
    return await create_row(db, Thread, ThreadCreate, data, ENTITY)


@translating_errors(ENTITY)
async def get_thread(db: AsyncSession, thread_id: uuid.UUID) -> Thread:
    """Return the thread with this id, or raise NotFoundError."""
    return await get_or_raise(db, Thread, thread_id, ENTITY)


@translating_errors(ENTITY)
async def list_session_threads(
    db: AsyncSession, session_id: uuid.UUID, *, status: ThreadStatus | str | None = None
) -> list[ThreadSummary]:
    """Return a session's threads, most recently active first, each with its message count."""
    message_count = (
        select(func.count(ThreadMessage.id))
        .where(ThreadMessage.thread_id == Thread.id)
        .correlate(Thread)
        .scalar_subquery()
    )
    statement = select(Thread, message_count.label("message_count")).where(
        Thread.session_id == session_id
    )
    if (value := enum_filter(ThreadStatus, status, ENTITY, "status")) is not None:
        statement = statement.where(Thread.status == value)
    statement = statement.order_by(Thread.updated_at.desc(), Thread.id)
    rows = (await db.exec(statement)).all()
    return [
        ThreadSummary.model_validate(thread, update={"message_count": count})
        for thread, count in rows
    ]


@translating_errors(ENTITY)
async def update_thread(
    db: AsyncSession, thread_id: uuid.UUID, data: ThreadUpdate | Mapping[str, Any]
) -> Thread:
    """Rename a thread or change its status."""
    return await update_row(db, Thread, thread_id, ThreadUpdate, data, ENTITY)


@translating_errors(ENTITY)
async def update_thread_timestamp(db: AsyncSession, thread_id: uuid.UUID) -> Thread:
    """Mark a thread as active now (its `updated_at`)."""
    thread = await get_or_raise(db, Thread, thread_id, ENTITY)
    thread.updated_at = utcnow()
    return await save(db, thread, ENTITY)


@translating_errors(ENTITY)
async def delete_thread(db: AsyncSession, thread_id: uuid.UUID) -> None:
    """Delete a thread and all its messages."""
    await delete_row(db, Thread, thread_id, ENTITY)


async def _lock_thread(db: AsyncSession, thread_id: uuid.UUID) -> tuple[Thread, int]:
    """Lock a thread's row (until the transaction ends) and return it with its next idx.

    Raises:
        NotFoundError: There is no such thread.
    """
    locked = select(Thread).where(Thread.id == thread_id).with_for_update()
    thread = (await db.exec(locked)).first()
    if thread is None:
        raise NotFoundError(ENTITY, thread_id)
    last = select(func.max(ThreadMessage.idx)).where(ThreadMessage.thread_id == thread_id)
    previous = (await db.exec(last)).one()
    return thread, 0 if previous is None else previous + 1


@translating_errors(MESSAGE)
async def add_thread_message(
    db: AsyncSession, thread_id: uuid.UUID, role: MessageRole | str, content: str
) -> ThreadMessage:
    """Append a message to a thread, at the next `idx` (0, 1, 2, ...), and touch the thread.

    Concurrent appends to one thread queue on the thread's row lock (SQLite: on the write
    lock every transaction takes), so the sequence has no gap and no duplicate; the lock
    is held until the caller's transaction ends.

    Raises:
        NotFoundError: There is no such thread.
        InvalidInputError: The role is not user, assistant or system.
    """
    message_in = coerce_input(
        ThreadMessageCreate, {"thread_id": thread_id, "role": role, "content": content}, MESSAGE
    )
    thread, following = await _lock_thread(db, thread_id)
    message = build_row(ThreadMessage, message_in, MESSAGE, idx=following)
    thread.updated_at = utcnow()
    db.add(thread)
    return await save(db, message, MESSAGE)


@translating_errors(MESSAGE)
async def list_thread_messages(
    db: AsyncSession, thread_id: uuid.UUID, *, limit: int | None = None, offset: int = 0
) -> list[ThreadMessage]:
    """Return a thread's messages in order of `idx` (all of them unless `limit` is given)."""
    statement = (
        select(ThreadMessage)
        .where(ThreadMessage.thread_id == thread_id)
        .order_by(ThreadMessage.idx)
    )
    if limit is not None or offset:
        statement = paginate(statement, limit or 1000, offset)
    return list((await db.exec(statement)).all())


@translating_errors(MESSAGE)
async def get_thread_message(db: AsyncSession, message_id: uuid.UUID) -> ThreadMessage:
    """Return the message with this id, or raise NotFoundError."""
    return await get_or_raise(db, ThreadMessage, message_id, MESSAGE)


@translating_errors(MESSAGE)
async def update_thread_message(
    db: AsyncSession, message_id: uuid.UUID, data: ThreadMessageUpdate | Mapping[str, Any]
) -> ThreadMessage:
    """Correct a message's text; its place in the thread does not change."""
    return await update_row(db, ThreadMessage, message_id, ThreadMessageUpdate, data, MESSAGE)


@translating_errors(ENTITY)
async def ensure_threads(
    db: AsyncSession, threads: Mapping[uuid.UUID, ThreadCreate | Mapping[str, Any]]
) -> set[uuid.UUID]:
    """Create threads under the caller's ids, or rename them; return the ids written.

    The ids are the caller's (derived from what the thread holds, an imported history
    say), so writing the same history again finds the same thread: one statement,
    INSERT … ON CONFLICT (id) DO UPDATE of the name where it changed. A thread's session
    never changes.

    Returns:
        The ids of the threads this call created or renamed (not those left as they were).

    Raises:
        InvalidInputError: A thread is invalid, or its `session_id` names no session.
    """
    now = utcnow()
    rows = []
    for thread_id, data in sorted(threads.items()):  # sorted: one lock order for all callers
        thread = coerce_input(ThreadCreate, data, f"{ENTITY}s[{thread_id}]")
        rows.append(
            {
                "id": thread_id,
                "session_id": thread.session_id,
                "name": thread.name,
                "status": ThreadStatus(thread.status).value,
                "created_at": now,
                "updated_at": now,
            }
        )
    if not rows:
        return set()
    table = Thread.__table__  # type: ignore[attr-defined]
    insert = upsert_insert(db, Thread)
    statement = insert.on_conflict_do_update(
        index_elements=[table.c.id],
        set_={"name": insert.excluded.name, "updated_at": now},
        where=table.c.name != insert.excluded.name,
    ).returning(table.c.id)
    connection = await db.connection()
    try:
        # RETURNING makes the parameter sets one multi-row statement.
        result = await connection.execute(statement, rows)
    except sa.exc.IntegrityError as error:
        raise integrity_error(error, ENTITY, table.name) from error
    return {thread_id for (thread_id,) in result.all()}


@translating_errors(MESSAGE)
async def add_thread_messages(
    db: AsyncSession,
    thread_id: uuid.UUID,
    messages: Iterable[Mapping[str, Any]],
    *,
    start_idx: int | None = None,
    update_changed: bool = False,
) -> list[int]:
    """Append many messages to a thread in a bounded number of statements; return their idx.

    Each message is a mapping of `role`, `content` and, optionally, `created_at` (when it
    was written, for a history imported after the fact; now if absent). Without
    `start_idx` the messages go after the thread's last one, as `add_thread_message`
    would put them. With it, message i belongs at idx `start_idx + i`, and a place that
    is taken already is left as it is (ON CONFLICT DO NOTHING): a history written again
    from the same start adds only the messages past what is stored. With
    `update_changed` as well, a stored message of the same role whose text differs takes
    the new text (a history its agent rewrites in place, where a message saved half
    written is complete now); its role, place and time stay. The thread's row lock
    orders concurrent writers, as for `add_thread_message`; its `updated_at` moves when a
    message is added or changed.

    Returns:
        The idx of each message this call added, in order (not those it changed).

    Raises:
        NotFoundError: There is no such thread.
        InvalidInputError: A message is invalid (the error names its index and field), or
            `start_idx` lies past the thread's end, which would leave a gap in idx.
    """
    checked = [_message_row(thread_id, index, data) for index, data in enumerate(messages)]
    thread, following = await _lock_thread(db, thread_id)
    if start_idx is None:
        start_idx = following
    elif not 0 <= start_idx <= following:
        raise InvalidInputError(
            MESSAGE, "idx", f"start {start_idx} would leave a gap after idx {following - 1}"
        )
    # Places below `following` are taken (idx has no gaps): unless they may change, only
    # the rest is sent.
    rows = [
        {**row, "idx": start_idx + index}
        for index, row in enumerate(checked)
        if update_changed or start_idx + index >= following
    ]
    if not rows:
        return []
    table = ThreadMessage.__table__  # type: ignore[attr-defined]
    new, old = excluded(table), table.c
    try:
        written = await insert_rows(
            db,
            table,
            rows,
            skip_conflicts_on=["thread_id", "idx"],
            update_on_conflict={"content": new.content} if update_changed else None,
            conflict_where=sa.and_(old.role == new.role, old.content != new.content),
            returning=["idx"],
        )
    except sa.exc.IntegrityError as error:
        raise integrity_error(error, MESSAGE, table.name) from error
    if not written:
        return []
    changed = {idx for (idx,) in written if idx < following}
    if changed:
        _refresh_loaded(db, thread_id, {row["idx"]: row["content"] for row in rows}, changed)
    thread.updated_at = utcnow()
    db.add(thread)
    await db.flush()
    return sorted(idx for (idx,) in written if idx >= following)


def _refresh_loaded(
    db: AsyncSession, thread_id: uuid.UUID, contents: Mapping[int, str], changed: set[int]
) -> None:
    """Give messages this `db` has loaded the text just written to their rows, so they do
    not go stale (the write was a Core statement, which loaded objects do not see)."""
    for loaded in list(db.sync_session.identity_map.values()):
        if (
            isinstance(loaded, ThreadMessage)
            and loaded.thread_id == thread_id
            and loaded.idx in changed
        ):
            set_committed_value(loaded, "content", contents[loaded.idx])


def _message_row(thread_id: uuid.UUID, index: int, data: Mapping[str, Any]) -> dict[str, Any]:
    """A message of `add_thread_messages` as column values, validated like any other."""
    entity = f"{MESSAGE}s[{index}]"
    if not isinstance(data, Mapping):
        raise InvalidInputError(entity, None, f"expected a mapping, got {type(data).__name__}")
    extra = set(data) - {"role", "content", "created_at"}
    if extra:
        raise InvalidInputError(entity, sorted(extra)[0], "unknown field")
    message = coerce_input(
        ThreadMessageCreate,
        {"thread_id": thread_id, "role": data.get("role"), "content": data.get("content")},
        entity,
    )
    created_at = data.get("created_at")
    if created_at is not None and not isinstance(created_at, datetime):
        raise InvalidInputError(entity, "created_at", "must be a datetime")
    return {
        "id": new_id(),
        "thread_id": thread_id,
        "role": MessageRole(message.role).value,
        "content": message.content,
        "created_at": created_at or utcnow(),
    }


# Seed 004's names for the two list reads, kept as documented aliases.
get_session_threads = list_session_threads
get_thread_messages = list_thread_messages


__all__ = [
    "add_thread_message",
    "add_thread_messages",
    "create_thread",
    "delete_thread",
    "ensure_threads",
    "get_session_threads",
    "get_thread",
    "get_thread_message",
    "get_thread_messages",
    "list_session_threads",
    "list_thread_messages",
    "update_thread",
    "update_thread_message",
    "update_thread_timestamp",
]
