"""Session relationships (seed 000) and task plans (seed 002) through the CRUD layer."""

import asyncio
import uuid
from decimal import Decimal

import pytest
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.database import get_async_session
from session_db.errors import ConflictError, InvalidInputError, NotFoundError
from session_db.models import Session, Task, TaskGroup, TaskStatus


async def _sessions(db: AsyncSession, *slugs: str, **fields: object) -> dict[str, Session]:
    made = {}
    for slug in slugs:
        made[slug] = await crud.create_session(db, {"session_slug": slug, **fields})
    return made


async def _link(db: AsyncSession, parent: Session, child: Session, **fields: object) -> None:
    await crud.link_sessions(
        db, {"parent_session_id": parent.id, "child_session_id": child.id, **fields}
    )


async def test_linking_derives_depth_path_parent_and_agent_count(db: AsyncSession) -> None:
    s = await _sessions(db, "root", "child", "grandchild")
    await _link(db, s["root"], s["child"], spawn_reason="task_tool")
    await _link(db, s["child"], s["grandchild"])
    edges = {e.child_session_id: e for e in await crud.list_relationships(db)}
    assert (edges[s["child"].id].depth_level, edges[s["child"].id].session_path) == (
        1,
        "root.child",
    )
    assert (edges[s["grandchild"].id].depth_level, edges[s["grandchild"].id].session_path) == (
        2,
        "root.child.grandchild",
    )
    assert (await crud.get_session(db, s["child"].id)).parent_session_id == s["root"].id
    assert (await crud.get_session(db, s["root"].id)).agent_count == 1


async def test_linking_a_subtree_under_a_new_root_rewrites_its_paths(db: AsyncSession) -> None:
    s = await _sessions(db, "top", "mid", "leaf")
    await _link(db, s["mid"], s["leaf"])
    await _link(db, s["top"], s["mid"])
    leaf_edge = (await crud.list_relationships(db, child_session_id=s["leaf"].id))[0]
    assert (leaf_edge.depth_level, leaf_edge.session_path) == (2, "top.mid.leaf")
    mid_edge = (await crud.list_relationships(db, child_session_id=s["mid"].id))[0]
    await crud.unlink_sessions(db, mid_edge.id)
    leaf_edge = (await crud.list_relationships(db, child_session_id=s["leaf"].id))[0]
    assert (leaf_edge.depth_level, leaf_edge.session_path) == (1, "mid.leaf")
    assert (await crud.get_session(db, s["mid"].id)).parent_session_id is None
    assert (await crud.get_session(db, s["top"].id)).agent_count == 0


async def test_self_links_cycles_and_duplicates_are_refused(db: AsyncSession) -> None:
    s = await _sessions(db, "a", "b", "c")
    with pytest.raises(InvalidInputError, match="cannot be linked to itself"):
        await _link(db, s["a"], s["a"])
    await _link(db, s["a"], s["b"])
    await _link(db, s["b"], s["c"])
    with pytest.raises(InvalidInputError, match="cycle"):
        await _link(db, s["c"], s["a"])
    with pytest.raises(ConflictError) as caught:
        await _link(db, s["a"], s["b"])
    assert caught.value.field == "parent_session_id, child_session_id"
    with pytest.raises(NotFoundError, match="session with id="):
        await crud.link_sessions(
            db, {"parent_session_id": s["a"].id, "child_session_id": uuid.uuid4()}
        )
    assert len(await crud.list_relationships(db)) == 2


async def test_opposite_links_made_at_once_cannot_both_succeed(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        s = await _sessions(db, "x", "y")

    async def link(parent: Session, child: Session) -> bool:
        try:
            async with get_async_session(engine) as db:
                await _link(db, parent, child)
                await asyncio.sleep(0.05)  # keep the transaction open while the other runs
            return True
        except InvalidInputError:
            return False

    outcomes = await asyncio.gather(link(s["x"], s["y"]), link(s["y"], s["x"]))
    assert sorted(outcomes) == [False, True]


async def test_children_descendants_ancestors_and_depth_limits(db: AsyncSession) -> None:
    s = await _sessions(db, "root", "a", "b", "a1", "a1x", "next")
    await _link(db, s["root"], s["a"])
    await _link(db, s["root"], s["b"], delegation_type="parallel")
    await _link(db, s["a"], s["a1"])
    await _link(db, s["a1"], s["a1x"])
    await _link(
        db, s["root"], s["next"], relationship_type="continuation", spawn_reason="continuation"
    )
    children = await crud.list_children(db, s["root"].id)
    assert sorted(c.session.session_slug for c in children) == ["a", "b", "next"]
    only_subagents = await crud.list_children(db, s["root"].id, relationship_type="parent/child")
    assert sorted(c.session.session_slug for c in only_subagents) == ["a", "b"]
    everything = await crud.list_descendants(db, s["root"].id)
    assert [(d.session_slug, d.depth) for d in everything][2:] == [("a1", 2), ("a1x", 3)]
    shallow = await crud.list_descendants(db, s["root"].id, max_depth=2)
    assert sorted(d.session_slug for d in shallow) == ["a", "a1", "b"]
    ancestors = await crud.list_ancestors(db, s["a1x"].id)
    assert [a.session_slug for a in ancestors] == ["a1", "a", "root"]
    assert [a.session_slug for a in await crud.list_ancestors(db, s["a1x"].id, max_depth=1)] == [
        "a1"
    ]
    with pytest.raises(InvalidInputError, match="max_depth"):
        await crud.list_descendants(db, s["root"].id, max_depth=0)


async def test_tree_and_cost_rollup_include_every_subagent(db: AsyncSession) -> None:
    root = await crud.create_session(
        db, {"session_slug": "root", "total_tokens": 1000, "total_cost": "1.25"}
    )
    explore = await crud.create_session(
        db,
        {
            "session_slug": "explore",
            "total_tokens": 500,
            "total_cost": "0.5",
            "session_role": "subagent",
        },
    )
    deeper = await crud.create_session(
        db, {"session_slug": "deeper", "total_tokens": 20, "total_cost": "0.000000001"}
    )
    unrelated = await crud.create_session(db, {"session_slug": "other", "total_cost": "99"})
    await _link(db, root, explore)
    await _link(db, explore, deeper)
    tree = await crud.get_session_tree(db, root.id)
    assert tree.session_slug == "root" and tree.relationship_id is None and tree.depth == 0
    assert [c.session_slug for c in tree.children] == ["explore"]
    assert [c.session_slug for c in tree.children[0].children] == ["deeper"]
    assert tree.children[0].children[0].session_path == "root.explore.deeper"
    assert (tree.rollup_sessions, tree.rollup_tokens) == (3, 1520)
    assert tree.rollup_cost == Decimal("1.750000001")
    explore_node = tree.children[0]
    assert (explore_node.rollup_sessions, explore_node.rollup_tokens) == (2, 520)
    assert explore_node.rollup_cost == Decimal("0.500000001")
    rollup = await crud.get_session_rollup(db, root.id)
    assert (rollup.session_count, rollup.total_tokens) == (3, 1520)
    assert rollup.total_cost == Decimal("1.750000001")
    leaf = await crud.get_session_rollup(db, unrelated.id)
    assert (leaf.session_count, leaf.total_cost) == (1, Decimal("99"))
    with pytest.raises(NotFoundError):
        await crud.get_session_rollup(db, uuid.uuid4())


async def test_relationship_update_and_active_session(db: AsyncSession) -> None:
    s = await _sessions(db, "p", "c")
    await _link(db, s["p"], s["c"])
    edge = (await crud.list_relationships(db, parent_session_id=s["p"].id))[0]
    done = await crud.update_relationship(db, edge.id, {"completed_at": "2026-01-15T10:00:00Z"})
    assert done.completed_at is not None and done.completed_at.tzinfo is not None
    assert await crud.get_active_session(db) is None
    await crud.set_active_session(db, s["p"].id, {"why": "first"})
    active = await crud.set_active_session(db, s["c"].id)
    assert active.id == 1 and active.session_id == s["c"].id and active.context_data is None
    assert (await crud.get_active_session(db)).session_slug == "c"
    await crud.clear_active_session(db)
    await crud.clear_active_session(db)
    assert await crud.get_active_session(db) is None
    with pytest.raises(NotFoundError):
        await crud.set_active_session(db, uuid.uuid4())


# Task plans


@pytest.fixture
async def plan(db: AsyncSession) -> dict[str, uuid.UUID]:
    session = await crud.create_session(db, {"session_slug": "plan"})
    backend = await crud.create_task_group(db, {"session_id": session.id, "group_name": "backend"})
    schema = await crud.create_task(
        db, {"session_id": session.id, "group_id": backend.id, "title": "schema"}
    )
    api = await crud.create_task(
        db, {"session_id": session.id, "group_id": backend.id, "title": "api"}
    )
    docs = await crud.create_task(db, {"session_id": session.id, "title": "docs"})
    return {
        "session": session.id,
        "backend": backend.id,
        "schema": schema.id,
        "api": api.id,
        "docs": docs.id,
    }


async def test_subtasks_derive_level_root_and_path(db: AsyncSession, plan: dict) -> None:
    child = await crud.create_task(
        db, {"session_id": plan["session"], "parent_task_id": plan["schema"], "title": "naming"}
    )
    grandchild = await crud.create_task(
        db, {"session_id": plan["session"], "parent_task_id": child.id, "title": "indexes"}
    )
    assert (child.level, child.root_task_id) == (1, plan["schema"])
    assert (grandchild.level, grandchild.root_task_id) == (2, plan["schema"])
    assert grandchild.hierarchy_path == f"/{plan['schema']}/{child.id}/{grandchild.id}"
    other = await crud.create_session(db, {"session_slug": "other"})
    with pytest.raises(InvalidInputError, match=r"task\.parent_task_id: belongs to another"):
        await crud.create_task(
            db, {"session_id": other.id, "parent_task_id": child.id, "title": "stray"}
        )


async def test_completing_tasks_rolls_progress_up(db: AsyncSession, plan: dict) -> None:
    session = await crud.get_session(db, plan["session"])
    assert (session.total_tasks, session.completed_tasks, session.progress_percentage) == (
        3,
        0,
        0.0,
    )
    done = await crud.update_task(db, plan["schema"], {"status": "completed"})
    assert done.progress_percentage == 100.0 and done.completed_at is not None
    group = await crud.get_task_group(db, plan["backend"])
    assert (group.total_tasks, group.completed_tasks, group.progress_percentage) == (2, 1, 50.0)
    session = await crud.get_session(db, plan["session"])
    assert (session.completed_tasks, session.progress_percentage) == (1, 33.33)
    started = await crud.update_task(db, plan["api"], {"status": "in_progress"})
    assert started.started_at is not None
    await crud.delete_task(db, plan["schema"])
    group = await crud.get_task_group(db, plan["backend"])
    assert (group.total_tasks, group.completed_tasks) == (1, 0)


async def test_dependencies_refuse_cycles_and_decide_readiness(
    db: AsyncSession, plan: dict
) -> None:
    await crud.add_task_dependency(db, plan["api"], plan["schema"])
    await crud.add_task_dependency(db, plan["docs"], plan["api"])
    with pytest.raises(InvalidInputError, match="cycle"):
        await crud.add_task_dependency(db, plan["schema"], plan["docs"])
    with pytest.raises(InvalidInputError, match="itself"):
        await crud.add_task_dependency(db, plan["api"], plan["api"])
    with pytest.raises(ConflictError, match="already depends"):
        await crud.add_task_dependency(db, plan["api"], plan["schema"])
    ready = [t.title for t in await crud.list_ready_tasks(db, plan["session"])]
    assert ready == ["schema"]
    await crud.update_task(db, plan["schema"], {"status": "completed"})
    assert [t.title for t in await crud.list_ready_tasks(db, plan["session"])] == ["api"]
    assert [t.title for t in await crud.list_task_dependencies(db, plan["docs"])] == ["api"]
    assert [t.title for t in await crud.list_blocked_tasks(db, plan["schema"])] == ["api"]
    await crud.remove_task_dependency(db, plan["docs"], plan["api"])
    assert sorted(t.title for t in await crud.list_ready_tasks(db, plan["session"])) == [
        "api",
        "docs",
    ]
    with pytest.raises(NotFoundError):
        await crud.remove_task_dependency(db, plan["docs"], plan["api"])


async def test_task_groups_nest_and_refuse_duplicate_names(db: AsyncSession, plan: dict) -> None:
    nested = await crud.create_task_group(
        db,
        {
            "session_id": plan["session"],
            "group_name": "backend/db",
            "parent_group_id": plan["backend"],
        },
    )
    assert nested.group_level == 1
    with pytest.raises(ConflictError) as caught:
        await crud.create_task_group(db, {"session_id": plan["session"], "group_name": "backend"})
    assert caught.value.field == "session_id, group_name"
    renamed = await crud.update_task_group(db, nested.id, {"description": "storage"})
    assert renamed.description == "storage"
    assert [g.group_name for g in await crud.list_task_groups(db, plan["session"])] == [
        "backend",
        "backend/db",
    ]
    await crud.delete_task_group(db, plan["backend"])
    tasks = await crud.list_tasks(db, plan["session"])
    assert len(tasks) == 3 and all(task.group_id is None for task in tasks)
    assert await crud.list_task_groups(db, plan["session"]) == []


async def test_modes_bind_to_sessions(db: AsyncSession) -> None:
    session = await crud.create_session(db, {"session_slug": "s"})
    mode = await crud.create_session_mode(
        db,
        {
            "mode_name": "dev",
            "yaml_file_path": "/modes/dev.yaml",
            "specialist_roles": ["architect"],
        },
    )
    await crud.bind_session_mode(db, session.id, mode.id, {"strict": True})
    assert [m.mode_name for m in await crud.list_modes_of_session(db, session.id)] == ["dev"]
    with pytest.raises(ConflictError):
        await crud.bind_session_mode(db, session.id, mode.id)
    with pytest.raises(NotFoundError, match=r"session_mode_binding\.mode_id\ refers\ to"):
        await crud.bind_session_mode(db, session.id, uuid.uuid4())
    updated = await crud.update_session_mode(
        db, mode.id, {"is_valid": False, "validation_errors": ["bad"]}
    )
    assert updated.is_valid is False
    await crud.unbind_session_mode(db, session.id, mode.id)
    assert await crud.list_modes_of_session(db, session.id) == []
    await crud.delete_session_mode(db, mode.id)
    assert await crud.list_session_modes(db) == []


async def test_a_group_counts_the_tasks_of_groups_nested_below_it(
    db: AsyncSession, plan: dict
) -> None:
    nested = await crud.create_task_group(
        db,
        {
            "session_id": plan["session"],
            "group_name": "backend/db",
            "parent_group_id": plan["backend"],
        },
    )
    moved = await crud.update_task(
        db, plan["schema"], {"group_id": nested.id, "status": "completed"}
    )
    assert moved.group_id == nested.id
    parent = await crud.get_task_group(db, plan["backend"])
    child = await crud.get_task_group(db, nested.id)
    assert (child.total_tasks, child.completed_tasks) == (1, 1)
    assert (parent.total_tasks, parent.completed_tasks, parent.progress_percentage) == (2, 1, 50.0)


async def test_refresh_session_progress_repairs_counters_written_around_the_crud_layer(
    db: AsyncSession, plan: dict
) -> None:
    await db.exec(update(Task).where(Task.id == plan["schema"]).values(status=TaskStatus.COMPLETED))
    await crud.refresh_session_progress(db, plan["session"])
    session = await crud.get_session(db, plan["session"])
    group = await db.get(TaskGroup, plan["backend"], populate_existing=True)
    assert (session.total_tasks, session.completed_tasks) == (3, 1)
    assert group is not None and (group.total_tasks, group.completed_tasks) == (2, 1)
    with pytest.raises(NotFoundError):
        await crud.refresh_session_progress(db, uuid.uuid4())
