"""Import of Codex CLI rollouts: a session per Codex session, its conversation, its usage.

A rollout only grows, so it is read from where the last import stopped (complete lines
only; a replaced or truncated file is read again from the start, and the keys below keep
that from counting anything twice). Its response items become the session's thread, in
order: messages with their role (`developer` becomes system, its first line naming it),
reasoning summaries and tool calls as the assistant's, tool outputs as the user's (they
go back to the model as input, as Anthropic's tool results do). Encrypted reasoning and
`event_msg` lines (what the CLI showed, which repeats the items) are not messages.

Usage: `token_count` events carry a cumulative total, so each response is what the total
grew by since the event before (`TokenCount`), keyed by the rollout's name and the line's
byte offset; the session's usage is therefore its last cumulative total, never the sum of
the totals, and a total repeated by a later event adds nothing. Where an import stopped,
the total and model in force are kept in the session's metadata
(`codex.rollouts.<file>`), so the next import goes on from them. The kinds: uncached input
is `input_tokens - cached_input_tokens`, cache read is `cached_input_tokens`, output is
`output_tokens` (reasoning included), cache write is 0 (Codex reports none); they add up
to Codex's own `total_tokens`. Priced through genai-prices (OpenAI's prices).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.claude.importer import file_identity
from session_db.claude.transcript import read_complete_lines
from session_db.codex.formats import RolloutScan, TokenUsage, scan_rollout, session_id
from session_db.histories import (
    History,
    HistoryFormatError,
    HistorySource,
    ImportReport,
    Response,
    history_slug,
    message_of,
    stored_metadata,
    write_history,
)
from session_db.models import TranscriptImport

APP = "codex"

__all__ = [
    "APP",
    "SOURCE",
    "default_sessions_dir",
    "import_rollout_file",
    "import_rollouts",
    "rollout_files",
    "rollout_history",
]


def _is_rollout(name: str) -> bool:
    return name.startswith("rollout-") and name.endswith(".jsonl")


def _first_line(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.readline(1 << 20).rstrip(b"\n")


async def import_rollout_file(
    db: AsyncSession, path: Path, progress: TranscriptImport
) -> ImportReport:
    """Import the new lines of one rollout inside the caller's transaction.

    Raises:
        HistoryFormatError: Neither the first line nor the file's name gives a session id.
    """
    report = ImportReport()
    identity, size = await asyncio.to_thread(file_identity, path)
    resumed = progress.file_identity == identity and progress.byte_offset <= size
    offset = progress.byte_offset if resumed else 0
    lines: list[tuple[int, bytes]] = []
    new_offset = offset
    if size > offset:
        lines, new_offset = await asyncio.to_thread(read_complete_lines, path, offset)
    if not lines:
        report.unchanged += 1
        return report
    external = session_id(await asyncio.to_thread(_first_line, path), path.name)
    if external is None:
        raise HistoryFormatError("no session id in the first line or the file name")
    slug = history_slug(APP, external)
    stored = await stored_metadata(db, slug, APP)
    state = _dict(_dict(stored.get("rollouts")).get(path.name)) if offset else {}
    scan = scan_rollout(
        lines,
        total=TokenUsage.of(state.get("total_token_usage")),
        model=state.get("model") if isinstance(state.get("model"), str) else None,
    )
    history = rollout_history(path, external, scan, stored, start_idx=None if offset else 0)
    progress.file_identity, progress.byte_offset = identity, new_offset
    progress.lines_read = (progress.lines_read if offset else 0) + scan.lines
    report.bad_lines += scan.bad_lines
    await write_history(db, history, progress, report)
    return report


def _dict(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def rollout_history(
    path: Path,
    external: str,
    scan: RolloutScan,
    stored: Mapping[str, Any],
    *,
    start_idx: int | None,
) -> History:
    """What some lines of a rollout add to their session.

    Args:
        stored: The session's `codex` metadata so far, which this extends.
        start_idx: 0 for lines read from the file's start, None for lines that follow
            those imported before.
    """
    messages = [message_of(item.role, item.blocks, item.at) for item in scan.items]
    responses = [
        Response(
            f"{APP}:{path.stem}",
            count.model,
            count.usage.tokens(),
            at=count.at,
            request_id=str(count.offset),
        )
        for count in scan.counts
    ]
    metadata = dict(stored)
    if scan.session_meta is not None:
        metadata["session_meta"] = scan.session_meta
    if scan.turn_context is not None:
        metadata["turn_context"] = scan.turn_context
    rollouts = _dict(metadata.get("rollouts"))
    rollouts[path.name] = {
        "total_token_usage": scan.total.as_json() if scan.total else None,
        "model": scan.model,
    }
    metadata["rollouts"] = rollouts
    cwd = (scan.session_meta or {}).get("cwd")
    return History(
        app=APP,
        slug=history_slug(APP, external),
        thread_name=f"Codex session {external}",
        resume_id=external,
        working_dir=cwd if isinstance(cwd, str) and cwd else None,
        first_at=scan.first_at,
        last_at=scan.last_at,
        metadata=metadata,
        messages=messages,
        start_idx=start_idx,
        responses=responses,
    )


# `${CODEX_HOME:-~/.codex}/sessions/YYYY/MM/DD/rollout-*.jsonl`, read on from where it stopped.
SOURCE = HistorySource(
    APP, "CODEX_HOME", "~/.codex", "sessions", _is_rollout, import_rollout_file, file_identity
)
default_sessions_dir = SOURCE.default_dir
rollout_files = SOURCE.files
import_rollouts = SOURCE.import_paths
