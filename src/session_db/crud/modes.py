"""Session modes (seed 002): role configurations, and which sessions run in them."""

import uuid
from collections.abc import Mapping
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    build_row,
    create_row,
    delete_row,
    get_or_raise,
    remove,
    save,
    translating_errors,
    update_row,
)
from session_db.errors import NotFoundError
from session_db.models import (
    SessionMode,
    SessionModeBinding,
    SessionModeCreate,
    SessionModeUpdate,
)

ENTITY = "session_mode"
BINDING = "session_mode_binding"


@translating_errors(ENTITY)
async def create_session_mode(
    db: AsyncSession, data: SessionModeCreate | Mapping[str, Any]
) -> SessionMode:
    """Register a mode read from a YAML file.

    Raises:
        ConflictError: A mode is registered for this `yaml_file_path` already.
    """
    return await create_row(db, SessionMode, SessionModeCreate, data, ENTITY)


@translating_errors(ENTITY)
async def get_session_mode(db: AsyncSession, mode_id: uuid.UUID) -> SessionMode:
    """Return the mode with this id, or raise NotFoundError."""
    return await get_or_raise(db, SessionMode, mode_id, ENTITY)


@translating_errors(ENTITY)
async def list_session_modes(db: AsyncSession) -> list[SessionMode]:
    """Return every mode by name."""
    statement = select(SessionMode).order_by(SessionMode.mode_name, SessionMode.id)
    return list((await db.exec(statement)).all())


@translating_errors(ENTITY)
async def update_session_mode(
    db: AsyncSession, mode_id: uuid.UUID, data: SessionModeUpdate | Mapping[str, Any]
) -> SessionMode:
    """Change the fields the caller set (after re-reading or re-validating the YAML)."""
    return await update_row(db, SessionMode, mode_id, SessionModeUpdate, data, ENTITY)


@translating_errors(ENTITY)
async def delete_session_mode(db: AsyncSession, mode_id: uuid.UUID) -> None:
    """Delete a mode and its bindings."""
    await delete_row(db, SessionMode, mode_id, ENTITY)


@translating_errors(BINDING)
async def bind_session_mode(
    db: AsyncSession,
    session_id: uuid.UUID,
    mode_id: uuid.UUID,
    binding_context: dict[str, Any] | None = None,
) -> SessionModeBinding:
    """Run session `session_id` in mode `mode_id`.

    Raises:
        NotFoundError: The session or the mode does not exist.
        ConflictError: The session is bound to this mode already.
    """
    binding = build_row(
        SessionModeBinding,
        SessionModeBinding(session_id=session_id, mode_id=mode_id, binding_context=binding_context),
        BINDING,
    )
    return await save(db, binding, BINDING)


@translating_errors(BINDING)
async def unbind_session_mode(db: AsyncSession, session_id: uuid.UUID, mode_id: uuid.UUID) -> None:
    """Remove a binding, or raise NotFoundError if there is none."""
    binding = await db.get(SessionModeBinding, (session_id, mode_id))
    if binding is None:
        raise NotFoundError(BINDING, f"{session_id}/{mode_id}")
    await remove(db, binding, BINDING)


@translating_errors(BINDING)
async def list_modes_of_session(db: AsyncSession, session_id: uuid.UUID) -> list[SessionMode]:
    """Return the modes a session is bound to."""
    statement = (
        select(SessionMode)
        .join(SessionModeBinding, SessionModeBinding.mode_id == SessionMode.id)
        .where(SessionModeBinding.session_id == session_id)
        .order_by(SessionMode.mode_name)
    )
    return list((await db.exec(statement)).all())


__all__ = [
    "bind_session_mode",
    "create_session_mode",
    "delete_session_mode",
    "get_session_mode",
    "list_modes_of_session",
    "list_session_modes",
    "unbind_session_mode",
    "update_session_mode",
]
