"""Finding a session by what a person types: its slug, or its id."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import event
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.errors import NotFoundError


async def test_a_slug_or_an_id_finds_the_session_in_one_statement(db: AsyncSession) -> None:
    session = await crud.create_session(db, {"session_slug": "2026-02-14_search_k2m9qx"})
    statements: list[str] = []
    engine = db.get_bind()
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        by_slug = await crud.get_session_by_slug_or_id(db, "2026-02-14_search_k2m9qx")
        by_id = await crud.get_session_by_slug_or_id(db, str(session.id))
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert by_slug.id == by_id.id == session.id
    assert len(statements) == 2


async def test_a_slug_that_is_another_sessions_id_finds_the_slug(db: AsyncSession) -> None:
    # Claude Code's sessions are named by their session id, a UUID: the slug must win.
    first = await crud.create_session(db, {"session_slug": "first"})
    named = await crud.create_session(db, {"session_slug": str(first.id)})
    assert (await crud.get_session_by_slug_or_id(db, str(first.id))).id == named.id


@pytest.mark.parametrize("key", ["no-such-slug", str(uuid.UUID(int=7))])
async def test_neither_slug_nor_id_is_not_found(db: AsyncSession, key: str) -> None:
    await crud.create_session(db, {"session_slug": "present"})
    with pytest.raises(NotFoundError, match="session"):
        await crud.get_session_by_slug_or_id(db, key)


async def test_many_slugs_find_the_sessions_that_exist_a_page_of_slugs_a_statement(
    db: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from session_db.crud import sessions as session_crud

    monkeypatch.setattr(session_crud, "BULK_PAGE", 2)
    made = {slug: await crud.create_session(db, {"session_slug": slug}) for slug in "abc"}
    statements: list[str] = []
    engine = db.get_bind()
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        found = await crud.list_sessions_by_slug(db, ["c", "a", "missing", "a", "b"])
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert {slug: session.id for slug, session in found.items()} == {
        slug: session.id for slug, session in made.items()
    }
    assert len(statements) == 2  # four distinct slugs, two a page
    assert await crud.list_sessions_by_slug(db, []) == {}
