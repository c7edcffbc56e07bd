"""Projects: a codebase on disk whose sessions we track (seeds 001 and 003)."""

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import Field, Relationship

from session_db.models.base import (
    Base,
    InputModel,
    created_at_field,
    id_field,
    json_field,
    text_field,
    updated_at_field,
)

if TYPE_CHECKING:
    from session_db.models.session import Session


class ProjectBase(Base):
    """Fields a caller sets on a project."""

    name: str = Field(max_length=255)
    root_path: str = Field(max_length=1024, unique=True)
    description: str | None = text_field()
    project_metadata: dict[str, Any] = json_field()


class Project(ProjectBase, table=True):
    """A project: one root folder holding `agents/sessions/*`."""

    __tablename__ = "projects"

    id: uuid.UUID = id_field()
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()

    sessions: list["Session"] = Relationship(
        back_populates="project", sa_relationship_kwargs={"lazy": "raise"}
    )


class ProjectCreate(ProjectBase, InputModel):
    """Input to create a project."""


class ProjectUpdate(InputModel):
    """Input to change a project; unset fields stay as they are."""

    name: str | None = Field(default=None, max_length=255)
    root_path: str | None = Field(default=None, max_length=1024)
    description: str | None = None
    project_metadata: dict[str, Any] | None = None
