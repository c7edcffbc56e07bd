"""Import of Claude Code transcripts: sessions, subagents, tokens and cost, incrementally.

Each file is read from where the last import stopped (`transcript_imports`), complete
lines only. The files of one Claude Code session (its subagents', its compaction runs'
and its own) are imported in one transaction, so the session is resolved, and its
totals refreshed, once for all of them. A transient database fault runs that whole
transaction again (`retry_transient`). Any other fault is one file's own problem: the
session's files are then imported one transaction each, so only the file at fault is
left out, recorded in the report's errors with its progress not advanced, and the
import goes on. Usage is counted once per model response, keyed by (message id,
request id) across every file, keeping the line with the most tokens (an early line's
`output_tokens` is a streaming placeholder). The parent's Task/Agent
result reports a subagent's last response in full, so it corrects that response's
output tokens. Sessions are the same rows the hook builds: the Claude Code session id
is the slug, a subagent is a child session linked with spawn reason `task_tool`, and a
compaction run counts towards its own session as a `compact` agent.

Per session, an agent row per (role, model) carries the token and cost totals, so
`cost --by model` and the session tree's roll-up include transcript usage.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_core import from_json
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.claude.events import SOURCE_APP, SessionResolver, subagent_slug
from session_db.claude.pricing import Cost, price_usage
from session_db.claude.transcript import (
    SubagentLaunch,
    TranscriptFile,
    TranscriptKind,
    UsageEntry,
    classify,
    dedupe,
    discover,
    parse_subagent_launches,
    parse_usage,
    read_complete_lines,
    session_facts,
)
from session_db.crud import agents as agent_crud
from session_db.crud import relationships as relationship_crud
from session_db.crud import sessions as session_crud
from session_db.crud import transcript_imports, usage_records
from session_db.crud.sessions import SessionActivity, record_session_activity
from session_db.database import get_async_session
from session_db.errors import (
    DatabaseUnavailableError,
    NotFoundError,
    SessionDBError,
    is_transient,
)
from session_db.models import AgentCreate, AgentStatus, CostSource, Session
from session_db.models.base import to_money, utcnow
from session_db.models.usage import UsageRecordCreate
from session_db.retry import retry_transient

logger = logging.getLogger(__name__)

# Namespace of the agent ids derived from (session, role, model), so re-imports upsert.
AGENT_NAMESPACE = uuid.UUID("5b0f3c1e-8a0e-4f7e-9b7e-0c1a2d3e4f50")
MAIN_ROLE, COMPACT_ROLE = "main", "compact"


@dataclass
class ImportReport:
    """What an import did, per file and in total."""

    files: int = 0
    unchanged: int = 0
    lines: int = 0
    bad_lines: int = 0
    responses: int = 0
    sessions: set[str] = field(default_factory=set)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: ImportReport) -> None:
        """Count what `other` (one file's import) did in this report."""
        self.files += other.files
        self.unchanged += other.unchanged
        self.lines += other.lines
        self.bad_lines += other.bad_lines
        self.responses += other.responses
        self.sessions |= other.sessions
        self.errors.extend(other.errors)


def agent_key(session_id: uuid.UUID, role: str, model: str) -> uuid.UUID:
    """Return the id of a session's agent row for one role and model."""
    return uuid.uuid5(AGENT_NAMESPACE, f"{session_id}:{role}:{model}")


def file_identity(path: Path) -> tuple[str, int]:
    """Return the file's identity and size; the identity (device, inode, hash of the first
    line) is what changes when a file is replaced rather than appended to."""
    with path.open("rb") as handle:
        stat = os.fstat(handle.fileno())
        first = handle.readline(65536)
    identity = f"{stat.st_dev}:{stat.st_ino}:{hashlib.sha256(first).hexdigest()[:16]}"
    return identity, stat.st_size


def transcripts_under(paths: Iterable[str | Path]) -> list[TranscriptFile]:
    """Return every transcript under `paths`, with a session file's subagents, subagents first.

    A session's own `.jsonl` named alone (as a hook's `transcript_path` is) brings its
    `<session-id>/subagents/` files along.
    """
    found: dict[Path, TranscriptFile] = {}
    for raw in paths:
        path = Path(raw).expanduser()
        for item in discover(path):
            found.setdefault(item.path, item)
        single = classify(path) if path.is_file() else None
        if single is not None and single.kind == TranscriptKind.MAIN:
            for item in discover(path.with_suffix("") / "subagents"):
                found.setdefault(item.path, item)
    order = {TranscriptKind.SUBAGENT: 0, TranscriptKind.COMPACT: 1, TranscriptKind.MAIN: 2}
    return sorted(found.values(), key=lambda t: (t.session_id, order[t.kind], str(t.path)))


async def import_transcripts(
    engine: AsyncEngine,
    paths: Iterable[str | Path],
    *,
    progress: Callable[[TranscriptFile, ImportReport], None] | None = None,
    attempts: int | None = 8,
) -> ImportReport:
    """Import every transcript under `paths` (folders or files), each from where it stopped.

    A session's files are one transaction, run again from the start after a transient
    database fault (up to `attempts` tries). A file that fails otherwise (unreadable, or
    holding a row the database refuses) is listed in the report's `errors` and left for
    the next import; the other files, of its session too, are imported all the same.

    Raises:
        DatabaseUnavailableError: The database stayed unreachable for all `attempts`;
            what was imported before stays imported.
    """
    report = ImportReport()
    for group in _by_session(transcripts_under(paths)):
        for transcript, outcome in await _import_group(engine, group, attempts):
            report.files += 1
            if isinstance(outcome, str):
                report.errors.append((str(transcript.path), outcome))
                logger.warning("could not import %s: %s", transcript.path, outcome)
            else:
                report.add(outcome)
            if progress is not None:
                progress(transcript, report)
    return report


def _by_session(transcripts: list[TranscriptFile]) -> list[list[TranscriptFile]]:
    """Consecutive transcripts of one session together (they come sorted by session)."""
    groups: list[list[TranscriptFile]] = []
    for transcript in transcripts:
        if groups and groups[-1][0].session_id == transcript.session_id:
            groups[-1].append(transcript)
        else:
            groups.append([transcript])
    return groups


async def _import_group(
    engine: AsyncEngine, group: list[TranscriptFile], attempts: int | None
) -> list[tuple[TranscriptFile, ImportReport | str]]:
    """Import one session's files: together, or each alone if one of them is at fault.

    Returns each file with what its import did, or why it failed.
    """
    try:
        return list(zip(group, await _committed(engine, group, attempts), strict=True))
    except Exception as error:
        if is_transient(error):
            raise
        if len(group) == 1:
            return [(group[0], _describe(error))]
    outcomes: list[tuple[TranscriptFile, ImportReport | str]] = []
    for transcript in group:  # find the file at fault; the others go in on their own
        try:
            outcomes.append((transcript, (await _committed(engine, [transcript], attempts))[0]))
        except Exception as error:
            if is_transient(error):
                raise
            outcomes.append((transcript, _describe(error)))
    return outcomes


async def _committed(
    engine: AsyncEngine, transcripts: list[TranscriptFile], attempts: int | None
) -> list[ImportReport]:
    """Import files in one transaction, retried whole after transient faults.

    Raises:
        DatabaseUnavailableError: Still transient after every attempt.
        Exception: The first permanent fault, which rolled everything back.
    """

    async def work() -> list[ImportReport]:
        async with get_async_session(engine) as db:
            return await import_files(db, transcripts)

    what = (
        str(transcripts[0].path)
        if len(transcripts) == 1
        else f"{len(transcripts)} transcripts of session {transcripts[0].session_id}"
    )
    try:
        return await retry_transient(work, attempts=attempts, what=f"importing {what}")
    except Exception as error:
        if not is_transient(error) or isinstance(error, SessionDBError):
            raise
        raise DatabaseUnavailableError(
            f"database unavailable while importing {what}: {_describe(error)}"
        ) from error


def _describe(error: BaseException) -> str:
    """One line naming what went wrong, for the report."""
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__


async def import_file(db: AsyncSession, transcript: TranscriptFile, report: ImportReport) -> None:
    """Import the new lines of one transcript file inside the caller's transaction."""
    report.add((await import_files(db, [transcript]))[0])


@dataclass
class _Batch:
    """What the files of one transaction share: the resolver, sessions, what changed."""

    db: AsyncSession
    resolver: SessionResolver
    sessions: dict[str, Session] = field(default_factory=dict)  # by slug
    changed: set[uuid.UUID] = field(default_factory=set)  # sessions whose totals to refresh
    # What the files saw of each session (span, names, metadata), written once at the end.
    activity: dict[uuid.UUID, SessionActivity] = field(default_factory=dict)

    def seen(self, session_id: uuid.UUID) -> SessionActivity:
        """The activity recorded so far for a session of this batch."""
        return self.activity.setdefault(session_id, SessionActivity())


async def import_files(db: AsyncSession, transcripts: list[TranscriptFile]) -> list[ImportReport]:
    """Import the new lines of transcript files inside the caller's transaction.

    Meant for one session's files, subagents first (as `transcripts_under` orders them):
    they share the session's rows, and its totals are refreshed once at the end.

    Returns:
        What each file's import did, in order.
    """
    claimed = await transcript_imports.claim_transcript_imports(
        db, [str(transcript.path) for transcript in transcripts]
    )
    batch = _Batch(db, SessionResolver(db))
    reports, done = [], []
    for transcript in transcripts:
        row = claimed[str(transcript.path)]
        identity, offset, lines, new_offset = await asyncio.to_thread(
            _new_lines, transcript.path, row.byte_offset, row.file_identity
        )
        report = ImportReport()
        reports.append(report)
        if not lines:
            report.unchanged += 1
            if row.file_identity != identity:
                row.file_identity = identity
                done.append(row)
            continue
        records: list[dict[str, Any]] = []
        for _, raw in lines:
            record = parse_line(raw)
            if record is None:
                report.bad_lines += 1
            elif isinstance(record, dict):
                records.append(record)
        report.lines += len(lines)
        row.session_id = await _import_records(batch, transcript, records, report)
        row.lines_read = (row.lines_read if offset else 0) + len(lines)
        row.file_identity, row.byte_offset, row.last_imported_at = identity, new_offset, utcnow()
        done.append(row)
    await record_session_activity(db, batch.activity)
    await usage_records.refresh_usage_totals(db, batch.changed)
    await transcript_imports.record_transcript_imports(db, done)
    return reports


def _new_lines(
    path: Path, offset: int, known_identity: str | None
) -> tuple[str, int, list[tuple[int, bytes]], int]:
    """(identity, offset read from, complete new lines, offset after them) of a file.

    A file replaced or truncated since `offset` is read again from the start (the usage
    key forbids double counts); an unchanged one is not read at all.
    """
    identity, size = file_identity(path)
    if known_identity != identity or size < offset:
        offset = 0
    if size == offset:
        return identity, offset, [], offset
    lines, new_offset = read_complete_lines(path, offset)
    return identity, offset, lines, new_offset


def parse_line(raw: bytes) -> Any:
    """The JSON value of one transcript line, or None if it is not JSON.

    pydantic-core's parser is a good deal faster than `json.loads` and gives the same
    values; where it refuses a line (a byte-order mark, a lone surrogate escape, another
    encoding), `json.loads` decides, so what counts as a bad line is unchanged.
    """
    try:
        return from_json(raw)
    except ValueError:
        pass
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, too deep
        return None


async def _import_records(
    batch: _Batch,
    transcript: TranscriptFile,
    records: list[dict[str, Any]],
    report: ImportReport,
) -> uuid.UUID:
    db, resolver = batch.db, batch.resolver
    facts = session_facts(records)
    slug = transcript.session_id[:255]
    parent = batch.sessions.get(slug) or await _existing_session(db, slug)
    if parent is None:
        parent_id, project_id = await resolver.session(transcript.session_id, facts.cwd)
        parent = await db.get(Session, parent_id)
        assert parent is not None  # ensured just now, in this transaction
    else:  # found: only its project (and a new project's row) is left to resolve
        project_id = await resolver.project_id(facts.cwd)
    batch.sessions[slug] = parent
    session, role = parent, MAIN_ROLE
    if transcript.kind == TranscriptKind.SUBAGENT and transcript.agent_id:
        session = await _child(batch, parent, project_id, transcript.agent_id, None)
    elif transcript.kind == TranscriptKind.COMPACT:
        role = COMPACT_ROLE
    report.sessions.add(transcript.session_id)
    name = session.name
    if facts.slug and transcript.kind == TranscriptKind.MAIN and name is None:
        name = facts.slug[:255]

    entries = dedupe(
        entry
        for entry in map(parse_usage, (r for r in records if r.get("type") == "assistant"))
        if entry is not None
    )
    report.responses += len(entries)
    await _store_usage(db, session, _agent_type(session, role, name), role, entries)
    batch.changed.add(session.id)
    if transcript.kind == TranscriptKind.MAIN:
        launches = [launch for launch in parse_subagent_launches(records) if launch.agent_id]
        for launch in launches:
            await _attach_launch(batch, session, project_id, launch)
    seen = batch.seen(session.id)
    seen.widen(facts.first_at, facts.last_at)
    for key, value in (("claude_version", facts.version), ("git_branch", facts.git_branch)):
        if value:
            seen.metadata[key] = value
    if name is not None:
        seen.name = name
    return session.id


async def _existing_session(db: AsyncSession, slug: str) -> Session | None:
    """The session with this slug, or None: one read where the resolver takes three."""
    try:
        return await session_crud.get_session_by_slug(db, slug)
    except NotFoundError:
        return None


async def _child(
    batch: _Batch,
    parent: Session,
    project_id: uuid.UUID | None,
    agent_id: str,
    agent_type: str | None,
) -> Session:
    """A subagent's child session, created and linked to `parent` if it is not yet."""
    slug = subagent_slug(parent.session_slug, agent_id)[:255]
    child = batch.sessions.get(slug)
    if child is None:
        child = await _existing_session(batch.db, slug)
        # Linked already: then the resolver has nothing to do, and two reads replace
        # its create-or-find and a link attempt the unique edge would refuse.
        if child is None or not await relationship_crud.list_relationships(
            batch.db, parent_session_id=parent.id, child_session_id=child.id
        ):
            child_id = await batch.resolver.subagent(
                parent.session_slug, agent_id, parent.id, project_id, agent_type
            )
            child = await batch.db.get(Session, child_id)
            assert child is not None  # ensured just now, in this transaction
        batch.sessions[slug] = child
    return child


def _agent_type(session: Session, role: str, name: str | None) -> str:
    if role == COMPACT_ROLE:
        return COMPACT_ROLE
    if session.parent_session_id is not None:
        return name or "subagent"
    return MAIN_ROLE


async def _store_usage(
    db: AsyncSession,
    session: Session,
    agent_type: str,
    role: str,
    entries: list[UsageEntry],
) -> None:
    agents: dict[str, uuid.UUID] = {}
    for entry in entries:
        if entry.model not in agents:
            agents[entry.model] = agent_key(session.id, role, entry.model)
    # The id `claude --resume` takes: only a top-level session has one.
    resume = (
        session.session_slug if role == MAIN_ROLE and session.parent_session_id is None else None
    )
    await usage_records.ensure_usage_agents(
        db,
        {
            agent_id: AgentCreate(
                session_id=session.id,
                agent_type=agent_type[:64],
                model=model[:128],
                sdk_session_id=resume,
                status=AgentStatus.COMPLETE,
                agent_metadata={"source": SOURCE_APP, "role": role},
            )
            for model, agent_id in agents.items()
        },
    )
    # A response seen again (a replay, or a later line of it) keeps its first session
    # and agent; only a line with more tokens replaces the counts (see add_usage_records).
    await usage_records.add_usage_records(
        db,
        [
            _usage_row(
                entry,
                session.id,
                agents[entry.model],
                price_usage(
                    entry.model, entry.usage, entry.reported_cost_usd, at=entry.occurred_at
                ),
            )
            for entry in entries
        ],
    )


def _usage_row(
    entry: UsageEntry, session_id: uuid.UUID, agent_id: uuid.UUID, cost: Cost
) -> dict[str, Any]:
    # A mapping, not a UsageRecordCreate: add_usage_records validates it and then names
    # the offending row and field (a count past BIGINT, say) in its error.
    return {
        "session_id": session_id,
        "agent_id": agent_id,
        "message_id": entry.message_id[:255],
        "request_id": entry.request_id[:255],
        "model": entry.model[:128],
        "input_tokens": entry.input_tokens,
        "output_tokens": entry.output_tokens,
        "cache_creation_tokens": entry.cache_creation_tokens,
        "cache_read_tokens": entry.cache_read_tokens,
        "cost": to_money(cost.amount or 0),
        "cost_source": cost.source,
        "cost_is_estimate": cost.estimate,
        "occurred_at": entry.occurred_at,
    }


async def _attach_launch(
    batch: _Batch, parent: Session, project_id: uuid.UUID | None, launch: SubagentLaunch
) -> None:
    """Name and describe a subagent's child session, and complete its last response."""
    assert launch.agent_id is not None
    db = batch.db
    child = await _child(batch, parent, project_id, launch.agent_id, launch.subagent_type)
    name, title = child.name, child.title
    if launch.subagent_type and name in (None, "subagent"):
        name = launch.subagent_type[:255]
        for agent in await agent_crud.list_agents(db, session_id=child.id, agent_type="subagent"):
            await agent_crud.update_agent(db, agent.id, {"agent_type": launch.subagent_type[:64]})
    if launch.description and title is None:
        title = launch.description[:500]
    if await _complete_last_response(db, child.id, launch.final_usage):
        batch.changed.add(child.id)
    seen = batch.seen(child.id)
    if name is not None and name != child.name:
        seen.name = name
    if title is not None:
        seen.title = title


async def _complete_last_response(
    db: AsyncSession, child_id: uuid.UUID, usage: dict[str, Any] | None
) -> bool:
    """Give a subagent's last response the output tokens its Task result reports.

    The subagent's own last line often carries a streaming placeholder; the result
    reports the same response (same input counts) in full. Returns whether it changed.
    """
    if not usage:
        return False
    counts = {
        key: usage.get(key) if isinstance(usage.get(key), int) else 0
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        )
    }
    last = await usage_records.get_latest_usage_record(
        db,
        child_id,
        input_tokens=counts["input_tokens"],
        cache_creation_tokens=counts["cache_creation_input_tokens"],
        cache_read_tokens=counts["cache_read_input_tokens"],
    )
    if last is None or counts["output_tokens"] <= last.output_tokens:
        return False
    # The same response with its full output: more tokens, so the upsert takes it.
    cost = Cost(last.cost, CostSource(last.cost_source).value, last.cost_is_estimate)
    if last.cost_source != CostSource.REPORTED:
        cost = price_usage(last.model, usage, None, at=last.occurred_at)
    await usage_records.add_usage_records(
        db,
        [
            UsageRecordCreate(
                session_id=last.session_id,
                agent_id=last.agent_id,
                message_id=last.message_id,
                request_id=last.request_id,
                model=last.model,
                input_tokens=last.input_tokens,
                output_tokens=counts["output_tokens"],
                cache_creation_tokens=last.cache_creation_tokens,
                cache_read_tokens=last.cache_read_tokens,
                cost=to_money(cost.amount or 0),
                cost_source=CostSource(cost.source),
                cost_is_estimate=cost.estimate,
                occurred_at=last.occurred_at,
            )
        ],
    )
    return True
