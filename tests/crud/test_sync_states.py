"""crud.sync_states on both engines: the upsert of a folder's outcome, missing marks, reads."""

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.crud.sync_states import MISSING_MESSAGE
from session_db.database import get_async_session
from session_db.errors import InvalidInputError
from session_db.models import SyncState, SyncStatus
from session_db.models.base import new_id

ROOT = "/work/project"
FOLDER = f"{ROOT}/agents/sessions/alpha"


async def test_an_outcome_is_upserted_on_the_folder_path(db: AsyncSession) -> None:
    project_id = await crud.upsert_project(db, ROOT)
    session_id = await crud.ensure_session(db, "alpha", project_id=project_id)
    modified = datetime(2026, 2, 16, 12, tzinfo=UTC)
    first = await crud.upsert_sync_state(
        db,
        FOLDER,
        project_id,
        SyncStatus.SYNCHRONIZED,
        session_id=session_id,
        file_fingerprint="1:2|-",
        content_hash="good",
        file_modified_at=modified,
        warnings=["state.json: topic: Input should be a valid string (got 5); ignored"],
    )
    good = await crud.get_sync_state(db, project_id, FOLDER)
    assert good is not None and good.id == first
    synced_at = good.last_synced_at
    assert (good.sync_status, good.session_id, good.content_hash) == (
        "synchronized",
        session_id,
        "good",
    )
    assert good.file_modified_at == modified and synced_at is not None
    assert good.warnings == ["state.json: topic: Input should be a valid string (got 5); ignored"]

    # A broken file later: the status, message, warnings and fingerprint change; the
    # session and the hash and times of the last good sync stay.
    again = await crud.upsert_sync_state(
        db, FOLDER, project_id, "error", file_fingerprint="3:4|-", error_message="bad JSON"
    )
    db.expunge_all()
    broken = await crud.get_sync_state(db, project_id, FOLDER)
    assert broken is not None and again == first
    assert (broken.sync_status, broken.error_message, broken.file_fingerprint) == (
        "error",
        "bad JSON",
        "3:4|-",
    )
    assert broken.warnings == []
    assert (broken.session_id, broken.content_hash, broken.last_synced_at) == (
        session_id,
        "good",
        synced_at,
    )
    assert broken.last_attempted_at is not None and broken.last_attempted_at >= synced_at
    assert (await db.exec(select(func.count()).select_from(SyncState))).one() == 1


async def test_bad_input_is_refused_alike_on_both_engines(db: AsyncSession) -> None:
    project_id = await crud.upsert_project(db, ROOT)
    with pytest.raises(InvalidInputError, match="sync_status"):
        await crud.upsert_sync_state(db, FOLDER, project_id, "finished")
    with pytest.raises(InvalidInputError, match="session_dir: must be at most 1024"):
        await crud.upsert_sync_state(db, "/" + "x" * 1024, project_id, "error")
    with pytest.raises(InvalidInputError, match="does not exist"):
        async with db.begin_nested():
            await crud.upsert_sync_state(db, FOLDER, new_id(), "error")
    assert await crud.list_sync_states(db) == []


async def test_concurrent_upserts_of_one_folder_make_one_row(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        project_id = await crud.upsert_project(db, ROOT)

    async def record(status: str) -> None:
        async with get_async_session(engine) as db:
            await crud.upsert_sync_state(db, FOLDER, project_id, status)

    await asyncio.gather(*(record(status) for status in ["error", "unrecognised"] * 4))
    async with get_async_session(engine) as db:
        states = await crud.list_sync_states(db)
    assert len(states) == 1 and states[0].sync_status in ("error", "unrecognised")


async def test_missing_folders_are_marked_in_a_few_statements(
    engine: AsyncEngine, db: AsyncSession
) -> None:
    project_id = await crud.upsert_project(db, ROOT)
    paths = [f"{ROOT}/agents/sessions/s{n:04}" for n in range(1010)]
    for path in paths:
        await crud.upsert_sync_state(
            db, path, project_id, "synchronized", content_hash="h", warnings=["w"]
        )
    updates = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    gone = paths[5:]
    try:
        changed = await crud.mark_sync_states_missing(db, [*gone, gone[0], f"{ROOT}/never-synced"])
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert changed == len(gone)
    assert 1 <= len(updates) <= 3  # set-based: a statement per chunk of folders, not per folder
    missing = await crud.list_sync_states(db, status="missing", limit=1000)
    assert [state.session_dir for state in missing] == gone[:1000]
    assert all(state.error_message == MISSING_MESSAGE for state in missing)
    assert all(state.warnings == [] for state in missing)  # nothing left to read
    assert all(state.content_hash == "h" for state in missing)  # nothing else changed
    kept = await crud.list_sync_states(db, status=SyncStatus.SYNCHRONIZED)
    assert [state.session_dir for state in kept] == paths[:5]
    assert all(state.warnings == ["w"] for state in kept)


async def test_reads_filter_by_project_and_status(db: AsyncSession) -> None:
    mine = await crud.upsert_project(db, ROOT)
    other = await crud.upsert_project(db, "/elsewhere")
    await crud.upsert_sync_state(
        db, f"{ROOT}/agents/sessions/b", mine, "error", file_fingerprint="fb"
    )
    await crud.upsert_sync_state(
        db, f"{ROOT}/agents/sessions/a", mine, "synchronized", warnings=["state.json: x"]
    )
    await crud.upsert_sync_state(db, "/elsewhere/agents/sessions/c", other, "error")

    assert await crud.get_sync_state(db, mine, f"{ROOT}/agents/sessions/never") is None
    assert await crud.get_sync_state(db, other, f"{ROOT}/agents/sessions/a") is None
    found = await crud.get_sync_state(db, mine, f"{ROOT}/agents/sessions/a")
    assert found is not None and found.sync_status == "synchronized"

    def dirs(states: list[SyncState]) -> list[str]:
        return [state.session_dir.rsplit("/", 1)[-1] for state in states]

    assert dirs(await crud.list_sync_states(db)) == ["c", "a", "b"]  # by path
    assert dirs(await crud.list_sync_states(db, project_id=mine)) == ["a", "b"]
    assert dirs(await crud.list_sync_states(db, status="error")) == ["c", "b"]
    assert dirs(await crud.list_sync_states(db, project_id=mine, status="error")) == ["b"]
    assert dirs(await crud.list_sync_states(db, limit=1, offset=1)) == ["a"]
    with pytest.raises(InvalidInputError, match="status"):
        await crud.list_sync_states(db, status="done")
    with pytest.raises(InvalidInputError, match="limit"):
        await crud.list_sync_states(db, limit=0)

    assert await crud.get_sync_fingerprints(db, ROOT) == {
        f"{ROOT}/agents/sessions/a": (SyncStatus.SYNCHRONIZED, None, ["state.json: x"]),
        f"{ROOT}/agents/sessions/b": (SyncStatus.ERROR, "fb", []),
    }
    assert await crud.get_sync_fingerprints(db, "/no/such/project") == {}


async def test_a_claim_holds_off_other_syncs_of_the_project_until_commit(
    engine: AsyncEngine,
) -> None:
    async with get_async_session(engine) as first:
        project_id = await crud.claim_project_for_sync(first, ROOT)

        async def second_claim() -> object:
            async with get_async_session(engine) as second:
                return await crud.claim_project_for_sync(second, ROOT)

        waiting = asyncio.create_task(second_claim())
        await asyncio.sleep(0.3)
        assert not waiting.done()  # the first transaction still holds the project
    assert await asyncio.wait_for(waiting, 10) == project_id
    async with get_async_session(engine) as db:
        assert (await crud.get_project_by_path(db, ROOT)).name == "project"
