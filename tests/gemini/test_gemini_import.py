"""Gemini CLI chats, JSON and JSONL: messages in order, tokens counted once, growth.

The chat files are written here by hand, from the shapes REFERENCE.md §5 gives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from history_support import kinds, list_price, snapshot, stored
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.gemini.importer import default_chats_dir, import_chats
from session_db.models.base import to_money

SESSION = "9e000000-0000-4000-8000-000000000001"


def tokens(inputs: int, output: int, cached: int, thoughts: int, tool: int) -> dict[str, int]:
    """A response's tokens as Gemini CLI writes them: `input` includes `cached`."""
    total = inputs + output + thoughts + tool
    return {
        "input": inputs,
        "output": output,
        "cached": cached,
        "thoughts": thoughts,
        "tool": tool,
        "total": total,
    }


def messages() -> list[dict[str, Any]]:
    return [
        {
            "id": "u-1",
            "timestamp": "2026-01-03T09:00:00.000Z",
            "type": "user",
            "content": "Explain the repo",
        },
        {
            "id": "g-1",
            "timestamp": "2026-01-03T09:00:20.000Z",
            "type": "gemini",
            "content": "It records what agents do.",
            "model": "gemini-2.5-pro",
            "thoughts": [
                {
                    "subject": "Reading",
                    "description": "the README",
                    "timestamp": "2026-01-03T09:00:10.000Z",
                }
            ],
            "toolCalls": [
                {
                    "id": "call-1",
                    "name": "read_file",
                    "args": {"path": "README.md"},
                    "result": [{"text": "# x"}],
                    "status": "success",
                }
            ],
            "tokens": tokens(1200, 80, 400, 30, 10),
        },
        {
            "id": "i-1",
            "timestamp": "2026-01-03T09:00:21.000Z",
            "type": "info",
            "content": "Checkpoint saved",
        },
    ]


def more() -> list[dict[str, Any]]:
    return [
        {
            "id": "u-2",
            "timestamp": "2026-01-03T09:01:00.000Z",
            "type": "user",
            "content": "And the tests?",
        },
        {
            "id": "g-2",
            "timestamp": "2026-01-03T09:01:30.000Z",
            "type": "gemini",
            "content": [{"text": "They use "}, {"text": "both engines."}],
            "model": "gemini-2.5-flash",
            "tokens": tokens(2000, 50, 1500, 0, 0),
        },
    ]


def chat(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "sessionId": SESSION,
        "projectHash": "5f1d" * 16,
        "startTime": "2026-01-03T09:00:00.000Z",
        "lastUpdated": items[-1]["timestamp"],
        "messages": items,
    }


@pytest.fixture
def chats(tmp_path: Path) -> Path:
    folder = tmp_path / "gemini" / "tmp" / ("5f1d" * 16) / "chats"
    folder.mkdir(parents=True)
    return folder


def write_json(folder: Path, items: list[dict[str, Any]]) -> Path:
    path = folder / "session-2026-01-03T09-00-9e000000.json"
    path.write_text(json.dumps(chat(items), indent=2))
    return path


def write_jsonl(folder: Path, lines: list[Any]) -> Path:
    path = folder / "session-2026-01-03T09-00-9e000000.jsonl"
    path.write_text(
        "".join(f"{line if isinstance(line, str) else json.dumps(line)}\n" for line in lines)
    )
    return path


def header() -> dict[str, Any]:
    return {key: value for key, value in chat(messages()).items() if key != "messages"}


async def test_a_chat_becomes_a_session_with_its_messages_in_order_and_roles(
    engine: AsyncEngine, chats: Path
) -> None:
    write_json(chats, messages())
    report = await import_chats(engine, [chats.parents[1]])
    assert (report.files, report.messages, report.responses, report.errors) == (1, 3, 1, [])
    found = await stored(engine, f"gemini:{SESSION}")
    session = found["session"]
    assert session.source_app == "gemini"
    assert session.session_metadata["gemini"]["projectHash"] == "5f1d" * 16
    assert session.started_at.isoformat() == "2026-01-03T09:00:00+00:00"
    assert session.ended_at.isoformat() == "2026-01-03T09:00:21+00:00"
    assert [(m.idx, m.role) for m in found["messages"]] == [
        (0, "user"),
        (1, "assistant"),
        (2, "system"),
    ]
    answer = found["messages"][1].content
    assert answer.startswith("[thought Reading]\nthe README\n\nIt records what agents do.")
    assert '[tool_call read_file call-1 success]\n{"args":{"path":"README.md"}' in answer
    assert found["messages"][2].content == "[info]\nCheckpoint saved"


async def test_tokens_input_already_includes_cached(engine: AsyncEngine, chats: Path) -> None:
    write_json(chats, messages() + more())
    await import_chats(engine, [chats])
    found = await stored(engine, f"gemini:{SESSION}")
    by_model = {record.model: record for record in found["usage"]}
    # input 1,200 of which 400 cached, plus 10 of tool prompt; output 80 plus 30 thinking.
    assert kinds(by_model["gemini-2.5-pro"]) == (810, 110, 0, 400)
    assert kinds(by_model["gemini-2.5-flash"]) == (500, 50, 0, 1500)
    # The four kinds make Gemini's own total: nothing counted twice, nothing left out.
    assert found["session"].total_tokens == 1320 + 2050
    expected = list_price("gemini-2.5-pro", "google", 1210, 400, 110) + list_price(
        "gemini-2.5-flash", "google", 2000, 1500, 50
    )
    assert found["session"].total_cost == to_money(expected) and expected > 0
    assert found["messages"][4].content == "They use \n\nboth engines."


async def test_a_chat_that_grew_adds_only_its_new_messages(
    engine: AsyncEngine, chats: Path
) -> None:
    path = write_json(chats, messages())
    await import_chats(engine, [chats])
    before = await stored(engine, f"gemini:{SESSION}")
    write_json(chats, messages() + more())
    report = await import_chats(engine, [path])
    assert (report.unchanged, report.messages, report.responses) == (0, 2, 1)
    after = await stored(engine, f"gemini:{SESSION}")
    assert [m.idx for m in after["messages"]] == [0, 1, 2, 3, 4]
    assert [m.id for m in after["messages"][:3]] == [m.id for m in before["messages"]]
    assert after["session"].ended_at.isoformat() == "2026-01-03T09:01:30+00:00"


async def test_importing_an_unchanged_chat_again_changes_nothing(
    engine: AsyncEngine, chats: Path
) -> None:
    write_json(chats, messages())
    write_jsonl(chats, [header(), *more()])
    await import_chats(engine, [chats])
    before = await snapshot(engine)
    again = await import_chats(engine, [chats])
    assert (again.files, again.unchanged, again.messages, again.responses) == (2, 2, 0, 0)
    assert await snapshot(engine) == before


async def test_a_jsonl_chat_is_read_a_line_at_a_time_with_updates_merged(
    engine: AsyncEngine, chats: Path
) -> None:
    first, answer, notice = messages()
    streaming = {**answer, "content": "It rec", "tokens": None}
    path = write_jsonl(chats, [header(), first, streaming, "{broken"])
    report = await import_chats(engine, [chats])
    assert (report.messages, report.responses, report.bad_lines) == (2, 0, 1)
    # The answer's line comes again, complete (the same id): it is that message, updated.
    write_jsonl(
        chats,
        [
            header(),
            first,
            streaming,
            "{broken",
            answer,
            notice,
            {"lastUpdated": "2026-01-03T09:05:00.000Z"},
        ],
    )
    grown = await import_chats(engine, [path])
    assert (grown.messages, grown.responses) == (1, 1)
    found = await stored(engine, f"gemini:{SESSION}")
    assert [(m.idx, m.role) for m in found["messages"]] == [
        (0, "user"),
        (1, "assistant"),
        (2, "system"),
    ]
    # The answer stored half written has its whole text now, at its place.
    assert "It records what agents do." in found["messages"][1].content
    assert found["session"].total_tokens == 1320
    assert found["session"].ended_at.isoformat() == "2026-01-03T09:05:00+00:00"


async def test_a_chat_file_that_is_not_an_object_fails_alone(
    engine: AsyncEngine, chats: Path
) -> None:
    bad = chats / "session-bad.json"
    bad.write_text("[1, 2, 3]")
    write_json(chats, messages())
    report = await import_chats(engine, [chats])
    assert report.errors == [(str(bad), "the chat file is not a JSON object")]
    assert report.sessions == {f"gemini:{SESSION}"}


def test_default_folder_honours_gemini_data_dir(tmp_path: Path) -> None:
    assert default_chats_dir({"GEMINI_DATA_DIR": str(tmp_path)}) == tmp_path
    assert default_chats_dir({}) == Path.home() / ".gemini" / "tmp"
