"""Projects: create, read, list, update, delete."""

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, or_
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    DEFAULT_LIMIT,
    create_row,
    delete_row,
    get_or_raise,
    paginate,
    translating_errors,
    update_row,
    upsert_insert,
)
from session_db.crud._bulk import excluded, insert_rows
from session_db.errors import NotFoundError
from session_db.models import Project, ProjectCreate, ProjectUpdate
from session_db.models.base import new_id

ENTITY = "project"


@translating_errors(ENTITY)
async def create_project(db: AsyncSession, data: ProjectCreate | Mapping[str, Any]) -> Project:
    """Create a project.

    Raises:
        ConflictError: Another project has the same `root_path`.
        InvalidInputError: A field is missing or invalid.
    """
    return await create_row(db, Project, ProjectCreate, data, ENTITY)


@translating_errors(ENTITY)
async def upsert_project(db: AsyncSession, root_path: str, name: str | None = None) -> uuid.UUID:
    """Return the id of the project rooted at `root_path`, creating it if there is none.

    One statement (ON CONFLICT on the root path), so concurrent callers get the same row;
    on PostgreSQL the row stays locked until the transaction ends.
    """
    default_name = (name or root_path.rstrip("/").rsplit("/", 1)[-1] or root_path)[:255]
    insert = upsert_insert(db, Project).values(id=new_id(), name=default_name, root_path=root_path)
    statement = insert.on_conflict_do_update(
        index_elements=[Project.root_path], set_={"root_path": insert.excluded.root_path}
    ).returning(Project.id)
    return (await db.exec(statement)).one()[0]


def _default_name(root_path: str) -> str:
    return (root_path.rstrip("/").rsplit("/", 1)[-1] or root_path)[:255]


@translating_errors(ENTITY)
async def upsert_projects(db: AsyncSession, root_paths: Iterable[str]) -> dict[str, uuid.UUID]:
    """Return {root path: project id} for many roots, creating the missing, in one statement."""
    roots = sorted(set(root_paths))  # sorted: concurrent callers lock rows in one order
    if not roots:
        return {}
    table = Project.__table__  # type: ignore[attr-defined]
    rows = [{"id": new_id(), "name": _default_name(root), "root_path": root} for root in roots]
    written = await insert_rows(
        db,
        table,
        rows,
        skip_conflicts_on=["root_path"],
        # A no-op update, so RETURNING reports existing rows too (and locks them).
        update_on_conflict={"root_path": excluded(table).root_path},
        returning=["root_path", "id"],
    )
    return {root: project_id for root, project_id in written}


@translating_errors(ENTITY)
async def get_project(db: AsyncSession, project_id: uuid.UUID) -> Project:
    """Return the project with this id, or raise NotFoundError."""
    return await get_or_raise(db, Project, project_id, ENTITY)


@translating_errors(ENTITY)
async def get_project_by_path(db: AsyncSession, root_path: str) -> Project:
    """Return the project rooted at `root_path`, or raise NotFoundError."""
    project = (await db.exec(select(Project).where(Project.root_path == root_path))).first()
    if project is None:
        raise NotFoundError(ENTITY, root_path, field="root_path")
    return project


@translating_errors(ENTITY)
async def get_project_by_path_or_name(db: AsyncSession, root_path: str, name: str) -> Project:
    """Return the project rooted at `root_path`, else one named `name`, or NotFoundError."""
    statement = (
        select(Project)
        .where(or_(Project.root_path == root_path, Project.name == name))
        # The path is unique, a name need not be: the path wins, then the oldest name.
        .order_by((Project.root_path != root_path), Project.id)  # type: ignore[arg-type]
        .limit(1)
    )
    project = (await db.exec(statement)).first()
    if project is None:
        raise NotFoundError(ENTITY, name, field="name or root_path")
    return project


@translating_errors(ENTITY)
async def list_projects(
    db: AsyncSession,
    *,
    ids: Iterable[uuid.UUID] | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> list[Project]:
    """Return projects by name, only those with these `ids` if given."""
    statement = select(Project).order_by(Project.name, Project.id)
    if ids is not None:
        statement = statement.where(Project.id.in_(set(ids)))  # type: ignore[attr-defined]
    return list((await db.exec(paginate(statement, limit, offset))).all())


@translating_errors(ENTITY)
async def count_projects(db: AsyncSession) -> int:
    """Return how many projects there are."""
    return (await db.exec(select(func.count()).select_from(Project))).one()


@translating_errors(ENTITY)
async def update_project(
    db: AsyncSession, project_id: uuid.UUID, data: ProjectUpdate | Mapping[str, Any]
) -> Project:
    """Change the fields the caller set; raise NotFoundError if there is no such project."""
    return await update_row(db, Project, project_id, ProjectUpdate, data, ENTITY)


@translating_errors(ENTITY)
async def delete_project(db: AsyncSession, project_id: uuid.UUID) -> None:
    """Delete a project; its sessions stay, detached (project_id becomes NULL)."""
    await delete_row(db, Project, project_id, ENTITY)


__all__ = [
    "count_projects",
    "create_project",
    "delete_project",
    "get_project",
    "get_project_by_path",
    "get_project_by_path_or_name",
    "list_projects",
    "update_project",
    "upsert_project",
    "upsert_projects",
]
