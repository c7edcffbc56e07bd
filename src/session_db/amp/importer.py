"""Import of Amp threads: a session per thread, its messages as a thread, usage, links.

A thread file is rewritten whole as the thread grows, so it is read whole, and only when
its bytes changed (`transcript_imports` keeps their hash). Its messages keep their place:
message i of `messages[]` is idx i of the session's thread, so a thread that grew appends
only the messages past those stored. Roles: user and assistant as they are; `info` (and
any other role) becomes system, its first line naming the role Amp gave it.

Usage, each response once:

- An assistant message's `usage` is one response, keyed by its model and timestamp (a
  fork's copy of its origin's messages is then the same response, not a second), or by
  the thread and message id where it has no timestamp. Token kinds as
  `AmpUsage.tokens` maps them (`totalInputTokens` is not a fourth kind; a `gpt-*`
  model's `cacheCreationInputTokens` is uncached input).
- An older file's `usageLedger.events[]` count for the messages that carry no usage of
  their own (`toMessageId`), and, in a thread where no message has usage, with no
  message at all.
- Credits (Amp's own unit, not a price in dollars) are kept in the session's metadata,
  `amp.credits` and `amp.credits_by_model`, as decimal text; the tokens are priced
  through genai-prices.

Relationships: a handoff links the thread handed off from to the new one as a
`continuation`; a fork links the origin to the fork as a `sibling` (a branch, not a
subagent: it adds nothing to the origin's rolled-up cost). A thread not imported yet
gets a placeholder session, filled in when its own file is. Mentions are not links; the
whole `relationships[]` stays in the metadata with the thread's other keys.
"""

from __future__ import annotations

from decimal import Decimal
from functools import partial
from pathlib import Path

from session_db.amp.formats import AmpMessage, AmpThread, content_blocks, parse_thread
from session_db.histories import (
    History,
    HistorySource,
    Link,
    Response,
    Tokens,
    history_slug,
    import_whole_file,
    message_of,
    whole_file_fingerprint,
)
from session_db.models import RelationshipType, SpawnReason

APP = "amp"

__all__ = [
    "APP",
    "SOURCE",
    "default_threads_dir",
    "import_threads",
    "thread_files",
    "thread_history",
]

_LINKS = {
    "handoff": (RelationshipType.CONTINUATION, SpawnReason.CONTINUATION),
    "fork": (RelationshipType.SIBLING, None),
}


def _is_thread_file(name: str) -> bool:
    return name.startswith("T-") and name.endswith(".json")


def _read(data: bytes, path: Path) -> tuple[History, int, int]:
    thread = parse_thread(data)
    return thread_history(thread), len(thread.messages), 0


# `${AMP_DATA_DIR:-~/.local/share/amp}/threads/T-*.json`, each read whole when it changed.
SOURCE = HistorySource(
    APP,
    "AMP_DATA_DIR",
    "~/.local/share/amp",
    "threads",
    _is_thread_file,
    partial(import_whole_file, read=_read),
    whole_file_fingerprint,
)
default_threads_dir = SOURCE.default_dir
thread_files = SOURCE.files
import_threads = SOURCE.import_paths


def thread_history(thread: AmpThread) -> History:
    """What a thread file holds, as the history its session stores."""
    slug = history_slug(APP, thread.id)
    messages = []
    last_at = thread.created
    for message in thread.messages:
        # A message without a time of its own is dated by the one before it.
        last_at = message.at or last_at
        messages.append(message_of(message.role, content_blocks(message.content), last_at))
    responses, credits = _responses(thread)
    metadata = dict(thread.kept)
    if credits:
        metadata["credits"] = str(sum(credits.values(), Decimal(0)))
        metadata["credits_by_model"] = {model: str(amount) for model, amount in credits.items()}
    times = [at for at in (thread.created, *(m.at for m in thread.messages)) if at is not None]
    return History(
        app=APP,
        slug=slug,
        thread_name=thread.title or thread.id,
        resume_id=thread.id,
        name=thread.title,
        working_dir=thread.working_dir,
        first_at=min(times, default=None),
        last_at=max(times, default=None),
        metadata=metadata,
        messages=messages,
        start_idx=0,
        responses=responses,
        links=_links(thread, slug),
    )


def _responses(thread: AmpThread) -> tuple[list[Response], dict[str, Decimal]]:
    """The thread's responses, each once, and its credits per model."""
    responses: list[Response] = []
    credits: dict[str, Decimal] = {}
    with_usage: set[int] = set()
    for message in thread.messages:
        usage = message.usage
        if usage is None:
            continue
        if message.message_id is not None:
            with_usage.add(message.message_id)
        if usage.timestamp:
            key = f"{APP}:{usage.model}@{usage.timestamp}"
        else:
            key = f"{APP}:{thread.id}:{_message_key(message)}"
        responses.append(Response(key, usage.model, usage.tokens(), at=usage.at))
        if usage.credits is not None:
            credits[usage.model] = credits.get(usage.model, Decimal(0)) + usage.credits
    any_usage = any(message.usage is not None for message in thread.messages)
    for event in thread.ledger:
        if event.to_message_id in with_usage:
            continue  # the message's own usage counts it
        if event.to_message_id is None and any_usage:
            continue  # cannot tell it from the messages' usage: counted there
        target = event.to_message_id if event.to_message_id is not None else f"e{event.index}"
        model = event.model or "unknown"
        tokens = Tokens(input=event.input_tokens, output=event.output_tokens)
        responses.append(Response(f"{APP}:{thread.id}:ledger:{target}", model, tokens, event.at))
        if event.credits is not None:
            credits[model] = credits.get(model, Decimal(0)) + event.credits
    return responses, credits


def _message_key(message: AmpMessage) -> str:
    return str(message.message_id) if message.message_id is not None else f"i{message.index}"


def _links(thread: AmpThread, slug: str) -> list[Link]:
    links = []
    for relationship in thread.relationships:
        kind = _LINKS.get(relationship.type)
        if kind is None or relationship.role not in ("parent", "child"):
            continue  # a mention, or a role this code does not know: kept in the metadata
        other = history_slug(APP, relationship.thread_id)
        parent, child = (slug, other) if relationship.role == "parent" else (other, slug)
        links.append(Link(parent, child, kind[0], kind[1], {"amp_type": relationship.type}))
    return links
