"""Threads: conversations inside a session, with messages in a fixed order (seed 004)."""

import uuid
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Field, Relationship

from session_db.models.base import (
    Base,
    InputModel,
    check_in,
    check_range,
    created_at_field,
    enum_field,
    id_field,
    updated_at_field,
)


class ThreadStatus(StrEnum):
    """Whether a thread is still in use (seed 004 defaults to active)."""

    ACTIVE = "active"
    ARCHIVED = "archived"


class MessageRole(StrEnum):
    """Who wrote a message (seed 004)."""

    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class ThreadBase(Base):
    """Fields a caller sets on a thread."""

    session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE")
    name: str = Field(max_length=255)
    status: ThreadStatus = enum_field(ThreadStatus, ThreadStatus.ACTIVE)


class Thread(ThreadBase, table=True):
    """A thread row; deleting its session deletes it and its messages."""

    __tablename__ = "threads"
    __table_args__ = (
        check_in("status", ThreadStatus),
        # A session's threads, most recently active first.
        sa.Index(None, "session_id", "updated_at"),
        sa.Index(None, "status"),
        sa.Index(None, "created_at"),
        sa.Index(None, "updated_at"),
    )

    id: uuid.UUID = id_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()

    messages: list["ThreadMessage"] = Relationship(
        back_populates="thread",
        passive_deletes=True,
        sa_relationship_kwargs={"lazy": "raise", "order_by": "ThreadMessage.idx"},
    )


class ThreadCreate(ThreadBase, InputModel):
    """Input to create a thread."""


class ThreadUpdate(InputModel):
    """Input to change a thread; unset fields stay as they are."""

    name: str | None = Field(default=None, max_length=255)
    status: ThreadStatus | None = None


class ThreadRead(ThreadBase):
    """A thread as returned to callers."""

    id: uuid.UUID
    created_at: datetime
    updated_at: datetime


class ThreadSummary(ThreadRead):
    """A thread with how many messages it holds (seed 004's getSessionThreads)."""

    message_count: int


class ThreadMessageBase(Base):
    """Fields a caller sets on a message."""

    thread_id: uuid.UUID = Field(foreign_key="threads.id", ondelete="CASCADE")
    role: MessageRole = enum_field(MessageRole, None, length=16)
    content: str = Field(sa_type=sa.Text)


class ThreadMessage(ThreadMessageBase, table=True):
    """A message row; `idx` orders a thread's messages, 0, 1, 2, ... without gaps."""

    __tablename__ = "thread_messages"
    __table_args__ = (
        # Also the index behind "a thread's messages in order".
        sa.UniqueConstraint("thread_id", "idx"),
        check_in("role", MessageRole),
        check_range("idx", 0),
        sa.Index(None, "role"),
        sa.Index(None, "created_at"),
    )

    id: uuid.UUID = id_field()
    idx: int
    created_at: datetime = created_at_field()

    thread: Thread = Relationship(
        back_populates="messages", sa_relationship_kwargs={"lazy": "raise"}
    )


class ThreadMessageCreate(ThreadMessageBase, InputModel):
    """Input to add a message; the thread assigns `idx`."""


class ThreadMessageUpdate(InputModel):
    """Input to correct a message's text; its role, thread and place are fixed."""

    content: str
