"""`session-db import amp|codex|gemini`: default folders, the report, errors in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from support import cli

THREAD = "T-0d0d0d0d-0000-4000-8000-00000000000d"
SESSION = "c0de0000-0000-4000-8000-000000000001"


def amp_thread(folder: Path) -> None:
    folder.mkdir(parents=True)
    usage = {
        "model": "claude-sonnet-4-5-20250929",
        "inputTokens": 5,
        "outputTokens": 7,
        "cacheCreationInputTokens": 11,
        "cacheReadInputTokens": 13,
        "totalInputTokens": 29,
        "credits": 0.1,
        "timestamp": "2026-01-01T09:00:01.000Z",
    }
    thread = {
        "v": 1,
        "id": THREAD,
        "created": 1767258000000,
        "title": "Hello",
        "messages": [
            {"role": "user", "messageId": 0, "content": [{"type": "text", "text": "hi"}]},
            {
                "role": "assistant",
                "messageId": 1,
                "content": [{"type": "text", "text": "hello"}],
                "usage": usage,
            },
        ],
    }
    (folder / f"{THREAD}.json").write_text(json.dumps(thread))


def codex_rollout(folder: Path) -> None:
    folder.mkdir(parents=True)
    total = {
        "input_tokens": 100,
        "cached_input_tokens": 40,
        "output_tokens": 9,
        "reasoning_output_tokens": 3,
        "total_tokens": 109,
    }
    lines = [
        {
            "timestamp": "2026-01-02T10:00:00Z",
            "type": "session_meta",
            "payload": {"id": SESSION, "cwd": "/srv/api"},
        },
        {
            "timestamp": "2026-01-02T10:00:01Z",
            "type": "turn_context",
            "payload": {"model": "gpt-5"},
        },
        {
            "timestamp": "2026-01-02T10:00:02Z",
            "type": "response_item",
            "payload": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "go"}],
            },
        },
        {
            "timestamp": "2026-01-02T10:00:03Z",
            "type": "event_msg",
            "payload": {
                "type": "token_count",
                "info": {"total_token_usage": total, "last_token_usage": total},
            },
        },
    ]
    path = folder / f"rollout-2026-01-02T10-00-00-{SESSION}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines) + "not json\n")


def gemini_chat(folder: Path) -> None:
    folder.mkdir(parents=True)
    chat = {
        "sessionId": "9e000000-0000-4000-8000-00000000000c",
        "projectHash": "ab" * 32,
        "startTime": "2026-01-03T09:00:00Z",
        "lastUpdated": "2026-01-03T09:00:05Z",
        "messages": [
            {"id": "u1", "timestamp": "2026-01-03T09:00:00Z", "type": "user", "content": "hi"},
            {
                "id": "g1",
                "timestamp": "2026-01-03T09:00:05Z",
                "type": "gemini",
                "content": "hello",
                "model": "gemini-2.5-flash",
                "tokens": {
                    "input": 50,
                    "output": 5,
                    "cached": 20,
                    "thoughts": 2,
                    "tool": 0,
                    "total": 57,
                },
            },
        ],
    }
    (folder / "session-2026-01-03T09-00-9e000000.json").write_text(json.dumps(chat))


@pytest.fixture
def homes(cli_db: URL, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each agent's data folder under `tmp_path`, named by its environment variable."""
    amp_thread(tmp_path / "amp" / "threads")
    codex_rollout(tmp_path / "codex" / "sessions" / "2026" / "01" / "02")
    gemini_chat(tmp_path / "gemini" / ("ab" * 32) / "chats")
    monkeypatch.setenv("AMP_DATA_DIR", str(tmp_path / "amp"))
    monkeypatch.setenv("CODEX_HOME", str(tmp_path / "codex"))
    monkeypatch.setenv("GEMINI_DATA_DIR", str(tmp_path / "gemini"))
    return tmp_path


@pytest.mark.parametrize(
    ("agent", "what", "first", "slug", "tokens"),
    [
        ("amp", "thread files", "2 new messages, 1 model responses", f"amp:{THREAD}", 36),
        ("codex", "rollout files", "1 new messages, 1 model responses", f"codex:{SESSION}", 109),
        (
            "gemini",
            "chat files",
            "2 new messages, 1 model responses",
            "gemini:9e000000-0000-4000-8000-00000000000c",
            57,
        ),
    ],
)
def test_import_reads_the_default_folder_and_reports_like_import_claude(
    homes: Path,
    capsys: pytest.CaptureFixture[str],
    agent: str,
    what: str,
    first: str,
    slug: str,
    tokens: int,
) -> None:
    code, out, err = cli(capsys, "import", agent)
    assert code == 0, err
    assert out.startswith(f"1 {what} (0 unchanged): {first}, 1 sessions")
    code, out, err = cli(capsys, "import", agent, "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "files": 1,
        "unchanged": 1,
        "messages": 0,
        "responses": 0,
        "bad_lines": 0,
        "sessions": [],
        "errors": [],
    }
    code, out, err = cli(capsys, "sessions", "show", slug, "--json")
    assert code == 0, err
    shown = json.loads(out)
    assert shown["total_tokens"] == tokens and shown["agents"][0]["status"] == "complete"


def test_import_codex_counts_unreadable_lines(
    homes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = cli(capsys, "import", "codex")
    assert code == 0 and out.rstrip().endswith(", 1 unreadable lines skipped")


def test_a_file_that_fails_is_one_line_and_the_rest_imports(
    homes: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = homes / "amp" / "threads" / "T-broken.json"
    broken.write_text("{")
    code, out, err = cli(capsys, "import", "amp")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("2 thread files (0 unchanged): 2 new messages")
    assert lines[1].startswith(f"skipped {broken}: the thread file is not valid JSON")
    assert len(lines) == 2


@pytest.mark.parametrize("agent", ["amp", "codex", "gemini"])
def test_a_missing_folder_is_a_usage_error(
    cli_db: URL, tmp_path: Path, capsys: pytest.CaptureFixture[str], agent: str
) -> None:
    code, _, err = cli(capsys, "import", agent, str(tmp_path / "nowhere"))
    assert code == 2 and "no such file or folder" in err and "nowhere" in err
