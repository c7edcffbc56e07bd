"""`SessionDBStore`: the Claude Agent SDK's `SessionStore`, kept in session_db's database.

Pass it as `ClaudeAgentOptions(session_store=SessionDBStore())` and the SDK mirrors every
transcript entry into it, so a session can be resumed from the database on another
machine. Each append is one transaction, run again from the start after a transient
database fault, that

- stores the entries in call order, each `uuid` once per key (`crud.append_sdk_store_entries`);
- for the main transcript, folds them into the session's summary with the SDK's own
  `fold_session_summary`, under the session's row lock, so concurrent appends to one
  session never lose a fold;
- imports the new entries into the session tables exactly as `session-db import claude`
  imports a transcript's new lines (`claude.importer.import_entries`): the session, its
  subagents' child sessions, an agent row per role and model (the main one with the
  session id to resume), usage counted once per response, cost, names.

The entries are kept even when that import refuses one of them (a count past BIGINT,
say): the import is rolled back to a savepoint and logged, and the store stays whole.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any, cast

from claude_agent_sdk import (
    SessionKey,
    SessionListSubkeysKey,
    SessionStore,
    SessionStoreEntry,
    SessionStoreListEntry,
    SessionSummaryEntry,
    fold_session_summary,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.claude.importer import ImportReport, import_entries
from session_db.claude.transcript import (
    AGENT_PREFIX,
    COMPACT_PREFIX,
    SUBAGENTS_DIR,
    SUFFIX,
    TranscriptFile,
    TranscriptKind,
    TranscriptScan,
    scan_lines,
)
from session_db.database import get_async_session
from session_db.errors import is_transient
from session_db.jsoncodec import dumps, loads
from session_db.retry import retry_transient

__all__ = ["SessionDBStore", "transcript_of_key"]

logger = logging.getLogger(__name__)


def transcript_of_key(
    project_key: str, session_id: str, subpath: str | None
) -> TranscriptFile | None:
    """The transcript a store key mirrors, as the importer knows it; None for other subkeys.

    The main key is `<project_key>/<session_id>.jsonl`; `subagents/agent-<id>` is a
    subagent's transcript (`agent-acompact-…` a compaction run's), as on disk. Other
    subpaths (nested or SDK metadata) hold no transcript the import reads.
    """
    base = Path(project_key)
    if subpath is None:
        return TranscriptFile(base / f"{session_id}{SUFFIX}", session_id, None, TranscriptKind.MAIN)
    folder, _, name = subpath.rpartition("/")
    agent_id = name.removeprefix(AGENT_PREFIX)
    if folder != SUBAGENTS_DIR or not name.startswith(AGENT_PREFIX) or not agent_id:
        return None
    kind = (
        TranscriptKind.COMPACT if agent_id.startswith(COMPACT_PREFIX) else TranscriptKind.SUBAGENT
    )
    return TranscriptFile(base / session_id / f"{subpath}{SUFFIX}", session_id, agent_id, kind)


def _key_parts(key: SessionKey | SessionListSubkeysKey) -> tuple[str, str, str | None]:
    subpath = cast("dict[str, Any]", key).get("subpath")
    return key["project_key"], key["session_id"], subpath


def _scan(lines: list[str]) -> TranscriptScan:
    return scan_lines(line.encode("utf-8", "surrogatepass") for line in lines)


def _launch_results(texts: list[str], agent_id: str | None = None) -> list[tuple[str, list[str]]]:
    """The lines among `texts` holding a Task/Agent result (of `agent_id`, if given), each
    with the tool use ids it answers."""
    found = []
    for text in texts:
        if '"agentId"' not in text:  # most lines: no need to parse them
            continue
        record = loads(text.encode())
        result = record.get("toolUseResult") if isinstance(record, dict) else None
        launched = result.get("agentId") if isinstance(result, dict) else None
        if not isinstance(launched, str) or (agent_id is not None and launched != agent_id):
            continue
        message = record.get("message")
        content = message.get("content") if isinstance(message, dict) else None
        blocks = content if isinstance(content, list) else []
        ids = [b["tool_use_id"] for b in blocks if isinstance(b, dict) and b.get("tool_use_id")]
        found.append((text, [i for i in ids if isinstance(i, str)]))
    return found


async def _stored_calls(
    db: AsyncSession, store_session_id: uuid.UUID, tool_use_ids: list[str], given: list[str]
) -> list[str]:
    """The stored main-transcript lines making these tool calls, but for those in `given`."""
    calls: dict[str, None] = {}
    for tool_use_id in tool_use_ids:
        needle = f'"id":{dumps(tool_use_id)}'
        if any(needle in text for text in given):
            continue
        for text in await crud.find_sdk_store_entries(db, store_session_id, None, needle):
            calls.setdefault(text)
    return list(calls)


async def _with_launches(
    db: AsyncSession, store_session_id: uuid.UUID, transcript: TranscriptFile, lines: list[str]
) -> list[tuple[TranscriptFile, TranscriptScan]]:
    """The lines to import, with the stored lines their subagent launches pair with.

    The import pairs a Task/Agent call with its result, and completes the subagent's
    last response from it, within what it reads; the SDK mirrors a file in batches and
    the files in the order they were first written (the parent's before its subagents').
    So a parent's new result comes with its call, and a subagent's new lines with its
    parent's call and result, when the store holds them; importing those again changes
    nothing else (their usage is counted once already).
    """
    if transcript.kind == TranscriptKind.MAIN:
        ids = [i for _, found in _launch_results(lines) for i in found]
        calls = await _stored_calls(db, store_session_id, ids, lines) if ids else []
        return [(transcript, _scan(calls + lines))]
    scanned = [(transcript, _scan(lines))]
    if transcript.kind != TranscriptKind.SUBAGENT or not transcript.agent_id:
        return scanned
    needle = f'"agentId":{dumps(transcript.agent_id)}'
    stored = await crud.find_sdk_store_entries(db, store_session_id, None, needle)
    launch: list[str] = []
    for text, ids in _launch_results(stored, transcript.agent_id):
        launch.extend(await _stored_calls(db, store_session_id, ids, launch))
        launch.append(text)
    if launch:
        parent = TranscriptFile(
            # <project>/<session>/subagents/agent-<id>.jsonl: <project>/<session>.jsonl
            transcript.path.parents[2] / f"{transcript.session_id}{SUFFIX}",
            transcript.session_id,
            None,
            TranscriptKind.MAIN,
        )
        scanned.append((parent, _scan(launch)))
    return scanned


async def _import_lines(
    db: AsyncSession,
    transcript: TranscriptFile,
    lines: list[str],
    store_session_id: uuid.UUID | None = None,
) -> ImportReport | None:
    """Import JSON lines of one transcript into the session tables, under a savepoint.

    With `store_session_id`, the stored lines its subagent launches pair with come too
    (see `_with_launches`).

    Returns what the import did, or None where it refused the lines (logged; the
    caller's transaction goes on without it).

    Raises:
        Exception: A transient database fault, for the caller to run its unit again.
    """
    try:
        async with db.begin_nested():
            scanned = (
                [(transcript, _scan(lines))]
                if store_session_id is None
                else await _with_launches(db, store_session_id, transcript, lines)
            )
            return (await import_entries(db, scanned))[0]
    except Exception as error:
        if is_transient(error):
            raise
        logger.warning(
            "session %s: %d entries stored but not imported: %s",
            transcript.session_id,
            len(lines),
            str(error).splitlines()[0] if str(error) else type(error).__name__,
        )
        return None


class SessionDBStore(SessionStore):
    """A Claude Agent SDK `SessionStore` in session_db's database, feeding its session tables."""

    def __init__(self, engine: AsyncEngine | None = None, *, attempts: int | None = 5) -> None:
        """Use `engine`, else the configured database; retry a unit up to `attempts` times.

        The SDK gives an append 60 seconds; five attempts back off for about three.
        """
        self._engine = engine
        self._attempts = attempts

    async def append(self, key: SessionKey, entries: list[SessionStoreEntry]) -> None:
        """Store a batch of entries in call order (each `uuid` once) and import the new ones."""
        if not entries:
            return
        project_key, session_id, subpath = _key_parts(key)
        transcript = transcript_of_key(project_key, session_id, subpath)

        async def work() -> None:
            async with get_async_session(self._engine) as db:
                # Taken first, as the run recorder takes it: one writer per session at a time.
                await crud.lock_sdk_session(db, session_id)
                appended = await crud.append_sdk_store_entries(
                    db, project_key, session_id, subpath, entries
                )
                if subpath is None:
                    # Only what is new is folded: a batch the SDK sends again folds nothing twice.
                    prev = cast("SessionSummaryEntry | None", appended.summary)
                    summary = fold_session_summary(
                        prev, key, [entries[index] for index, _ in appended.new]
                    )
                    summary["mtime"] = cast(int, appended.mtime_ms)  # the list_sessions clock
                    await crud.save_sdk_store_summary(db, appended.store_session_id, summary)
                if transcript is not None and appended.new:
                    lines = [text for _, text in appended.new]
                    await _import_lines(db, transcript, lines, appended.store_session_id)

        await retry_transient(
            work, attempts=self._attempts, what=f"appending to session {session_id}"
        )

    async def load(self, key: SessionKey) -> list[SessionStoreEntry] | None:
        """Return a key's entries as appended, in order; None for a key never written."""
        project_key, session_id, subpath = _key_parts(key)

        async def work() -> list[Any] | None:
            async with get_async_session(self._engine, read_only=True) as db:
                return await crud.load_sdk_store_entries(db, project_key, session_id, subpath)

        return await retry_transient(work, attempts=self._attempts, what="loading a session")

    async def list_sessions(self, project_key: str) -> list[SessionStoreListEntry]:
        """Return the project key's sessions (main transcripts) with their write times (ms)."""

        async def work() -> list[tuple[str, int]]:
            async with get_async_session(self._engine, read_only=True) as db:
                return await crud.list_sdk_store_sessions(db, project_key)

        found = await retry_transient(work, attempts=self._attempts, what="listing sessions")
        return [{"session_id": session_id, "mtime": mtime} for session_id, mtime in found]

    async def list_session_summaries(self, project_key: str) -> list[SessionSummaryEntry]:
        """Return the project key's session summaries, as `append` folded them."""

        async def work() -> list[dict[str, Any]]:
            async with get_async_session(self._engine, read_only=True) as db:
                return await crud.list_sdk_store_summaries(db, project_key)

        found = await retry_transient(work, attempts=self._attempts, what="listing summaries")
        return cast("list[SessionSummaryEntry]", found)

    async def delete(self, key: SessionKey) -> None:
        """Delete a key's entries; the main key takes its subkeys and summary along.

        The session's rows in the session tables (usage, cost) stay.
        """
        project_key, session_id, subpath = _key_parts(key)

        async def work() -> None:
            async with get_async_session(self._engine) as db:
                await crud.lock_sdk_session(db, session_id)
                await crud.delete_sdk_store_entries(db, project_key, session_id, subpath)

        await retry_transient(work, attempts=self._attempts, what=f"deleting session {session_id}")

    async def list_subkeys(self, key: SessionListSubkeysKey) -> list[str]:
        """Return the subpaths written under a session (its subagents' transcripts)."""
        project_key, session_id, _ = _key_parts(key)

        async def work() -> list[str]:
            async with get_async_session(self._engine, read_only=True) as db:
                return await crud.list_sdk_store_subkeys(db, project_key, session_id)

        return await retry_transient(work, attempts=self._attempts, what="listing subkeys")
