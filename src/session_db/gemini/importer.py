"""Import of Gemini CLI chats: a session per chat, its messages as a thread, its usage.

A chat file (JSON, or JSONL from newer versions) is read whole, and only when its bytes
changed; its messages keep their place (message i is idx i of the session's thread), so a
chat that grew adds only the messages past those stored. Roles: `user` as it is, `gemini`
becomes assistant, a notice (`info`, `error`, …) a system message whose first line names
it. A gemini message's thoughts and tool calls are kept in its text, labelled.

Usage: each message with `tokens` is one response, keyed by its message id (so a copy of
the chat in another file is the same response). The kinds, as `GeminiTokens.tokens`
maps them: uncached input is `input - cached` (`input` includes `cached`) plus `tool`,
output is `output + thoughts`, cache read is `cached`; they add up to Gemini's `total`.
Priced through genai-prices (Google's prices).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from session_db.gemini.formats import GeminiChat, message_blocks, parse_chat
from session_db.histories import (
    History,
    HistorySource,
    Response,
    history_slug,
    import_whole_file,
    message_of,
    whole_file_fingerprint,
)
from session_db.models import MessageRole, Session
from session_db.models.base import clip

APP = "gemini"

__all__ = [
    "APP",
    "SOURCE",
    "chat_files",
    "chat_history",
    "default_chats_dir",
    "import_chats",
]

_ALIASES = {"gemini": MessageRole.ASSISTANT}


def _is_chat(name: str) -> bool:
    return name.startswith("session-") and name.endswith((".json", ".jsonl"))


def _read(data: bytes, path: Path) -> tuple[History, int, int]:
    chat = parse_chat(data, jsonl=path.suffix == ".jsonl")
    return chat_history(chat, path), len(chat.messages), chat.bad_lines


def chat_history(chat: GeminiChat, path: Path) -> History:
    """What a chat file holds, as the history its session stores."""
    external = chat.session_id or path.stem
    responses = [
        Response(
            f"{APP}:{message.id}" if message.id else f"{APP}:{external}:{message.index}",
            message.model or "unknown",
            message.tokens.tokens(),
            at=message.at,
        )
        for message in chat.messages
        if message.tokens is not None
    ]
    summary = chat.kept.get("summary")
    name = clip(Session, "name", summary) if isinstance(summary, str) and summary else None
    return History(
        app=APP,
        slug=history_slug(APP, external),
        thread_name=name or f"Gemini session {external}",
        resume_id=external,
        name=name,
        first_at=chat.start_time,
        last_at=chat.last_updated,
        metadata=dict(chat.kept),
        messages=[
            message_of(message.type, message_blocks(message), message.at, aliases=_ALIASES)
            for message in chat.messages
        ],
        responses=responses,
    )


# `${GEMINI_DATA_DIR:-~/.gemini/tmp}/<projectHash>/chats/session-*.json[l]`, read whole.
SOURCE = HistorySource(
    APP,
    "GEMINI_DATA_DIR",
    "~/.gemini/tmp",
    "",
    _is_chat,
    partial(import_whole_file, read=_read),
    whole_file_fingerprint,
)
default_chats_dir = SOURCE.default_dir
chat_files = SOURCE.files
import_chats = SOURCE.import_paths
