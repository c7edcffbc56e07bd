"""The one-way sync: session folders on disk, mirrored into the database (seed 003).

`sync_session()` mirrors one folder inside the caller's transaction (it only flushes);
`sync_project()` mirrors every folder of a project, in batches of folders per transaction,
and skips the folders whose files did not change since their last sync without reading them.

Every write is an upsert on a natural key (the project's root path, the session's slug,
a plan item's id, an agent's SDK session id), so running a sync twice changes nothing.
On PostgreSQL a per-project advisory lock serialises two processes syncing one project;
on SQLite the write transaction (BEGIN IMMEDIATE) does the same.
"""

import contextlib
import hashlib
import logging
import os
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import bulk_upsert, coerce_input, translating_errors, upsert_insert
from session_db.crud.projects import upsert_project
from session_db.crud.relationships import link_sessions
from session_db.crud.sessions import ensure_session
from session_db.database import get_async_session, get_engine
from session_db.errors import ConflictError, NotFoundError, PathEscapeError
from session_db.models import (
    AgentCreate,
    Project,
    RelationshipType,
    Session,
    SessionCreate,
    SessionPhase,
    SessionStatus,
    SpawnReason,
    SyncState,
    SyncStatus,
)
from session_db.models.agent import Agent
from session_db.models.base import new_id, utcnow
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
    SessionState,
    Status,
    UnrecognisedFileError,
    load_json,
    parse_plan,
    parse_state,
)
from session_db.sync.plan_mirror import mirror_plan

logger = logging.getLogger(__name__)

ENTITY = "sync"
# Agents named in state.json get ids derived from (session, SDK session id), so the
# upsert has a key without a new unique constraint on the agents table.
_AGENT_NAMESPACE = uuid.UUID("5d0c2b0e-6f4e-4d55-9a51-2f6b1f0f6a11")

_SESSION_STATUS = {
    Status.ACTIVE: SessionStatus.ACTIVE,
    Status.PAUSED: SessionStatus.PAUSED,
    Status.COMPLETE: SessionStatus.COMPLETED,
    Status.FAILED: SessionStatus.FAILED,
}


class SyncOutcome(StrEnum):
    """What a sync of one folder did."""

    SYNCHRONIZED = "synchronized"  # the database now mirrors the files
    UNCHANGED = "unchanged"  # the files had not changed; nothing was written
    ERROR = "error"  # a file is broken; the rows of the last good sync stay
    UNRECOGNISED = "unrecognised"  # state.json is another tool's file
    MISSING = "missing"  # the folder is gone; its rows stay


@dataclass(frozen=True)
class SyncResult:
    """The outcome of syncing one session folder."""

    session_dir: Path
    outcome: SyncOutcome
    session_id: uuid.UUID | None = None
    message: str | None = None


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
        """The folders that ended in error or were not recognised."""
        return [
            result
            for result in self.results
            if result.outcome in (SyncOutcome.ERROR, SyncOutcome.UNRECOGNISED)
        ]


ProgressCallback = Callable[[SyncResult, int, int], object]


@translating_errors(ENTITY)
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
    project_id = await _claim_project(db, root)
    return await _sync_folder(db, root, project_id, folder, force)


@translating_errors(ENTITY)
async def _sync_folder(
    db: AsyncSession, root: Path, project_id: uuid.UUID, folder: Path, force: bool
) -> SyncResult:
    """Sync one checked folder of a project this transaction has already claimed."""
    known = (await db.exec(select(SyncState).where(SyncState.session_dir == str(folder)))).first()
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
        return SyncResult(folder, SyncOutcome.UNCHANGED, known.session_id)
    try:
        content = read_folder(root, folder)
    except PathEscapeError as error:
        return await _record(db, folder, project_id, SyncOutcome.ERROR, message=str(error))
    except OSError as error:
        return await _record(
            db, folder, project_id, SyncOutcome.ERROR, message=f"cannot read: {error}"
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
        )
        return SyncResult(folder, SyncOutcome.UNCHANGED, known.session_id)
    try:
        state, plan = _parse(content)
    except UnrecognisedFileError as error:
        return await _record(
            db, folder, project_id, SyncOutcome.UNRECOGNISED, marks=marks, message=str(error)
        )
    except FormatError as error:
        return await _record(
            db, folder, project_id, SyncOutcome.ERROR, marks=marks, message=str(error)
        )
    try:
        async with db.begin_nested():
            session_id = await _mirror(db, project_id, root, folder, state, plan)
    except (ConflictError, NotFoundError, ValueError) as error:
        # A rule of the database refused the files' content (a slug another project
        # owns, a text too long): nothing of this sync stays. The fingerprint is not
        # stored, so the next sync tries again.
        return await _record(db, folder, project_id, SyncOutcome.ERROR, message=str(error))
    return await _record(
        db,
        folder,
        project_id,
        SyncOutcome.SYNCHRONIZED,
        session_id=session_id,
        content=content,
        marks=marks,
    )


async def sync_project(
    project_root: str | os.PathLike[str],
    *,
    engine: AsyncEngine | None = None,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
    batch_size: int = 50,
) -> ProjectSyncReport:
    """Mirror every session folder of a project: the batch sync when a project is opened.

    Folders whose files kept their size and modification time since the last sync are
    skipped without being read. The others are synced `batch_size` to a transaction, each
    in its own savepoint, so one bad folder never holds the others back. Folders synced
    before and now gone are marked missing.

    Args:
        project_root: The project's root folder (it holds agents/sessions/).
        engine: The engine to use; the default engine when omitted.
        force: Re-read and re-mirror every folder.
        on_progress: Called after each folder with (result, done, total).
        batch_size: Folders per transaction (progress is reported per folder).

    Raises:
        FileNotFoundError: The project root does not exist.
        DatabaseUnavailableError: The database could not be reached.
    """
    root = resolve_project_root(project_root)
    engine = engine or get_engine()
    folders = list_session_folders(root)
    report = ProjectSyncReport(root)
    async with get_async_session(engine) as db:
        known = await _known_folders(db, root)
    total = len(folders)

    def progress(result: SyncResult) -> None:
        report.results.append(result)
        if on_progress is not None:
            on_progress(result, len(report.results), total)

    changed = []
    for folder in folders:
        previous = known.get(str(folder))
        if not force and previous is not None and _unchanged(*previous, fingerprint(folder)):
            progress(SyncResult(folder, SyncOutcome.UNCHANGED))
        else:
            changed.append(folder)
    # Several folders per transaction: one commit (one fsync) per batch, not per folder.
    # Each folder's mirror runs in its own SAVEPOINT, so a bad folder spoils no other.
    for start in range(0, len(changed), batch_size):
        async with get_async_session(engine) as db:
            project_id = await _claim_project(db, root)
            for folder in changed[start : start + batch_size]:
                progress(await _sync_folder(db, root, project_id, folder, force))
    present = {str(folder) for folder in folders}
    gone = [
        path
        for path, (status, _) in known.items()
        if path not in present and status != SyncStatus.MISSING
    ]
    if gone:
        async with get_async_session(engine) as db:
            await _mark_missing(db, gone)
        report.results.extend(
            SyncResult(Path(path), SyncOutcome.MISSING, message="the session folder is gone")
            for path in gone
        )
    return report


def _unchanged(status: SyncStatus | None, stored: str | None, current: str) -> bool:
    """True when the folder's files look as they did at a sync that read them."""
    return stored == current and status in (
        SyncStatus.SYNCHRONIZED,
        SyncStatus.ERROR,
        SyncStatus.UNRECOGNISED,
    )


async def _known_folders(db: AsyncSession, root: Path) -> dict[str, tuple[SyncStatus, str | None]]:
    """Every synced folder of the project with its last status and fingerprint, in one query."""
    rows = await db.exec(
        select(SyncState.session_dir, SyncState.sync_status, SyncState.file_fingerprint)
        .join(Project, col(SyncState.project_id) == Project.id)
        .where(Project.root_path == str(root))
    )
    return {path: (SyncStatus(status), marks) for path, status, marks in rows.all()}


async def _mark_missing(db: AsyncSession, paths: Iterable[str]) -> None:
    now = utcnow()
    await db.exec(
        update(SyncState)
        .where(col(SyncState.session_dir).in_(list(paths)))
        .values(
            sync_status=SyncStatus.MISSING,
            error_message="the session folder no longer exists",
            last_attempted_at=now,
            updated_at=now,
        )
    )


def _parse(content: FolderContent) -> tuple[SessionState, Plan | None]:
    if content.state is None:
        raise UnrecognisedFileError(f"the folder has no {STATE_FILE}")
    state = parse_state(load_json(content.state, STATE_FILE))
    plan = parse_plan(load_json(content.plan, PLAN_FILE)) if content.plan is not None else None
    return state, plan


def _lock_key(root: Path) -> int:
    digest = hashlib.sha256(f"session_db.sync:{root}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def _claim_project(db: AsyncSession, root: Path) -> uuid.UUID:
    """Serialise syncs of one project until the transaction ends; return its id.

    PostgreSQL takes a per-project advisory lock (SQLite's write transaction already
    excludes other writers), then the project row is upserted.
    """
    if db.get_bind().dialect.name == "postgresql":
        await db.exec(sa.select(sa.func.pg_advisory_xact_lock(_lock_key(root))))
    return await upsert_project(db, str(root), root.name or str(root))


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
) -> SyncResult:
    """Upsert the folder's sync state with this outcome and return it as a result.

    The content hash is only ever that of a good sync, so a broken file that is put
    back the way it was needs no new mirror.
    """
    now = utcnow()
    values: dict[str, Any] = {
        "session_dir": str(folder),
        "project_id": project_id,
        "sync_status": SyncStatus(outcome.value),
        "last_attempted_at": now,
        "error_message": message,
        "file_fingerprint": marks,
        "updated_at": now,
    }
    if session_id is not None:
        values["session_id"] = session_id
    if content is not None:
        values.update(
            content_hash=content.content_hash,
            last_synced_at=now,
            file_modified_at=_modified_at(folder),
        )
    insert = upsert_insert(db, SyncState).values(id=new_id(), **values)
    await db.exec(
        insert.on_conflict_do_update(
            index_elements=[SyncState.session_dir],
            set_={name: insert.excluded[name] for name in values if name != "session_dir"},
        )
    )
    if outcome in (SyncOutcome.ERROR, SyncOutcome.UNRECOGNISED):
        logger.warning("sync of %s: %s: %s", folder, outcome.value, message)
    return SyncResult(folder, outcome, session_id, message)


def _modified_at(folder: Path) -> datetime | None:
    times = []
    for name in (STATE_FILE, PLAN_FILE):
        try:
            times.append((folder / name).stat().st_mtime)
        except OSError:
            continue
    return datetime.fromtimestamp(max(times), UTC) if times else None


@translating_errors(ENTITY)
async def _mirror(
    db: AsyncSession,
    project_id: uuid.UUID,
    root: Path,
    folder: Path,
    state: SessionState,
    plan: Plan | None,
) -> uuid.UUID:
    session_id = await _upsert_session(db, project_id, root, folder, state)
    await _upsert_agents(db, session_id, state)
    await _link(db, project_id, session_id, state)
    await mirror_plan(db, session_id, plan)
    return session_id


def _session_values(
    project_id: uuid.UUID, root: Path, folder: Path, state: SessionState
) -> dict[str, Any]:
    ended_at = None
    if state.status is Status.COMPLETE:
        ended_at = state.phase_history.get("docs_completed_at") or state.updated_at
    elif state.status is Status.FAILED:
        ended_at = state.updated_at
    git = state.raw.get("git") if isinstance(state.raw.get("git"), dict) else {}
    started_at = state.created_at
    values = {
        "session_slug": folder.name,
        "project_id": project_id,
        "title": state.topic,
        "description": state.description,
        "session_type": state.session_type,
        "phase": SessionPhase(state.phase.value),
        "status": _SESSION_STATUS[state.status],
        "working_dir": (git or {}).get("worktree") or str(root),
        "started_at": started_at,
        "ended_at": ended_at,
        "duration_ms": (
            int((ended_at - started_at).total_seconds() * 1000)
            if ended_at and started_at and ended_at >= started_at
            else None
        ),
        "completed_at": ended_at if state.status is Status.COMPLETE else None,
        "last_activity_at": state.updated_at,
        # A file that lists more checkpoints done than planned raises the total: the
        # list of ids done is the firmer fact.
        "checkpoints_total": max(state.checkpoints_total, state.checkpoints_completed),
        "checkpoints_completed": state.checkpoints_completed,
        "session_metadata": {
            "state": state.raw,
            "sync": {"session_dir": str(folder), "state_version": state.version},
        },
    }
    checked = coerce_input(SessionCreate, values, "session")
    return checked.model_dump(include=set(values))


async def _upsert_session(
    db: AsyncSession, project_id: uuid.UUID, root: Path, folder: Path, state: SessionState
) -> uuid.UUID:
    values = _session_values(project_id, root, folder, state)
    now = utcnow()
    insert = upsert_insert(db, Session).values(id=new_id(), **values, updated_at=now)
    excluded = insert.excluded
    set_ = {name: excluded[name] for name in values if name != "session_slug"}
    set_["updated_at"] = now
    set_["session_metadata"] = _merge_metadata(db, excluded)
    statement = insert.on_conflict_do_update(
        index_elements=[Session.session_slug],
        set_=set_,
        # A slug is global; a folder of another project with the same name must not
        # take over that project's session.
        where=sa.or_(
            col(Session.project_id).is_(None), col(Session.project_id) == excluded.project_id
        ),
    ).returning(Session.id)
    row = (await db.exec(statement)).first()
    if row is None:
        raise ConflictError(
            "session",
            "session_slug",
            f"session {folder.name!r} already belongs to another project; rename the folder",
        )
    return row[0]


def _merge_metadata(db: AsyncSession, excluded: Any) -> Any:
    """Replace the `state` and `sync` keys of session_metadata, keeping any others.

    Other writers (hooks, runtimes) may keep their own keys in session_metadata.
    """
    current = Session.__table__.c.session_metadata  # type: ignore[attr-defined]
    if db.get_bind().dialect.name == "postgresql":
        return current.op("||")(excluded.session_metadata)
    return sa.func.json_set(
        sa.func.coalesce(current, "{}"),
        "$.state",
        sa.func.json(sa.func.json_extract(excluded.session_metadata, "$.state")),
        "$.sync",
        sa.func.json(sa.func.json_extract(excluded.session_metadata, "$.sync")),
    )


async def _upsert_agents(db: AsyncSession, session_id: uuid.UUID, state: SessionState) -> None:
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
        checked = coerce_input(AgentCreate, values, "agent").model_dump(include=set(values))
        rows[agent_id] = {"id": agent_id, **checked}  # later entries win
    if rows:
        await bulk_upsert(db, Agent, list(rows.values()), [Agent.id], skip={"session_id"})


async def _link(
    db: AsyncSession, project_id: uuid.UUID, session_id: uuid.UUID, state: SessionState
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
