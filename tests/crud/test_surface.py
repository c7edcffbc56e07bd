"""The CRUD layer's public surface: every function is exercised, typed and documented."""

import inspect
import re
import uuid

import pytest
from sqlmodel.ext.asyncio.session import AsyncSession
from support import TESTS

from session_db import crud
from session_db.errors import NotFoundError

# The public functions (crud also exports a few input and result types).
FUNCTIONS = sorted(name for name in crud.__all__ if inspect.isfunction(getattr(crud, name)))


def test_every_public_crud_function_is_called_by_some_test() -> None:
    source = "\n".join(path.read_text() for path in TESTS.rglob("test_*.py"))
    called = set(re.findall(r"crud\.(\w+)\(", source))
    untested = sorted(set(FUNCTIONS) - called)
    assert not untested, f"no test calls: {untested}"


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_public_crud_function_is_async_typed_and_documented(name: str) -> None:
    function = getattr(crud, name)
    assert inspect.iscoroutinefunction(function), name
    signature = inspect.signature(function)
    assert signature.return_annotation is not inspect.Signature.empty, name
    assert all(
        p.annotation is not inspect.Parameter.empty for p in signature.parameters.values()
    ), name
    assert (function.__doc__ or "").strip(), name


@pytest.mark.parametrize(
    "lookup",
    [
        pytest.param(lambda db, key: crud.get_session(db, key), id="get_session"),
        pytest.param(lambda db, key: crud.get_agent(db, key), id="get_agent"),
        pytest.param(lambda db, key: crud.get_thread(db, key), id="get_thread"),
        pytest.param(lambda db, key: crud.get_task(db, key), id="get_task"),
        pytest.param(lambda db, key: crud.get_task_group(db, key), id="get_task_group"),
        pytest.param(lambda db, key: crud.get_relationship(db, key), id="get_relationship"),
        pytest.param(lambda db, key: crud.get_session_mode(db, key), id="get_session_mode"),
        pytest.param(lambda db, key: crud.get_agent_log(db, key), id="get_agent_log"),
        pytest.param(lambda db, key: crud.delete_session(db, key), id="delete_session"),
        pytest.param(lambda db, key: crud.delete_thread(db, key), id="delete_thread"),
        pytest.param(
            lambda db, key: crud.update_thread(db, key, {"name": "x"}), id="update_thread"
        ),
        pytest.param(
            lambda db, key: crud.update_thread_timestamp(db, key), id="update_thread_timestamp"
        ),
        pytest.param(lambda db, key: crud.unlink_sessions(db, key), id="unlink_sessions"),
        pytest.param(lambda db, key: crud.get_session_tree(db, key), id="get_session_tree"),
        pytest.param(lambda db, key: crud.get_session_rollup(db, key), id="get_session_rollup"),
        pytest.param(lambda db, key: crud.list_descendants(db, key), id="list_descendants"),
        pytest.param(lambda db, key: crud.list_ancestors(db, key), id="list_ancestors"),
    ],
)
async def test_missing_rows_raise_not_found(db: AsyncSession, lookup) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFoundError):
        await lookup(db, uuid.uuid4())


async def test_lookups_by_natural_key_raise_not_found(db: AsyncSession) -> None:
    with pytest.raises(NotFoundError, match="session_slug=nope"):
        await crud.get_session_by_slug(db, "nope")
    with pytest.raises(NotFoundError, match="sdk_session_id=sess_none"):
        await crud.get_agent_by_sdk_session_id(db, "sess_none")
    with pytest.raises(NotFoundError, match="root_path=/nowhere"):
        await crud.get_project_by_path(db, "/nowhere")


async def test_delete_session_through_crud_takes_what_it_owns(db: AsyncSession) -> None:
    session = await crud.create_session(db, {"session_slug": "gone"})
    agent = await crud.create_agent(db, {"session_id": session.id, "agent_type": "build"})
    thread = await crud.create_thread(db, {"session_id": session.id, "name": "t"})
    task = await crud.create_task(db, {"session_id": session.id, "title": "t"})
    await crud.delete_session(db, session.id)
    for lookup, key in (
        (crud.get_agent, agent.id),
        (crud.get_thread, thread.id),
        (crud.get_task, task.id),
    ):
        with pytest.raises(NotFoundError):
            await lookup(db, key)


async def test_list_tasks_filters_by_group_and_status(db: AsyncSession) -> None:
    session = await crud.create_session(db, {"session_slug": "s"})
    group = await crud.create_task_group(db, {"session_id": session.id, "group_name": "g"})
    grouped = await crud.create_task(
        db,
        {"session_id": session.id, "group_id": group.id, "title": "in group", "status": "blocked"},
    )
    await crud.create_task(db, {"session_id": session.id, "title": "loose"})
    assert [t.id for t in await crud.list_tasks(db, session.id, group_id=group.id)] == [grouped.id]
    assert [t.title for t in await crud.list_tasks(db, session.id, status="pending")] == ["loose"]
    assert (await crud.get_task(db, grouped.id)).title == "in group"
