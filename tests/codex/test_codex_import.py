"""Codex CLI rollouts: cumulative token counts counted once, the conversation in order, growth.

The rollouts are written here by hand, from the shapes REFERENCE.md §5 gives.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from history_support import kinds, list_price, snapshot, stored
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.codex.importer import default_sessions_dir, import_rollouts
from session_db.models.base import to_money

SESSION = "5e550000-0000-4000-8000-000000000001"
NAME = f"rollout-2026-01-02T10-00-00-{SESSION}.jsonl"


def line(at: str, kind: str, payload: dict[str, Any]) -> str:
    return json.dumps({"timestamp": f"2026-01-02T10:{at}Z", "type": kind, "payload": payload})


def usage(inputs: int, cached: int, outputs: int, reasoning: int) -> dict[str, int]:
    return {
        "input_tokens": inputs,
        "cached_input_tokens": cached,
        "output_tokens": outputs,
        "reasoning_output_tokens": reasoning,
        "total_tokens": inputs + outputs,
    }


def token_count(at: str, total: dict[str, int], last: dict[str, int]) -> str:
    info = {"total_token_usage": total, "last_token_usage": last, "model_context_window": 272000}
    return line(at, "event_msg", {"type": "token_count", "info": info, "rate_limits": {}})


def message(at: str, role: str, text: str) -> str:
    kind = "output_text" if role == "assistant" else "input_text"
    return line(
        at,
        "response_item",
        {"type": "message", "role": role, "content": [{"type": kind, "text": text}]},
    )


FIRST = [
    line(
        "00:00.000",
        "session_meta",
        {
            "id": SESSION,
            "timestamp": "2026-01-02T10:00:00.000Z",
            "cwd": "/home/dev/api",
            "originator": "codex_cli_rs",
            "cli_version": "0.46.0",
            "git": {"branch": "main"},
        },
    ),
    line("00:01.000", "turn_context", {"cwd": "/home/dev/api", "model": "gpt-5-codex"}),
    message("00:01.500", "developer", "<permissions instructions>"),
    message("00:02.000", "user", "Fix the failing test"),
    line("00:02.100", "event_msg", {"type": "user_message", "message": "Fix the failing test"}),
    line(
        "00:03.000",
        "response_item",
        {
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "Run it"}],
            "encrypted_content": "gAAA",
        },
    ),
    line(
        "00:03.500",
        "response_item",
        {"type": "reasoning", "summary": [], "encrypted_content": "gAAB"},
    ),
    line(
        "00:04.000",
        "response_item",
        {
            "type": "function_call",
            "name": "shell",
            "arguments": '{"command":["pytest"]}',
            "call_id": "call_1",
        },
    ),
    token_count("00:04.100", usage(1000, 200, 100, 40), usage(1000, 200, 100, 40)),
    line(
        "00:05.000",
        "response_item",
        {"type": "function_call_output", "call_id": "call_1", "output": "1 failed"},
    ),
    # The same total again (Codex repeats it, e.g. with new rate limits): nothing new.
    token_count("00:05.100", usage(1000, 200, 100, 40), usage(1000, 200, 100, 40)),
    line("00:05.200", "event_msg", {"type": "token_count", "info": None, "rate_limits": {}}),
]
GROWTH = [
    message("00:06.000", "assistant", "Fixed the assertion."),
    token_count("00:06.100", usage(2500, 1100, 160, 50), usage(1500, 900, 60, 10)),
    line("00:07.000", "turn_context", {"cwd": "/home/dev/api", "model": "gpt-5"}),
    message("00:07.500", "user", "Thanks"),
    token_count("00:08.000", usage(2900, 1400, 180, 50), usage(400, 300, 20, 0)),
]


@pytest.fixture
def rollout(tmp_path: Path) -> Path:
    folder = tmp_path / "codex" / "sessions" / "2026" / "01" / "02"
    folder.mkdir(parents=True)
    return folder / NAME


def write(path: Path, lines: list[str], mode: str = "w") -> None:
    with path.open(mode) as handle:
        handle.write("".join(f"{text}\n" for text in lines))


async def test_a_rollout_becomes_a_session_with_its_conversation_in_order(
    engine: AsyncEngine, rollout: Path
) -> None:
    write(rollout, FIRST + GROWTH)
    report = await import_rollouts(engine, [rollout.parents[3]])
    assert (report.files, report.errors, report.bad_lines) == (1, [], 0)
    found = await stored(engine, f"codex:{SESSION}")
    session = found["session"]
    assert (session.source_app, session.working_dir) == ("codex", "/home/dev/api")
    assert session.session_metadata["codex"]["session_meta"]["git"] == {"branch": "main"}
    assert session.started_at.isoformat() == "2026-01-02T10:00:00+00:00"
    assert session.ended_at.isoformat() == "2026-01-02T10:00:08+00:00"
    assert [(m.role, m.content) for m in found["messages"]] == [
        ("system", "[developer]\n<permissions instructions>"),
        ("user", "Fix the failing test"),
        ("assistant", "[reasoning]\nRun it"),  # the encrypted-only reasoning is no message
        ("assistant", '[function_call shell call_1]\n{"command":["pytest"]}'),
        ("user", "[function_call_output call_1]\n1 failed"),  # the event_msg copy is not
        ("assistant", "Fixed the assertion."),
        ("user", "Thanks"),
    ]
    assert [m.idx for m in found["messages"]] == list(range(7))
    assert {agent.sdk_session_id for agent in found["agents"]} == {SESSION}


async def test_usage_is_the_last_cumulative_total_never_the_sum_of_totals(
    engine: AsyncEngine, rollout: Path
) -> None:
    write(rollout, FIRST + GROWTH)
    await import_rollouts(engine, [rollout])
    found = await stored(engine, f"codex:{SESSION}")
    # Three responses: the growth of the total each time; the repeated total adds none.
    assert [(r.model, kinds(r)) for r in found["usage"]] == [
        ("gpt-5-codex", (800, 100, 0, 200)),  # cached input is cache read, not input too
        ("gpt-5-codex", (600, 60, 0, 900)),
        ("gpt-5", (100, 20, 0, 300)),  # after the model changed
    ]
    # The session's usage is the last total: 2,900 input (1,400 of it cached) + 180 output.
    session = found["session"]
    assert session.total_tokens == 2900 + 180
    assert sum(r.input_tokens + r.cache_read_tokens for r in found["usage"]) == 2900
    assert sum(r.output_tokens for r in found["usage"]) == 180  # reasoning is in it already
    expected = (
        list_price("gpt-5-codex", "openai", 1000, 200, 100)
        + list_price("gpt-5-codex", "openai", 1500, 900, 60)
        + list_price("gpt-5", "openai", 400, 300, 20)
    )
    assert session.total_cost == to_money(expected) and expected > 0
    assert session.session_metadata["codex"]["rollouts"][NAME] == {
        "total_token_usage": usage(2900, 1400, 180, 50),
        "model": "gpt-5",
    }


async def test_a_rollout_that_grew_adds_only_its_new_lines(
    engine: AsyncEngine, rollout: Path
) -> None:
    write(rollout, FIRST)
    first = await import_rollouts(engine, [rollout])
    assert (first.messages, first.responses) == (5, 1)
    before = await stored(engine, f"codex:{SESSION}")
    write(rollout, GROWTH, mode="a")
    grown = await import_rollouts(engine, [rollout])
    assert (grown.unchanged, grown.messages, grown.responses) == (0, 2, 2)
    after = await stored(engine, f"codex:{SESSION}")
    assert [m.idx for m in after["messages"]] == list(range(7))
    assert [m.id for m in after["messages"][:5]] == [m.id for m in before["messages"]]
    # The growth is measured from the total the first import ended on, with its model.
    assert [kinds(r) for r in after["usage"]] == [
        (800, 100, 0, 200),
        (600, 60, 0, 900),
        (100, 20, 0, 300),
    ]
    assert after["session"].total_tokens == 2900 + 180


async def test_importing_an_unchanged_rollout_again_changes_nothing(
    engine: AsyncEngine, rollout: Path
) -> None:
    write(rollout, FIRST + GROWTH)
    await import_rollouts(engine, [rollout])
    before = await snapshot(engine)
    again = await import_rollouts(engine, [rollout])
    assert (again.unchanged, again.messages, again.responses) == (1, 0, 0)
    assert await snapshot(engine) == before
    # A half-written last line waits for its newline, and changes nothing meanwhile.
    with rollout.open("a") as handle:
        handle.write('{"timestamp": "2026-01-02T10:00:09Z", "type": "resp')
    assert (await import_rollouts(engine, [rollout])).messages == 0
    assert await snapshot(engine) == before


async def test_a_replaced_rollout_is_read_again_without_counting_twice(
    engine: AsyncEngine, rollout: Path
) -> None:
    write(rollout, FIRST + GROWTH)
    await import_rollouts(engine, [rollout])
    rollout.unlink()  # a copy put back (a restored backup): another inode, same lines
    write(rollout, FIRST + GROWTH + ["not json", message("00:09.000", "user", "More")])
    report = await import_rollouts(engine, [rollout])
    assert (report.messages, report.responses, report.bad_lines) == (1, 0, 1)
    found = await stored(engine, f"codex:{SESSION}")
    assert len(found["messages"]) == 8 and found["messages"][-1].content == "More"
    assert found["session"].total_tokens == 2900 + 180


async def test_a_rollout_without_any_session_id_fails_alone(
    engine: AsyncEngine, rollout: Path
) -> None:
    write(rollout, FIRST)
    stray = rollout.parent / "rollout-2026-01-02T11-00-00-unnamed.jsonl"
    write(stray, [message("00:01.000", "user", "hi")])
    report = await import_rollouts(engine, [rollout.parent])
    assert report.files == 2 and report.sessions == {f"codex:{SESSION}"}
    assert report.errors == [(str(stray), "no session id in the first line or the file name")]


def test_default_folder_honours_codex_home(tmp_path: Path) -> None:
    assert default_sessions_dir({"CODEX_HOME": str(tmp_path)}) == tmp_path / "sessions"
    assert default_sessions_dir({}) == Path.home() / ".codex" / "sessions"


async def test_older_rollouts_and_counts_without_a_total_are_read(
    engine: AsyncEngine, rollout: Path
) -> None:
    # Older rollouts: a first line of session fields, then bare response items.
    first = {"id": SESSION, "timestamp": "2026-01-02T10:00:00.000Z", "instructions": None}
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
    only_last = {"type": "token_count", "info": {"last_token_usage": usage(50, 10, 5, 0)}}
    write(
        rollout,
        [
            json.dumps(first),
            json.dumps(item),
            line("00:01.000", "turn_context", {"model": "gpt-5"}),
            line("00:02.000", "event_msg", only_last),
            line("00:03.000", "event_msg", only_last),  # two responses of the same size
        ],
    )
    await import_rollouts(engine, [rollout])
    found = await stored(engine, f"codex:{SESSION}")
    assert [(m.role, m.content) for m in found["messages"]] == [("user", "hi")]
    assert [kinds(r) for r in found["usage"]] == [(40, 5, 0, 10), (40, 5, 0, 10)]
    assert found["session"].session_metadata["codex"]["session_meta"]["id"] == SESSION
