"""Transcript import into the database: per-model tokens and cost, incremental, exact."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from faults import terminate_other_backends
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from support import SPOTTER, truncate_all

from session_db import crud
from session_db.claude import importer, spool
from session_db.claude.deliver import deliver_pending
from session_db.claude.importer import import_transcripts
from session_db.claude.transcript import TranscriptFile, TranscriptKind
from session_db.config import Settings
from session_db.database import create_engine, get_async_session
from session_db.errors import DatabaseUnavailableError, NotFoundError
from session_db.models import Agent, CostSource, Session, SessionRole, UsageRecord

FIXTURE = SPOTTER
SESSION = "4d5611e5-241a-462a-8d15-5122611a9569"
EXPLORE = "a2898e3"

# Deduplicated per (message.id, requestId), keeping the line with the most tokens; the
# subagent's last response completed from the parent's Task result (5,108 output tokens,
# where the subagent's own last line says 1). Costs at list price (genai-prices).
EXPECTED = {
    "claude-opus-4-6": {
        "responses": 140,
        "input": 180,
        "output": 28_763,
        "cache_creation": 488_218,
        "cache_read": 11_783_397,
        "cost": Decimal("9.663036000"),
    },
    "claude-sonnet-4-5-20250929": {
        "responses": 12,
        "input": 53,
        "output": 136 - 1 + 5_108,
        "cache_creation": 71_257,
        "cache_read": 604_156,
        "cost": Decimal("0.527264550"),
    },
}


async def per_model(engine: AsyncEngine) -> dict[str, dict[str, object]]:
    async with get_async_session(engine) as db:
        rows = await db.exec(
            select(
                UsageRecord.model,
                sa.func.count(),
                sa.func.sum(UsageRecord.input_tokens),
                sa.func.sum(UsageRecord.output_tokens),
                sa.func.sum(UsageRecord.cache_creation_tokens),
                sa.func.sum(UsageRecord.cache_read_tokens),
                sa.func.sum(UsageRecord.cost),
            ).group_by(UsageRecord.model)
        )
        return {
            model: {
                "responses": count,
                "input": int(i),
                "output": int(o),
                "cache_creation": int(w),
                "cache_read": int(r),
                "cost": Decimal(str(cost)).quantize(Decimal("1e-9")),
            }
            for model, count, i, o, w, r, cost in rows.all()
        }


def copy_fixture(tmp_path: Path) -> Path:
    target = tmp_path / "projects" / "-home-USER-projects-spotter"
    shutil.copytree(FIXTURE, target, ignore=shutil.ignore_patterns("LICENSE"))
    return tmp_path / "projects"


async def test_fixture_totals_per_model_sessions_and_subagents(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    projects = copy_fixture(tmp_path)
    report = await import_transcripts(engine, [projects])
    assert (report.files, report.lines, report.bad_lines) == (3, 1661, 0)
    assert await per_model(engine) == EXPECTED
    async with get_async_session(engine) as db:
        parent = await crud.get_session_by_slug(db, SESSION)
        child = await crud.get_session_by_slug(db, f"{SESSION}/agent-{EXPLORE}")
        assert (child.parent_session_id, child.session_role) == (parent.id, SessionRole.SUBAGENT)
        assert (child.name, child.title) == ("Explore", "Explore transcript rendering codebase")
        assert parent.name == "radiant-floating-music"  # Claude Code's own session slug
        assert parent.working_dir == "/home/USER/projects/spotter-worktrees/spotter-dov"
        assert parent.total_cost == EXPECTED["claude-opus-4-6"]["cost"]
        assert child.total_cost == EXPECTED["claude-sonnet-4-5-20250929"]["cost"]
        rollup = await crud.get_session_rollup(db, parent.id)
        assert rollup.session_count == 2
        assert rollup.total_cost == parent.total_cost + child.total_cost
        agents = {(a.session_id, a.agent_type): a for a in (await db.exec(select(Agent))).all()}
        main = agents[(parent.id, "main")]
        assert main.sdk_session_id == SESSION  # what `claude --resume` takes
        assert (main.model, main.num_turns) == ("claude-opus-4-6", 139)
        compact = agents[(parent.id, "compact")]  # the compaction run counts for the parent
        assert compact.num_turns == 1 and compact.sdk_session_id is None
        explore = agents[(child.id, "Explore")]
        assert explore.output_tokens == EXPECTED["claude-sonnet-4-5-20250929"]["output"]
        assert explore.agent_metadata["cost_is_estimate"] is True
        sources = (await db.exec(select(UsageRecord.cost_source).distinct())).all()
        assert sources == [CostSource.COMPUTED]
        by_model = await crud.list_cost_breakdown(db, by="model")
        assert {line.key: line.total_cost for line in by_model} == {  # canonical names
            "claude-opus-4-6": EXPECTED["claude-opus-4-6"]["cost"],
            "claude-sonnet-4-5": EXPECTED["claude-sonnet-4-5-20250929"]["cost"],
        }


async def test_reimport_and_incremental_reads_count_nothing_twice(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    projects = copy_fixture(tmp_path)
    main = next(projects.glob(f"*/{SESSION}.jsonl"))
    full = main.read_bytes()
    cut = full.rfind(b"\n", 0, len(full) // 2) + 40  # half way, inside a line
    main.write_bytes(full[:cut])
    first = await import_transcripts(engine, [projects])
    assert 0 < first.lines < 1661
    with main.open("ab") as handle:  # Claude Code keeps appending to the same file
        handle.write(full[cut:])
    second = await import_transcripts(engine, [projects])
    assert first.lines + second.lines == 1661 and second.unchanged == 2
    third = await import_transcripts(engine, [projects])
    assert (third.lines, third.unchanged) == (0, 3)
    assert await per_model(engine) == EXPECTED
    # A session resumed into a new file replays earlier responses: not counted again.
    replay = main.with_name("9e0c3b52-0d5f-4d8e-9c61-1f2a3b4c5d6e.jsonl")
    replay.write_bytes(full)
    await import_transcripts(engine, [projects])
    assert await per_model(engine) == EXPECTED
    # A file replaced by another with the same name is read again from the start.
    main.write_bytes(full[: full.find(b"\n") + 1])
    fourth = await import_transcripts(engine, [main])
    assert fourth.lines == 1
    assert await per_model(engine) == EXPECTED


def _line(**fields: object) -> str:
    record = {
        "type": "assistant",
        "sessionId": "5e1d0c7a-0000-4000-8000-000000000001",
        "timestamp": "2026-03-01T10:00:00.000Z",
        "cwd": "/work/bedrock-app",
        "requestId": "req_1",
        "uuid": "u1",
        "message": {
            "id": "msg_1",
            "model": "us.anthropic.claude-opus-4-6-v1",
            "usage": {
                "input_tokens": 18,
                "output_tokens": 2_577,
                "cache_creation_input_tokens": 14_760,
                "cache_read_input_tokens": 169_817,
            },
        },
    }
    record.update(fields)
    return json.dumps(record) + "\n"


async def test_bedrock_ids_are_priced_and_a_reported_cost_wins(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    folder = tmp_path / "-work-bedrock-app"
    folder.mkdir()
    session_file = folder / "5e1d0c7a-0000-4000-8000-000000000001.jsonl"
    synthetic = {"id": "msg_s", "model": "<synthetic>", "usage": {"input_tokens": 5}}
    session_file.write_text(
        _line()
        + _line(uuid="u2")  # the same response again: counted once
        + _line(
            requestId="req_2",
            uuid="u3",
            costUSD=0.5,
            message={"id": "msg_2", "model": "claude-opus-4-6", "usage": {"output_tokens": 10}},
        )
        + _line(uuid="u4", requestId="req_3", message=synthetic)
        + "{not json\n"
    )
    report = await import_transcripts(engine, [tmp_path])
    assert (report.responses, report.bad_lines) == (2, 1)
    async with get_async_session(engine) as db:
        records = {r.message_id: r for r in (await db.exec(select(UsageRecord))).all()}
        assert set(records) == {"msg_1", "msg_2"}
        bedrock, reported = records["msg_1"], records["msg_2"]
        assert bedrock.model == "claude-opus-4-6"
        assert (bedrock.cost, bedrock.cost_source, bedrock.cost_is_estimate) == (
            Decimal("0.241673500"),  # Anthropic's own figure for this usage
            CostSource.COMPUTED,
            True,
        )
        assert (reported.cost, reported.cost_source, reported.cost_is_estimate) == (
            Decimal("0.500000000"),
            CostSource.REPORTED,
            False,
        )
        session = await crud.get_session_by_slug(db, "5e1d0c7a-0000-4000-8000-000000000001")
        assert session.total_cost == Decimal("0.741673500")


async def test_hook_events_and_transcripts_meet_in_the_same_sessions(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    projects = copy_fixture(tmp_path)
    transcript = next(projects.glob(f"*/{SESSION}.jsonl"))
    spool_dir = tmp_path / "spool"
    cwd = "/home/USER/projects/spotter-worktrees/spotter-dov"
    for index, payload in enumerate(
        [
            {"session_id": SESSION, "hook_event_name": "SessionStart", "cwd": cwd},
            {
                "session_id": SESSION,
                "hook_event_name": "SubagentStart",
                "agent_id": EXPLORE,
                "agent_type": "Explore",
                "cwd": cwd,
            },
            # Stop names the transcript: delivery imports it (and its subagents) too.
            {
                "session_id": SESSION,
                "hook_event_name": "Stop",
                "cwd": cwd,
                "transcript_path": str(transcript),
            },
        ]
    ):
        received = 1_770_912_000 * 10**9 + index
        line = spool.spool_line(
            json.dumps(payload).encode(), spool.new_spool_id(received), received, None
        )
        spool.append_line(str(spool_dir), line)
    report = await deliver_pending(engine, str(spool_dir))
    assert report.delivered == 3 and report.transcripts == {str(transcript)}
    assert await per_model(engine) == EXPECTED
    async with get_async_session(engine) as db:
        slugs = sorted(s.session_slug for s in (await db.exec(select(Session))).all())
        assert slugs == [SESSION, f"{SESSION}/agent-{EXPLORE}"]
        assert len((await db.exec(select(crud.projects.Project))).all()) == 1


def _huge(session_file: Path) -> None:
    """A subagent transcript with a count no database column holds (past BIGINT)."""
    usage = {"input_tokens": 2**64, "output_tokens": 1}
    message = {"id": "msg_huge", "model": "claude-opus-4-6", "usage": usage}
    session_file.write_text(_line(sessionId=SESSION, agentId="abad", message=message))


async def test_a_file_at_fault_is_reported_and_every_other_file_is_imported(
    engine: AsyncEngine,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A transaction per session, so the second session's file can vanish between them.
    monkeypatch.setattr(importer, "BATCH_FILES", 1)
    projects = copy_fixture(tmp_path)
    folder = next(projects.glob("*"))
    bad = folder / SESSION / "subagents" / "agent-abad.jsonl"  # in the fixture's session
    _huge(bad)
    later = folder / "ffffffff-0000-4000-8000-000000000001.jsonl"  # imported after it
    later.write_text(_line(sessionId=later.stem))

    def vanish(transcript: object, report: object) -> None:
        later.unlink(missing_ok=True)  # gone between discovery and its import

    report = await import_transcripts(engine, [projects], progress=vanish)
    assert report.files == 5
    errors = dict(report.errors)
    assert sorted(errors) == sorted([str(bad), str(later)])
    assert "input_tokens" in errors[str(bad)]
    assert not [r for r in caplog.records if "retrying" in r.getMessage()]  # not transient
    # The rest of its session went in all the same, exactly.
    assert await per_model(engine) == EXPECTED
    async with get_async_session(engine) as db:
        for path in (bad, later):  # nothing of the failed files stays, so they are retried
            with pytest.raises(NotFoundError):
                await crud.get_transcript_import(db, str(path))
        with pytest.raises(NotFoundError):
            await crud.get_session_by_slug(db, f"{SESSION}/agent-abad")
    bad.write_text(_line(sessionId=SESSION, agentId="abad"))  # fixed
    again = await import_transcripts(engine, [projects])
    assert (again.errors, again.lines) == ([], 1)
    async with get_async_session(engine) as db:
        child = await crud.get_session_by_slug(db, f"{SESSION}/agent-abad")
        assert (await crud.get_transcript_import(db, str(bad))).session_id == child.id


async def test_a_file_at_fault_in_a_transaction_of_several_sessions_fails_alone(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    projects = copy_fixture(tmp_path)
    folder = next(projects.glob("*"))
    bad = folder / SESSION / "subagents" / "agent-abad.jsonl"
    _huge(bad)
    other = "ffffffff-0000-4000-8000-000000000002"
    (folder / f"{other}.jsonl").write_text(_line(sessionId=other, requestId="req_other"))
    transcripts = importer.transcripts_under([projects])
    # The two sessions share one transaction, which the bad file rolls back whole.
    assert len(importer._batches(importer._by_session(transcripts), {})) == 1
    report = await import_transcripts(engine, [projects])
    assert [path for path, _ in report.errors] == [str(bad)]
    assert report.files == 5
    found = await per_model(engine)
    opus = {**found["claude-opus-4-6"]}
    # The other session's one response (the rest is the fixture's session, exactly).
    added = {"responses": 1, "input": 18, "output": 2_577, "cache_creation": 14_760}
    for name, value in {**added, "cache_read": 169_817}.items():
        opus[name] -= value  # type: ignore[operator]
    opus.pop("cost")
    assert (found["claude-sonnet-4-5-20250929"], opus) == (
        EXPECTED["claude-sonnet-4-5-20250929"],
        {k: v for k, v in EXPECTED["claude-opus-4-6"].items() if k != "cost"},
    )
    async with get_async_session(engine) as db:
        stored = await crud.get_session_by_slug(db, other)
        assert stored.total_tokens == 18 + 2_577 + 14_760 + 169_817
        with pytest.raises(NotFoundError):
            await crud.get_session_by_slug(db, f"{SESSION}/agent-abad")


def test_sessions_share_a_transaction_up_to_the_bounds_counting_only_unread_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BATCH_FILES", 3)
    monkeypatch.setattr(importer, "BATCH_BYTES", 100)
    sizes = {"a": 60, "b": 80, "c": None, "d": 200, "e": 10, "f": 30, "g": 30, "h": 1}
    groups = []
    for name, size in sizes.items():
        path = tmp_path / f"{name}.jsonl"
        if size is not None:  # c vanished after it was found: it counts as nothing
            path.write_bytes(b"x" * size)
        groups.append([TranscriptFile(path, name, None, TranscriptKind.MAIN)])
    # a was imported up to byte 50; f was replaced by a shorter file, so all of it is new.
    known = {tmp_path / "a.jsonl": (50, "id"), tmp_path / "f.jsonl": (40, "id")}
    batches = importer._batches(groups, known)
    names = [[group[0].session_id for group in batch] for batch in batches]
    # a+b+c: 3 files, 90 bytes; d is over the bound alone; e+f+g: 3 files; then h.
    assert names == [["a", "b", "c"], ["d"], ["e", "f", "g"], ["h"]]


async def _import_counting(
    engine: AsyncEngine, folder: Path
) -> tuple[importer.ImportReport, list[str]]:
    """Import `folder`; return the report and every statement the import sent."""
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        report = await import_transcripts(engine, [folder])
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", record)
    return report, statements


async def test_a_transaction_of_sessions_already_stored_looks_them_up_in_one_query(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    folder = tmp_path / "projects" / "-work-bedrock-app"
    folder.mkdir(parents=True)
    files = [folder / f"00000000-0000-4000-8000-00000000000{index}.jsonl" for index in range(4)]
    for index, path in enumerate(files):
        path.write_text(_line(sessionId=path.stem, message=_message(f"msg_{index}")))
    await import_transcripts(engine, [tmp_path / "projects"])
    for index, path in enumerate(files):  # new lines for every stored session
        with path.open("a") as handle:
            handle.write(
                _line(sessionId=path.stem, requestId="req_2", message=_message(f"msg_{index}b"))
            )
    report, statements = await _import_counting(engine, tmp_path / "projects")
    lookups = [
        statement
        for statement in statements
        if statement.startswith("SELECT")
        and "FROM sessions" in statement
        and ("sessions.session_slug IN" in statement or "session_slug =" in statement)
    ]
    assert (report.errors, report.lines, report.responses) == ([], 4, 4)
    assert len(lookups) == 1, lookups  # one for the four sessions, not one each
    async with get_async_session(engine) as db:
        sessions = (await db.exec(select(Session))).all()
    assert sorted(session.session_slug for session in sessions) == [path.stem for path in files]


async def test_new_sessions_and_their_subagents_are_created_and_linked_set_based(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    folder = tmp_path / "projects" / "-work-bedrock-app"
    sessions = [f"00000000-0000-4000-8000-00000000010{index}" for index in range(4)]
    for index, session in enumerate(sessions):
        (folder / session / "subagents").mkdir(parents=True)
        (folder / f"{session}.jsonl").write_text(_main_line(session, f"msg_{index}"))
        child = _subagent_line(session, f"a{index}", f"msg_{index}c")
        (folder / session / "subagents" / f"agent-a{index}.jsonl").write_text(child)
    report, statements = await _import_counting(engine, tmp_path / "projects")
    inserts = [s.split()[2] for s in statements if s.startswith("INSERT INTO")]
    assert (report.errors, report.files, report.responses) == ([], 8, 8)
    # One transaction: the four sessions in one statement, their subagents in another,
    # the four links in one, and the one project once; not a round of each per session.
    assert [inserts.count(table) for table in ("projects", "sessions")] == [1, 2]
    assert inserts.count("session_relationships") == 1
    async with get_async_session(engine) as db:
        for index, session in enumerate(sessions):
            top = await crud.get_session_by_slug(db, session)
            child = await crud.get_session_by_slug(db, f"{session}/agent-a{index}")
            assert (child.parent_session_id, child.project_id) == (top.id, top.project_id)
            assert top.project_id is not None
            links = await crud.list_relationships(db, parent_session_id=top.id)
            assert [link.child_session_id for link in links] == [child.id]
            assert top.agent_count == 1
    for index, session in enumerate(sessions):  # new lines for every stored file
        with (folder / session / "subagents" / f"agent-a{index}.jsonl").open("a") as handle:
            handle.write(_subagent_line(session, f"a{index}", f"msg_{index}d"))
    again, statements = await _import_counting(engine, tmp_path / "projects")
    assert (again.errors, again.responses) == ([], 4)
    # The children are stored and linked: one read of their links, nothing created.
    assert [s for s in statements if s.startswith("INSERT INTO sessions")] == []
    assert len([s for s in statements if "FROM session_relationships" in s]) == 1
    async with get_async_session(engine) as db:
        assert len(await crud.list_relationships(db)) == 4


async def test_sessions_another_writer_made_since_the_lookup_are_found_not_doubled(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "projects" / "-work-bedrock-app"
    session = "00000000-0000-4000-8000-000000000201"
    (folder / session / "subagents").mkdir(parents=True)
    (folder / f"{session}.jsonl").write_text(_main_line(session, "m1"))
    child_file = folder / session / "subagents" / "agent-a1.jsonl"
    child_file.write_text(_subagent_line(session, "a1", "m2"))
    async with get_async_session(engine) as db:  # made by another writer
        top = await crud.create_session(db, {"session_slug": session, "name": "theirs"})
        child = await crud.create_session(
            db,
            {"session_slug": f"{session}/agent-a1", "name": "Explore", "parent_session_id": top.id},
        )

    async def looked_up_before_they_were_made(db: object, slugs: object) -> dict[str, Session]:
        return {}

    monkeypatch.setattr(
        importer.session_crud, "list_sessions_by_slug", looked_up_before_they_were_made
    )
    report = await import_transcripts(engine, [tmp_path / "projects"])
    assert (report.errors, report.responses) == ([], 2)
    async with get_async_session(engine) as db:
        stored = (await db.exec(select(Session))).all()
        records = (await db.exec(select(UsageRecord))).all()
        agents = (await db.exec(select(Agent))).all()
    assert sorted(row.id for row in stored) == sorted([top.id, child.id])  # none doubled
    # Their names stay: the lines' slug names only a session that has none.
    assert {row.id: row.name for row in stored} == {top.id: "theirs", child.id: "Explore"}
    # Each file's agent is typed from the session as stored, not as it would be made.
    assert {agent.session_id: agent.agent_type for agent in agents} == {
        top.id: "main",
        child.id: "Explore",
    }
    assert {record.message_id: record.session_id for record in records} == {
        "m1": top.id,
        "m2": child.id,
    }


def _hold_write_lock(path: str, seconds: float) -> threading.Thread:
    """Hold SQLite's write lock from another connection for a while."""
    locked = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(path, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        connection.execute("COMMIT")
        connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    locked.wait()
    return holder


@pytest.mark.parametrize("batched", [False, True], ids=["per-session", "batched"])
async def test_a_transient_fault_mid_import_runs_the_transaction_again(
    db_url: URL,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    batched: bool,
) -> None:
    if not batched:  # a transaction per session: the fault comes between or within them
        monkeypatch.setattr(importer, "BATCH_FILES", 1)
    projects = copy_fixture(tmp_path)
    first = next(projects.glob("*")) / "00000000-0000-4000-8000-000000000001.jsonl"
    first.write_text(_line(sessionId=first.stem))  # a session imported before the fixture's
    settings = Settings(_env_file=None, url=None, data_dir=None, sqlite_busy_timeout_ms=50)  # type: ignore[call-arg]
    engine = create_engine(settings, url=db_url)
    faults: list[str] = []
    holders: list[threading.Thread] = []
    if engine.dialect.name == "postgresql":
        # Mid-transaction: the fixture's session is claimed and resolved when its first
        # usage INSERT finds its connection killed.
        inserts: list[str] = []

        def kill_once(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            if statement.startswith("INSERT INTO usage_records"):
                inserts.append(statement)
                # Per session: the first of the fixture's session (after the other's).
                if len(inserts) == (1 if batched else 2):
                    faults.append("terminated")
                    terminate_other_backends(db_url)

        sa.event.listen(engine.sync_engine, "before_cursor_execute", kill_once)
        progress = None
    elif batched:  # one transaction for both sessions: it finds the database held
        faults.append("locked")
        holders.append(_hold_write_lock(db_url.database, 0.5))  # type: ignore[arg-type]
        progress = None
    else:
        # Between two sessions' transactions, another writer holds the database longer
        # than the busy timeout: "database is locked" until it lets go.
        def progress(transcript, report):  # type: ignore[no-untyped-def]
            if not faults:
                faults.append("locked")
                holders.append(_hold_write_lock(db_url.database, 0.5))  # type: ignore[arg-type]

    try:
        report = await import_transcripts(engine, [projects], progress=progress)
        for holder in holders:
            holder.join()
        assert faults and report.errors == []
        assert [r for r in caplog.records if "retrying" in r.getMessage()]
        assert (report.files, report.lines) == (4, 1662)
        expected = {**EXPECTED, "claude-opus-4-6": dict(EXPECTED["claude-opus-4-6"])}
        opus = expected["claude-opus-4-6"]
        opus.update(
            responses=opus["responses"] + 1,  # the first session's one response
            input=opus["input"] + 18,
            output=opus["output"] + 2_577,
            cache_creation=opus["cache_creation"] + 14_760,
            cache_read=opus["cache_read"] + 169_817,
            cost=opus["cost"] + Decimal("0.2416735"),
        )
        assert await per_model(engine) == expected
    finally:
        if engine.dialect.name == "postgresql":
            await truncate_all(engine)
        await engine.dispose()


async def test_a_database_down_through_every_attempt_stops_a_batched_import_keeping_nothing(
    db_url: URL, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    projects = copy_fixture(tmp_path)
    first = next(projects.glob("*")) / "00000000-0000-4000-8000-000000000001.jsonl"
    first.write_text(_line(sessionId=first.stem))  # two sessions: one transaction
    settings = Settings(_env_file=None, url=None, data_dir=None, sqlite_busy_timeout_ms=50)  # type: ignore[call-arg]
    engine = create_engine(settings, url=db_url)
    holder = None
    if engine.dialect.name == "postgresql":

        def kill(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            if statement.startswith("INSERT INTO usage_records"):
                terminate_other_backends(db_url)  # every attempt loses its connection

        sa.event.listen(engine.sync_engine, "before_cursor_execute", kill)
    else:  # another writer holds the database past both attempts
        holder = _hold_write_lock(db_url.database, 1.5)  # type: ignore[arg-type]
    try:
        with pytest.raises(DatabaseUnavailableError):
            await import_transcripts(engine, [projects], attempts=2)
        retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
        assert len(retries) == 1 and "4 transcripts of 2 sessions" in retries[0]
        if holder is not None:
            holder.join()
        else:
            sa.event.remove(engine.sync_engine, "before_cursor_execute", kill)
        async with get_async_session(engine) as db:  # not a file's fault: none was set aside
            assert (await db.exec(select(sa.func.count()).select_from(Session))).one() == 0
        report = await import_transcripts(engine, [projects])  # the database is back
        assert (report.errors, report.files, report.lines) == ([], 4, 1662)
    finally:
        if engine.dialect.name == "postgresql":
            await truncate_all(engine)
        await engine.dispose()


def test_default_path_honours_claude_config_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from session_db.claude.transcript import default_projects_dir

    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cfg"))
    assert [default_projects_dir()] == [tmp_path / "cfg" / "projects"]
    monkeypatch.delenv("CLAUDE_CONFIG_DIR")
    assert [default_projects_dir()] == [Path.home() / ".claude" / "projects"]


async def test_a_file_changed_after_it_was_read_ahead_is_imported_as_it_is_now(
    engine: AsyncEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A transaction per session: the second is read ahead while the first is written.
    monkeypatch.setattr(importer, "BATCH_FILES", 1)
    folder = tmp_path / "projects" / "-work-bedrock-app"
    folder.mkdir(parents=True)
    first = folder / "00000000-0000-4000-8000-00000000000a.jsonl"
    second = folder / "ffffffff-0000-4000-8000-00000000000b.jsonl"
    first.write_text(_line(sessionId=first.stem, message=_message("msg_a")))
    second.write_text(_line(sessionId=second.stem, message=_message("msg_b_old")))

    def replace_the_second(transcript: object, report: object) -> None:
        # The second session's file was read ahead while the first was imported; it is
        # replaced before its own import.
        if second.read_text().count("\n") == 1 and "msg_b_old" in second.read_text():
            second.write_text(
                _line(sessionId=second.stem, requestId="req_n", message=_message("msg_b_new"))
                + _line(sessionId=second.stem, requestId="req_m", message=_message("msg_b_2"))
            )

    report = await import_transcripts(engine, [tmp_path / "projects"], progress=replace_the_second)
    assert (report.errors, report.lines) == ([], 3)
    async with get_async_session(engine) as db:
        ids = sorted(r.message_id for r in (await db.exec(select(UsageRecord))).all())
    assert ids == ["msg_a", "msg_b_2", "msg_b_new"]
    # Appended after the read ahead: those lines wait for the next import, none is lost.
    with second.open("a") as handle:
        handle.write(_line(sessionId=second.stem, requestId="req_o", message=_message("msg_b_3")))
    again = await import_transcripts(engine, [tmp_path / "projects"])
    assert (again.errors, again.lines) == ([], 1)


def _main_line(session: str, message_id: str, **fields: object) -> str:
    """A session's assistant line, with the Claude Code slug its lines carry."""
    return _line(
        sessionId=session,
        uuid=f"u-{message_id}",
        slug="radiant-floating-music",
        message=_message(message_id),
        **fields,
    )


def _subagent_line(session: str, agent_id: str, message_id: str) -> str:
    """A subagent's assistant line, as its own transcript holds it: a sidechain."""
    return _line(
        sessionId=session,
        agentId=agent_id,
        isSidechain=True,
        uuid=f"u-{message_id}",
        message=_message(message_id),
    )


def _message(message_id: str) -> dict[str, object]:
    usage = {"input_tokens": 1, "output_tokens": 2}
    return {"id": message_id, "model": "claude-opus-4-6", "usage": usage}
