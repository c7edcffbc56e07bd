"""Import of Claude Code transcripts: sessions, subagents, tokens and cost, incrementally.

Each file is read from where the last import stopped (`transcript_imports`), complete
lines only, one transaction per file. Usage is counted once per model response, keyed
by (message id, request id) across every file, keeping the line with the most tokens
(an early line's `output_tokens` is a streaming placeholder). The parent's Task/Agent
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
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.claude.events import SOURCE_APP, SessionResolver, cover_span
from session_db.claude.pricing import price_usage
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
from session_db.crud._base import BULK_CHUNK, upsert_insert
from session_db.database import get_async_session
from session_db.models import (
    Agent,
    AgentStatus,
    CostSource,
    Session,
    TranscriptImport,
    UsageRecord,
)
from session_db.models.base import TOKEN_COLUMNS, new_id, to_money, utcnow

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
) -> ImportReport:
    """Import every transcript under `paths` (folders or files), each from where it stopped."""
    report = ImportReport()
    for transcript in transcripts_under(paths):
        report.files += 1
        try:
            async with get_async_session(engine) as db:
                await import_file(db, transcript, report)
        except OSError as error:  # vanished or unreadable since discovery: skip it
            report.errors.append((str(transcript.path), str(error)))
            logger.warning("could not read %s: %s", transcript.path, error)
        if progress is not None:
            progress(transcript, report)
    return report


async def import_file(db: AsyncSession, transcript: TranscriptFile, report: ImportReport) -> None:
    """Import the new lines of one transcript file inside the caller's transaction."""
    path = transcript.path
    identity, size = await asyncio.to_thread(file_identity, path)
    progress = await _progress_row(db, str(path))
    offset = progress.byte_offset
    if progress.file_identity != identity or size < offset:
        offset = 0  # replaced or truncated: read again; the usage key forbids double counts
    lines, new_offset = (
        ([], offset)
        if size == offset
        else await asyncio.to_thread(read_complete_lines, path, offset)
    )
    if not lines:
        report.unchanged += 1
        progress.file_identity = identity
        return
    records: list[dict[str, Any]] = []
    for _, raw in lines:
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            report.bad_lines += 1
            continue
        if isinstance(record, dict):
            records.append(record)
    report.lines += len(lines)
    session_id = await _import_records(db, transcript, records, report)
    progress.session_id = session_id
    progress.file_identity = identity
    progress.byte_offset = new_offset
    progress.lines_read = (progress.lines_read if offset else 0) + len(lines)
    progress.last_imported_at = utcnow()
    db.add(progress)
    await db.flush()


async def _progress_row(db: AsyncSession, path: str) -> TranscriptImport:
    await db.exec(
        upsert_insert(db, TranscriptImport)
        .values(id=new_id(), path=path[:1024], byte_offset=0, lines_read=0)
        .on_conflict_do_nothing(index_elements=[TranscriptImport.path])
    )
    # Locked on PostgreSQL, so two imports of one file take turns (SQLite's write
    # transaction already does that).
    statement = select(TranscriptImport).where(TranscriptImport.path == path[:1024])
    return (await db.exec(statement.with_for_update())).one()


async def _import_records(
    db: AsyncSession,
    transcript: TranscriptFile,
    records: list[dict[str, Any]],
    report: ImportReport,
) -> uuid.UUID:
    facts = session_facts(records)
    resolver = SessionResolver(db)
    parent_id, project_id = await resolver.session(transcript.session_id, facts.cwd)
    session_id, role = parent_id, MAIN_ROLE
    if transcript.kind == TranscriptKind.SUBAGENT and transcript.agent_id:
        session_id = await resolver.subagent(
            transcript.session_id, transcript.agent_id, parent_id, project_id, None
        )
    elif transcript.kind == TranscriptKind.COMPACT:
        role = COMPACT_ROLE
    report.sessions.add(transcript.session_id)
    session = await db.get(Session, session_id)
    assert session is not None  # ensured above, in this transaction
    cover_span(session, facts.first_at, facts.last_at)
    metadata = dict(session.session_metadata or {})
    for key, value in (("claude_version", facts.version), ("git_branch", facts.git_branch)):
        if value:
            metadata[key] = value
    if facts.slug and transcript.kind == TranscriptKind.MAIN and session.name is None:
        session.name = facts.slug[:255]
    session.session_metadata = metadata

    entries = dedupe(entry for entry in map(parse_usage, records) if entry is not None)
    report.responses += len(entries)
    await _store_usage(db, session, role, entries)
    if transcript.kind == TranscriptKind.MAIN:
        launches = [launch for launch in parse_subagent_launches(records) if launch.agent_id]
        for launch in launches:
            await _attach_launch(db, resolver, session, project_id, launch)
    await refresh_usage_totals(db, session_id)
    return session_id


async def _ensure_agent(
    db: AsyncSession, session: Session, role: str, model: str, agent_type: str
) -> uuid.UUID:
    agent_id = agent_key(session.id, role, model)
    await db.exec(
        upsert_insert(db, Agent)
        .values(
            id=agent_id,
            session_id=session.id,
            agent_type=agent_type[:64],
            model=model[:128],
            # The id `claude --resume` takes: only a top-level session has one.
            sdk_session_id=(
                session.session_slug
                if role == MAIN_ROLE and session.parent_session_id is None
                else None
            ),
            status=AgentStatus.COMPLETE.value,
            agent_metadata={"source": SOURCE_APP, "role": role},
        )
        .on_conflict_do_nothing(index_elements=[Agent.id])
    )
    return agent_id


def _agent_type(session: Session, role: str) -> str:
    if role == COMPACT_ROLE:
        return COMPACT_ROLE
    if session.parent_session_id is not None:
        return session.name or "subagent"
    return MAIN_ROLE


async def _store_usage(
    db: AsyncSession,
    session: Session,
    role: str,
    entries: list[UsageEntry],
) -> None:
    rows = []
    agents: dict[str, uuid.UUID] = {}
    for entry in entries:
        if entry.model not in agents:
            agents[entry.model] = await _ensure_agent(
                db, session, role, entry.model, _agent_type(session, role)
            )
        cost = price_usage(entry.model, entry.usage, entry.reported_cost_usd, at=entry.occurred_at)
        rows.append(
            {
                "id": new_id(),
                "session_id": session.id,
                "agent_id": agents[entry.model],
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
                "updated_at": utcnow(),
            }
        )
    table = UsageRecord.__table__.c  # type: ignore[attr-defined]
    for start in range(0, len(rows), BULK_CHUNK):
        insert = upsert_insert(db, UsageRecord).values(rows[start : start + BULK_CHUNK])
        new_total = sum(insert.excluded[column] for column in TOKEN_COLUMNS)
        old_total = sum(table[column] for column in TOKEN_COLUMNS)
        # A response seen again (a replay, or a later line of it) keeps its first session
        # and agent; only a line with more tokens replaces the counts.
        changed = (*TOKEN_COLUMNS, "cost", "cost_source", "cost_is_estimate", "updated_at")
        await db.exec(
            insert.on_conflict_do_update(
                index_elements=[table.message_id, table.request_id],
                set_={name: insert.excluded[name] for name in changed},
                where=new_total > old_total,
            )
        )


async def _attach_launch(
    db: AsyncSession,
    resolver: SessionResolver,
    parent: Session,
    project_id: uuid.UUID | None,
    launch: SubagentLaunch,
) -> None:
    """Name and describe a subagent's child session, and complete its last response."""
    assert launch.agent_id is not None
    child_id = await resolver.subagent(
        parent.session_slug, launch.agent_id, parent.id, project_id, launch.subagent_type
    )
    child = await db.get(Session, child_id)
    assert child is not None
    if launch.subagent_type and child.name in (None, "subagent"):
        child.name = launch.subagent_type[:255]
        await db.exec(
            sa.update(Agent)
            .where(Agent.session_id == child_id, Agent.agent_type == "subagent")
            .values(agent_type=launch.subagent_type[:64])
        )
    if launch.description and child.title is None:
        child.title = launch.description[:500]
    usage = launch.final_usage
    if not usage:
        return
    counts = {
        key: usage.get(key) if isinstance(usage.get(key), int) else 0
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        )
    }
    last = (
        await db.exec(
            select(UsageRecord)
            .where(
                UsageRecord.session_id == child_id,
                UsageRecord.input_tokens == counts["input_tokens"],
                UsageRecord.cache_creation_tokens == counts["cache_creation_input_tokens"],
                UsageRecord.cache_read_tokens == counts["cache_read_input_tokens"],
            )
            .order_by(sa.desc(UsageRecord.occurred_at))
        )
    ).first()
    if last is None or counts["output_tokens"] <= last.output_tokens:
        return
    last.output_tokens = counts["output_tokens"]
    if last.cost_source != CostSource.REPORTED:
        cost = price_usage(last.model, usage, None, at=last.occurred_at)
        last.cost = to_money(cost.amount or 0)
        last.cost_source = CostSource(cost.source)
        last.cost_is_estimate = cost.estimate
    db.add(last)
    await db.flush()
    await refresh_usage_totals(db, child_id)


async def refresh_usage_totals(db: AsyncSession, session_id: uuid.UUID) -> None:
    """Set a session's and its agents' token and cost totals from its usage records."""
    rows = (
        await db.exec(
            select(
                UsageRecord.agent_id,
                sa.func.sum(UsageRecord.input_tokens),
                sa.func.sum(UsageRecord.output_tokens),
                sa.func.sum(UsageRecord.cache_creation_tokens),
                sa.func.sum(UsageRecord.cache_read_tokens),
                sa.func.sum(UsageRecord.cost),
                sa.func.count(),
                sa.func.min(sa.cast(UsageRecord.cost_is_estimate, sa.Integer)),
            )
            .where(UsageRecord.session_id == session_id)
            .group_by(UsageRecord.agent_id)
        )
    ).all()
    total_tokens, total_cost = 0, Decimal(0)
    for agent_id, inputs, outputs, writes, reads, cost, count, all_estimates in rows:
        tokens = int(inputs or 0) + int(outputs or 0) + int(writes or 0) + int(reads or 0)
        amount = to_money(cost or 0)
        total_tokens += tokens
        total_cost += amount
        agent = await db.get(Agent, agent_id) if agent_id is not None else None
        if agent is None:
            continue
        agent.input_tokens = int(inputs or 0)
        agent.output_tokens = int(outputs or 0)
        agent.cache_creation_tokens = int(writes or 0)
        agent.cache_read_tokens = int(reads or 0)
        agent.total_cost = amount
        agent.num_turns = int(count)
        agent.agent_metadata = {
            **(agent.agent_metadata or {}),
            "responses": int(count),
            "cost_is_estimate": bool(all_estimates),
        }
        db.add(agent)
    session = await db.get(Session, session_id)
    if session is not None:
        session.total_tokens = total_tokens
        session.total_cost = to_money(total_cost)
        db.add(session)
    await db.flush()
