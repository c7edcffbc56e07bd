"""Hook events as Claude Code sends them, stored the way the deliverer stores them.

For the command line's tests of `events` and `tools`: payload shapes from
/work/shared/REFERENCE.md §2 (Claude Code 2.1.33x), one second apart.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool
from support import isolated_settings

from session_db.claude import spool
from session_db.claude.events import parse_line, store_events
from session_db.database import create_engine, get_async_session

SESSION = "5c1e9a40-2f3b-4d6e-8a7c-9b0d1e2f3a4b"
CWD = "/home/dev/webshop"
START_S = 1_800_000_000  # 2027-01-15 08:00:00 UTC


def payload(hook_event_name: str, **fields: Any) -> dict[str, Any]:
    """A payload with the fields every event carries, then the event's own."""
    return {
        "session_id": SESSION,
        "transcript_path": f"/home/dev/.claude/projects/-home-dev-webshop/{SESSION}.jsonl",
        "cwd": CWD,
        "hook_event_name": hook_event_name,
        "permission_mode": "default",
        **fields,
    }


def a_session() -> list[dict[str, Any]]:
    """A short session: a prompt, a Bash call that works, an Edit that fails, a stop."""
    return [
        payload("SessionStart", source="startup", model="claude-sonnet-4-5-20250929"),
        payload("UserPromptSubmit", prompt="Fix the  failing\nlogin test"),
        payload(
            "PreToolUse",
            tool_name="Bash",
            tool_input={"command": "pytest -q tests/test_login.py", "description": "Run"},
            tool_use_id="toolu_01",
        ),
        payload(
            "PostToolUse",
            tool_name="Bash",
            tool_input={"command": "pytest -q tests/test_login.py", "description": "Run"},
            tool_response={"stdout": "1 failed", "stderr": "", "interrupted": False},
            tool_use_id="toolu_01",
            duration_ms=2350,
        ),
        payload(
            "PreToolUse",
            tool_name="Edit",
            tool_input={"file_path": f"{CWD}/app/login.py", "old_string": "a", "new_string": "b"},
            tool_use_id="toolu_02",
        ),
        payload(
            "PostToolUseFailure",
            tool_name="Edit",
            tool_input={"file_path": f"{CWD}/app/login.py", "old_string": "a", "new_string": "b"},
            tool_use_id="toolu_02",
            error="String to replace not found in file.\nString: a",
        ),
        payload("Stop", stop_hook_active=False, last_assistant_message="The test passes now."),
    ]


async def store_payloads(url: URL, payloads: list[dict[str, Any]], start_s: int = 0) -> None:
    """Store hook payloads, one second apart, as the deliverer does."""
    lines = []
    for offset, body in enumerate(payloads):
        received = (START_S + start_s + offset) * 10**9
        spool_id = spool.new_spool_id(received)
        line = spool.spool_line(json.dumps(body).encode(), spool_id, received, CWD)
        lines.append(parse_line(line))
    engine = create_engine(isolated_settings(), url=url, poolclass=NullPool)
    try:
        async with get_async_session(engine) as db:
            await store_events(db, lines)
    finally:
        await engine.dispose()
