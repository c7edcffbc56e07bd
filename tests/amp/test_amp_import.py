"""Amp threads: sessions, messages in order, usage counted once, credits, links; incremental.

The thread files are written here by hand, from the shapes REFERENCE.md §5 gives.
"""

from __future__ import annotations

import json
import os
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest
import sqlalchemy as sa
from faults import SqliteLockHog, terminate_other_backends
from history_support import kinds, snapshot, stored
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine
from support import isolated_settings, truncate_all

from session_db import crud
from session_db.amp.importer import default_threads_dir, import_threads
from session_db.claude.pricing import price_usage
from session_db.database import create_engine, get_async_session
from session_db.models.base import to_money

A = "T-0a0a0a0a-0000-4000-8000-00000000000a"
B = "T-0b0b0b0b-0000-4000-8000-00000000000b"
C = "T-0c0c0c0c-0000-4000-8000-00000000000c"
CREATED = 1767258000000  # 2026-01-01T09:00:00Z
SONNET = "claude-sonnet-4-5-20250929"


def usage(model: str, at: str, **counts: Any) -> dict[str, Any]:
    """An assistant message's usage as Amp writes it."""
    values = {
        "model": model,
        "inputTokens": 0,
        "outputTokens": 0,
        "cacheCreationInputTokens": 0,
        "cacheReadInputTokens": 0,
        **counts,
        "timestamp": at,
    }
    values["totalInputTokens"] = (
        values["inputTokens"] + values["cacheCreationInputTokens"] + values["cacheReadInputTokens"]
    )
    return values


def conversation() -> list[dict[str, Any]]:
    """A user prompt, a tool call and its result, an answer, and an info notice."""
    return [
        {"role": "user", "messageId": 0, "content": [{"type": "text", "text": "Add search"}]},
        {
            "role": "assistant",
            "messageId": 1,
            "content": [
                {"type": "thinking", "thinking": "Look at the index first."},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.py"}},
            ],
            "usage": usage(
                SONNET,
                "2026-01-01T09:00:05.000Z",
                inputTokens=10,
                outputTokens=50,
                cacheCreationInputTokens=1000,
                cacheReadInputTokens=2000,
                credits=0.5,
            ),
        },
        {
            "role": "user",
            "messageId": 2,
            "content": [
                {
                    "type": "tool_result",
                    "toolUseID": "toolu_1",
                    "run": {"status": "done", "result": {"content": "print(1)"}},
                }
            ],
        },
        {
            "role": "assistant",
            "messageId": 3,
            "content": [{"type": "text", "text": "Search added."}],
            "usage": usage(
                "gpt-5",
                "2026-01-01T09:00:09.000Z",
                outputTokens=20,
                cacheCreationInputTokens=300,
                cacheReadInputTokens=700,
                credits=0.25,
            ),
        },
        {"role": "info", "messageId": 4, "content": [{"type": "text", "text": "Cancelled"}]},
    ]


def thread(thread_id: str, messages: list[dict[str, Any]], **keys: Any) -> dict[str, Any]:
    """A thread file's content as Amp writes it."""
    return {
        "v": 12,
        "id": thread_id,
        "created": CREATED,
        "title": "Add search",
        "agentMode": "smart",
        "env": {"initial": {"trees": [{"displayName": "app", "uri": "file:///home/dev/app"}]}},
        "relationships": [],
        "messages": messages,
        **keys,
    }


def write(folder: Path, content: dict[str, Any]) -> Path:
    path = folder / f"{content['id']}.json"
    path.write_text(json.dumps(content, indent=2))
    return path


@pytest.fixture
def threads(tmp_path: Path) -> Path:
    folder = tmp_path / "amp" / "threads"
    folder.mkdir(parents=True)
    return folder


async def test_a_thread_becomes_a_session_with_its_messages_in_order_and_roles(
    engine: AsyncEngine, threads: Path
) -> None:
    write(threads, thread(A, conversation()))
    report = await import_threads(engine, [threads])
    assert (report.files, report.messages, report.responses, report.errors) == (1, 5, 2, [])
    found = await stored(engine, f"amp:{A}")
    session = found["session"]
    assert (session.source_app, session.name, session.working_dir) == (
        "amp",
        "Add search",
        "/home/dev/app",
    )
    assert session.started_at.isoformat() == "2026-01-01T09:00:00+00:00"
    assert session.ended_at.isoformat() == "2026-01-01T09:00:09+00:00"
    assert session.session_metadata["amp"]["agentMode"] == "smart"  # unmapped keys kept
    assert "messages" not in session.session_metadata["amp"]
    async with get_async_session(engine) as db:
        project = await crud.get_project(db, session.project_id)
    assert project.root_path == "/home/dev/app"
    (only,) = found["threads"]
    assert (only.name, only.message_count) == ("Add search", 5)
    assert [(m.idx, m.role) for m in found["messages"]] == [
        (0, "user"),
        (1, "assistant"),
        (2, "user"),
        (3, "assistant"),
        (4, "system"),
    ]
    texts = [m.content for m in found["messages"]]
    assert texts[0] == "Add search"
    assert texts[1] == (
        '[thinking]\nLook at the index first.\n\n[tool_use Read toolu_1]\n{"path":"a.py"}'
    )
    assert texts[2] == '[tool_result toolu_1 done]\n{"content":"print(1)"}'
    assert texts[4] == "[info]\nCancelled"  # Amp's own role stays in the text
    # A message without a time of its own is dated by the one before it.
    times = [m.created_at.isoformat() for m in found["messages"]]
    assert times[0] == "2026-01-01T09:00:00+00:00" and times[2] == "2026-01-01T09:00:05+00:00"


async def test_usage_counts_four_kinds_once_and_normalises_gpt_input(
    engine: AsyncEngine, threads: Path
) -> None:
    write(threads, thread(A, conversation()))
    await import_threads(engine, [threads])
    found = await stored(engine, f"amp:{A}")
    by_model = {record.model: record for record in found["usage"]}
    # totalInputTokens (3,010) is input + cache creation + cache read: not added again.
    assert kinds(by_model[SONNET]) == (10, 50, 1000, 2000)
    # gpt-*: inputTokens 0, the uncached prompt in cacheCreationInputTokens: it is input.
    assert kinds(by_model["gpt-5"]) == (300, 20, 0, 700)
    assert found["session"].total_tokens == 3060 + 1020
    sonnet_cost = price_usage(
        SONNET,
        {
            "input_tokens": 10,
            "output_tokens": 50,
            "cache_creation_input_tokens": 1000,
            "cache_read_input_tokens": 2000,
        },
        at=by_model[SONNET].occurred_at,
    ).amount
    gpt_cost = genai_prices.calc_price(
        genai_prices.Usage(input_tokens=1000, cache_read_tokens=700, output_tokens=20),
        "gpt-5",
        provider_id="openai",
        genai_request_timestamp=by_model["gpt-5"].occurred_at,
    ).total_price
    assert (
        by_model[SONNET].cost == to_money(sonnet_cost)
        and by_model[SONNET].cost_source == "computed"
    )
    assert by_model["gpt-5"].cost == to_money(gpt_cost) and gpt_cost > 0
    assert found["session"].total_cost == to_money(sonnet_cost + gpt_cost)
    agents = {agent.model: agent for agent in found["agents"]}
    assert kinds(agents["gpt-5"]) == (300, 20, 0, 700)
    assert agents[SONNET].sdk_session_id == A  # `amp threads continue` takes the thread id
    # Credits are Amp's own unit: kept, not taken for dollars.
    amp = found["session"].session_metadata["amp"]
    assert amp["credits"] == "0.75"
    assert amp["credits_by_model"] == {SONNET: "0.5", "gpt-5": "0.25"}


async def test_an_old_usage_ledger_counts_only_messages_without_usage_of_their_own(
    engine: AsyncEngine, threads: Path
) -> None:
    messages = conversation()[:3]
    messages.append(
        {"role": "assistant", "messageId": 3, "content": [{"type": "text", "text": "ok"}]}
    )
    ledger = {
        "events": [
            {"tokens": {"input": 999, "output": 999}, "credits": 9, "toMessageId": 1},
            {"tokens": {"input": 400, "output": 40}, "credits": 1.5, "toMessageId": 3},
        ]
    }
    write(threads, thread(A, messages, usageLedger=ledger))
    await import_threads(engine, [threads])
    found = await stored(engine, f"amp:{A}")
    # Message 1 has its own usage (the ledger's copy of it is not counted again); message
    # 3 has none, so its ledger event is its usage.
    assert sorted(kinds(record) for record in found["usage"]) == [
        (10, 50, 1000, 2000),
        (400, 40, 0, 0),
    ]
    assert found["session"].total_tokens == 3060 + 440
    assert found["session"].session_metadata["amp"]["credits"] == "2.0"


async def test_a_thread_that_grew_appends_only_its_new_messages_and_responses(
    engine: AsyncEngine, threads: Path
) -> None:
    messages = conversation()[:2]
    path = write(threads, thread(A, messages))
    await import_threads(engine, [threads])
    before = await stored(engine, f"amp:{A}")
    assert [m.idx for m in before["messages"]] == [0, 1]
    write(threads, thread(A, conversation(), title="Add search (done)"))
    report = await import_threads(engine, [path])
    assert (report.files, report.unchanged, report.messages, report.responses) == (1, 0, 3, 1)
    after = await stored(engine, f"amp:{A}")
    assert [m.idx for m in after["messages"]] == [0, 1, 2, 3, 4]
    # The messages stored first are the same rows, untouched.
    assert [(m.id, m.content) for m in after["messages"][:2]] == [
        (m.id, m.content) for m in before["messages"]
    ]
    assert after["threads"][0].name == after["session"].name == "Add search (done)"
    assert len(after["usage"]) == 2 and after["session"].total_tokens == 3060 + 1020


async def test_importing_an_unchanged_thread_again_changes_nothing(
    engine: AsyncEngine, threads: Path
) -> None:
    path = write(threads, thread(A, conversation()))
    await import_threads(engine, [threads])
    before = await snapshot(engine)
    os.utime(path, (time.time() + 60, time.time() + 60))  # touched, same bytes
    again = await import_threads(engine, [threads])
    assert (again.files, again.unchanged, again.messages, again.responses) == (1, 1, 0, 0)
    assert await snapshot(engine) == before
    # Rewritten with the same content (a new file, as an atomic save makes): the same.
    path.unlink()
    write(threads, thread(A, conversation()))
    assert (await import_threads(engine, [threads])).unchanged == 1
    assert await snapshot(engine) == before


async def test_handoffs_and_forks_become_session_links_once(
    engine: AsyncEngine, threads: Path
) -> None:
    write(
        threads,
        thread(
            A,
            conversation()[:2],
            relationships=[
                {"threadID": B, "type": "handoff", "role": "parent"},
                {"threadID": C, "type": "mention", "role": "parent"},
            ],
        ),
    )
    # B names the same handoff from its side, and was forked into C (not imported yet).
    b_messages = [
        *conversation()[:2],  # a copy of A's messages, usage and all: the same responses
        {"role": "user", "messageId": 2, "content": [{"type": "text", "text": "go on"}]},
    ]
    write(
        threads,
        thread(
            B,
            b_messages,
            title="Continue search",
            relationships=[
                {"threadID": A, "type": "handoff", "role": "child"},
                {"threadID": C, "type": "fork", "role": "parent"},
            ],
        ),
    )
    report = await import_threads(engine, [threads])
    assert report.errors == [] and report.responses == 1  # B's copy of A's response is A's
    a, b = await stored(engine, f"amp:{A}"), await stored(engine, f"amp:{B}")
    assert [
        (link.child_session_id, link.relationship_type, link.spawn_reason) for link in a["links"]
    ] == [(b["session"].id, "continuation", "continuation")]
    (fork,) = b["links"]
    assert (fork.relationship_type, fork.spawn_metadata) == ("sibling", {"amp_type": "fork"})
    placeholder = await stored(engine, f"amp:{C}")
    assert fork.child_session_id == placeholder["session"].id
    assert (placeholder["session"].source_app, placeholder["session"].name) == ("amp", None)
    assert b["session"].total_tokens == 0 and a["session"].total_tokens == 3060
    # The mention is no link, but stays with the thread's other keys.
    assert a["session"].session_metadata["amp"]["relationships"][1]["type"] == "mention"
    # C's own file fills its placeholder in; nothing is linked twice.
    write(
        threads,
        thread(
            C, [], title="Fork", relationships=[{"threadID": B, "type": "fork", "role": "child"}]
        ),
    )
    await import_threads(engine, [threads])
    c = await stored(engine, f"amp:{C}")
    assert (c["session"].id, c["session"].name) == (placeholder["session"].id, "Fork")
    async with get_async_session(engine) as db:
        assert len(await crud.list_relationships(db)) == 2
        # A parent/child link is not what a handoff or fork is: no subagents counted.
        assert (await crud.get_session(db, a["session"].id)).agent_count == 0


async def test_a_broken_thread_file_fails_alone_with_its_reason(
    engine: AsyncEngine, threads: Path
) -> None:
    broken = threads / f"{B}.json"
    broken.write_text('{"v": 1, "id": "T-b", "messages": [')  # cut off mid-write
    (threads / f"{C}.json").write_text(json.dumps({"v": 1, "messages": []}))  # no id
    write(threads, thread(A, conversation()))
    report = await import_threads(engine, [threads])
    assert report.files == 3 and report.sessions == {f"amp:{A}"}
    reasons = dict(report.errors)
    assert "not valid JSON" in reasons[str(broken)]
    assert reasons[str(threads / f"{C}.json")] == "the thread file has no id"
    # Nothing was recorded for them: they are read again, and still fail, next time.
    again = await import_threads(engine, [threads])
    assert len(again.errors) == 2 and again.unchanged == 1


async def test_a_transient_fault_runs_the_files_transaction_again(
    db_url: URL, threads: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(threads, thread(A, conversation()))
    write(threads, thread(B, conversation()[:1]))
    settings = isolated_settings().model_copy(update={"sqlite_busy_timeout_ms": 50})
    engine = create_engine(settings, url=db_url)
    faults: list[str] = []
    hog = SqliteLockHog(str(db_url.database)) if engine.dialect.name == "sqlite" else None
    progress = None
    if hog is None:
        # Mid-transaction: the thread's messages are being written when the connection dies.
        def kill_once(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            if statement.startswith("INSERT INTO thread_messages") and not faults:
                faults.append("terminated")
                terminate_other_backends(db_url)

        sa.event.listen(engine.sync_engine, "before_cursor_execute", kill_once)
    else:
        # Between the two files, another writer holds the database past the busy timeout.
        def progress(path: Path, report: Any) -> None:
            if not faults:
                faults.append("locked")
                hog.hold()
                threading.Timer(0.5, hog.release).start()

    try:
        report = await import_threads(engine, [threads], progress=progress)
        assert faults and report.errors == [] and report.messages == 6
        assert [r for r in caplog.records if "retrying" in r.getMessage()]
        assert len((await stored(engine, f"amp:{A}"))["messages"]) == 5
    finally:
        if hog is not None:
            hog.close()
        if engine.dialect.name == "postgresql":
            await truncate_all(engine)
        await engine.dispose()


def test_default_folder_honours_amp_data_dir(tmp_path: Path) -> None:
    assert default_threads_dir({"AMP_DATA_DIR": str(tmp_path)}) == tmp_path / "threads"
    assert default_threads_dir({"AMP_DATA_DIR": " "}) == Path.home() / ".local/share/amp/threads"


async def test_response_keys_tell_threads_apart_without_timestamps(
    engine: AsyncEngine, threads: Path
) -> None:
    # Usage without a timestamp is keyed by its thread and message: two threads' first
    # responses with the same counts are two responses.
    def untimed() -> list[dict[str, Any]]:
        answer = conversation()[1]
        answer["usage"].pop("timestamp")
        return [answer]

    write(threads, thread(A, untimed()))
    write(threads, thread(B, untimed()))
    await import_threads(engine, [threads])
    async with get_async_session(engine) as db:
        records = await crud.list_usage_records(db)
    assert sorted(r.message_id for r in records) == [f"amp:{A}:1", f"amp:{B}:1"]
    assert records[0].session_id != records[1].session_id
    assert all(r.cost > Decimal(0) for r in records)


async def test_a_message_saved_half_written_is_completed_by_the_next_import(
    engine: AsyncEngine, threads: Path
) -> None:
    messages = conversation()[:4]
    answer = messages[3]
    partial = {**answer, "content": [{"type": "text", "text": "Search"}]}
    partial["usage"] = {**answer["usage"], "outputTokens": 3}
    write(threads, thread(A, [*messages[:3], partial]))
    await import_threads(engine, [threads])
    write(threads, thread(A, messages))
    report = await import_threads(engine, [threads])
    assert (report.messages, report.responses) == (0, 1)  # nothing new: the same, grown
    found = await stored(engine, f"amp:{A}")
    assert found["messages"][3].content == "Search added."
    gpt = next(record for record in found["usage"] if record.model == "gpt-5")
    assert kinds(gpt) == (300, 20, 0, 700)  # the larger count of the same response


async def test_a_thread_costs_the_same_statements_whatever_its_length(
    engine: AsyncEngine, threads: Path
) -> None:
    def long(count: int, hour: int) -> list[dict[str, Any]]:
        items = []
        for index in range(count):
            answer = conversation()[3]
            answer["messageId"] = index
            at = f"2026-01-01T{hour:02d}:{index // 60:02d}:{index % 60:02d}.000Z"
            answer["usage"]["timestamp"] = at
            items.append(answer)
        return items

    statements: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    sa.event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        short_file = write(threads, thread(A, long(80, 9)))
        await import_threads(engine, [short_file])
        short = len(statements)
        statements.clear()
        long_file = write(threads, thread(B, long(800, 10)))
        report = await import_threads(engine, [long_file])
    finally:
        sa.event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert (report.messages, report.responses) == (800, 800)
    # 80 or 800 messages and responses: the same statements (a page is 1,000 rows).
    assert len(statements) == short, statements
