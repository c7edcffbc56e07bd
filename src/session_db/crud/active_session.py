"""The active session (seed 002): at most one, set, read and cleared."""

import uuid
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import get_or_raise, translating_errors, upsert_insert
from session_db.models import ActiveSession, Session
from session_db.models.base import utcnow

ENTITY = "active_session"


@translating_errors(ENTITY)
async def set_active_session(
    db: AsyncSession, session_id: uuid.UUID, context_data: dict[str, Any] | None = None
) -> ActiveSession:
    """Make `session_id` the active session, replacing any other, in one upsert.

    Raises:
        NotFoundError: There is no such session.
    """
    await get_or_raise(db, Session, session_id, "session")
    values = {
        "id": 1,
        "session_id": session_id,
        "activated_at": utcnow(),
        "context_data": context_data,
    }
    statement = upsert_insert(db, ActiveSession).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=[ActiveSession.id],
        set_={name: statement.excluded[name] for name in values if name != "id"},
    )
    await db.exec(statement)
    active = await db.get(ActiveSession, 1, populate_existing=True)
    assert active is not None
    return active


@translating_errors(ENTITY)
async def get_active_session(db: AsyncSession) -> Session | None:
    """Return the active session, or None when none is set."""
    statement = select(Session).join(ActiveSession, ActiveSession.session_id == Session.id)
    return (await db.exec(statement)).first()


@translating_errors(ENTITY)
async def clear_active_session(db: AsyncSession) -> None:
    """Unset the active session (a no-op when none is set)."""
    active = await db.get(ActiveSession, 1)
    if active is not None:
        await db.delete(active)
        await db.flush()


__all__ = [
    "clear_active_session",
    "get_active_session",
    "set_active_session",
]
