"""Threads and their messages (seed 004's API, in Python naming)."""

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    build_row,
    coerce_input,
    create_row,
    delete_row,
    enum_filter,
    get_or_raise,
    paginate,
    save,
    translating_errors,
    update_row,
)
from session_db.errors import NotFoundError
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
from session_db.models.base import utcnow

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
async def get_session_threads(
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
    locked = select(Thread).where(Thread.id == thread_id).with_for_update()
    thread = (await db.exec(locked)).first()
    if thread is None:
        raise NotFoundError(ENTITY, thread_id)
    last = select(func.max(ThreadMessage.idx)).where(ThreadMessage.thread_id == thread_id)
    previous = (await db.exec(last)).one()
    message = build_row(
        ThreadMessage, message_in, MESSAGE, idx=0 if previous is None else previous + 1
    )
    thread.updated_at = utcnow()
    db.add(thread)
    return await save(db, message, MESSAGE)


@translating_errors(MESSAGE)
async def get_thread_messages(
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
