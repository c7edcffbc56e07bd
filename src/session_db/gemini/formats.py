"""Gemini CLI's chat files, read into plain dataclasses (no database code).

`${GEMINI_DATA_DIR:-~/.gemini/tmp}/<projectHash>/chats/session-*.json`, or, from newer
versions, `session-*.jsonl`. The JSON shape is `{sessionId, projectHash, startTime,
lastUpdated, messages[]}`; a message is `{id, timestamp, type (user, gemini, or a notice:
info, error, …), content, model, tokens{input, output, cached, thoughts, tool, total}}`,
with the model's `thoughts[]` and `toolCalls[]` on a gemini message. `tokens.input`
already includes `cached`.

A JSONL file holds the same things a line at a time: lines that are messages (they have a
`type`, and an `id` or `content`), a line may hold a `messages[]` list, and the session's
own fields arrive on the other lines (the later value of a field wins). A message whose
`id` comes again is the same message, updated: it keeps its place and takes the later
line's fields. A line that is not a JSON object is counted and skipped.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from session_db.claude.transcript import parse_line
from session_db.histories import (
    HistoryFormatError,
    Tokens,
    counts_of,
    label,
    parse_time,
    read_json,
    text_of,
)

__all__ = ["GeminiChat", "GeminiMessage", "GeminiTokens", "message_blocks", "parse_chat"]


@dataclass(frozen=True)
class GeminiTokens:
    """A response's `tokens` as Gemini CLI records them."""

    input: int = 0  # the prompt, cached tokens included
    output: int = 0
    cached: int = 0
    thoughts: int = 0
    tool: int = 0
    total: int = 0

    @classmethod
    def of(cls, value: Any) -> GeminiTokens | None:
        """The counts of a `tokens` object, or None if it is not one."""
        counts = counts_of(value, ("input", "output", "cached", "thoughts", "tool", "total"))
        return None if counts is None else cls(*counts)

    def tokens(self) -> Tokens:
        """The four kinds, each once.

        `input` includes `cached`, so uncached input is the difference, plus `tool` (the
        prompt of tool use, billed as input); output is `output` plus `thoughts` (thinking
        is billed as output); cache read is `cached`; Gemini reports no cache writes.
        Together they make Gemini's `total`.
        """
        cached = min(self.cached, self.input)
        return Tokens(
            input=self.input - cached + self.tool,
            output=self.output + self.thoughts,
            cache_read=cached,
        )


@dataclass(frozen=True)
class GeminiMessage:
    """One message of a chat, at its place (`index`)."""

    index: int
    id: str | None
    type: str
    raw: Mapping[str, Any]  # every field, for its content, thoughts and tool calls
    model: str | None
    tokens: GeminiTokens | None
    at: datetime | None


@dataclass
class GeminiChat:
    """A chat file, read."""

    session_id: str | None
    messages: list[GeminiMessage]
    kept: dict[str, Any]  # the session's own fields (all but the messages)
    bad_lines: int = 0

    @property
    def start_time(self) -> datetime | None:
        """`startTime`, else the first message's time."""
        return parse_time(self.kept.get("startTime")) or next(
            (message.at for message in self.messages if message.at), None
        )

    @property
    def last_updated(self) -> datetime | None:
        """`lastUpdated`, else the last message's time."""
        return parse_time(self.kept.get("lastUpdated")) or next(
            (message.at for message in reversed(self.messages) if message.at), None
        )


def _is_message(value: Mapping[str, Any]) -> bool:
    return isinstance(value.get("type"), str) and ("id" in value or "content" in value)


def _message(index: int, raw: Mapping[str, Any]) -> GeminiMessage:
    return GeminiMessage(
        index=index,
        id=text_of(raw.get("id")),
        type=raw["type"],
        raw=raw,
        model=text_of(raw.get("model")),
        tokens=GeminiTokens.of(raw.get("tokens")),
        at=parse_time(raw.get("timestamp")),
    )


def parse_chat(data: bytes, *, jsonl: bool) -> GeminiChat:
    """Read a chat file's bytes, a JSON document or (`jsonl`) one object a line.

    Raises:
        HistoryFormatError: A JSON file that is not a JSON object.
    """
    kept: dict[str, Any] = {}
    raws: list[dict[str, Any]] = []
    bad = 0
    if jsonl:
        for line in data.splitlines():
            record = parse_line(line)
            if not isinstance(record, dict):
                bad += bool(line.strip())
            elif _is_message(record):
                raws.append(record)
            else:
                raws.extend(m for m in record.pop("messages", None) or [] if isinstance(m, dict))
                kept.update(record)
    else:
        value = read_json(data, "the chat file")
        if not isinstance(value, dict):
            raise HistoryFormatError("the chat file is not a JSON object")
        kept = {key: item for key, item in value.items() if key != "messages"}
        messages = value.get("messages")
        raws = [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []
    places: dict[str, int] = {}
    merged: list[dict[str, Any]] = []
    for raw in raws:
        if not isinstance(raw.get("type"), str):
            continue
        key = text_of(raw.get("id"))
        if key is not None and key in places:  # the same message again, updated
            merged[places[key]] = {**merged[places[key]], **raw}
            continue
        if key is not None:
            places[key] = len(merged)
        merged.append(dict(raw))
    return GeminiChat(
        session_id=text_of(kept.get("sessionId")),
        messages=[_message(index, raw) for index, raw in enumerate(merged)],
        kept=kept,
        bad_lines=bad,
    )


def message_blocks(message: GeminiMessage) -> Iterator[tuple[str | None, Any]]:
    """A message as (label, body) parts: its thoughts, its text, its tool calls."""
    raw = message.raw
    for thought in raw.get("thoughts") or []:
        if isinstance(thought, dict):
            subject = thought.get("subject")
            yield label("thought", subject), thought.get("description")
        else:
            yield "thought", thought
    content = raw.get("content")
    if isinstance(content, str):
        yield None, content
    elif isinstance(content, list):
        for part in content:
            text = part.get("text") if isinstance(part, dict) else part
            yield (None, text) if isinstance(text, str) else ("part", part)
    elif content is not None:
        yield "content", content
    for call in raw.get("toolCalls") or []:
        if not isinstance(call, dict):
            yield "tool_call", call
            continue
        rest = {k: v for k, v in call.items() if k not in ("id", "name", "status")}
        yield label("tool_call", call.get("name"), call.get("id"), call.get("status")), rest
