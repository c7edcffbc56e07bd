"""Amp's thread files, read into plain dataclasses (no database code).

One file per thread, `${AMP_DATA_DIR:-~/.local/share/amp}/threads/T-<uuid>.json`, rewritten
whole as the thread grows. Its keys: `v`, `id`, `created` (epoch ms), `title`,
`agentMode`, `messages[]`, `relationships[]` (`threadID`, `type` handoff, fork or
mention, and `role`: this thread's role in the relationship, parent or child) and
`env.initial.trees[0]` (`displayName`, `uri`). A message has a `role` (user, assistant,
info), an integer `messageId` and `content[]` blocks: `text`, `thinking`,
`tool_use{id, name, input}` and `tool_result{toolUseID, run{status, result}}`. An
assistant message's `usage` is `{model, inputTokens, outputTokens,
cacheCreationInputTokens, cacheReadInputTokens, totalInputTokens, credits, timestamp}`;
older files keep usage in `usageLedger.events[]` (`tokens{input, output}`, `credits`,
`toMessageId`).

Read leniently: a field of an unexpected type counts as absent, a block of an unknown
type is kept as it is, and keys nothing here maps stay in `AmpThread.kept`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote, urlparse

from session_db.histories import (
    HistoryFormatError,
    Tokens,
    count_of,
    label,
    parse_time,
    read_json,
    text_of,
)

__all__ = [
    "AmpMessage",
    "AmpRelationship",
    "AmpThread",
    "AmpUsage",
    "LedgerEvent",
    "content_blocks",
    "parse_thread",
]

# Keys of a thread that the import maps elsewhere (its messages and its usage ledger).
MAPPED_KEYS = ("messages", "usageLedger")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _credits(value: Any) -> Decimal | None:
    """Amp's credits as an exact Decimal, or None if absent or not a finite number."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def is_openai_model(model: str) -> bool:
    """Whether Amp ran this model through OpenAI (`gpt-…`, with or without `openai/`)."""
    return model.rpartition("/")[2].startswith("gpt-")


@dataclass(frozen=True)
class AmpUsage:
    """An assistant message's usage as Amp reports it."""

    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    total_input_tokens: int | None
    credits: Decimal | None
    timestamp: str | None  # as written: with the model, it names the response
    at: datetime | None

    def tokens(self) -> Tokens:
        """The four kinds, each counted once.

        `totalInputTokens` is input + cache creation + cache read, not a kind of its own,
        so it is not added. For `gpt-*` models Amp reports `inputTokens` as 0 and puts
        the uncached prompt in `cacheCreationInputTokens`; OpenAI has no cache writes,
        so that count is uncached input here.
        """
        if is_openai_model(self.model):
            return Tokens(
                input=self.input_tokens + self.cache_creation_input_tokens,
                output=self.output_tokens,
                cache_read=self.cache_read_input_tokens,
            )
        return Tokens(
            input=self.input_tokens,
            output=self.output_tokens,
            cache_write=self.cache_creation_input_tokens,
            cache_read=self.cache_read_input_tokens,
        )


@dataclass(frozen=True)
class AmpMessage:
    """One message of a thread, at its place (`index`) in `messages[]`."""

    index: int
    role: str
    message_id: int | None
    content: Any  # a list of blocks (or, leniently, a plain string)
    usage: AmpUsage | None
    at: datetime | None  # when it was written: its usage's time, else `meta.sentAt`


@dataclass(frozen=True)
class LedgerEvent:
    """One event of an older file's `usageLedger`, at its place in `events[]`."""

    index: int
    input_tokens: int
    output_tokens: int
    credits: Decimal | None
    to_message_id: int | None
    model: str | None
    at: datetime | None


@dataclass(frozen=True)
class AmpRelationship:
    """A relationship to another thread; `role` is this thread's role in it."""

    thread_id: str
    type: str
    role: str | None


@dataclass
class AmpThread:
    """A thread file, read."""

    id: str
    created: datetime | None
    title: str | None
    messages: list[AmpMessage]
    relationships: list[AmpRelationship]
    ledger: list[LedgerEvent]
    tree_name: str | None
    tree_uri: str | None
    kept: dict[str, Any]  # every top-level key but the messages and the ledger

    @property
    def working_dir(self) -> str | None:
        """The folder of the thread's first workspace tree (a `file://` URI), else None."""
        if not self.tree_uri:
            return None
        parsed = urlparse(self.tree_uri)
        if parsed.scheme != "file" or not parsed.path:
            return None
        return unquote(parsed.path)


def _usage(value: Any) -> AmpUsage | None:
    if not isinstance(value, dict):
        return None
    timestamp = text_of(value.get("timestamp"))
    return AmpUsage(
        model=text_of(value.get("model")) or "unknown",
        input_tokens=count_of(value.get("inputTokens")),
        output_tokens=count_of(value.get("outputTokens")),
        cache_creation_input_tokens=count_of(value.get("cacheCreationInputTokens")),
        cache_read_input_tokens=count_of(value.get("cacheReadInputTokens")),
        total_input_tokens=_int(value.get("totalInputTokens")),
        credits=_credits(value.get("credits")),
        timestamp=timestamp,
        at=parse_time(timestamp),
    )


def _message(index: int, value: Any) -> AmpMessage:
    raw = _dict(value)
    usage = _usage(raw.get("usage"))
    at = usage.at if usage is not None and usage.at is not None else None
    if at is None:
        at = parse_time(_dict(raw.get("meta")).get("sentAt"))
    return AmpMessage(
        index=index,
        role=text_of(raw.get("role")) or "unknown",
        message_id=_int(raw.get("messageId")),
        content=raw.get("content"),
        usage=usage,
        at=at,
    )


def _ledger(value: Any) -> list[LedgerEvent]:
    events = []
    for index, raw in enumerate(_list(_dict(value).get("events"))):
        event = _dict(raw)
        tokens = _dict(event.get("tokens"))
        events.append(
            LedgerEvent(
                index=index,
                input_tokens=count_of(tokens.get("input")),
                output_tokens=count_of(tokens.get("output")),
                credits=_credits(event.get("credits")),
                to_message_id=_int(event.get("toMessageId")),
                model=text_of(event.get("model")),
                at=parse_time(event.get("timestamp")),
            )
        )
    return events


def parse_thread(data: bytes) -> AmpThread:
    """Read a thread file's bytes.

    Raises:
        HistoryFormatError: Not JSON, not an object, or without a text `id`.
    """
    value = read_json(data, "the thread file")
    if not isinstance(value, dict):
        raise HistoryFormatError("the thread file is not a JSON object")
    thread_id = text_of(value.get("id"))
    if thread_id is None:
        raise HistoryFormatError("the thread file has no id")
    tree = _dict((_list(_dict(_dict(value.get("env")).get("initial")).get("trees")) or [{}])[0])
    relationships = [
        AmpRelationship(other, kind, text_of(item.get("role")))
        for item in map(_dict, _list(value.get("relationships")))
        if (other := text_of(item.get("threadID"))) and (kind := text_of(item.get("type")))
    ]
    return AmpThread(
        id=thread_id,
        created=parse_time(value.get("created")),
        title=text_of(value.get("title")),
        messages=[_message(index, item) for index, item in enumerate(_list(value.get("messages")))],
        relationships=relationships,
        ledger=_ledger(value.get("usageLedger")),
        tree_name=text_of(tree.get("displayName")),
        tree_uri=text_of(tree.get("uri")),
        kept={key: item for key, item in value.items() if key not in MAPPED_KEYS},
    )


def content_blocks(content: Any) -> Iterator[tuple[str | None, Any]]:
    """A message's content as (label, body) parts: text plain, the other blocks labelled.

    `thinking`, `tool_use <name> <id>` (its input) and `tool_result <toolUseID> <status>`
    (the run without its status: its result, or whatever else the run holds); a block
    of another type keeps every field under its type's name.
    """
    if isinstance(content, str):
        yield None, content
        return
    for block in _list(content):
        if not isinstance(block, dict):
            yield "content", block
            continue
        kind = block.get("type")
        if kind == "text":
            yield None, block.get("text")
        elif kind == "thinking":
            yield "thinking", block.get("thinking")
        elif kind == "tool_use":
            yield label("tool_use", block.get("name"), block.get("id")), block.get("input")
        elif kind == "tool_result":
            run = dict(_dict(block.get("run")))
            status = run.pop("status", None)
            body = run["result"] if set(run) == {"result"} else run or None
            yield label("tool_result", block.get("toolUseID"), status), body
        else:
            rest = {key: item for key, item in block.items() if key != "type"}
            yield str(kind or "block"), rest or None
