"""The one-way sync: session folders on disk, mirrored into the database (seed 003).

`sync_session()` mirrors one folder inside the caller's transaction (it only flushes);
`sync_project()` mirrors every folder of a project, in batches of folders per transaction,
and skips the folders whose files did not change since their last good sync without
reading them. A folder in error is read again every time, so its report is always the
current one and it syncs as soon as it can be read.

Every write is an upsert on a natural key (the project's root path, the session's slug,
a plan item's id, an agent's SDK session id), so running a sync twice changes nothing,
and running a batch again after a transient fault (`errors.is_transient`) is safe.
The writes themselves are the CRUD layer's (`crud.sync_states`, `crud.sessions`, ...).
On PostgreSQL a per-project advisory lock serialises two processes syncing one project;
on SQLite the write transaction (BEGIN IMMEDIATE) does the same.
"""

import contextlib
import functools
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud.agents import upsert_agents
from session_db.crud.relationships import link_sessions
from session_db.crud.sessions import ensure_session, upsert_session_by_slug
from session_db.crud.sync_states import (
    SyncMark,
    claim_project_for_sync,
    get_sync_fingerprints,
    get_sync_state,
    mark_sync_states_missing,
    upsert_sync_state,
)
from session_db.database import get_async_session, get_engine
from session_db.errors import (
    ConflictError,
    DatabaseError,
    DatabaseUnavailableError,
    NotFoundError,
    PathEscapeError,
    SessionDBError,
    is_transient,
)
from session_db.models import (
    RelationshipType,
    SessionPhase,
    SessionStatus,
    SpawnReason,
    SyncStatus,
)
from session_db.retry import retry_transient
from session_db.sync.folders import (
    FolderContent,
    fingerprint,
    list_session_folders,
    read_folder,
    resolve_project_root,
    resolve_session_dir,
)
from session_db.sync.formats import (
    PLAN_FILE,
    STATE_FILE,
    FormatError,
    Plan,
    StateSummary,
    Status,
    UnrecognisedFileError,
    load_json,
    parse_plan,
    parse_state,
)
from session_db.sync.plan_mirror import mirror_plan

logger = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
# Agents named in state.json get ids derived from (session, SDK session id), so the
# upsert has a key without a new unique constraint on the agents table.
_AGENT_NAMESPACE = uuid.UUID("5d0c2b0e-6f4e-4d55-9a51-2f6b1f0f6a11")

_SESSION_STATUS = {
    Status.active: SessionStatus.ACTIVE,
    Status.paused: SessionStatus.PAUSED,
    Status.complete: SessionStatus.COMPLETED,
    Status.failed: SessionStatus.FAILED,
}
# What a folder's content can make the mirror raise besides the CRUD layer's own errors:
# a value the driver cannot bind (an integer too large for SQLite), one too deeply
# nested to serialise, one of a type no column takes. Each is that folder's error.
_FOLDER_FAULTS = (SessionDBError, ValueError, TypeError, OverflowError, RecursionError)
_MAX_WARNINGS = 50  # per folder, kept and reported


class SyncOutcome(StrEnum):
    """What a sync of one folder did."""

    SYNCHRONIZED = "synchronized"  # the database now mirrors the files
    UNCHANGED = "unchanged"  # the files had not changed since their last good sync
    ERROR = "error"  # a file cannot be used (still); the rows of the last good sync stay
    UNRECOGNISED = "unrecognised"  # state.json is another tool's file
    MISSING = "missing"  # the folder is gone; its rows stay


@dataclass(frozen=True)
class SyncResult:
    """The outcome of syncing one session folder.

    Attributes:
        message: Why the folder is in error, unrecognised or missing.
        warnings: The values the sync could not use and ignored, one line each (the
            rest of the folder synced); an unchanged folder still reports them.
    """

    session_dir: Path
    outcome: SyncOutcome
    session_id: uuid.UUID | None = None
    message: str | None = None
    warnings: tuple[str, ...] = ()


@dataclass
class ProjectSyncReport:
    """What a project sync did, folder by folder."""

    project_root: Path
    results: list[SyncResult] = field(default_factory=list)

    def count(self, outcome: SyncOutcome) -> int:
        """How many folders ended with this outcome."""
        return sum(1 for result in self.results if result.outcome is outcome)

    @property
    def counts(self) -> dict[str, int]:
        """Folders per outcome, every outcome present."""
        return {outcome.value: self.count(outcome) for outcome in SyncOutcome}

    @property
    def problems(self) -> list[SyncResult]:
        """The folders in error or not recognised, changed since the last sync or not."""
        return [
            result
            for result in self.results
            if result.outcome in (SyncOutcome.ERROR, SyncOutcome.UNRECOGNISED)
        ]

    @property
    def warnings(self) -> list[SyncResult]:
        """The folders that synced with values the sync could not use."""
        return [result for result in self.results if result.warnings]


ProgressCallback = Callable[[SyncResult, int, int], object]


def _database_error(error: DBAPIError) -> DatabaseError:
    """Ours for a driver fault met between CRUD calls (a SAVEPOINT, a commit)."""
    text = str(error.orig or error).strip().splitlines()
    detail = text[0] if text else type(error).__name__
    if is_transient(error):
        return DatabaseUnavailableError(f"database unavailable during the sync: {detail}")
    return DatabaseError(f"database error during the sync: {detail}")


def _translating(function: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    """Let only session_db errors out of a unit of sync work (the CRUD calls translate theirs)."""

    @functools.wraps(function)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await function(*args, **kwargs)
        except DBAPIError as error:
            raise _database_error(error) from error

    return wrapper


@_translating
async def sync_session(
    db: AsyncSession,
    project_root: str | os.PathLike[str],
    session_dir: str | os.PathLike[str],
    *,
    force: bool = False,
) -> SyncResult:
    """Mirror one session folder into the database, inside the caller's transaction.

    Args:
        db: The session to write through; the caller's scope commits.
        project_root: The project's root folder.
        session_dir: The session's slug, or its folder (absolute or relative to the root).
        force: Re-read and re-mirror even if the files did not change.

    Returns:
        What happened. A broken or foreign file is an outcome, not an exception: it is
        recorded in the folder's sync state, and the rows of the last good sync stay.

    Raises:
        PathEscapeError: The folder is not directly under the project's agents/sessions/.
        NotFoundError: The project root does not exist, or the folder does not exist
            and was never synced.
        DatabaseUnavailableError: The database could not be reached (retrying may work).
    """
    try:
        root = resolve_project_root(project_root)
    except OSError as error:  # not a database problem: never retried as one
        raise NotFoundError(
            "project",
            str(project_root),
            field="root_path",
            detail=str(error),  # "project root ... does not exist" / "... is not a folder"
        ) from None
    folder = resolve_session_dir(root, session_dir)
    project_id = await claim_project_for_sync(db, str(root))
    return await _sync_folder(db, root, project_id, folder, force)


async def _sync_folder(
    db: AsyncSession, root: Path, project_id: uuid.UUID, folder: Path, force: bool
) -> SyncResult:
    """Sync one checked folder of a project this transaction has already claimed."""
    known = await get_sync_state(db, project_id, folder)
    # A stat is cheap next to the queries around it; the pool runs this on its own thread.
    if not folder.is_dir():  # noqa: ASYNC240
        if known is None:
            raise NotFoundError("session_dir", str(folder), field="path")
        return await _record(
            db,
            folder,
            project_id,
            SyncOutcome.MISSING,
            session_id=known.session_id,
            message="the session folder no longer exists",
        )
    marks = fingerprint(folder)
    if (
        not force
        and known is not None
        and _unchanged(known.sync_status, known.file_fingerprint, marks)
    ):
        return SyncResult(
            folder, SyncOutcome.UNCHANGED, known.session_id, warnings=tuple(known.warnings)
        )
    try:
        content = read_folder(root, folder)
    except PathEscapeError as error:
        return await _record(db, folder, project_id, SyncOutcome.ERROR, message=str(error))
    except OSError as error:
        return await _record(
            db, folder, project_id, SyncOutcome.ERROR, message=f"cannot read: {error}"
        )
    try:
        files = _parse(content)
    except UnrecognisedFileError as error:
        return await _record(
            db, folder, project_id, SyncOutcome.UNRECOGNISED, marks=marks, message=str(error)
        )
    except FormatError as error:
        return await _record(
            db, folder, project_id, SyncOutcome.ERROR, marks=marks, message=str(error)
        )
    if (
        not force
        and known is not None
        and known.sync_status != SyncStatus.MISSING
        and known.content_hash == content.content_hash
    ):
        # Same bytes as the last good sync (touched, or repaired back): rows match.
        await _record(
            db,
            folder,
            project_id,
            SyncOutcome.SYNCHRONIZED,
            session_id=known.session_id,
            content=content,
            marks=marks,
            warnings=files.warnings,
        )
        return SyncResult(folder, SyncOutcome.UNCHANGED, known.session_id, warnings=files.warnings)
    try:
        async with db.begin_nested():
            session_id = await _mirror(db, project_id, root, folder, files)
    except _FOLDER_FAULTS as error:
        if is_transient(error):
            raise  # the connection, not the folder: the caller retries the whole transaction
        # The database refused the files' content (a slug another project owns, a text
        # too long, a number too large): nothing of this sync stays, and the next sync
        # tries again.
        return await _record(db, folder, project_id, SyncOutcome.ERROR, message=_reason(error))
    return await _record(
        db,
        folder,
        project_id,
        SyncOutcome.SYNCHRONIZED,
        session_id=session_id,
        content=content,
        marks=marks,
        warnings=files.warnings,
    )


async def sync_project(
    project_root: str | os.PathLike[str],
    *,
    engine: AsyncEngine | None = None,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
    batch_size: int = 50,
    attempts: int = 4,
) -> ProjectSyncReport:
    """Mirror every session folder of a project: the batch sync when a project is opened.

    Folders whose files kept their size and modification time since their last good
    sync are skipped without being read (their warnings are still reported). The others,
    and every folder still in error, are synced `batch_size` to a transaction, each
    in its own savepoint, so one bad folder never holds the others back. Folders synced
    before and now gone are marked missing. A transient fault (a dropped connection, a
    deadlock, a busy SQLite file) runs its whole transaction again; a permanent one
    sets aside only the folder it came from, as an `error` outcome with its reason.

    Args:
        project_root: The project's root folder (it holds agents/sessions/).
        engine: The engine to use; the default engine when omitted.
        force: Re-read and re-mirror every folder.
        on_progress: Called after each folder with (result, done, total), once its
            batch has committed.
        batch_size: Folders per transaction.
        attempts: Tries per transaction (1 never retries), with doubling waits from
            0.2 s in between.

    Raises:
        FileNotFoundError: The project root does not exist.
        DatabaseUnavailableError: The database could not be reached, `attempts` times.
        DatabaseError: A permanent fault no single folder caused (a missing table).
    """
    root = resolve_project_root(project_root)
    engine = engine or get_engine()
    folders = list_session_folders(root)
    report = ProjectSyncReport(root)

    async def retrying(work: Callable[[], Awaitable[R]], what: str) -> R:
        return await retry_transient(_translating(work), attempts=attempts, what=what)

    async def read_known() -> dict[str, SyncMark]:
        async with get_async_session(engine) as db:
            return await get_sync_fingerprints(db, str(root))

    known = await retrying(read_known, f"reading the sync states of {root}")
    total = len(folders)

    def progress(result: SyncResult) -> None:
        report.results.append(result)
        if on_progress is not None:
            on_progress(result, len(report.results), total)

    changed = []
    for folder in folders:
        previous = known.get(str(folder))
        if (
            not force
            and previous is not None
            and _unchanged(previous.status, previous.fingerprint, fingerprint(folder))
        ):
            progress(SyncResult(folder, SyncOutcome.UNCHANGED, warnings=tuple(previous.warnings)))
        else:
            changed.append(folder)

    # Several folders per transaction: one commit (one fsync) per batch, not per folder.
    # Results are reported once the batch has committed: a retried batch reports once.
    async def sync_batch(batch: list[Path]) -> list[SyncResult]:
        async with get_async_session(engine) as db:
            project_id = await claim_project_for_sync(db, str(root))
            return [await _sync_listed_folder(db, root, project_id, f, force) for f in batch]

    for start in range(0, len(changed), batch_size):
        batch = changed[start : start + batch_size]
        for result in await retrying(
            functools.partial(sync_batch, batch), f"sync of {len(batch)} folders of {root}"
        ):
            progress(result)

    present = {str(folder) for folder in folders}
    gone = [
        path
        for path, mark in known.items()
        if path not in present and mark.status != SyncStatus.MISSING
    ]
    if gone:

        async def mark_gone() -> None:
            async with get_async_session(engine) as db:
                await mark_sync_states_missing(db, gone)

        await retrying(mark_gone, f"marking {len(gone)} folders of {root} missing")
        report.results.extend(
            SyncResult(Path(path), SyncOutcome.MISSING, message="the session folder is gone")
            for path in gone
        )
    return report


async def _sync_listed_folder(
    db: AsyncSession, root: Path, project_id: uuid.UUID, folder: Path, force: bool
) -> SyncResult:
    """Sync one folder of a batch in a savepoint of its own.

    A permanent fault the folder's own sync does not record (the folder vanished after
    it was listed, a path too long for its column) rolls back only this folder's writes
    and becomes its `error` outcome; a transient one fails the batch, which is retried.
    """
    try:
        async with db.begin_nested():
            return await _sync_folder(db, root, project_id, folder, force)
    except _FOLDER_FAULTS as error:
        if is_transient(error):
            raise
        logger.warning("sync of %s: error: %s", folder, error)
        return SyncResult(folder, SyncOutcome.ERROR, message=_reason(error))


def _unchanged(status: SyncStatus | None, stored: str | None, current: str) -> bool:
    """True when the folder's files look as they did at its last good sync."""
    return stored == current and status == SyncStatus.SYNCHRONIZED


def _reason(error: BaseException) -> str:
    """One clear line saying why the database could not take a folder's content."""
    if isinstance(error, RecursionError):
        return "a value is nested too deeply to store"
    if isinstance(error, OverflowError):
        return f"a number is too large for the database to store ({error})"
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


@dataclass(frozen=True)
class _Files:
    """A folder's files as read: the state, the plan (if any), what could not be used."""

    state: StateSummary
    plan: Plan | None

    @property
    def warnings(self) -> tuple[str, ...]:
        found = [*self.state.warnings, *(self.plan.warnings if self.plan else ())]
        if len(found) <= _MAX_WARNINGS:
            return tuple(found)
        # A plan of a thousand broken tasks needs the first lines, not a thousand.
        more = len(found) - _MAX_WARNINGS + 1
        return (*found[: _MAX_WARNINGS - 1], f"... and {more} more warnings like these")


def _parse(content: FolderContent) -> _Files:
    if content.state is None:
        raise UnrecognisedFileError(f"the folder has no {STATE_FILE}")
    try:
        state = parse_state(load_json(content.state, STATE_FILE))
        plan = parse_plan(load_json(content.plan, PLAN_FILE)) if content.plan is not None else None
    except RecursionError:  # load_json bounds the depth; this is the last line of defence
        raise FormatError("a file is nested too deeply to read") from None
    return _Files(state, plan)


async def _record(
    db: AsyncSession,
    folder: Path,
    project_id: uuid.UUID,
    outcome: SyncOutcome,
    *,
    session_id: uuid.UUID | None = None,
    content: FolderContent | None = None,
    marks: str | None = None,
    message: str | None = None,
    warnings: tuple[str, ...] = (),
) -> SyncResult:
    """Upsert the folder's sync state with this outcome and return it as a result.

    The content hash is only ever that of a good sync, so a broken file that is put
    back the way it was needs no new mirror.
    """
    await upsert_sync_state(
        db,
        folder,
        project_id,
        SyncStatus(outcome.value),
        session_id=session_id,
        file_fingerprint=marks,
        error_message=message,
        warnings=warnings,
        content_hash=content.content_hash if content is not None else None,
        file_modified_at=_modified_at(folder) if content is not None else None,
    )
    if outcome in (SyncOutcome.ERROR, SyncOutcome.UNRECOGNISED):
        logger.warning("sync of %s: %s: %s", folder, outcome.value, message)
    for warning in warnings:
        logger.info("sync of %s: warning: %s", folder, warning)
    return SyncResult(folder, outcome, session_id, message, warnings)


def _modified_at(folder: Path) -> datetime | None:
    times = []
    for name in (STATE_FILE, PLAN_FILE):
        try:
            times.append((folder / name).stat().st_mtime)
        except OSError:
            continue
    return datetime.fromtimestamp(max(times), UTC) if times else None


async def _mirror(
    db: AsyncSession,
    project_id: uuid.UUID,
    root: Path,
    folder: Path,
    files: _Files,
) -> uuid.UUID:
    session_id = await _upsert_session(db, project_id, root, folder, files.state)
    await _upsert_agents(db, session_id, files.state)
    await _link(db, project_id, session_id, files.state)
    await mirror_plan(db, session_id, files.plan)
    return session_id


def _session_values(
    project_id: uuid.UUID, root: Path, folder: Path, state: StateSummary
) -> dict[str, Any]:
    ended_at = None
    if state.status is Status.complete:
        ended_at = state.phase_history.get("docs_completed_at") or state.updated_at
    elif state.status is Status.failed:
        ended_at = state.updated_at
    started_at = state.created_at
    return {
        "session_slug": folder.name,
        "project_id": project_id,
        "title": state.topic,
        "description": state.description,
        "session_type": state.session_type,
        "phase": SessionPhase(state.phase.value),
        "status": _SESSION_STATUS[state.status],
        "working_dir": state.worktree or str(root),
        "started_at": started_at,
        "ended_at": ended_at,
        "duration_ms": (
            int((ended_at - started_at).total_seconds() * 1000)
            if ended_at and started_at and ended_at >= started_at
            else None
        ),
        "completed_at": ended_at if state.status is Status.complete else None,
        "last_activity_at": state.updated_at,
        # A file that lists more checkpoints done than planned raises the total: the
        # list of ids done is the firmer fact.
        "checkpoints_total": max(state.checkpoints_total, state.checkpoints_completed),
        "checkpoints_completed": state.checkpoints_completed,
        # Replaces these two keys and keeps any others (hooks, runtimes keep their own).
        "session_metadata": {
            "state": state.raw,
            "sync": {"session_dir": str(folder), "state_version": state.version},
        },
    }


async def _upsert_session(
    db: AsyncSession, project_id: uuid.UUID, root: Path, folder: Path, state: StateSummary
) -> uuid.UUID:
    try:
        return await upsert_session_by_slug(db, _session_values(project_id, root, folder, state))
    except ConflictError as error:
        raise ConflictError("session", "session_slug", f"{error}; rename the folder") from None


async def _upsert_agents(db: AsyncSession, session_id: uuid.UUID, state: StateSummary) -> None:
    rows: dict[uuid.UUID, dict[str, Any]] = {}
    for position, record in enumerate(state.agents):
        key = record.sdk_session_id or f"{record.agent_type}#{position}"
        agent_id = uuid.uuid5(_AGENT_NAMESPACE, f"{session_id}/{key}")
        extra = record.model_extra or {}
        values = {
            "session_id": session_id,
            "agent_type": record.agent_type,
            "sdk_session_id": record.sdk_session_id,
            "status": record.status,
            "model": record.model,
            "checkpoint_id": record.checkpoint_id,
            "started_at": record.started_at,
            "completed_at": record.completed_at,
            "agent_metadata": {"state": dict(extra)} if extra else {},
        }
        rows[agent_id] = values  # later entries win
    if rows:
        await upsert_agents(db, rows)


async def _link(
    db: AsyncSession, project_id: uuid.UUID, session_id: uuid.UUID, state: StateSummary
) -> None:
    """Link the session to the sessions its state names, creating placeholders for them.

    A placeholder is a bare row with the slug; syncing that folder later fills it in.
    Links are added, never removed: the seeds' files only ever gain these references.
    """
    for slug, kind, reason in (
        (state.parent_session, RelationshipType.PARENT_CHILD, SpawnReason.SUBAGENT_DELEGATION),
        (state.prior_session, RelationshipType.CONTINUATION, SpawnReason.CONTINUATION),
    ):
        if slug is None:
            continue
        other_id = await _session_id_for(db, project_id, slug)
        link = {
            "parent_session_id": other_id,
            "child_session_id": session_id,
            "relationship_type": kind,
            "spawn_reason": reason,
            "spawn_metadata": {"source": STATE_FILE},
        }
        with contextlib.suppress(ConflictError):  # linked by an earlier sync
            await link_sessions(db, link)


async def _session_id_for(db: AsyncSession, project_id: uuid.UUID, slug: str) -> uuid.UUID:
    return await ensure_session(db, slug, project_id=project_id)
