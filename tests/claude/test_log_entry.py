"""`log_entry` skips re-checking the values it built itself: proof that this changes nothing.

For all 34 hook events (payloads from the hooks reference, REFERENCE.md §2) and hostile
ones (NUL and lone surrogates escaped in keys and values, numbers where text is expected,
values longer than their column or than any text, an over-long or NUL-bearing spool id),
the row `log_entry` returns, or the error it raises, is the one the generic check of
every value gives.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hook_events_reference import SESSION_EVENTS
from hook_events_reference import common as payload

from session_db.claude import events, spool
from session_db.claude.events import log_entry, parse_line
from session_db.models.base import MAX_TEXT_CHARS

PROMOTED_KEYS = [key for key, _ in events.PROMOTED]


def line(body: dict[str, Any] | bytes, spool_id: str = "0000000000000001aaaaaaaaaaaaaaaa") -> bytes:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return spool.spool_line(raw, spool_id, 1_800_000_000_000_000_000, "/home/dev/webshop")


def hostile() -> list[bytes]:
    lines = [line(payload("PostCompact", compact_summary="kept\u0000 whole"))]
    lines.append(line(payload("PostCompact", compact_summary="s" * (MAX_TEXT_CHARS + 1))))
    lines.append(line({"tool_name": "Bash"}))  # no event name
    lines.append(line(payload("X" * 300)))  # an event type longer than its column
    lines.append(line(payload("PreToolUse", tool_input=["not", "an", "object"])))
    lines.append(line(payload("PreToolUse", tool_input={"\u0000key": "v\u0000"})))
    lines.append(line(b'{"hook_event_name": "Stop", "session_id": "a\\ud800b", "k\\udc00": 1}'))
    for key in PROMOTED_KEYS:
        for value in ("v" * 300, "v" * (MAX_TEXT_CHARS + 1), 12345, 1.5, True, "", "n\u0000ul"):
            lines.append(line(payload("Notification", **{key: value})))
    lines.append(line(payload("Stop"), spool_id="s" * 65))  # longer than the column
    header = b'{"spool_id":"a\\u0000b","received_at_ns":1800000000000000000,"project_dir":null}'
    lines.append(header + spool.HEADER_END + b'{"hook_event_name":"Stop"}\n')
    return lines


def outcome(raw: bytes) -> tuple[str, Any]:
    try:
        return "row", log_entry(parse_line(raw))
    except Exception as error:
        return "error", (type(error), str(error))


@pytest.mark.parametrize("raw", [line(body) for body in SESSION_EVENTS] + hostile())
def test_the_values_log_entry_trusts_are_what_checking_every_value_gives(
    raw: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    trusting = outcome(raw)
    monkeypatch.setattr(events, "_plain_columns", frozenset)  # every value checked
    checking = outcome(raw)
    assert trusting == checking
    if trusting[0] == "row":
        assert trusting[1]["payload"].json_text == checking[1]["payload"].json_text


def test_the_trusted_values_are_some_of_the_row() -> None:
    # The test above is only worth something while log_entry does trust some values.
    assert {"event_type", "tool_name", "occurred_at"} <= events._plain_columns()
    assert "spool_id" not in events._plain_columns()
