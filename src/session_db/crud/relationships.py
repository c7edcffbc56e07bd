"""Session relationships (seed 000): linking, children, descendants, ancestors, trees, rollups.

Edges of one `relationship_type` form a forest: linking refuses self-links and cycles,
and `depth_level` / `session_path` are kept right for the whole subtree below a link.
"""

import functools
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from sqlalchemy import Integer, Uuid, bindparam, cast, func, literal, null
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import (
    build_row,
    coerce_input,
    enum_filter,
    get_or_raise,
    remove,
    save,
    translating_errors,
    update_row,
)
from session_db.crud._bulk import BULK_PAGE, insert_rows
from session_db.errors import ConflictError, InvalidInputError, NotFoundError
from session_db.models import (
    RelatedSession,
    RelatedSessionRow,
    RelationshipType,
    Session,
    SessionRead,
    SessionRelationship,
    SessionRelationshipCreate,
    SessionRelationshipRead,
    SessionRelationshipUpdate,
    SessionRollup,
    SessionTreeNode,
)
from session_db.models.base import new_id, to_money, utcnow

ENTITY = "session_relationship"
# Recursion stops here even if rows written behind the CRUD layer's back form a cycle.
MAX_DEPTH = 64
_PARENT_CHILD = RelationshipType.PARENT_CHILD
# Ids bound in one IN list: well under asyncpg's 32,767 parameters and SQLite's limit.
_ID_BATCH = 5000


# The columns of a lean row (RelatedSessionRow, SessionTreeNode), in their field order.
_SESSION_COLUMNS = (
    Session.id,
    Session.session_slug,
    Session.title,
    Session.phase,
    Session.status,
    Session.session_type,
    Session.started_at,
    Session.ended_at,
    Session.total_tokens,
    Session.total_cost,
    Session.total_tasks,
    Session.completed_tasks,
)


def _walk(down: bool, typed: bool) -> Any:
    """A recursive CTE of (edge_id, session_id, depth) reachable from `:start`.

    Its first row is `:start` itself at depth 0 with no edge, present only if the session
    exists: so one statement both walks and tells an unknown session apart from a leaf.
    It goes at most `:max_depth` steps, along edges of type `:kind` when `typed`.
    """
    edge = SessionRelationship
    near, far = (
        (edge.parent_session_id, edge.child_session_id)
        if down
        else (edge.child_session_id, edge.parent_session_id)
    )
    base = select(
        cast(null(), Uuid()).label("edge_id"),
        Session.id.label("session_id"),
        literal(0).label("depth"),
    ).where(Session.id == bindparam("start"))
    cte = base.cte("reachable", recursive=True)
    step = (
        select(edge.id, far, cte.c.depth + 1)
        .join(cte, near == cte.c.session_id)
        .where(cte.c.depth < bindparam("max_depth", type_=Integer()))
    )
    if typed:
        step = step.where(edge.relationship_type == bindparam("kind"))
    return cte.union_all(step)


def _walk_params(
    start: uuid.UUID, relationship_type: RelationshipType | None, max_depth: int
) -> dict[str, Any]:
    params: dict[str, Any] = {"start": start, "max_depth": max_depth}
    if relationship_type is not None:
        params["kind"] = relationship_type.value
    return params


@functools.cache
def _walk_statement(down: bool, typed: bool) -> Any:
    """The walk's rows, in RelatedSessionRow's column order; built once, on first use.

    Built once because building and keying a statement this size costs about as much as
    reading a few hundred rows.
    """
    cte = _walk(down, typed)
    edge = SessionRelationship
    return (
        select(
            *_SESSION_COLUMNS,
            edge.id,
            edge.relationship_type,
            edge.parent_session_id,
            edge.child_session_id,
            edge.session_path,
            cte.c.depth,
        )
        .select_from(cte)
        .join(Session, Session.id == cte.c.session_id)
        .outerjoin(edge, edge.id == cte.c.edge_id)
        .order_by(cte.c.depth, edge.created_at, Session.id)
    )


@functools.cache
def _rollup_statement() -> Any:
    below = _walk(down=True, typed=True)
    return select(
        func.count(Session.id),
        func.coalesce(func.sum(Session.total_tokens), 0),
        func.coalesce(func.sum(Session.total_cost), 0),
    ).where(Session.id.in_(select(below.c.session_id)))  # type: ignore[attr-defined]


def _check_depth(max_depth: int | None) -> int:
    if max_depth is None:
        return MAX_DEPTH
    if not 1 <= max_depth <= MAX_DEPTH:
        raise InvalidInputError(ENTITY, "max_depth", f"must be between 1 and {MAX_DEPTH}")
    return max_depth


async def _walk_rows(
    db: AsyncSession,
    start: uuid.UUID,
    relationship_type: RelationshipType | None,
    *,
    down: bool,
    max_depth: int,
) -> list[Any]:
    """`start` (first) and every session reached from it, each once, by its shortest way.

    Rows in RelatedSessionRow's column order, nearest first (then edge age, then id).

    Raises:
        NotFoundError: There is no session `start`.
    """
    statement = _walk_statement(down, relationship_type is not None)
    # Plain column rows: no ORM entities or model validation per row, which were most of
    # the time of a large subtree.
    params = _walk_params(start, relationship_type, max_depth)
    rows = (await db.exec(statement, params=params)).all()
    if not rows:
        raise NotFoundError("session", start)
    seen: set[uuid.UUID] = set()
    found = []
    for row in rows:
        if row[0] in seen:  # reached twice (a diamond, or a cycle): keep the shortest way
            continue
        seen.add(row[0])
        found.append(row)
    return found


async def _reachable(
    db: AsyncSession,
    start: uuid.UUID,
    relationship_type: RelationshipType | None,
    *,
    down: bool,
    max_depth: int,
) -> list[RelatedSessionRow]:
    rows = await _walk_rows(db, start, relationship_type, down=down, max_depth=max_depth)
    make = RelatedSessionRow._make
    return [make(row) for row in rows[1:]]  # rows[0] is `start` itself


@translating_errors(ENTITY)
async def link_sessions(
    db: AsyncSession, data: SessionRelationshipCreate | Mapping[str, Any]
) -> SessionRelationship:
    """Link a child session to a parent, deriving `depth_level` and `session_path`.

    A parent/child link also sets the child's `parent_session_id` (if it has none) and
    counts the child in the parent's `agent_count`.

    Raises:
        InvalidInputError: The two are the same session, or the link would make a cycle.
        NotFoundError: Either session does not exist.
        ConflictError: The two are already linked.
    """
    link = coerce_input(SessionRelationshipCreate, data, ENTITY)
    parent_id, child_id = link.parent_session_id, link.child_session_id
    if parent_id == child_id:
        raise InvalidInputError(ENTITY, "child_session_id", "a session cannot be linked to itself")
    # Lock both ends, in a fixed order: two links made at once in opposite directions
    # then run one after the other, and the second sees the first and is refused.
    locked = select(Session).where(Session.id.in_([parent_id, child_id])).order_by(Session.id)
    locked = locked.with_for_update().execution_options(populate_existing=True)
    sessions = {s.id: s for s in (await db.exec(locked)).all()}
    for session_id in (parent_id, child_id):
        if session_id not in sessions:
            raise NotFoundError("session", session_id)
    below_child = await _reachable(
        db, child_id, link.relationship_type, down=True, max_depth=MAX_DEPTH
    )
    if any(related.session_id == parent_id for related in below_child):
        raise InvalidInputError(
            ENTITY,
            "parent_session_id",
            "the link would make a cycle: the parent is below the child",
        )
    edge = build_row(SessionRelationship, link, ENTITY)
    await save(db, edge, ENTITY)
    parent, child = sessions[parent_id], sessions[child_id]
    if link.relationship_type == _PARENT_CHILD:
        if child.parent_session_id is None:
            child.parent_session_id = parent_id
        parent.agent_count += 1
        await save(db, parent, "session")
        await save(db, child, "session")
    await _refresh_paths(db, parent_id, link.relationship_type)
    return edge


@translating_errors(ENTITY)
async def link_sessions_once(
    db: AsyncSession, data: SessionRelationshipCreate | Mapping[str, Any]
) -> SessionRelationship | None:
    """Link two sessions as `link_sessions` does, unless they are linked already.

    Idempotent: the unique (parent, child) edge decides, inside the link's SAVEPOINT, so
    a link seen again (a history imported twice, or by two importers at once) adds
    nothing and changes no count, and the transaction stays usable.

    Returns:
        The new edge, or None where the two were linked already (whatever the type).

    Raises:
        InvalidInputError: The two are the same session, or the link would make a cycle.
        NotFoundError: Either session does not exist.
    """
    try:
        return await link_sessions(db, data)
    except ConflictError:
        return None


async def _refresh_paths(
    db: AsyncSession, root_id: uuid.UUID, relationship_type: RelationshipType
) -> None:
    """Recompute `depth_level` and `session_path` of every edge below `root_id`."""
    root = await get_or_raise(db, Session, root_id, "session")
    above = (
        await db.exec(
            select(SessionRelationship)
            .where(
                SessionRelationship.child_session_id == root_id,
                SessionRelationship.relationship_type == relationship_type,
            )
            .order_by(SessionRelationship.created_at, SessionRelationship.id)
        )
    ).first()
    start_depth = above.depth_level if above else 0
    start_path = (above.session_path if above else None) or root.session_slug
    paths = {root_id: (start_depth, start_path)}
    below = await _reachable(db, root_id, relationship_type, down=True, max_depth=MAX_DEPTH)
    # The subtree's edges in a few reads, not one lookup each.
    ids = [related.relationship_id for related in below]
    edges: dict[uuid.UUID, SessionRelationship] = {}
    for start in range(0, len(ids), _ID_BATCH):
        batch = ids[start : start + _ID_BATCH]
        found = await db.exec(select(SessionRelationship).where(SessionRelationship.id.in_(batch)))  # type: ignore[attr-defined]
        edges.update((edge.id, edge) for edge in found.all())
    for related in below:
        edge = edges[related.relationship_id]
        depth, path = paths[edge.parent_session_id]
        paths[edge.child_session_id] = (depth + 1, f"{path}.{related.session_slug}")
        edge.depth_level, edge.session_path = paths[edge.child_session_id]
        db.add(edge)
    await db.flush()


@translating_errors(ENTITY)
async def get_relationship(db: AsyncSession, relationship_id: uuid.UUID) -> SessionRelationship:
    """Return the edge with this id, or raise NotFoundError."""
    return await get_or_raise(db, SessionRelationship, relationship_id, ENTITY)


@translating_errors(ENTITY)
async def list_relationships(
    db: AsyncSession,
    *,
    parent_session_id: uuid.UUID | None = None,
    child_session_id: uuid.UUID | None = None,
    relationship_type: RelationshipType | str | None = None,
) -> list[SessionRelationship]:
    """Return edges matching every filter given, oldest first."""
    statement = select(SessionRelationship)
    if parent_session_id is not None:
        statement = statement.where(SessionRelationship.parent_session_id == parent_session_id)
    if child_session_id is not None:
        statement = statement.where(SessionRelationship.child_session_id == child_session_id)
    kind = enum_filter(RelationshipType, relationship_type, ENTITY, "relationship_type")
    if kind is not None:
        statement = statement.where(SessionRelationship.relationship_type == kind)
    statement = statement.order_by(SessionRelationship.created_at, SessionRelationship.id)
    return list((await db.exec(statement)).all())


@translating_errors(ENTITY)
async def list_linked_pairs(
    db: AsyncSession, pairs: Iterable[tuple[uuid.UUID, uuid.UUID]]
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """Return which of these (parent, child) pairs have an edge; one query per page of
    children."""
    wanted = set(pairs)
    children = sorted({child for _, child in wanted})
    found: set[tuple[uuid.UUID, uuid.UUID]] = set()
    edge = SessionRelationship
    for start in range(0, len(children), BULK_PAGE):
        page = children[start : start + BULK_PAGE]
        rows = await db.exec(
            select(edge.parent_session_id, edge.child_session_id).where(
                col(edge.child_session_id).in_(page)
            )
        )
        found.update(pair for pair in rows.all() if pair in wanted)
    return found


@translating_errors(ENTITY)
async def update_relationship(
    db: AsyncSession,
    relationship_id: uuid.UUID,
    data: SessionRelationshipUpdate | Mapping[str, Any],
) -> SessionRelationship:
    """Complete or annotate an edge (completed_at, spawn reason, metadata)."""
    return await update_row(
        db, SessionRelationship, relationship_id, SessionRelationshipUpdate, data, ENTITY
    )


@translating_errors(ENTITY)
async def unlink_sessions(db: AsyncSession, relationship_id: uuid.UUID) -> None:
    """Remove an edge; a detached subtree gets its depths and paths recomputed."""
    edge = await get_or_raise(db, SessionRelationship, relationship_id, ENTITY)
    parent_id, child_id, kind = (
        edge.parent_session_id,
        edge.child_session_id,
        edge.relationship_type,
    )
    await remove(db, edge, ENTITY)
    if kind == _PARENT_CHILD:
        parent = await get_or_raise(db, Session, parent_id, "session")
        child = await get_or_raise(db, Session, child_id, "session")
        parent.agent_count = max(0, parent.agent_count - 1)
        if child.parent_session_id == parent_id:
            child.parent_session_id = None
        await save(db, parent, "session")
        await save(db, child, "session")
    await _refresh_paths(db, child_id, RelationshipType(kind))


@translating_errors(ENTITY)
async def list_children(
    db: AsyncSession,
    session_id: uuid.UUID,
    *,
    relationship_type: RelationshipType | str | None = None,
) -> list[RelatedSession]:
    """Return the sessions linked directly below `session_id` (any type unless given)."""
    kind = enum_filter(RelationshipType, relationship_type, ENTITY, "relationship_type")
    # A plain indexed join, not the recursive walk: the planner cannot size a recursive
    # CTE and would scan whole tables for what one index lookup per child answers.
    statement = (
        select(Session, SessionRelationship)
        .join(SessionRelationship, SessionRelationship.child_session_id == Session.id)
        .where(SessionRelationship.parent_session_id == session_id)
        .order_by(SessionRelationship.created_at, Session.id)
    )
    if kind is not None:
        statement = statement.where(SessionRelationship.relationship_type == kind)
    return [
        RelatedSession(
            session=SessionRead.model_validate(child),
            relationship=SessionRelationshipRead.model_validate(edge),
            depth=1,
        )
        for child, edge in (await db.exec(statement)).all()
    ]


@translating_errors(ENTITY)
async def list_descendants(
    db: AsyncSession,
    session_id: uuid.UUID,
    *,
    max_depth: int | None = None,
    relationship_type: RelationshipType | str | None = _PARENT_CHILD,
) -> list[RelatedSessionRow]:
    """Return every session below `session_id`, nearest first, down to `max_depth` levels.

    One statement. Lean rows (see RelatedSessionRow), each session once, by its shortest
    way; ordered by depth, then the edge's age, then session id.

    Raises:
        InvalidInputError: `max_depth` is outside 1..64.
        NotFoundError: There is no such session.
    """
    kind = enum_filter(RelationshipType, relationship_type, ENTITY, "relationship_type")
    return await _reachable(db, session_id, kind, down=True, max_depth=_check_depth(max_depth))


@translating_errors(ENTITY)
async def list_ancestors(
    db: AsyncSession,
    session_id: uuid.UUID,
    *,
    max_depth: int | None = None,
    relationship_type: RelationshipType | str | None = _PARENT_CHILD,
) -> list[RelatedSessionRow]:
    """Return the sessions above `session_id`, its parent first, the root last.

    One statement, lean rows (see RelatedSessionRow), as `list_descendants` upwards.

    Raises:
        InvalidInputError: `max_depth` is outside 1..64.
        NotFoundError: There is no such session.
    """
    kind = enum_filter(RelationshipType, relationship_type, ENTITY, "relationship_type")
    return await _reachable(db, session_id, kind, down=False, max_depth=_check_depth(max_depth))


@translating_errors(ENTITY)
async def get_session_tree(
    db: AsyncSession, session_id: uuid.UUID, *, max_depth: int | None = None
) -> SessionTreeNode:
    """Return `session_id` and its parent/child descendants, nested, with subtree totals.

    One statement: the whole subtree in one recursive query, nested and summed in
    memory. Each node (a SessionTreeNode) carries the session's own columns, the edge
    above it (None for the root), its depth, `rollup_sessions` / `rollup_tokens` /
    `rollup_cost` (it and everything below it, each session once), and `children`.
    A session reached twice hangs under the parent of its shortest way only.

    Args:
        db: The session to read in.
        session_id: The root.
        max_depth: Draw nodes down to this many levels (1..64, all when None); the
            totals always cover the whole subtree, as `get_session_rollup` does.

    Raises:
        InvalidInputError: `max_depth` is outside 1..64.
        NotFoundError: There is no such session.
    """
    shown = _check_depth(max_depth)
    rows = await _walk_rows(db, session_id, _PARENT_CHILD, down=True, max_depth=MAX_DEPTH)
    nodes: dict[uuid.UUID, SessionTreeNode] = {}
    for row in rows:
        # A row: 12 session columns, then the edge's id, type, parent, child and path, and
        # the depth. Positional, as the fields are in that order; totals start as its own.
        depth, parent_id = row[17], row[14]
        node = SessionTreeNode(*row[:15], row[16], depth, 1, row[8], row[9], [])
        nodes[row[0]] = node
        if depth and depth <= shown:
            nodes[parent_id].children.append(node)
    # Deepest first, so each node's totals are complete before they are added above it.
    for node in reversed(nodes.values()):
        if node.parent_session_id is not None:
            parent = nodes[node.parent_session_id]
            parent.rollup_sessions += node.rollup_sessions
            parent.rollup_tokens += node.rollup_tokens
            parent.rollup_cost += node.rollup_cost
    return nodes[session_id]


@translating_errors(ENTITY)
async def get_session_rollup(db: AsyncSession, session_id: uuid.UUID) -> SessionRollup:
    """Sum tokens and cost over a session and all its parent/child descendants.

    One statement. Returns a SessionRollup: `session_id`, `session_count` (the session
    and every session below it, each once), `total_tokens`, `total_cost`.

    Raises:
        NotFoundError: There is no such session.
    """
    params = _walk_params(session_id, _PARENT_CHILD, MAX_DEPTH)
    count, tokens, cost = (await db.exec(_rollup_statement(), params=params)).one()
    if not count:  # the walk starts at the session itself, so only a missing one has none
        raise NotFoundError("session", session_id)
    return SessionRollup(
        session_id=session_id,
        session_count=count,
        total_tokens=int(tokens),
        total_cost=to_money(cost if cost is not None else Decimal(0)),
    )


@translating_errors(ENTITY)
async def link_new_children(
    db: AsyncSession, links: list[SessionRelationshipCreate | Mapping[str, Any]]
) -> None:
    """Link sessions created in this transaction to their parents, a batch at a time.

    The set-based form of `link_sessions` for children that have no links yet (a
    subagent seen for the first time): nothing can be below them, so no cycle is
    possible and only their own edge needs a depth and path. One read of the parents'
    own edges, one INSERT of the edges (a pair already linked is left alone), one
    executemany UPDATE of the parents' `agent_count`.
    """
    edges = [coerce_input(SessionRelationshipCreate, link, ENTITY) for link in links]
    edges = [edge for edge in edges if edge.parent_session_id != edge.child_session_id]
    if not edges:
        return
    ids = {edge.parent_session_id for edge in edges} | {edge.child_session_id for edge in edges}
    slugs = dict(
        (await db.exec(select(Session.id, Session.session_slug).where(Session.id.in_(ids)))).all()  # type: ignore[attr-defined]
    )
    above: dict[tuple[uuid.UUID, RelationshipType], tuple[int, str | None]] = {}
    rows = await db.exec(
        select(
            SessionRelationship.child_session_id,
            SessionRelationship.relationship_type,
            SessionRelationship.depth_level,
            SessionRelationship.session_path,
        )
        .where(SessionRelationship.child_session_id.in_({e.parent_session_id for e in edges}))  # type: ignore[attr-defined]
        .order_by(SessionRelationship.created_at, SessionRelationship.id)
    )
    for child, kind, depth, path in rows.all():
        above.setdefault((child, RelationshipType(kind)), (depth, path))
    values = []
    now = utcnow()
    for edge in edges:
        depth, path = above.get((edge.parent_session_id, edge.relationship_type), (0, None))
        parent_path = path or slugs[edge.parent_session_id]
        values.append(
            {
                **edge.__dict__,
                "relationship_type": edge.relationship_type.value,
                "spawn_reason": edge.spawn_reason.value if edge.spawn_reason else None,
                "delegation_type": edge.delegation_type.value if edge.delegation_type else None,
                "id": new_id(),
                "depth_level": depth + 1,
                "session_path": f"{parent_path}.{slugs[edge.child_session_id]}",
                "created_at": now,
            }
        )
    table = SessionRelationship.__table__  # type: ignore[attr-defined]
    written = await insert_rows(
        db,
        table,
        values,
        skip_conflicts_on=["parent_session_id", "child_session_id"],
        returning=["parent_session_id", "relationship_type"],
    )
    counts: dict[uuid.UUID, int] = {}
    for parent_id, kind in written:
        if kind == _PARENT_CHILD.value:
            counts[parent_id] = counts.get(parent_id, 0) + 1
    sessions = Session.__table__  # type: ignore[attr-defined]
    if counts:
        await db.exec(
            sessions.update()
            .where(sessions.c.id == bindparam("b_id"))
            .values(agent_count=sessions.c.agent_count + bindparam("b_added"), updated_at=now),
            params=[{"b_id": parent, "b_added": added} for parent, added in counts.items()],
        )


__all__ = [
    "get_relationship",
    "get_session_rollup",
    "get_session_tree",
    "link_new_children",
    "link_sessions",
    "link_sessions_once",
    "list_ancestors",
    "list_children",
    "list_descendants",
    "list_linked_pairs",
    "list_relationships",
    "unlink_sessions",
    "update_relationship",
]
