"""Descendants, ancestors, trees and rollups: lean rows, one statement each, and diamonds."""

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from support import sent_statements

from session_db import crud
from session_db.errors import InvalidInputError, NotFoundError
from session_db.models import RelatedSessionRow, Session, SessionRelationship

T0 = datetime(2026, 2, 12, 16, 0, tzinfo=UTC)


async def _tree(db: AsyncSession) -> dict[str, Session]:
    """root → a → a1 → a1x, root → b; costs and tokens differ on every node."""
    made = {}
    for n, slug in enumerate(("root", "a", "b", "a1", "a1x")):
        made[slug] = await crud.create_session(
            db,
            {
                "session_slug": slug,
                "title": f"Session {slug}",
                "phase": "build",
                "total_tokens": 1000 * (n + 1),
                "total_cost": f"0.{n + 1}00000001",
                "started_at": T0,
            },
        )
    for parent, child in (("root", "a"), ("root", "b"), ("a", "a1"), ("a1", "a1x")):
        await crud.link_sessions(
            db, {"parent_session_id": made[parent].id, "child_session_id": made[child].id}
        )
    return made


async def test_descendants_are_lean_rows_with_the_session_and_its_edge(db: AsyncSession) -> None:
    s = await _tree(db)
    rows = await crud.list_descendants(db, s["root"].id)
    assert all(type(row) is RelatedSessionRow for row in rows)
    assert [(r.session_slug, r.depth) for r in rows] == [
        ("a", 1),
        ("b", 1),
        ("a1", 2),
        ("a1x", 3),
    ]
    a1x = rows[-1]
    assert a1x.session_id == s["a1x"].id == a1x.child_session_id
    assert a1x.parent_session_id == s["a1"].id
    assert (a1x.title, a1x.phase, a1x.status) == ("Session a1x", "build", "active")
    assert (a1x.relationship_type, a1x.session_path) == ("parent/child", "root.a.a1.a1x")
    assert (a1x.total_tokens, a1x.total_cost) == (5000, Decimal("0.500000001"))
    assert a1x.started_at == T0
    edge = (await crud.list_relationships(db, child_session_id=s["a1x"].id))[0]
    assert a1x.relationship_id == edge.id


async def test_ancestors_walk_up_with_the_edge_that_reached_each(db: AsyncSession) -> None:
    s = await _tree(db)
    rows = await crud.list_ancestors(db, s["a1x"].id)
    assert [(r.session_slug, r.depth) for r in rows] == [("a1", 1), ("a", 2), ("root", 3)]
    assert [(r.parent_session_id, r.child_session_id) for r in rows] == [
        (s["a1"].id, s["a1x"].id),
        (s["a"].id, s["a1"].id),
        (s["root"].id, s["a"].id),
    ]
    assert await crud.list_ancestors(db, s["root"].id) == []
    with pytest.raises(InvalidInputError, match="max_depth"):
        await crud.list_ancestors(db, s["root"].id, max_depth=65)


async def test_a_session_reached_twice_is_kept_once_by_its_shortest_way(
    db: AsyncSession,
) -> None:
    s = await _tree(db)
    # a1x also directly under b: a diamond, the shorter way (root → b → a1x) wins.
    await crud.link_sessions(db, {"parent_session_id": s["b"].id, "child_session_id": s["a1x"].id})
    rows = await crud.list_descendants(db, s["root"].id)
    assert [(r.session_slug, r.depth) for r in rows] == [
        ("a", 1),
        ("b", 1),
        ("a1", 2),
        ("a1x", 2),
    ]
    assert rows[-1].parent_session_id == s["b"].id
    tree = await crud.get_session_tree(db, s["root"].id)
    a, b = tree.children
    assert [c.session_slug for c in b.children] == ["a1x"]
    assert a.children[0].children == []  # a1x hangs under b only
    rollup = await crud.get_session_rollup(db, s["root"].id)
    assert (tree.rollup_sessions, tree.rollup_tokens) == (rollup.session_count, 15000) == (5, 15000)
    assert tree.rollup_cost == rollup.total_cost == Decimal("1.500000005")


async def test_tree_depth_limits_the_nodes_drawn_but_not_the_totals(db: AsyncSession) -> None:
    s = await _tree(db)
    tree = await crud.get_session_tree(db, s["root"].id, max_depth=1)
    assert [c.session_slug for c in tree.children] == ["a", "b"]
    assert all(c.children == [] for c in tree.children)
    a = tree.children[0]
    assert (a.rollup_sessions, a.rollup_tokens, a.rollup_cost) == (
        3,
        2000 + 4000 + 5000,
        Decimal("1.100000003"),
    )
    assert (a.relationship_type, a.parent_session_id, a.depth) == ("parent/child", s["root"].id, 1)
    leaf = await crud.get_session_tree(db, s["a1x"].id)
    assert (leaf.children, leaf.rollup_sessions, leaf.rollup_tokens) == ([], 1, 5000)
    with pytest.raises(InvalidInputError, match="max_depth"):
        await crud.get_session_tree(db, s["root"].id, max_depth=0)


@pytest.mark.parametrize(
    "query",
    [
        pytest.param(lambda db, key: crud.get_session_tree(db, key), id="get_session_tree"),
        pytest.param(lambda db, key: crud.get_session_rollup(db, key), id="get_session_rollup"),
        pytest.param(lambda db, key: crud.list_descendants(db, key), id="list_descendants"),
        pytest.param(lambda db, key: crud.list_ancestors(db, key), id="list_ancestors"),
    ],
)
async def test_tree_queries_take_one_statement_found_or_not(  # type: ignore[no-untyped-def]
    db: AsyncSession, engine: AsyncEngine, query
) -> None:
    s = await _tree(db)
    await db.flush()
    with sent_statements(engine) as sent:
        assert await query(db, s["a"].id)
    assert len(sent) == 1, sent
    with sent_statements(engine) as sent, pytest.raises(NotFoundError):
        await query(db, uuid.uuid4())
    assert len(sent) == 1, sent


async def test_the_walks_see_what_the_transaction_has_not_flushed_yet(db: AsyncSession) -> None:
    s = await _tree(db)
    late = await crud.create_session(db, {"session_slug": "late", "total_tokens": 7})
    db.add(SessionRelationship(parent_session_id=s["b"].id, child_session_id=late.id))
    assert [r.session_slug for r in await crud.list_descendants(db, s["b"].id)] == ["late"]
    tree = await crud.get_session_tree(db, s["b"].id)
    assert (tree.rollup_sessions, tree.rollup_tokens) == (2, 3007)


async def _fan(db: AsyncSession, slug: str, children: int) -> Session:
    root = await crud.create_session(db, {"session_slug": slug})
    ids = await crud.ensure_sessions(db, [{"session_slug": f"{slug}-{n}"} for n in range(children)])
    await crud.link_new_children(
        db, [{"parent_session_id": root.id, "child_session_id": i} for i, _ in ids.values()]
    )
    return root


async def test_linking_a_subtree_reads_the_same_whatever_its_size(
    db: AsyncSession, engine: AsyncEngine
) -> None:
    reads = []
    for slug, children in (("small", 2), ("large", 40)):
        subtree = await _fan(db, slug, children)
        top = await crud.create_session(db, {"session_slug": f"{slug}-top"})
        with sent_statements(engine) as sent:
            await crud.link_sessions(
                db, {"parent_session_id": top.id, "child_session_id": subtree.id}
            )
        reads.append([s for s, _ in sent if s.lstrip().upper().startswith(("SELECT", "WITH"))])
        below = await crud.list_descendants(db, top.id)
        assert {r.session_path for r in below if r.depth == 2} == {
            f"{slug}-top.{slug}.{slug}-{n}" for n in range(children)
        }
    assert len(reads[0]) == len(reads[1]), reads[1]
