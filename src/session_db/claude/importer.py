"""Import of Claude Code transcripts: sessions, subagents, tokens and cost, incrementally.

Each file is read from where the last import stopped (`transcript_imports`), complete
lines only. The files of one Claude Code session (its subagents', its compaction runs'
and its own) are imported in one transaction, so the session is resolved, and its
totals refreshed, once for all of them; consecutive sessions share that transaction,
up to a bound (`BATCH_FILES`, `BATCH_BYTES`), so its fixed cost is paid once for many
small sessions. A transient database fault runs that whole transaction again
(`retry_transient`). Any other fault is one file's own problem: the sessions are then
imported one transaction each, and the faulty session's files one each, so only the
file at fault is left out, recorded in the report's errors with its progress not
advanced, and the import goes on. Usage is counted once per model response, keyed by (message id,
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
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.claude.events import SOURCE_APP, subagent_link, subagent_session, subagent_slug
from session_db.claude.pricing import Cost, price_usage
from session_db.claude.transcript import (
    CostState,
    Names,
    PullRequest,
    SubagentLaunch,
    TranscriptFile,
    TranscriptKind,
    TranscriptScan,
    UsageEntry,
    classify,
    dedupe,
    discover,
    parse_line,
    read_complete_lines,
    scan_lines,
)
from session_db.crud import agents as agent_crud
from session_db.crud import projects as project_crud
from session_db.crud import relationships as relationship_crud
from session_db.crud import sessions as session_crud
from session_db.crud import transcript_imports, usage_records
from session_db.crud.sessions import SessionActivity, record_session_activity
from session_db.database import get_async_session
from session_db.errors import (
    DatabaseUnavailableError,
    SessionDBError,
    is_transient,
)
from session_db.models import (
    Agent,
    AgentCreate,
    AgentStatus,
    CostSource,
    Project,
    Session,
    TranscriptImport,
    UsageRecord,
)
from session_db.models.base import clip, to_money, utcnow
from session_db.models.usage import UsageRecordCreate
from session_db.retry import retry_transient

logger = logging.getLogger(__name__)

# Namespace of the agent ids derived from (session, role, model), so re-imports upsert.
AGENT_NAMESPACE = uuid.UUID("5b0f3c1e-8a0e-4f7e-9b7e-0c1a2d3e4f50")
MAIN_ROLE, COMPACT_ROLE = "main", "compact"
# Keys of a session's metadata the transcripts fill.
NAMES_KEY = "claude_titles"  # the latest custom title, AI title and summary
PULL_REQUESTS_KEY = "pull_requests"  # [{number, url, repository}], one per pull request
COST_STATE_KEY = "claude_cost_state"  # the latest cost-state: the client's own figures
# The request id of a response seen live (the Agent SDK's messages carry none), before
# any transcript line of it: that line, when it comes, is the response instead.
LIVE_REQUEST_ID = "<live>"

__all__ = [
    "LIVE_REQUEST_ID",
    "ImportReport",
    "agent_key",
    "file_identity",
    "import_entries",
    "import_file",
    "import_files",
    "import_transcripts",
    "parse_line",
    "transcripts_under",
]


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

    Consecutive sessions' files are one transaction (up to `BATCH_FILES` files and
    `BATCH_BYTES` of new lines), run again from the start after a transient database
    fault (up to `attempts` tries). A file that fails otherwise (unreadable, or holding a
    row the database refuses) is listed in the report's `errors` and left for the next
    import; the other files, of its session too, are imported all the same.

    Raises:
        DatabaseUnavailableError: The database stayed unreachable for all `attempts`;
            what was imported before stays imported.
    """
    report = ImportReport()
    groups = _by_session(transcripts_under(paths))
    # The next transaction's files are read while this one's are written: reading is CPU
    # work, and so much of writing is waiting for the database that the two overlap. What
    # is read ahead is checked against the claimed progress (and the file) before use.
    known = await _known_progress(engine, groups) if len(groups) > 1 else None
    batches = _batches(groups, known or {})
    ahead: asyncio.Future[dict[Path, _ReadAhead]] | None = None
    try:
        for index, batch in enumerate(batches):
            current, ahead = ahead, None
            if known is not None and index + 1 < len(batches):
                following = [transcript for group in batches[index + 1] for transcript in group]
                ahead = asyncio.ensure_future(asyncio.to_thread(_read_ahead, following, known))
            prefetched = await current if current is not None else {}
            for transcript, outcome in await _import_batch(engine, batch, attempts, prefetched):
                report.files += 1
                if isinstance(outcome, str):
                    report.errors.append((str(transcript.path), outcome))
                    logger.warning("could not import %s: %s", transcript.path, outcome)
                else:
                    report.add(outcome)
                if progress is not None:
                    progress(transcript, report)
    finally:
        if ahead is not None:  # stopped early: nobody waits for what was read ahead
            ahead.cancel()
    return report


# Sessions go to the database several to a transaction, up to these bounds: a
# transaction's fixed cost (its claim, lookups, totals refresh and commit) is most of
# what a small session costs, and the bounds keep what one holds in memory small.
BATCH_FILES = 64
BATCH_BYTES = 8 * 1024 * 1024


def _batches(
    groups: list[list[TranscriptFile]], known: Mapping[Path, tuple[int, str | None]]
) -> list[list[list[TranscriptFile]]]:
    """Consecutive sessions' file groups, as many to a transaction as the bounds allow.

    A group's size is its files' bytes past their last committed offset (all of a file
    without one); a session larger than a bound is a transaction of its own.
    """
    batches: list[list[list[TranscriptFile]]] = []
    files = size = 0
    for group in groups:
        new_bytes = sum(_unread_bytes(transcript.path, known) for transcript in group)
        if batches and files + len(group) <= BATCH_FILES and size + new_bytes <= BATCH_BYTES:
            batches[-1].append(group)
            files, size = files + len(group), size + new_bytes
        else:
            batches.append([group])
            files, size = len(group), new_bytes
    return batches


def _unread_bytes(path: Path, known: Mapping[Path, tuple[int, str | None]]) -> int:
    """How much of a file lies past its last committed offset (0 if it cannot be read)."""
    try:
        size = path.stat().st_size
    except OSError:
        return 0  # reported when it is imported
    offset = known.get(path, (0, None))[0]
    return size - offset if size >= offset else size


async def _import_batch(
    engine: AsyncEngine,
    batch: list[list[TranscriptFile]],
    attempts: int | None,
    prefetched: dict[Path, _ReadAhead],
) -> list[tuple[TranscriptFile, ImportReport | str]]:
    """Import sessions' files in one transaction, or each session alone if one is at fault.

    Returns each file with what its import did, or why it failed.
    """
    if len(batch) == 1:
        return await _import_group(engine, batch[0], attempts, prefetched)
    transcripts = [transcript for group in batch for transcript in group]
    try:
        done = await _committed(engine, transcripts, attempts, prefetched)
        return list(zip(transcripts, done, strict=True))
    except Exception as error:
        if is_transient(error):
            raise
    outcomes: list[tuple[TranscriptFile, ImportReport | str]] = []
    for group in batch:  # find the session at fault; the others go in on their own
        outcomes.extend(await _import_group(engine, group, attempts, prefetched))
    return outcomes


def _by_session(transcripts: list[TranscriptFile]) -> list[list[TranscriptFile]]:
    """Consecutive transcripts of one session together (they come sorted by session)."""
    groups: list[list[TranscriptFile]] = []
    for transcript in transcripts:
        if groups and groups[-1][0].session_id == transcript.session_id:
            groups[-1].append(transcript)
        else:
            groups.append([transcript])
    return groups


@dataclass(frozen=True)
class _ReadAhead:
    """A file's new lines, read before its progress row was claimed (and locked)."""

    start: tuple[int, str | None]  # the (offset, identity) it was read from
    read: tuple[str, int, TranscriptScan | None, int]  # what `_read_new_lines` returned


async def _known_progress(
    engine: AsyncEngine, groups: list[list[TranscriptFile]]
) -> dict[Path, tuple[int, str | None]] | None:
    """Where the files of these groups stopped, as last committed (a plain read).

    None where it cannot be read: then nothing is read ahead, and the imports themselves
    meet (and retry) whatever fault there is.
    """
    paths = {str(transcript.path): transcript.path for group in groups for transcript in group}
    try:
        async with get_async_session(engine) as db:
            rows = await transcript_imports.get_transcript_imports(db, list(paths))
    except Exception:  # an optimisation only: no fault of it may stop the import
        return None
    return {paths[path]: (row.byte_offset, row.file_identity) for path, row in rows.items()}


def _read_ahead(
    transcripts: list[TranscriptFile], known: dict[Path, tuple[int, str | None]]
) -> dict[Path, _ReadAhead]:
    """Read files' new lines from their last committed progress; skip what fails."""
    found: dict[Path, _ReadAhead] = {}
    for transcript in transcripts:
        start = known.get(transcript.path, (0, None))
        try:
            found[transcript.path] = _ReadAhead(start, _read_new_lines(transcript.path, *start))
        except Exception:  # read again when imported, and reported there
            continue
    return found


async def _import_group(
    engine: AsyncEngine,
    group: list[TranscriptFile],
    attempts: int | None,
    prefetched: dict[Path, _ReadAhead] | None = None,
) -> list[tuple[TranscriptFile, ImportReport | str]]:
    """Import one session's files: together, or each alone if one of them is at fault.

    Returns each file with what its import did, or why it failed.
    """
    try:
        return list(zip(group, await _committed(engine, group, attempts, prefetched), strict=True))
    except Exception as error:
        if is_transient(error):
            raise
        if len(group) == 1:
            return [(group[0], _describe(error))]
    outcomes: list[tuple[TranscriptFile, ImportReport | str]] = []
    for transcript in group:  # find the file at fault; the others go in on their own
        try:
            done = await _committed(engine, [transcript], attempts, prefetched)
            outcomes.append((transcript, done[0]))
        except Exception as error:
            if is_transient(error):
                raise
            outcomes.append((transcript, _describe(error)))
    return outcomes


async def _committed(
    engine: AsyncEngine,
    transcripts: list[TranscriptFile],
    attempts: int | None,
    prefetched: dict[Path, _ReadAhead] | None = None,
) -> list[ImportReport]:
    """Import files in one transaction, retried whole after transient faults.

    Raises:
        DatabaseUnavailableError: Still transient after every attempt.
        Exception: The first permanent fault, which rolled everything back.
    """

    async def work() -> list[ImportReport]:
        async with get_async_session(engine) as db:
            return await import_files(db, transcripts, prefetched)

    sessions = {transcript.session_id for transcript in transcripts}
    if len(transcripts) == 1:
        what = str(transcripts[0].path)
    elif len(sessions) == 1:
        what = f"{len(transcripts)} transcripts of session {transcripts[0].session_id}"
    else:
        what = f"{len(transcripts)} transcripts of {len(sessions)} sessions"
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
class _SessionRow:
    """What the import reads of a session row, without keeping an ORM object.

    The session's row is written by Core statements (`record_session_activity`,
    `refresh_usage_totals`): an ORM object kept alongside would only go stale, and make
    the refresh write it through the ORM.
    """

    id: uuid.UUID
    session_slug: str
    name: str | None
    title: str | None
    parent_session_id: uuid.UUID | None
    project_id: uuid.UUID | None
    session_metadata: dict[str, Any] | None
    last_activity_at: datetime | None = None

    @classmethod
    def of(cls, session: Session) -> _SessionRow:
        """The fields of a loaded session."""
        return cls(
            session.id,
            session.session_slug,
            session.name,
            session.title,
            session.parent_session_id,
            session.project_id,
            session.session_metadata,
            session.last_activity_at,
        )


@dataclass
class _File:
    """One file of a batch: its progress row, what its new lines hold, where they go."""

    transcript: TranscriptFile
    row: TranscriptImport | None  # None: lines given, not read from a file
    identity: str
    offset: int  # where the new lines start
    new_offset: int
    scan: TranscriptScan | None  # None: no new lines
    report: ImportReport
    session: _SessionRow | None = None  # where its usage goes
    role: str = MAIN_ROLE
    agent_type: str = MAIN_ROLE


@dataclass
class _Batch:
    """What the files of one transaction share: projects, sessions, what changed."""

    db: AsyncSession
    projects: dict[str, uuid.UUID] = field(default_factory=dict)  # by folder
    sessions: dict[str, _SessionRow] = field(default_factory=dict)  # by slug
    created: set[uuid.UUID] = field(default_factory=set)  # top sessions this batch created
    changed: set[uuid.UUID] = field(default_factory=set)  # sessions whose totals to refresh
    # What the files saw of each session (span, names, metadata), written once at the end.
    activity: dict[uuid.UUID, SessionActivity] = field(default_factory=dict)
    # Subagent types the batch's launches name, by (session, agent id): a new child gets
    # its type.
    launched: dict[tuple[str, str], str] = field(default_factory=dict)
    # Launches whose subagent's last response was completed before it was written.
    completed: set[str] = field(default_factory=set)
    # The sessions the files name, as stored when the batch began (one lookup for all):
    # one missing here is created, or found by the create's conflict if it appeared since.
    stored: dict[str, _SessionRow] = field(default_factory=dict)

    def seen(self, session_id: uuid.UUID) -> SessionActivity:
        """The activity recorded so far for a session of this batch."""
        return self.activity.setdefault(session_id, SessionActivity())


async def import_files(
    db: AsyncSession,
    transcripts: list[TranscriptFile],
    prefetched: Mapping[Path, _ReadAhead] | None = None,
) -> list[ImportReport]:
    """Import the new lines of transcript files inside the caller's transaction.

    Meant for whole sessions' files, each session's subagents first (as
    `transcripts_under` orders them): a session's files share its rows, the usage of all
    is de-duplicated together and written in one statement per page of rows, and the
    totals are refreshed once at the end.
    `prefetched` holds files read ahead (by `import_transcripts`); one is used only if it
    was read from the offset and identity claimed now and the file is still that file.

    Returns:
        What each file's import did, in order.
    """
    claimed = await transcript_imports.claim_transcript_imports(
        db, [str(transcript.path) for transcript in transcripts]
    )
    batch = _Batch(db)
    files: list[_File] = []
    done: list[TranscriptImport] = []
    for transcript in transcripts:
        row = claimed[str(transcript.path)]
        ahead = (prefetched or {}).get(transcript.path)
        if ahead is not None and await asyncio.to_thread(_still_valid, ahead, transcript, row):
            identity, offset, scan, new_offset = ahead.read
        else:
            identity, offset, scan, new_offset = await asyncio.to_thread(
                _read_new_lines, transcript.path, row.byte_offset, row.file_identity
            )
        file = _File(transcript, row, identity, offset, new_offset, scan, ImportReport())
        files.append(file)
        if scan is None:
            file.report.unchanged += 1
            if row.file_identity != identity:
                row.file_identity = identity
                done.append(row)
            continue
        file.report.lines += scan.lines
        file.report.bad_lines += scan.bad_lines
    active = [file for file in files if file.scan is not None]
    await _import_scanned(batch, active)
    for file in active:
        assert file.scan is not None and file.session is not None and file.row is not None
        row = file.row
        row.session_id = file.session.id
        row.lines_read = (row.lines_read if file.offset else 0) + file.scan.lines
        row.file_identity, row.byte_offset = file.identity, file.new_offset
        row.last_imported_at = utcnow()
        done.append(row)
    await transcript_imports.record_transcript_imports(db, done)
    return [file.report for file in files]


async def import_entries(
    db: AsyncSession, scanned: Sequence[tuple[TranscriptFile, TranscriptScan]]
) -> list[ImportReport]:
    """Import lines read elsewhere (a session store's entries) in the caller's transaction.

    Each transcript (its path only names it) comes with what its new lines hold
    (`scan_lines`); they go where a file's new lines would, by the same rules, with one
    of the same totals refresh. No file progress is kept: the caller knows what is new.

    Returns:
        What each transcript's import did, in order.
    """
    batch = _Batch(db)
    files = []
    for transcript, scan in scanned:
        report = ImportReport(lines=scan.lines, bad_lines=scan.bad_lines)
        files.append(_File(transcript, None, "", 0, 0, scan, report))
    await _import_scanned(batch, files)
    return [file.report for file in files]


async def _import_scanned(batch: _Batch, files: list[_File]) -> None:
    """Store what the files' new lines hold: sessions, usage, launches, names, totals."""
    for file in files:
        assert file.scan is not None
        if file.transcript.kind == TranscriptKind.MAIN:
            for launch in file.scan.launches:
                if launch.agent_id and launch.subagent_type:
                    key = (file.transcript.session_id, launch.agent_id)
                    batch.launched.setdefault(key, launch.subagent_type)
    await _look_up_sessions(batch, files)
    await _place(batch, files)
    await _store_usage(batch, files)
    await _children(batch, _launched(files))  # the children the launches name, at once
    for file in files:
        assert file.scan is not None and file.session is not None
        if file.transcript.kind == TranscriptKind.MAIN:
            for launch in file.scan.launches:
                if launch.agent_id:
                    await _attach_launch(batch, file.session, launch)
        _note_activity(batch, file)
    reported = _reported_costs(batch)  # adds its sessions to batch.changed
    await record_session_activity(batch.db, batch.activity)
    await usage_records.refresh_usage_totals(batch.db, batch.changed, reported=reported or None)


def _still_valid(ahead: _ReadAhead, transcript: TranscriptFile, row: TranscriptImport) -> bool:
    """Whether lines read ahead are the ones to import now: read from the claimed progress,
    and the file is still the one they came from (same identity, no shorter).

    Raises:
        OSError: The file cannot be read (gone since), as reading it now would.
    """
    if ahead.start != (row.byte_offset, row.file_identity):
        return False  # another import moved it on meanwhile
    identity, size = file_identity(transcript.path)
    return identity == ahead.read[0] and size >= ahead.read[3]


def _read_new_lines(
    path: Path, offset: int, known_identity: str | None
) -> tuple[str, int, TranscriptScan | None, int]:
    """(identity, offset read from, what the complete new lines hold, offset after them).

    A file replaced or truncated since `offset` is read again from the start (the usage
    key forbids double counts); an unchanged one is not read at all. None: no new line.
    """
    identity, size = file_identity(path)
    if known_identity != identity or size < offset:
        offset = 0
    if size == offset:
        return identity, offset, None, offset
    lines, new_offset = read_complete_lines(path, offset)
    if not lines:
        return identity, offset, None, new_offset
    return identity, offset, scan_lines(raw for _, raw in lines), new_offset


async def _place(batch: _Batch, files: list[_File]) -> None:
    """Find or create the sessions the files' lines go to, and each file's role.

    Set-based: the sessions not stored yet are created in one statement, then the new
    subagents' child sessions in one more, and linked to their parents in one call.
    """
    tops: dict[str, str | None] = {}  # a session to create -> the cwd its first file saw
    for file in files:
        assert file.scan is not None
        slug = _top_slug(file.transcript)
        if slug not in batch.sessions and slug not in tops:
            stored = batch.stored.get(slug)
            if stored is not None:
                batch.sessions[slug] = stored
            else:
                tops[slug] = file.scan.facts.cwd
    await _new_sessions(batch, tops)
    wanted: list[_Wanted] = []
    for file in files:
        assert file.scan is not None
        transcript = file.transcript
        file.session = batch.sessions[_top_slug(transcript)]
        if transcript.kind == TranscriptKind.SUBAGENT and transcript.agent_id:
            kind = batch.launched.get((transcript.session_id, transcript.agent_id))
            wanted.append(_Wanted(file.session, file.scan.facts.cwd, transcript.agent_id, kind))
    await _children(batch, wanted)
    for file in files:
        assert file.session is not None
        transcript = file.transcript
        file.role = MAIN_ROLE
        if transcript.kind == TranscriptKind.SUBAGENT and transcript.agent_id:
            file.session = batch.sessions[_child_slug(file.session, transcript.agent_id)]
        elif transcript.kind == TranscriptKind.COMPACT:
            file.role = COMPACT_ROLE
        file.report.sessions.add(transcript.session_id)
        file.agent_type = _agent_type(file.session, file.role, file.session.name)


async def _look_up_sessions(batch: _Batch, files: list[_File]) -> None:
    """Read the stored sessions the files go to (theirs, their subagents' and those their
    launches name), in one query."""
    slugs: set[str] = set()
    for file in files:
        transcript = file.transcript
        slug = _top_slug(transcript)
        slugs.add(slug)
        if transcript.kind == TranscriptKind.SUBAGENT:
            agents = [transcript.agent_id]
        elif transcript.kind == TranscriptKind.MAIN and file.scan is not None:
            agents = [launch.agent_id for launch in file.scan.launches]
        else:
            agents = []
        slugs.update(_slug_of_child(slug, agent) for agent in agents if agent)
    found = await session_crud.list_sessions_by_slug(batch.db, slugs)
    for slug, session in found.items():
        batch.stored[slug] = _SessionRow.of(session)
        batch.db.expunge(session)


async def _load(db: AsyncSession, session_id: uuid.UUID) -> _SessionRow:
    """A session known to exist (created or found just now, in this transaction)."""
    found = await session_crud.get_session(db, session_id)
    row = _SessionRow.of(found)
    db.expunge(found)
    return row


async def _project_ids(batch: _Batch, roots: Iterable[str | None]) -> dict[str, uuid.UUID]:
    """The project of each folder, created if new: one statement for those not known yet."""
    missing = {root for root in roots if root and root not in batch.projects}
    if missing:
        found = await project_crud.upsert_projects(
            batch.db, {clip(Project, "root_path", root) or "" for root in missing}
        )
        for root in missing:
            batch.projects[root] = found[clip(Project, "root_path", root) or ""]
    return batch.projects


async def _new_sessions(batch: _Batch, tops: Mapping[str, str | None]) -> None:
    """Create Claude Code sessions not seen before (or find them, if one appeared since)."""
    if not tops:
        return
    projects = await _project_ids(batch, tops.values())
    rows: dict[str, dict[str, Any]] = {}
    for slug, cwd in tops.items():
        rows[slug] = {"session_slug": slug, "source_app": SOURCE_APP}
        if cwd:
            rows[slug] |= {
                "project_id": projects[cwd],
                "working_dir": clip(Session, "working_dir", cwd),
            }
    created = await session_crud.ensure_sessions(batch.db, rows.values())
    for slug, (session_id, is_new) in created.items():
        if not is_new:  # made by another transaction since we looked
            batch.sessions[slug] = await _load(batch.db, session_id)
            continue
        batch.created.add(session_id)
        project_id = rows[slug].get("project_id")
        batch.sessions[slug] = _SessionRow(session_id, slug, None, None, None, project_id, None)


@dataclass(frozen=True)
class _Wanted:
    """A subagent's child session to find or create: its parent, cwd, agent id and type."""

    parent: _SessionRow
    cwd: str | None
    agent_id: str
    agent_type: str | None


def _launched(files: list[_File]) -> list[_Wanted]:
    """The child sessions the main files' subagent launches name."""
    return [
        _Wanted(file.session, None, launch.agent_id, launch.subagent_type)
        for file in files
        if file.transcript.kind == TranscriptKind.MAIN and file.scan and file.session
        for launch in file.scan.launches
        if launch.agent_id
    ]


def _top_slug(transcript: TranscriptFile) -> str:
    """The slug of the Claude Code session a transcript belongs to."""
    return clip(Session, "session_slug", transcript.session_id) or ""


def _slug_of_child(parent_slug: str, agent_id: str) -> str:
    return clip(Session, "session_slug", subagent_slug(parent_slug, agent_id)) or ""


def _child_slug(parent: _SessionRow, agent_id: str) -> str:
    """The slug of the child session a subagent of `parent` runs in."""
    return _slug_of_child(parent.session_slug, agent_id)


async def _children(batch: _Batch, wanted: Iterable[_Wanted]) -> None:
    """Find or create subagents' child sessions, linking each new one to its parent.

    Each lands in `batch.sessions`. A stored child already linked to its parent is taken
    as stored (one read of the links for all of them); the others are created in one
    statement, and the new ones linked in one call.
    """
    todo: dict[str, _Wanted] = {}
    for want in wanted:
        slug = _child_slug(want.parent, want.agent_id)
        if slug not in batch.sessions:
            todo.setdefault(slug, want)
    # A parent created just now has no children yet: only stored pairs can be linked.
    stored = {
        slug: (want.parent.id, batch.stored[slug].id)
        for slug, want in todo.items()
        if want.parent.id not in batch.created and slug in batch.stored
    }
    linked = await relationship_crud.list_linked_pairs(batch.db, stored.values())
    for slug, pair in stored.items():
        if pair in linked:
            batch.sessions[slug] = batch.stored[slug]
            del todo[slug]
    if not todo:
        return
    projects = await _project_ids(
        batch, [want.cwd for want in todo.values() if want.parent.project_id is None]
    )
    rows: dict[str, dict[str, Any]] = {}
    for slug, want in todo.items():
        project_id = want.parent.project_id or projects.get(want.cwd or "")
        rows[slug] = subagent_session(slug, want.parent.id, project_id, want.agent_type)
    created = await session_crud.ensure_sessions(
        batch.db,
        [{key: value for key, value in row.items() if value is not None} for row in rows.values()],
    )
    links = []
    for slug, (child_id, is_new) in created.items():
        want, row = todo[slug], rows[slug]
        if is_new:
            links.append(subagent_link(want.parent.id, child_id, want.agent_id))
            batch.sessions[slug] = _SessionRow(
                child_id, slug, row["name"], None, want.parent.id, row["project_id"], None
            )
        else:  # stored but not linked to this parent: as it is
            batch.sessions[slug] = await _load(batch.db, child_id)
    await relationship_crud.link_new_children(batch.db, links)


def _agent_type(session: _SessionRow, role: str, name: str | None) -> str:
    if role == COMPACT_ROLE:
        return COMPACT_ROLE
    if session.parent_session_id is not None:
        return name or "subagent"
    return MAIN_ROLE


def _resume_id(session: _SessionRow, role: str) -> str | None:
    """The id `claude --resume` takes: only a top-level session's main agent has one."""
    return session.session_slug if role == MAIN_ROLE and session.parent_session_id is None else None


async def _store_usage(batch: _Batch, files: list[_File]) -> None:
    """Count each response of the batch's files once, against the stored ones too.

    The files' responses are de-duplicated together (`dedupe`: the main conversation's
    line beats a sidechain's, then the larger total; a sidechain's replay of a known
    message is the same response), then compared with the stored responses of the same
    message ids, by the same rule: a stored line that loses to a new one is deleted (a
    replay that came first), a new one that loses is not written. What is left is priced
    and written in one statement per page of rows; a stored response of the same key
    keeps the larger count (see `add_usage_records`).
    """
    db = batch.db
    origin: dict[int, _File] = {}
    entries: list[UsageEntry] = []
    for file in files:
        assert file.scan is not None
        for entry in file.scan.usage:
            origin[id(entry)] = file
            entries.append(entry)
    winners = dedupe(entries)
    stored: dict[str, list[usage_records.StoredUsage]] = {}
    for found in await usage_records.find_usage_records(
        db, {entry.message_id for entry in winners if entry.message_id}
    ):
        stored.setdefault(found.message_id, []).append(found)
    displaced: dict[uuid.UUID, uuid.UUID] = {}  # stored record id -> its session
    kept: list[UsageEntry] = []
    for entry in winners:
        verdict = _against_stored(entry, stored.get(entry.message_id, ()))
        if verdict is None:
            continue  # a replay of a response stored already
        displaced.update((record.id, record.session_id) for record in verdict)
        kept.append(entry)
    completions = _completions(batch, files, kept, origin)
    agents: dict[tuple[uuid.UUID, str, str], tuple[uuid.UUID, AgentCreate]] = {}
    rows: list[dict[str, Any]] = []
    for entry in kept:
        file = origin[id(entry)]
        file.report.responses += 1
        session = file.session
        assert session is not None
        key = (session.id, file.role, entry.model)
        if key not in agents:
            agents[key] = (
                agent_key(session.id, file.role, entry.model),
                _agent_create(session, file.agent_type, entry.model, file.role),
            )
        final = completions.get(id(entry))
        if final is None:
            cost = price_usage(
                entry.model, entry.usage, entry.reported_cost_usd, at=entry.occurred_at
            )
        else:  # the subagent's last response, in full: priced from the result's usage
            entry = replace(entry, output_tokens=_final_counts(final)["output_tokens"])
            cost = price_usage(entry.model, final, entry.reported_cost_usd, at=entry.occurred_at)
        rows.append(_usage_row(entry, session.id, agents[key][0], cost))
    for file in files:
        assert file.session is not None
        batch.changed.add(file.session.id)
        state = file.scan.cost_state if file.scan is not None else None
        if file.transcript.kind == TranscriptKind.MAIN and state is not None:
            for model in state.models:
                key = (file.session.id, MAIN_ROLE, model)
                if key not in agents:  # a model the transcripts may not show carries its cost
                    agents[key] = (
                        agent_key(file.session.id, MAIN_ROLE, model),
                        _agent_create(file.session, MAIN_ROLE, model, MAIN_ROLE),
                    )
    await usage_records.ensure_usage_agents(db, dict(agents.values()))
    if displaced:
        await usage_records.delete_usage_records(db, displaced)
        batch.changed.update(displaced.values())
    # A response seen again (a later line of it) keeps its first session and agent; only
    # a line with more tokens replaces the counts (see add_usage_records).
    await usage_records.add_usage_records(db, rows, return_ids=False)


def _completions(
    batch: _Batch, files: list[_File], kept: list[UsageEntry], origin: dict[int, _File]
) -> dict[int, dict[str, Any]]:
    """The full usage of subagents' last responses this batch holds, by entry (its id()).

    A Task/Agent result in the parent reports the subagent's last response in full,
    where the subagent's own last line often has a streaming placeholder for its output.
    Done here, before the write, where the subagent's whole transcript is in the batch
    (its file new, read from the start); otherwise `_complete_last_response` finds the
    stored response afterwards. Either way: the latest response with the result's input
    counts gets its output count, if that is larger.
    """
    whole = {
        file.session.id
        for file in files
        if file.transcript.kind == TranscriptKind.SUBAGENT
        and file.session is not None
        and file.row is not None  # lines given may follow stored ones
        and file.offset == 0
        and file.row.lines_read == 0
    }
    if not whole:
        return {}
    completions: dict[int, dict[str, Any]] = {}
    for file in files:
        if file.transcript.kind != TranscriptKind.MAIN or file.scan is None:
            continue
        assert file.session is not None
        for launch in file.scan.launches:
            if not launch.agent_id or not launch.final_usage:
                continue
            child = batch.sessions.get(
                clip(
                    Session,
                    "session_slug",
                    subagent_slug(file.session.session_slug, launch.agent_id),
                )
            )
            if child is None or child.id not in whole:
                continue
            counts = _final_counts(launch.final_usage)
            last: UsageEntry | None = None
            for entry in kept:  # the latest with these input counts; the last on a tie
                if (
                    origin[id(entry)].session is child
                    and entry.input_tokens == counts["input_tokens"]
                    and entry.cache_creation_tokens == counts["cache_creation_input_tokens"]
                    and entry.cache_read_tokens == counts["cache_read_input_tokens"]
                    and (last is None or _not_earlier(entry.occurred_at, last.occurred_at))
                ):
                    last = entry
            batch.completed.add(launch.tool_use_id)
            if last is not None and counts["output_tokens"] > last.output_tokens:
                completions[id(last)] = launch.final_usage
    return completions


def _not_earlier(at: datetime | None, than: datetime | None) -> bool:
    """Whether `at` comes at or after `than`, an unknown time before every known one."""
    if at is None:
        return than is None
    return than is None or at >= than


def _final_counts(usage: Mapping[str, Any]) -> dict[str, int]:
    """The four counts of a Task result's usage (0 where one is not a number)."""
    return {
        key: value if isinstance(value := usage.get(key), int) else 0
        for key in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        )
    }


def _against_stored(
    entry: UsageEntry, stored: Iterable[usage_records.StoredUsage]
) -> list[usage_records.StoredUsage] | None:
    """The stored records a new response displaces, or None where a stored one beats it.

    A stored record is a sidechain's when its session is a subagent's or its agent a
    compaction run's (those are the files whose lines say `isSidechain`). One of the same
    key and the same kind is left to the upsert (the larger count wins there). A response
    seen live (`LIVE_REQUEST_ID`) and a transcript's line of it are one response: the line.
    """
    displaced = []
    for record in stored:
        live = record.request_id == LIVE_REQUEST_ID
        if live != (entry.request_id == LIVE_REQUEST_ID):
            if not live:
                return None  # the transcript's line is stored: a live copy adds nothing
            if not entry.is_sidechain:
                displaced.append(record)  # the line of the response seen live replaces it
                continue
        sidechain = record.in_child_session or record.agent_type == COMPACT_ROLE
        same_key = record.request_id == clip(UsageRecord, "request_id", entry.request_id)
        if not same_key and not (sidechain or entry.is_sidechain):
            continue  # two responses of the main conversation that share a message id
        if sidechain != entry.is_sidechain:
            if entry.is_sidechain:
                return None  # the main conversation's line is stored: this is its replay
            displaced.append(record)  # a replay stored first: this line is the response
        elif not same_key:  # two sidechains' copies of one message: the larger stays
            if record.total_tokens >= entry.total_tokens:
                return None
            displaced.append(record)
    return displaced


def _agent_create(session: _SessionRow, agent_type: str, model: str, role: str) -> AgentCreate:
    return AgentCreate(
        session_id=session.id,
        agent_type=clip(Agent, "agent_type", agent_type),
        model=clip(Agent, "model", model),
        sdk_session_id=_resume_id(session, role),
        status=AgentStatus.COMPLETE,
        agent_metadata={"source": SOURCE_APP, "role": role},
    )


def _usage_row(
    entry: UsageEntry, session_id: uuid.UUID, agent_id: uuid.UUID, cost: Cost
) -> dict[str, Any]:
    # A mapping, not a UsageRecordCreate: add_usage_records validates it and then names
    # the offending row and field (a count past BIGINT, say) in its error.
    return {
        "session_id": session_id,
        "agent_id": agent_id,
        "message_id": clip(UsageRecord, "message_id", entry.message_id),
        "request_id": clip(UsageRecord, "request_id", entry.request_id),
        "model": clip(UsageRecord, "model", entry.model),
        "input_tokens": entry.input_tokens,
        "output_tokens": entry.output_tokens,
        "cache_creation_tokens": entry.cache_creation_tokens,
        "cache_read_tokens": entry.cache_read_tokens,
        "cost": to_money(cost.amount or 0),
        "cost_source": cost.source,
        "cost_is_estimate": cost.estimate,
        "occurred_at": entry.occurred_at,
    }


def _note_activity(batch: _Batch, file: _File) -> None:
    """What a file says of its session: span, version, branch, names, links, settings, cost.

    Names rank as `Names.best` says (a user's custom title, then the AI title, then a
    summary; the latest of each kind), across imports: each kind's latest is kept in
    the session's metadata, so a later AI title never hides an earlier custom title.
    Without any, a main transcript's Claude Code slug names a session that has no name.
    """
    assert file.scan is not None and file.session is not None
    scan, session = file.scan, file.session
    seen = batch.seen(session.id)
    seen.widen(scan.facts.first_at, scan.facts.last_at)
    metadata = seen.metadata
    for key, value in (
        ("claude_version", scan.facts.version),
        ("git_branch", scan.facts.git_branch),
    ):
        if value:
            metadata[key] = value
    if file.transcript.kind != TranscriptKind.MAIN:
        return
    stored = {**(session.session_metadata or {}), **metadata}
    names = _stored_names(stored).then(scan.names)
    if names != Names():
        metadata[NAMES_KEY] = {
            kind: value
            for kind, value in (
                ("custom_title", names.custom_title),
                ("ai_title", names.ai_title),
                ("summary", names.summary),
            )
            if value
        }
    if names.best:
        seen.name = names.best
    elif scan.facts.slug and session.name is None and seen.name is None:
        seen.name = clip(Session, "name", scan.facts.slug)
    if scan.pull_requests:
        metadata[PULL_REQUESTS_KEY] = _merged_links(
            stored.get(PULL_REQUESTS_KEY), scan.pull_requests
        )
    metadata.update(scan.settings)
    state = scan.cost_state
    if state is not None and state.at is None:
        # No timestamp on or before the line in what was read: as of the session's last
        # activity before this import.
        state = replace(state, at=session.last_activity_at)
    if state is not None:
        previous = stored.get(COST_STATE_KEY)
        if not _is_later(previous, state):
            return
        metadata[COST_STATE_KEY] = _cost_state_metadata(state)


def _stored_names(metadata: dict[str, Any]) -> Names:
    kept = metadata.get(NAMES_KEY)
    if not isinstance(kept, dict):
        return Names()

    def text(name: str) -> str | None:
        value = kept.get(name)
        return value if isinstance(value, str) and value else None

    return Names(text("custom_title"), text("ai_title"), text("summary"))


def _merged_links(stored: Any, new: list[PullRequest]) -> list[dict[str, Any]]:
    """Stored pull request links updated by new ones (one per URL, else repository and number)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for item in stored if isinstance(stored, list) else []:
        if isinstance(item, dict):
            link = PullRequest(item.get("number"), item.get("url"), item.get("repository"))
            merged[link.key] = item
    for link in new:
        merged[link.key] = {"number": link.number, "url": link.url, "repository": link.repository}
    return list(merged.values())


def _is_later(previous: Any, state: CostState) -> bool:
    """Whether `state` replaces the cost state kept already (running totals: the latest)."""
    if not isinstance(previous, dict) or state.at is None:
        return True
    before = previous.get("at")
    try:
        return not isinstance(before, str) or datetime.fromisoformat(before) <= state.at
    except ValueError:
        return True


def _cost_state_metadata(state: CostState) -> dict[str, Any]:
    """A cost state as JSON: amounts as decimal text (exact), counts as numbers."""
    return {
        "total_cost_usd": None if state.total_cost_usd is None else str(state.total_cost_usd),
        "at": state.at.isoformat() if state.at else None,
        "models": {
            model: {
                "cost_usd": str(figures.cost_usd),
                "input_tokens": figures.input_tokens,
                "output_tokens": figures.output_tokens,
                "cache_read_tokens": figures.cache_read_tokens,
                "cache_creation_tokens": figures.cache_creation_tokens,
            }
            for model, figures in state.models.items()
        },
    }


def _reported_costs(batch: _Batch) -> dict[uuid.UUID, usage_records.ReportedCosts]:
    """The client's reported costs of the batch's top sessions, from their metadata.

    Each model's cost is carried by the session's main agent of that model where no
    record shows it; a model an earlier cost state named and the latest does not has
    that agent brought back to its records.
    """
    reported: dict[uuid.UUID, usage_records.ReportedCosts] = {}
    for session in batch.sessions.values():
        if session.parent_session_id is not None:
            continue
        stored = session.session_metadata or {}
        merged = {**stored, **batch.seen(session.id).metadata}
        before, now = _reported_models(stored), _reported_models(merged)
        if not before and not now:
            continue
        state = merged.get(COST_STATE_KEY)
        at = state.get("at") if isinstance(state, dict) else None
        try:
            as_of = datetime.fromisoformat(at) if isinstance(at, str) else None
        except ValueError:
            as_of = None
        reported[session.id] = usage_records.ReportedCosts(
            now,
            as_of,
            {model: agent_key(session.id, MAIN_ROLE, model) for model in {*before, *now}},
        )
        batch.changed.add(session.id)
    return reported


def _reported_models(metadata: dict[str, Any]) -> dict[str, Decimal]:
    """The per-model costs of a session's kept cost state ({} without one)."""
    state = metadata.get(COST_STATE_KEY)
    models = state.get("models") if isinstance(state, dict) else None
    costs: dict[str, Decimal] = {}
    for model, figures in (models if isinstance(models, dict) else {}).items():
        try:
            costs[model] = Decimal(str(figures["cost_usd"]))
        except (TypeError, KeyError, ValueError, ArithmeticError):
            continue
    return costs


async def _attach_launch(batch: _Batch, parent: _SessionRow, launch: SubagentLaunch) -> None:
    """Name and describe a subagent's child session, and complete its last response."""
    assert launch.agent_id is not None
    db = batch.db
    child = batch.sessions[_child_slug(parent, launch.agent_id)]  # made by `_children`
    name, title = child.name, child.title
    if launch.subagent_type and name in (None, "subagent"):
        name = clip(Session, "name", launch.subagent_type)
        for agent in await agent_crud.list_agents(db, session_id=child.id, agent_type="subagent"):
            await agent_crud.update_agent(
                db, agent.id, {"agent_type": clip(Agent, "agent_type", launch.subagent_type)}
            )
    if launch.description and title is None:
        title = clip(Session, "title", launch.description)
    if launch.tool_use_id not in batch.completed and await _complete_last_response(
        db, child.id, launch.final_usage
    ):
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
    counts = _final_counts(usage)
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
        return_ids=False,
        rows=[
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
