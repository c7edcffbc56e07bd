"""Reads the command line needs: a session's task graph in one statement, projects by id,
path or name."""

from __future__ import annotations

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.errors import NotFoundError


async def test_a_sessions_dependency_edges_come_in_one_read(db: AsyncSession) -> None:
    session = await crud.create_session(db, {"session_slug": "plan"})
    other = await crud.create_session(db, {"session_slug": "elsewhere"})
    a, b, c = [
        await crud.create_task(db, {"session_id": session.id, "title": title})
        for title in ("a", "b", "c")
    ]
    x, y = [await crud.create_task(db, {"session_id": other.id, "title": title}) for title in "xy"]
    await crud.add_task_dependency(db, c.id, a.id)
    await crud.add_task_dependency(db, c.id, b.id)
    await crud.add_task_dependency(db, y.id, x.id)
    edges = await crud.list_session_task_dependencies(db, session.id)
    assert sorted(edges) == sorted([(c.id, a.id), (c.id, b.id)])


async def test_projects_are_listed_by_id(db: AsyncSession) -> None:
    one = await crud.create_project(db, {"name": "one", "root_path": "/p/one"})
    await crud.create_project(db, {"name": "two", "root_path": "/p/two"})
    assert [p.name for p in await crud.list_projects(db, ids=[one.id])] == ["one"]
    assert await crud.list_projects(db, ids=[]) == []
    assert len(await crud.list_projects(db)) == 2


async def test_a_project_is_found_by_path_before_name(db: AsyncSession) -> None:
    by_path = await crud.create_project(db, {"name": "shop", "root_path": "/p/shop"})
    named = await crud.create_project(db, {"name": "/p/shop-old", "root_path": "/p/elsewhere"})
    found = await crud.get_project_by_path_or_name(db, "/p/shop", "shop")
    assert found.id == by_path.id
    assert (await crud.get_project_by_path_or_name(db, "/x", "/p/shop-old")).id == named.id
    with pytest.raises(NotFoundError):
        await crud.get_project_by_path_or_name(db, "/nowhere", "nothing")
