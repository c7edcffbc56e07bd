"""Session modes: role configurations read from YAML files, and which sessions use them (002)."""

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from session_db.models.base import (
    Base,
    InputModel,
    UTCDateTime,
    created_at_field,
    id_field,
    json_field,
    optional_json_field,
    text_field,
    timestamp_field,
    updated_at_field,
    utcnow,
)


class SessionModeBase(Base):
    """Fields a caller sets on a mode."""

    mode_name: str = Field(max_length=255)
    # Unique, so at most 1024 characters: PostgreSQL cannot index arbitrarily long keys.
    yaml_file_path: str = Field(max_length=1024, unique=True)
    yaml_content_hash: str | None = Field(default=None, max_length=128)
    description: str | None = text_field()
    specialist_roles: list[Any] = json_field(default_factory=list)
    default_complexity: str = Field(
        default="moderate", max_length=32, sa_column_kwargs={"server_default": "moderate"}
    )
    auto_task_routing: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    is_valid: bool = Field(default=True, sa_column_kwargs={"server_default": sa.true()})
    last_validated_at: datetime | None = timestamp_field()
    validation_errors: list[Any] | None = optional_json_field()


class SessionMode(SessionModeBase, table=True):
    """A mode row; deleting it removes its bindings."""

    __tablename__ = "session_modes"

    id: uuid.UUID = id_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class SessionModeCreate(SessionModeBase, InputModel):
    """Input to register a mode."""


class SessionModeUpdate(InputModel):
    """Input to change a mode; unset fields stay as they are."""

    mode_name: str | None = Field(default=None, max_length=255)
    yaml_content_hash: str | None = Field(default=None, max_length=128)
    description: str | None = None
    specialist_roles: list[Any] | None = None
    default_complexity: str | None = Field(default=None, max_length=32)
    auto_task_routing: bool | None = None
    is_valid: bool | None = None
    last_validated_at: datetime | None = None
    validation_errors: list[Any] | None = None


class SessionModeBinding(Base, table=True):
    """Session `session_id` runs in mode `mode_id`."""

    __tablename__ = "session_mode_bindings"

    session_id: uuid.UUID = Field(foreign_key="sessions.id", ondelete="CASCADE", primary_key=True)
    mode_id: uuid.UUID = Field(
        foreign_key="session_modes.id", ondelete="CASCADE", primary_key=True, index=True
    )
    bound_at: datetime = Field(
        default_factory=utcnow,
        sa_type=UTCDateTime,
        sa_column_kwargs={"server_default": sa.func.now(), "nullable": False},
    )
    binding_context: dict[str, Any] | None = optional_json_field()
