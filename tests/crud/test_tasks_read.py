"""Reading a session's task graph in one statement, and projects by id."""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud


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
