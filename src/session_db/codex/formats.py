"""Codex CLI's rollout files, read into plain dataclasses (no database code).

`${CODEX_HOME:-~/.codex}/sessions/YYYY/MM/DD/rollout-<ts>-<uuid>.jsonl`: one JSON object a
line, appended to as the session goes, each `{timestamp, type, payload}`:

- `session_meta`: `id`, `cwd`, `cli_version`, `originator`, … (the session's identity);
- `turn_context`: the `model` (and settings) of the turns that follow;
- `response_item`: the conversation: `message` (`role`, `content[]` of `input_text` /
  `output_text`), `reasoning` (a `summary[]` of texts, or only encrypted content),
  `function_call` (`name`, `arguments`, `call_id`) and `function_call_output`, and other
  tool calls of the same pattern;
- `event_msg`: what the CLI showed. A `token_count` one carries `info.total_token_usage`,
  **cumulative** over the session (`input_tokens`, `cached_input_tokens`, a part of the
  input, `output_tokens`, `reasoning_output_tokens`, a part of the output,
  `total_tokens`), and `last_token_usage`, the latest response's.

A response's usage is the difference between a cumulative total and the one before it, so
the responses add up to the last total (never the sum of the totals), and a total repeated
by a later event adds nothing. Older rollouts, whose lines are bare response items after a
first line of session fields, are read too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from session_db.claude.transcript import parse_line
from session_db.histories import Tokens, counts_of, label, parse_time

__all__ = ["RolloutItem", "RolloutScan", "TokenCount", "TokenUsage", "scan_rollout", "session_id"]

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_USAGE_FIELDS = (
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_output_tokens",
    "total_tokens",
)
# What an older rollout's bare lines may be: the response items.
_ITEM_TYPES = {
    "message",
    "reasoning",
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "local_shell_call",
    "web_search_call",
}


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class TokenUsage:
    """Token counts as Codex reports them (cached within input, reasoning within output)."""

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_output_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def of(cls, value: Any) -> TokenUsage | None:
        """The counts of a `*_token_usage` object, or None if it is not one."""
        counts = counts_of(value, _USAGE_FIELDS)
        return None if counts is None else cls(*counts)

    def minus(self, earlier: TokenUsage) -> TokenUsage | None:
        """What was added since `earlier`, or None if some count went down (a new count)."""
        parts = [getattr(self, name) - getattr(earlier, name) for name in _USAGE_FIELDS]
        return None if any(part < 0 for part in parts) else TokenUsage(*parts)

    def tokens(self) -> Tokens:
        """The four kinds, each once: cached input is cache read, not input as well;
        reasoning is output already. Codex reports no cache writes."""
        cached = min(self.cached_input_tokens, self.input_tokens)
        return Tokens(
            input=self.input_tokens - cached, output=self.output_tokens, cache_read=cached
        )

    def as_json(self) -> dict[str, int]:
        """The counts as Codex writes them."""
        return {name: getattr(self, name) for name in _USAGE_FIELDS}


@dataclass(frozen=True)
class TokenCount:
    """One response's usage: what a `token_count` event added to the cumulative total."""

    offset: int  # the byte offset of its line, which keys it
    at: datetime | None
    model: str
    usage: TokenUsage


@dataclass(frozen=True)
class RolloutItem:
    """A response item as a thread message: Codex's role word, its parts, its time."""

    role: str
    blocks: tuple[tuple[str | None, Any], ...]
    at: datetime | None


@dataclass
class RolloutScan:
    """What some lines of a rollout hold."""

    lines: int = 0
    bad_lines: int = 0
    session_meta: dict[str, Any] | None = None
    turn_context: dict[str, Any] | None = None  # the latest
    items: list[RolloutItem] = field(default_factory=list)
    counts: list[TokenCount] = field(default_factory=list)
    total: TokenUsage | None = None  # the latest cumulative total
    model: str | None = None  # the model in force after the last line
    first_at: datetime | None = None
    last_at: datetime | None = None


def session_id(first_line: bytes, file_name: str) -> str | None:
    """The session's id: its `session_meta` line's, else the uuid ending the file name."""
    record = parse_line(first_line)
    if isinstance(record, dict):
        meta = _dict(record.get("payload")) if record.get("type") == "session_meta" else record
        if isinstance(meta.get("id"), str) and meta["id"]:
            return meta["id"]
    found = _UUID.search(file_name.removesuffix(".jsonl"))
    return found.group(0) if found else None


def _first_model(records: list[tuple[int, dict[str, Any]]]) -> str | None:
    for _, record in records:
        if record.get("type") == "turn_context":
            model = _dict(record.get("payload")).get("model")
            if isinstance(model, str) and model:
                return model
    return None


def scan_rollout(
    lines: Iterable[tuple[int, bytes]],
    *,
    total: TokenUsage | None = None,
    model: str | None = None,
) -> RolloutScan:
    """Read complete lines, given as (byte offset, line), of one rollout.

    `total` and `model` are where the lines before them left off (the cumulative total
    and the model in force), for a file read on from where an import stopped.
    """
    scan = RolloutScan(total=total)
    records: list[tuple[int, dict[str, Any]]] = []
    for offset, raw in lines:
        scan.lines += 1
        record = parse_line(raw)
        if isinstance(record, dict):
            records.append((offset, record))
        elif raw.strip():
            scan.bad_lines += 1
    # Usage before the first turn_context of these lines is the first model they name.
    scan.model = model or _first_model(records)
    for position, (offset, record) in enumerate(records):
        at = parse_time(record.get("timestamp"))
        if at is not None:
            scan.first_at = at if scan.first_at is None else min(scan.first_at, at)
            scan.last_at = at if scan.last_at is None else max(scan.last_at, at)
        kind, payload = record.get("type"), record.get("payload")
        if not isinstance(payload, dict):  # an older rollout's bare line
            if kind in _ITEM_TYPES:
                kind, payload = "response_item", record
            elif position == 0 and offset == 0 and "id" in record:
                kind, payload = "session_meta", record
            else:
                continue
        if kind == "session_meta":
            scan.session_meta = dict(payload)
        elif kind == "turn_context":
            scan.turn_context = dict(payload)
            if isinstance(payload.get("model"), str) and payload["model"]:
                scan.model = payload["model"]
        elif kind == "response_item":
            item = _item(payload, at)
            if item is not None:
                scan.items.append(item)
        elif kind == "event_msg" and payload.get("type") == "token_count":
            _count_tokens(scan, offset, at, _dict(payload.get("info")))
    return scan


def _count_tokens(scan: RolloutScan, offset: int, at: datetime | None, info: Any) -> None:
    """Add one `token_count` event's response: the cumulative total's growth."""
    current = TokenUsage.of(info.get("total_token_usage"))
    if current is None:
        # No total (or info: null, a rate-limit update): the latest response's own counts.
        added = TokenUsage.of(info.get("last_token_usage"))
        if added is None:
            return
        before = scan.total or TokenUsage()
        scan.total = TokenUsage(
            *(getattr(before, name) + getattr(added, name) for name in _USAGE_FIELDS)
        )
    else:
        previous = scan.total
        added = current if previous is None else current.minus(previous)
        if added is None:  # the counts went down: a new cumulative count started
            added = current
        scan.total = current
    if added.input_tokens or added.output_tokens:
        scan.counts.append(TokenCount(offset, at, scan.model or "unknown", added))


def _item(payload: Mapping[str, Any], at: datetime | None) -> RolloutItem | None:
    """A response item as a message, or None for one with nothing readable (encrypted
    reasoning)."""
    kind = payload.get("type")
    if kind == "message":
        role = payload.get("role") if isinstance(payload.get("role"), str) else "unknown"
        return RolloutItem(role, tuple(_content(payload.get("content"))), at)
    if kind == "reasoning":
        texts = [
            part["text"]
            for part in (payload.get("summary") or [])
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return RolloutItem("assistant", (("reasoning", "\n\n".join(texts)),), at) if texts else None
    rest = {
        key: value for key, value in payload.items() if key not in ("type", "name", "call_id", "id")
    }
    if set(rest) == {"arguments"} or set(rest) == {"output"}:
        body: Any = next(iter(rest.values()))
    else:
        body = rest or None
    # A tool's output goes back to the model as input, as Anthropic's tool results do.
    role = "user" if isinstance(kind, str) and kind.endswith("_output") else "assistant"
    heading = label(kind, payload.get("name"), payload.get("call_id")) or "item"
    return RolloutItem(role, ((heading, body),), at)


def _content(content: Any) -> Iterator[tuple[str | None, Any]]:
    if isinstance(content, str):
        yield None, content
        return
    for part in content if isinstance(content, list) else []:
        if not isinstance(part, dict):
            yield "content", part
        elif isinstance(part.get("text"), str):
            yield None, part["text"]
        elif str(part.get("type", "")).endswith("image"):
            yield str(part["type"]), None  # the picture itself (often inline data) is not text
        else:
            yield str(part.get("type") or "part"), {k: v for k, v in part.items() if k != "type"}
