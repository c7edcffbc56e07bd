"""Projects, sessions and links written a batch at a time, as the event pipeline does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.crud._bulk import COPY_MIN_ROWS
from session_db.crud.sessions import SessionActivity
from session_db.database import get_async_session
from session_db.errors import InvalidInputError
from session_db.models import RelationshipType, SessionStatus, SpawnReason

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


async def test_upsert_projects_returns_every_root_and_creates_only_the_missing(
    db: AsyncSession,
) -> None:
    existing = await crud.create_project(db, {"name": "app", "root_path": "/work/app"})
    ids = await crud.upsert_projects(db, ["/work/app", "/work/lib/", "/work/lib/", "/srv"])
    assert set(ids) == {"/work/app", "/work/lib/", "/srv"}
    assert ids["/work/app"] == existing.id
    assert (await crud.get_project(db, ids["/work/lib/"])).name == "lib"
    assert await crud.count_projects(db) == 3
    assert await crud.upsert_projects(db, []) == {}
    assert await crud.upsert_projects(db, ["/srv"]) == {"/srv": ids["/srv"]}


async def test_ensure_sessions_fills_defaults_in_a_batch_big_enough_for_copy(
    db: AsyncSession,
) -> None:
    # COPY_MIN_ROWS and more take PostgreSQL's COPY path, which runs no SQLAlchemy default:
    # `session_metadata` (a Python-side default only) must still come out as {}.
    count = COPY_MIN_ROWS + 6
    found = await crud.ensure_sessions(db, [{"session_slug": f"bulk-{n}"} for n in range(count)])
    assert len(found) == count and all(created for _, created in found.values())
    sessions = await crud.list_sessions(db, limit=count)
    assert len(sessions) == count
    assert all(session.session_metadata == {} for session in sessions)


async def test_ensure_sessions_creates_the_missing_and_leaves_the_rest_alone(
    db: AsyncSession,
) -> None:
    old = await crud.create_session(db, {"session_slug": "old", "name": "kept"})
    found = await crud.ensure_sessions(
        db,
        [
            {"session_slug": "old", "name": "ignored"},
            {"session_slug": "new", "name": "first", "source_app": "claude-code"},
            {"session_slug": "new", "name": "second"},  # a repeat keeps the first values
            {"session_slug": "bare"},  # another shape of row, in its own statement
        ],
    )
    assert found["old"] == (old.id, False)
    assert found["new"][1] and found["bare"][1]
    assert (await crud.get_session(db, old.id)).name == "kept"
    new = await crud.get_session(db, found["new"][0])
    assert (new.name, new.source_app) == ("first", "claude-code")
    again = await crud.ensure_sessions(db, [{"session_slug": "new"}])
    assert again == {"new": (found["new"][0], False)}


async def test_session_activity_widens_the_span_and_merges_metadata(db: AsyncSession) -> None:
    session = await crud.create_session(
        db,
        {
            "session_slug": "s",
            "started_at": T0,
            "ended_at": T0 + timedelta(minutes=5),
            "session_metadata": {"model": "claude-opus-4-6"},
            "title": "Existing title",
        },
    )
    parent = await crud.create_session(db, {"session_slug": "p"})
    seen = SessionActivity(status=SessionStatus.COMPLETED, metadata={"end_reason": "clear"})
    seen.cover(T0 - timedelta(minutes=1))
    seen.cover(T0 + timedelta(minutes=9))
    seen.completed_at = T0 + timedelta(minutes=9)
    seen.title = "Not this one"
    seen.name = "Explore"
    above = SessionActivity(touched_at=T0 + timedelta(minutes=9))
    await crud.record_session_activity(db, {session.id: seen, parent.id: above})
    db.expunge_all()
    after = await crud.get_session(db, session.id)
    assert after.started_at == T0 - timedelta(minutes=1)
    assert after.ended_at == after.last_activity_at == T0 + timedelta(minutes=9)
    assert after.duration_ms == 10 * 60 * 1000
    assert after.status == SessionStatus.COMPLETED and after.name == "Explore"
    assert after.session_metadata == {"model": "claude-opus-4-6", "end_reason": "clear"}
    assert after.title == "Existing title"  # a title is only filled in where there is none
    touched = await crud.get_session(db, parent.id)
    assert touched.last_activity_at == T0 + timedelta(minutes=9) and touched.started_at is None
    # A narrower span later changes nothing of the recorded one.
    narrow = SessionActivity()
    narrow.cover(T0)
    await crud.record_session_activity(db, {session.id: narrow})
    db.expunge_all()
    assert (await crud.get_session(db, session.id)).started_at == T0 - timedelta(minutes=1)


async def test_new_children_are_linked_with_depth_path_and_counted_once(
    db: AsyncSession,
) -> None:
    root = await crud.create_session(db, {"session_slug": "root"})
    middle = await crud.create_session(db, {"session_slug": "middle"})
    await crud.link_sessions(db, {"parent_session_id": root.id, "child_session_id": middle.id})
    kids = await crud.ensure_sessions(
        db, [{"session_slug": f"kid-{n}", "parent_session_id": middle.id} for n in range(3)]
    )
    links = [
        {
            "parent_session_id": middle.id,
            "child_session_id": child_id,
            "relationship_type": RelationshipType.PARENT_CHILD,
            "spawn_reason": SpawnReason.TASK_TOOL,
            "spawn_metadata": {"agent_id": slug},
        }
        for slug, (child_id, _) in sorted(kids.items())
    ]
    await crud.link_new_children(db, links)
    await crud.link_new_children(db, links[:1])  # linked already: left alone, not recounted
    db.expunge_all()
    edges = await crud.list_relationships(db, parent_session_id=middle.id)
    assert sorted(edge.session_path for edge in edges) == [
        "root.middle.kid-0",
        "root.middle.kid-1",
        "root.middle.kid-2",
    ]
    assert {edge.depth_level for edge in edges} == {2}
    assert {edge.spawn_reason for edge in edges} == {SpawnReason.TASK_TOOL}
    assert (await crud.get_session(db, middle.id)).agent_count == 3
    tree = await crud.list_descendants(db, root.id)
    assert len(tree) == 4


async def test_linked_pairs_are_found_among_many_a_page_of_children_a_statement(
    db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from session_db.crud import relationships

    monkeypatch.setattr(relationships, "BULK_PAGE", 2)
    parent, other = [await crud.create_session(db, {"session_slug": s}) for s in ("p", "o")]
    kids = [await crud.create_session(db, {"session_slug": f"k{n}"}) for n in range(3)]
    for kid in kids[:2]:
        await crud.link_sessions(db, {"parent_session_id": parent.id, "child_session_id": kid.id})
    await crud.link_sessions(db, {"parent_session_id": other.id, "child_session_id": kids[2].id})
    statements: list[str] = []
    engine = db.get_bind()
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        asked = [(parent.id, kid.id) for kid in kids] + [(other.id, kids[0].id)]
        linked = await crud.list_linked_pairs(db, asked)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    # k2 is linked, but to another parent; o is no parent of k0.
    assert linked == {(parent.id, kids[0].id), (parent.id, kids[1].id)}
    assert len(statements) == 2  # three children, two a page
    assert await crud.list_linked_pairs(db, []) == set()


async def test_ensure_sessions_checks_values_like_create_session(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        with pytest.raises(InvalidInputError) as unknown:
            await crud.ensure_sessions(
                db, [{"session_slug": "a"}, {"session_slug": "b", "titel": "x"}]
            )
        with pytest.raises(InvalidInputError) as invalid:
            await crud.ensure_session(db, "c", priority=9)
    assert (unknown.value.entity, unknown.value.field) == ("sessions[1]", "titel")
    assert (invalid.value.entity, invalid.value.field) == ("session", "priority")
    async with get_async_session(engine, read_only=True) as db:
        assert await crud.list_sessions(db) == []  # nothing half-written


def test_clip_takes_the_length_from_the_schema() -> None:
    from session_db.models import Session
    from session_db.models.base import clip, column_length

    assert column_length(Session, "session_slug") == 255
    assert clip(Session, "session_slug", "x" * 300) == "x" * 255
    assert clip(Session, "description", "y" * 5000) == "y" * 5000  # unbounded text
    assert clip(Session, "title", None) is None
