"""The Claude Agent SDK session store: the SDK's own conformance suite, exact round trips,
idempotent and ordered appends under concurrency, and the same session rows as an import."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from claude_agent_sdk import SessionStore, fold_session_summary
from claude_agent_sdk.testing import run_session_store_conformance
from claude_agent_sdk.testing.session_store_conformance import _has_optional
from faults import terminate_other_backends
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from support import SPOTTER, isolated_settings, truncate_all

from session_db import crud
from session_db.claude.importer import import_transcripts
from session_db.config import Settings
from session_db.database import create_engine, get_async_session
from session_db.errors import InvalidInputError
from session_db.models import Agent, SdkStoreEntry, Session, UsageRecord
from session_db.sdk import SessionDBStore

SPOTTER_SESSION = "4d5611e5-241a-462a-8d15-5122611a9569"
OPTIONAL = ("list_sessions", "list_session_summaries", "delete", "list_subkeys")


@pytest.fixture
async def make_store(
    engine: AsyncEngine, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[[], Awaitable[SessionDBStore]]]:
    """A factory of stores, each on an empty database (the suite wants one per contract)."""
    made: list[AsyncEngine] = []

    async def make() -> SessionDBStore:
        if engine.dialect.name == "postgresql":
            await truncate_all(engine)
            return SessionDBStore(engine=engine)
        path = tmp_path / f"store-{len(made)}.sqlite"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        fresh = create_engine(isolated_settings(), url=f"sqlite+aiosqlite:///{path}")
        made.append(fresh)
        return SessionDBStore(engine=fresh)

    yield make
    for fresh in made:
        await fresh.dispose()


async def test_the_sdk_conformance_suite_passes_every_contract_with_nothing_skipped(
    make_store: Callable[[], Awaitable[SessionDBStore]],
) -> None:
    probe = await make_store()
    # The suite skips an optional contract silently where the store lacks the method;
    # its own probe says all four are there, so all 14 contracts run.
    assert all(_has_optional(probe, name, frozenset()) for name in OPTIONAL)
    await run_session_store_conformance(make_store, skip_optional=frozenset())


def test_the_store_overrides_every_optional_method_of_the_protocol() -> None:
    for name in OPTIONAL:
        assert getattr(SessionDBStore, name) is not getattr(SessionStore, name), name


MAIN = {"project_key": "-work-app", "session_id": "s-1"}


async def test_entries_load_back_exactly_as_appended(engine: AsyncEngine) -> None:
    store = SessionDBStore(engine=engine)
    odd = [
        {"type": "user", "uuid": "u1", "text": "nul \x00 inside, emoji \U0001f600, é"},
        {"type": "x", "uuid": "u2", "big": 2**70, "neg": -(2**65), "float": 0.1, "e": 1e300},
        {"type": "x", "nested": {"deep": [[{"a": None}], True, False, ""]}, "key order": 1},
        {"type": "x", "uuid": "u3", "lone": "\ud800 surrogate", "tab": "\t\n\\"},
        {"type": "x", "s": "x" * 200_000},
    ]
    await store.append(MAIN, odd)
    assert await store.load(MAIN) == odd
    assert await store.load({**MAIN, "session_id": "s-2"}) is None


async def test_an_entrys_uuid_is_stored_once_and_entries_without_one_every_time(
    engine: AsyncEngine,
) -> None:
    store = SessionDBStore(engine=engine)
    first = [{"type": "x", "uuid": "a"}, {"type": "tag", "tag": "t"}, {"type": "x", "uuid": "a"}]
    await store.append(MAIN, first)
    await store.append(MAIN, [{"type": "x", "uuid": "a", "n": 2}, {"type": "x", "uuid": "b"}])
    assert await store.load(MAIN) == [
        {"type": "x", "uuid": "a"},
        {"type": "tag", "tag": "t"},
        {"type": "x", "uuid": "b"},
    ]
    # One uuid too long for the column is kept by its digest, still once.
    long = "u" * 300
    await store.append(MAIN, [{"type": "x", "uuid": long}, {"type": "x", "uuid": long, "n": 2}])
    await store.append(MAIN, [{"type": "x", "uuid": long, "n": 3}])
    loaded = await store.load(MAIN)
    assert loaded is not None and loaded[-1] == {"type": "x", "uuid": long}
    assert len(loaded) == 4


async def test_a_batch_sent_again_folds_nothing_twice(engine: AsyncEngine) -> None:
    store = SessionDBStore(engine=engine)
    early = [{"type": "custom-title", "uuid": "t1", "customTitle": "early"}]
    await store.append(MAIN, early)
    await store.append(MAIN, [{"type": "custom-title", "uuid": "t2", "customTitle": "late"}])
    await store.append(MAIN, early)  # the SDK retries a batch whose first try landed
    [summary] = await store.list_session_summaries(MAIN["project_key"])
    assert summary["data"]["custom_title"] == "late"
    loaded = await store.load(MAIN)
    assert loaded is not None
    assert summary["data"] == fold_session_summary(None, MAIN, loaded)["data"]  # type: ignore[arg-type]


async def test_keys_the_store_cannot_keep_apart_are_refused(engine: AsyncEngine) -> None:
    store = SessionDBStore(engine=engine)
    with pytest.raises(InvalidInputError, match="subpath"):
        await store.append({**MAIN, "subpath": ""}, [{"type": "x"}])  # type: ignore[typeddict-item]
    with pytest.raises(InvalidInputError, match="project_key"):
        await store.append({**MAIN, "project_key": "p" * 256}, [{"type": "x"}])
    with pytest.raises(InvalidInputError, match="JSON object"):
        await store.append(MAIN, ["not an object"])  # type: ignore[list-item]
    assert await store.load(MAIN) is None


async def test_a_store_without_an_engine_uses_the_configured_database(
    default_database: URL,
) -> None:
    store = SessionDBStore()
    await store.append(MAIN, [{"type": "x", "uuid": "a"}])
    assert await store.list_sessions(MAIN["project_key"]) == [
        {"session_id": "s-1", "mtime": (await store.list_sessions("-work-app"))[0]["mtime"]}
    ]
    engine = create_engine(isolated_settings(), url=default_database)
    try:
        async with get_async_session(engine, read_only=True) as db:
            loaded = await crud.load_sdk_store_entries(db, "-work-app", "s-1")
    finally:
        await engine.dispose()
    assert loaded == [{"type": "x", "uuid": "a"}]


def _assistant(session: str, message: str, request: str, output: int, **more: Any) -> dict:
    return {
        "type": "assistant",
        "uuid": f"{message}-{request}-{output}",
        "sessionId": session,
        "requestId": request,
        "timestamp": "2026-02-12T16:02:23.545Z",
        "message": {
            "id": message,
            "model": "claude-sonnet-4-5-20250929",
            "usage": {"input_tokens": 10, "output_tokens": output, "cache_read_input_tokens": 5},
        },
        **more,
    }


async def _usage(engine: AsyncEngine) -> list[tuple[str, str, int]]:
    async with get_async_session(engine, read_only=True) as db:
        rows = await db.exec(
            select(Session.session_slug, UsageRecord.message_id, UsageRecord.output_tokens)
            .join(Session, Session.id == UsageRecord.session_id)
            .order_by(Session.session_slug, UsageRecord.message_id)
        )
        return [tuple(row) for row in rows.all()]  # type: ignore[misc]


async def test_many_sessions_appending_at_once_lose_and_duplicate_nothing(
    engine: AsyncEngine,
) -> None:
    store = SessionDBStore(engine=engine)
    sessions, batches = 12, 6

    async def run(index: int) -> None:
        key = {"project_key": "-work-app", "session_id": f"conc-{index}"}
        for batch in range(batches):
            entries = [
                {"type": "user", "uuid": f"{index}-{batch}-u", "sessionId": key["session_id"]},
                _assistant(key["session_id"], f"m-{index}-{batch}", "r", 1),
                {"type": "tag", "tag": f"t{batch}"},  # no uuid: appended as it comes
            ]
            await store.append(key, entries)  # type: ignore[arg-type]
            # The same batch delivered again (a retried append) at the same time as the
            # next: nothing doubles, its streaming placeholder gives way to the full count.
            await asyncio.gather(
                store.append(key, entries[:2]),  # type: ignore[arg-type]
                store.append(key, [_assistant(key["session_id"], f"m-{index}-{batch}", "r", 7)]),  # type: ignore[list-item]
            )

    await asyncio.gather(*(run(index) for index in range(sessions)))
    for index in range(sessions):
        loaded = await store.load({"project_key": "-work-app", "session_id": f"conc-{index}"})
        assert loaded is not None
        users = [e["uuid"] for e in loaded if e["type"] == "user"]
        tags = [e["tag"] for e in loaded if e["type"] == "tag"]
        assert users == [f"{index}-{batch}-u" for batch in range(batches)]
        assert tags == [f"t{batch}" for batch in range(batches)]
        assert len(loaded) == batches * 4  # user, assistant, tag, and the full count's line
    assert await _usage(engine) == sorted(
        (f"conc-{index}", f"m-{index}-{batch}", 7)
        for index in range(sessions)
        for batch in range(batches)
    )
    listed = await store.list_sessions("-work-app")
    assert sorted(s["session_id"] for s in listed) == sorted(f"conc-{i}" for i in range(sessions))


async def test_concurrent_appends_to_one_session_keep_every_entry_and_every_fold(
    engine: AsyncEngine,
) -> None:
    store = SessionDBStore(engine=engine)
    appends = 16
    await asyncio.gather(
        *(
            store.append(
                MAIN,
                [
                    {
                        "type": "user",
                        "uuid": f"u{n}",
                        "timestamp": f"2026-01-01T00:00:{n:02d}.000Z",
                        "message": {"content": f"prompt {n}"},
                        "gitBranch": f"branch-{n}",
                    },
                ],
            )
            for n in range(appends)
        )
    )
    loaded = await store.load(MAIN)
    assert loaded is not None and sorted(e["uuid"] for e in loaded) == sorted(
        f"u{n}" for n in range(appends)
    )
    # Each fold saw the one before it: the summary is the fold of everything, in order.
    [summary] = await store.list_session_summaries(MAIN["project_key"])
    assert summary["data"] == fold_session_summary(None, MAIN, loaded)["data"]  # type: ignore[arg-type]
    [listed] = await store.list_sessions(MAIN["project_key"])
    assert summary["mtime"] == listed["mtime"]


def _spotter_keys(project: str) -> list[tuple[dict[str, str], list[dict[str, Any]]]]:
    """The spotter fixture's transcripts as (store key, entries), main first."""
    folder = SPOTTER / SPOTTER_SESSION / "subagents"
    keys = [
        (
            {"project_key": project, "session_id": SPOTTER_SESSION},
            SPOTTER / f"{SPOTTER_SESSION}.jsonl",
        )
    ]
    for path in sorted(folder.glob("agent-*.jsonl")):
        keys.append(
            (
                {
                    "project_key": project,
                    "session_id": SPOTTER_SESSION,
                    "subpath": f"subagents/{path.stem}",
                },
                path,
            )
        )
    return [
        (key, [json.loads(line) for line in path.read_text().splitlines() if line.strip()])
        for key, path in keys
    ]


async def _session_picture(engine: AsyncEngine) -> dict[str, Any]:
    """What the session tables say of every session: rows, agents and usage."""
    async with get_async_session(engine, read_only=True) as db:
        sessions = (await db.exec(select(Session).order_by(Session.session_slug))).all()
        slugs = {session.id: session.session_slug for session in sessions}
        agents = (await db.exec(select(Agent))).all()
        usage = (await db.exec(select(UsageRecord))).all()
    return {
        "sessions": sorted(
            (
                s.session_slug,
                s.name,
                s.title,
                slugs.get(s.parent_session_id),  # type: ignore[arg-type]
                s.total_tokens,
                s.total_cost,
                s.started_at,
                s.last_activity_at,
                json.dumps(s.session_metadata, sort_keys=True),
            )
            for s in sessions
        ),
        "agents": sorted(
            (
                slugs[a.session_id],
                a.agent_type,
                a.model,
                a.sdk_session_id,
                a.input_tokens,
                a.output_tokens,
                a.cache_creation_tokens,
                a.cache_read_tokens,
                a.total_cost,
                a.num_turns,
            )
            for a in agents
        ),
        "usage": sorted(
            (
                slugs[u.session_id],
                u.message_id,
                u.request_id,
                u.model,
                u.input_tokens,
                u.output_tokens,
                u.cache_creation_tokens,
                u.cache_read_tokens,
                u.cost,
                u.cost_source,
            )
            for u in usage
        ),
    }


@pytest.mark.parametrize("order", ["main_first", "subagents_first"])
async def test_a_session_through_the_store_looks_as_an_imported_transcript(
    engine: AsyncEngine, db_url: URL, tmp_path: Path, order: str
) -> None:
    keys = _spotter_keys("-Users-dev-spotter")
    if order == "subagents_first":
        keys = keys[1:] + keys[:1]
    store = SessionDBStore(engine=engine)
    for key, entries in keys:  # in batches, as the SDK flushes them
        for start in range(0, len(entries), 40):
            await store.append(key, entries[start : start + 40])  # type: ignore[arg-type]
    for key, entries in keys:
        assert await store.load(key) == entries  # type: ignore[arg-type]
    through_store = await _session_picture(engine)

    # The same files imported into an empty database of the same engine.
    if engine.dialect.name == "postgresql":
        await truncate_all(engine)
        other = engine
    else:
        path = tmp_path / "imported.sqlite"
        shutil.copyfile(db_url.database, path)  # type: ignore[arg-type]
        other = create_engine(isolated_settings(), url=f"sqlite+aiosqlite:///{path}")
        async with other.begin() as connection:
            for table in ("usage_records", "agents", "session_relationships", "sessions"):
                await connection.execute(sa.text(f"DELETE FROM {table}"))
    try:
        copy = tmp_path / "projects" / "-Users-dev-spotter"
        shutil.copytree(SPOTTER, copy)
        report = await import_transcripts(other, [copy])
        assert not report.errors
        imported = await _session_picture(other)
    finally:
        if other is not engine:
            await other.dispose()
    assert through_store["usage"] == imported["usage"]
    assert through_store["agents"] == imported["agents"]
    assert through_store["sessions"] == imported["sessions"]
    main_agents = [a for a in through_store["agents"] if a[:2] == (SPOTTER_SESSION, "main")]
    assert main_agents and {a[3] for a in main_agents} == {SPOTTER_SESSION}  # `claude --resume`


async def test_deleting_a_stored_session_keeps_its_session_rows(engine: AsyncEngine) -> None:
    store = SessionDBStore(engine=engine)
    sub = {**MAIN, "subpath": "subagents/agent-a1"}
    await store.append(MAIN, [_assistant("s-1", "m1", "r1", 3)])  # type: ignore[list-item]
    await store.append(sub, [_assistant("s-1", "m2", "r2", 4, isSidechain=True)])  # type: ignore[arg-type,list-item]
    assert await store.list_subkeys(MAIN) == ["subagents/agent-a1"]  # type: ignore[arg-type]
    await store.delete(MAIN)  # type: ignore[arg-type]
    assert await store.load(sub) is None  # type: ignore[arg-type]
    async with get_async_session(engine, read_only=True) as db:
        assert (await db.exec(select(sa.func.count()).select_from(SdkStoreEntry))).one() == 0
        assert await crud.list_sdk_store_sessions(db, MAIN["project_key"]) == []
        assert await crud.list_sdk_store_summaries(db, MAIN["project_key"]) == []
    assert [row[1] for row in await _usage(engine)] == ["m1", "m2"]


async def test_entries_the_import_refuses_are_stored_all_the_same(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    store = SessionDBStore(engine=engine)
    huge = _assistant("s-1", "m-huge", "r", 2**70)  # past BIGINT: usage_records refuses it
    fine = {"type": "custom-title", "uuid": "t", "customTitle": "kept"}
    with caplog.at_level(logging.WARNING, logger="session_db.sdk.store"):
        await store.append(MAIN, [huge, fine])  # type: ignore[list-item]
    assert await store.load(MAIN) == [huge, fine]
    assert "stored but not imported" in caplog.text
    assert await _usage(engine) == []
    [summary] = await store.list_session_summaries(MAIN["project_key"])
    assert summary["data"]["custom_title"] == "kept"


async def test_crud_reads_the_stored_keys_and_entries(engine: AsyncEngine) -> None:
    async with get_async_session(engine) as db:
        await crud.lock_sdk_session(db, "s-9")
        appended = await crud.append_sdk_store_entries(
            db, "-p", "s-9", "subagents/agent-x", [{"type": "x", "uuid": "a", "agentId": "x"}]
        )
        assert [index for index, _ in appended.new] == [0] and appended.mtime_ms is None
        await crud.save_sdk_store_summary(db, appended.store_session_id, {"session_id": "s-9"})
        found = await crud.find_sdk_store_entries(
            db, appended.store_session_id, "subagents/agent-x", '"agentId":"x"'
        )
        assert [json.loads(text) for text in found] == [{"type": "x", "uuid": "a", "agentId": "x"}]
    async with get_async_session(engine, read_only=True) as db:
        assert await crud.list_sdk_store_subkeys(db, "-p", "s-9") == ["subagents/agent-x"]
        assert await crud.list_sdk_store_sessions(db, "-p") == []  # no main transcript yet
        assert await crud.list_sdk_store_summaries(db, "-p") == [{"session_id": "s-9"}]
    async with get_async_session(engine) as db:
        assert await crud.delete_sdk_store_entries(db, "-p", "s-9", "subagents/agent-x") == 1
        assert await crud.load_sdk_store_entries(db, "-p", "s-9", "subagents/agent-x") is None


async def test_a_transient_fault_mid_append_runs_the_whole_append_again(
    db_url: URL, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(_env_file=None, url=None, data_dir=None, sqlite_busy_timeout_ms=50)  # type: ignore[call-arg]
    engine = create_engine(settings, url=db_url)
    faults: list[str] = []
    holder: threading.Thread | None = None
    if engine.dialect.name == "postgresql":
        # After the entries are inserted, before the summary is saved: the connection dies.
        def kill_once(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            if statement.startswith("UPDATE sdk_store_sessions") and not faults:
                faults.append("terminated")
                terminate_other_backends(db_url)

        sa.event.listen(engine.sync_engine, "before_cursor_execute", kill_once)
    else:  # another writer holds the database longer than the busy timeout
        locked = threading.Event()

        def hold() -> None:
            connection = sqlite3.connect(db_url.database, isolation_level=None)  # type: ignore[arg-type]
            connection.execute("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(0.5)
            connection.execute("COMMIT")
            connection.close()

        holder = threading.Thread(target=hold)
        holder.start()
        locked.wait()
        faults.append("locked")
    entries = [
        {"type": "custom-title", "uuid": "t", "customTitle": "named"},
        _assistant("s-1", "m1", "r1", 5),
    ]
    try:
        with caplog.at_level(logging.WARNING, logger="session_db.retry"):
            await SessionDBStore(engine=engine).append(MAIN, entries)  # type: ignore[arg-type]
        if holder is not None:
            holder.join()
        assert faults and [r for r in caplog.records if "retrying" in r.getMessage()]
        store = SessionDBStore(engine=engine)
        assert await store.load(MAIN) == entries
        [summary] = await store.list_session_summaries(MAIN["project_key"])
        assert summary["data"]["custom_title"] == "named"
        assert await _usage(engine) == [("s-1", "m1", 5)]
    finally:
        if engine.dialect.name == "postgresql":
            await truncate_all(engine)
        await engine.dispose()
