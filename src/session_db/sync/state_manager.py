"""StateManager and SessionStateManager: read and write one session's `state.json`.

Two interfaces over one file format. `StateManager` works on the document as a dict and
adds what this package needs (`create`, `record_agent`, strict checks). The seeds' own
system has its own API; `SessionStateManager` offers it under the same names and with the
same behaviour, on the typed `SessionState`, so a backend written against that system
switches with one import line. A file either one writes, the other reads (and so do the
seeds' own models): both check every save against `SessionState`.

Neither knows anything about databases (seed 003): after every save each calls the
injected `on_save_callback(session_dir)`, and whoever injected it (a SyncPool, usually)
mirrors the folder into the database in the background.
"""

import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from session_db.errors import SessionDBError
from session_db.sync.formats import (
    PHASES,
    STATE_FILE,
    AgentRecord,
    FormatError,
    Slug,
    StateSummary,
    load_json,
    parse_state,
)
from session_db.sync.state_models import (
    STATE_V2_SCHEMA,
    Commit,
    Phase,
    SessionState,
    Status,
)

logger = logging.getLogger(__name__)

OnSave = Callable[[Path], object]
SaveCallback = OnSave  # the seeds' name for it

_PHASE_ORDER = [*PHASES, Phase.complete.value]
_SHA = re.compile(r"^[0-9a-fA-F]{7,64}$")


class StateError(SessionDBError, ValueError):
    """A state change the workflow does not allow (a backward transition, say)."""


class InvalidPhaseTransitionError(StateError):
    """A phase change that is not one step forward (spec → plan → build → docs → complete)."""

    def __init__(self, from_phase: str, to_phase: str) -> None:
        """Name the phase the session is in and the one asked for."""
        self.from_phase = from_phase
        self.to_phase = to_phase
        position = _PHASE_ORDER.index(from_phase) if from_phase in _PHASE_ORDER else None
        following = (
            _PHASE_ORDER[position + 1]
            if position is not None and position + 1 < len(_PHASE_ORDER)
            else None
        )
        if to_phase not in _PHASE_ORDER:
            why = f"unknown phase; phases are {', '.join(_PHASE_ORDER)}"
        elif following is None:
            why = "it is complete"
        else:
            why = f"the next phase is {following}"
        super().__init__(f"cannot move from {from_phase} to {to_phase}: {why}")


class SessionNotFoundError(SessionDBError, FileNotFoundError):
    """The session folder has no `state.json`."""

    def __init__(self, session_id: str, path: str) -> None:
        """Name the session (its folder name) and the file looked for."""
        self.session_id = session_id
        self.path = path
        super().__init__(f"session {session_id} has no {STATE_FILE} ({path})")


class StateValidationError(FormatError):
    """A `state.json` that is not a valid session state, or a change that would make one."""


class ManagedState(SessionState):
    """What StateManager checks before every save: the seeds' state and this package's keys."""

    parent_session: Slug | None = None
    prior_session: Slug | None = None
    agents: list[AgentRecord] = Field(default_factory=list)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _encode(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False).encode() + b"\n"


def _validation_message(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}" if where else f"{first['msg']}{more}"


def _notify(callback: OnSave | None, session_dir: Path) -> None:
    if callback is None:
        return
    try:
        callback(session_dir)
    except Exception:
        # The file is the truth and it is saved; a sync that cannot be queued now
        # is caught up by the next one.
        logger.exception("on_save_callback failed for %s", session_dir)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so a crash leaves the old file or the new one, never a mix.

    The bytes go to a temporary file in the same folder (same filesystem, so the rename
    is atomic), which is fsynced, renamed over `path`, and then the folder is fsynced so
    the rename itself survives a power cut.
    """
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def upgrade_v1(raw: dict[str, Any], state: StateSummary) -> dict[str, Any]:
    """A version 1 state (`raw`, read as `state`) as a version 2 document, every key kept.

    Version 2 needs a topic and a creation time; a file without them gets its session id
    and the earliest time it records (or now).
    """
    history = {
        name: value.isoformat().replace("+00:00", "Z") if value else None
        for name, value in state.phase_history.items()
    }
    document = {"$schema": STATE_V2_SCHEMA, **raw}
    document.update(
        session_id=state.session_id,
        current_phase=state.phase.value,
        status=state.status.value,
        phase_history=history,
    )
    if not isinstance(document.get("topic"), str):
        document["topic"] = state.session_id
    if state.created_at is None:
        times = sorted(value for value in history.values() if value)
        document["created_at"] = times[0] if times else _now()
    if state.updated_at is None:
        document["updated_at"] = document["created_at"]
    return document


def read_state_document(session_dir: Path) -> dict[str, Any]:
    """Read a session folder's state.json (either version) as a version 2 document.

    Raises:
        SessionNotFoundError: The folder has no state.json.
        StateValidationError: The file is not a usable session state.
    """
    path = session_dir / STATE_FILE
    try:
        raw = load_json(path.read_bytes(), STATE_FILE)
        summary = parse_state(raw)
    except FileNotFoundError:
        raise SessionNotFoundError(session_dir.name, str(path)) from None
    except FormatError as error:
        raise StateValidationError(f"invalid {path}: {error}") from None
    document = upgrade_v1(raw, summary) if summary.version == 1 else raw
    if "session_type" in document and document["session_type"] is None:
        # Our own earlier version 1 upgrades wrote null, which the seeds' model refuses;
        # absent says the same and reads as their default.
        document = {key: value for key, value in document.items() if key != "session_type"}
    return {"$schema": STATE_V2_SCHEMA, **document}  # a file the seeds' models saved lacks it


class StateManager:
    """One session folder's `state.json`: load, change, save atomically, notify.

    Every change method saves at once. The methods are safe to call from several
    threads of one process; two processes writing one folder are not coordinated
    (the last save wins, and each save is whole).
    """

    def __init__(
        self, session_dir: str | os.PathLike[str], on_save_callback: OnSave | None = None
    ) -> None:
        """Bind to a session folder; nothing is read until `load()` or a change.

        Args:
            session_dir: The session's folder, `agents/sessions/{slug}`.
            on_save_callback: Called with `session_dir` after every save, even a failed
                one; what it raises is logged and never breaks the save.
        """
        self.session_dir = Path(session_dir)
        self.on_save_callback = on_save_callback
        self._state: dict[str, Any] | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"StateManager({str(self.session_dir)!r})"

    @property
    def path(self) -> Path:
        """The `state.json` this manager reads and writes."""
        return self.session_dir / STATE_FILE

    @property
    def slug(self) -> str:
        """The session's slug: its folder name."""
        return self.session_dir.name

    @classmethod
    def create(
        cls,
        session_dir: str | os.PathLike[str],
        *,
        topic: str,
        description: str | None = None,
        session_type: str = "full",
        parent_session: str | None = None,
        prior_session: str | None = None,
        on_save_callback: OnSave | None = None,
    ) -> "StateManager":
        """Create the folder and a new version 2 state in the spec phase, and save it.

        Raises:
            FileExistsError: The folder already holds a state.json.
            StateValidationError: A field has a value the format does not allow.
        """
        manager = cls(session_dir, on_save_callback)
        if manager.path.exists():
            raise FileExistsError(f"{manager.path} already exists")
        manager.session_dir.mkdir(parents=True, exist_ok=True)
        now = _now()
        manager._state = {
            "$schema": STATE_V2_SCHEMA,
            "session_id": manager.slug,
            "topic": topic,
            "description": description,
            "session_type": session_type,
            "created_at": now,
            "updated_at": now,
            "current_phase": Phase.spec.value,
            "status": Status.active.value,
            "phase_history": {
                f"{name}_{edge}_at": None for name in PHASES for edge in ("started", "completed")
            },
            "build_progress": {
                "checkpoints_total": None,  # until the build is planned
                "checkpoints_completed": [],
                "current_checkpoint": None,
            },
            "git": {"branch": None, "worktree": None, "base_branch": None},
            "commits": [],
            "artifacts": {"spec": "spec.md", "plan": "plan.json", "plan_readable": "plan.md"},
            "parent_session": parent_session,
            "prior_session": prior_session,
            "plan_state": None,
        }
        manager._state["phase_history"]["spec_started_at"] = now
        manager.save()
        return manager

    def load(self) -> dict[str, Any]:
        """Read `state.json` (either version) and return a copy of it as version 2.

        Raises:
            SessionNotFoundError: The folder has no state.json (a FileNotFoundError).
            StateValidationError: The file is not a valid session state (a FormatError).
        """
        with self._lock:
            document = read_state_document(self.session_dir)
            _check(document, f"invalid {self.path}")
            self._state = document
            return self.state

    @property
    def state(self) -> dict[str, Any]:
        """A deep copy of the current state (loaded on first use)."""
        with self._lock:
            return json.loads(json.dumps(self._loaded()))

    @property
    def phase(self) -> Phase:
        """The current workflow phase."""
        return Phase(self._loaded()["current_phase"])

    def _loaded(self) -> dict[str, Any]:
        if self._state is None:
            self.load()
        assert self._state is not None
        return self._state

    def save(self) -> None:
        """Validate and write the state atomically, then call the callback.

        Raises:
            StateValidationError: The state would not be a valid file (nothing is written).
            OSError: The file could not be written (the old file stays whole).
        """
        try:
            with self._lock:
                state = self._loaded()
                state["updated_at"] = _now()
                _check(state, f"refusing to save an invalid {STATE_FILE}")
                write_atomically(self.path, _encode(state))
        finally:
            _notify(self.on_save_callback, self.session_dir)

    def _change(self, apply: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            state = self._loaded()
            before = json.dumps(state)
            try:
                apply(state)
                self.save()
            except BaseException:
                # Memory keeps matching the file: a refused change or a failed write
                # leaves the state as it was.
                self._state = json.loads(before)
                raise

    def transition_to(self, phase: Phase | str) -> None:
        """Move to the next phase (spec → plan → build → docs → complete), stamping history.

        Raises:
            InvalidPhaseTransitionError: The phase is unknown, or is not the one after the
                current phase (a StateError).
        """

        def apply(state: dict[str, Any]) -> None:
            current = state["current_phase"]
            target = str(phase.value if isinstance(phase, Phase) else phase)
            if _next_phase(current) != target:
                raise InvalidPhaseTransitionError(current, target)
            now = _now()
            history = state.setdefault("phase_history", {})
            history[f"{current}_completed_at"] = now
            if target == Phase.complete:
                state["status"] = Status.complete.value
            else:
                history[f"{target}_started_at"] = now
            state["current_phase"] = target

        self._change(apply)

    def set_status(self, status: Status | str) -> None:
        """Set the lifecycle status: active, paused or failed.

        Raises:
            StateError: The status is unknown, is `complete` (reached by
                `transition_to("complete")`), or the session is already complete.
        """
        try:
            target = Status(status)
        except ValueError:
            raise StateError(f"unknown status {status!r}; use active, paused or failed") from None
        if target is Status.complete:
            raise StateError("a session becomes complete by transition_to('complete')")

        def apply(state: dict[str, Any]) -> None:
            if state["current_phase"] == Phase.complete.value:
                raise StateError(f"{self.slug} is complete; its status cannot change")
            state["status"] = target.value

        self._change(apply)

    def set_checkpoints_total(self, total: int) -> None:
        """Set how many build checkpoints the plan has (null until this is called).

        Raises:
            StateError: The total is negative or below the checkpoints already completed.
        """

        def apply(state: dict[str, Any]) -> None:
            progress = _build_progress(state)
            if not isinstance(total, int) or isinstance(total, bool) or total < 0:
                raise StateError(f"checkpoints_total must be a whole number ≥ 0, not {total!r}")
            if total < len(progress["checkpoints_completed"]):
                raise StateError(
                    f"checkpoints_total {total} is below the "
                    f"{len(progress['checkpoints_completed'])} checkpoints already completed"
                )
            progress["checkpoints_total"] = total

        self._change(apply)

    def start_checkpoint(self, checkpoint: int) -> None:
        """Mark a checkpoint as the one being built.

        Raises:
            StateError: The session is not in the build phase, or the checkpoint is done.
        """

        def apply(state: dict[str, Any]) -> None:
            progress = self._checkpoint_progress(state, checkpoint)
            if _same_id(checkpoint, progress["checkpoints_completed"]):
                raise StateError(f"checkpoint {checkpoint} is already completed")
            progress["current_checkpoint"] = checkpoint

        self._change(apply)

    def complete_checkpoint(self, checkpoint: int) -> None:
        """Mark a checkpoint as done (again is a no-op) and clear it as current.

        Raises:
            StateError: The session is not in the build phase, the build is not planned
                (no total yet), or this would complete more checkpoints than the total.
        """

        def apply(state: dict[str, Any]) -> None:
            progress = self._checkpoint_progress(state, checkpoint)
            done = progress["checkpoints_completed"]
            if not _same_id(checkpoint, done):
                if progress["checkpoints_total"] is None:
                    raise StateError(
                        f"cannot complete checkpoint {checkpoint}: the build is not planned "
                        "(set_checkpoints_total first)"
                    )
                if len(done) >= progress["checkpoints_total"]:
                    raise StateError(
                        f"cannot complete checkpoint {checkpoint}: all "
                        f"{progress['checkpoints_total']} checkpoints are already completed "
                        "(set_checkpoints_total first)"
                    )
                done.append(checkpoint)
            if str(progress.get("current_checkpoint")) == str(checkpoint):
                progress["current_checkpoint"] = None

        self._change(apply)

    def _checkpoint_progress(self, state: dict[str, Any], checkpoint: int) -> dict[str, Any]:
        if state["current_phase"] != Phase.build.value:
            raise StateError(
                f"checkpoints belong to the build phase; {self.slug} is in {state['current_phase']}"
            )
        if not _is_checkpoint_id(checkpoint):
            raise StateError(f"a checkpoint id is a whole number from 1, not {checkpoint!r}")
        return _build_progress(state)

    def record_commit(self, sha: str, message: str, checkpoint: int | None = None) -> None:
        """Record a commit made during the session (a sha already recorded is a no-op).

        Raises:
            StateError: `sha` is not 7 to 64 hexadecimal characters, or the checkpoint
                is not a whole number from 1.
        """
        if not isinstance(sha, str) or not _SHA.match(sha):
            raise StateError(f"a commit sha is 7 to 64 hexadecimal characters, not {sha!r}")
        if checkpoint is not None and not _is_checkpoint_id(checkpoint):
            raise StateError(f"a checkpoint id is a whole number from 1, not {checkpoint!r}")

        def apply(state: dict[str, Any]) -> None:
            commits = state.setdefault("commits", [])
            if any(commit.get("sha") == sha for commit in commits):
                return
            commits.append(
                {"sha": sha, "message": message, "checkpoint": checkpoint, "created_at": _now()}
            )

        self._change(apply)

    def set_git(
        self,
        *,
        branch: str | None = None,
        worktree: str | None = None,
        base_branch: str | None = None,
    ) -> None:
        """Set the git branch, worktree or base branch; arguments left None stay as they are."""
        changes = {"branch": branch, "worktree": worktree, "base_branch": base_branch}

        def apply(state: dict[str, Any]) -> None:
            git = state.get("git") or {}
            git.update({name: value for name, value in changes.items() if value is not None})
            state["git"] = git

        self._change(apply)

    def record_agent(
        self,
        agent_type: str,
        *,
        sdk_session_id: str | None = None,
        status: str = "executing",
        model: str | None = None,
        checkpoint_id: int | None = None,
    ) -> None:
        """Record an agent run in the state's `agents` list, or update the one with this id.

        The entry with the same `sdk_session_id` is updated (its start time kept);
        without an id a new entry is always added. A status of complete or failed
        stamps `completed_at`.

        Raises:
            StateValidationError: A value the format does not allow (nothing is saved).
        """

        def apply(state: dict[str, Any]) -> None:
            agents = state.setdefault("agents", [])
            entry = next(
                (a for a in agents if sdk_session_id and a.get("sdk_session_id") == sdk_session_id),
                None,
            )
            if entry is None:
                entry = {
                    "agent_type": agent_type,
                    "sdk_session_id": sdk_session_id,
                    "started_at": _now(),
                    "completed_at": None,
                }
                agents.append(entry)
            entry.update(
                agent_type=agent_type,
                status=status,
                model=model or entry.get("model"),
                checkpoint_id=checkpoint_id
                if checkpoint_id is not None
                else entry.get("checkpoint_id"),
            )
            if status in {"complete", "failed"}:
                entry["completed_at"] = _now()

        self._change(apply)


def _build_progress(state: dict[str, Any]) -> dict[str, Any]:
    progress = state.get("build_progress") or {}
    progress.setdefault("checkpoints_total", None)
    progress.setdefault("checkpoints_completed", [])
    progress.setdefault("current_checkpoint", None)
    state["build_progress"] = progress
    return progress


def _same_id(checkpoint: int, ids: list[Any]) -> bool:
    return str(checkpoint) in {str(item) for item in ids}


def _is_checkpoint_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _next_phase(current: str) -> str | None:
    position = _PHASE_ORDER.index(current) if current in _PHASE_ORDER else len(_PHASE_ORDER)
    return _PHASE_ORDER[position + 1] if position + 1 < len(_PHASE_ORDER) else None


def _check(document: dict[str, Any], what: str) -> None:
    """Raise StateValidationError unless the seeds' models (and ours) read `document`."""
    try:
        ManagedState.model_validate(document)
    except ValidationError as error:
        raise StateValidationError(f"{what}: {_validation_message(error)}") from None


class SessionStateManager:
    """The seeds' own StateManager API: one session's state.json as a mutable SessionState.

    Change `state` and call `save()`, or call a method that changes and saves. Unlike
    StateManager it checks only what the seeds' API checks (any sha, any status), and a
    move to `complete` leaves `status` as it was. Safe to call from several threads.
    """

    def __init__(
        self, session_dir: str | os.PathLike[str], on_save_callback: OnSave | None = None
    ) -> None:
        """Bind to a session folder; nothing is read until `load()` or first use of `state`.

        Args:
            session_dir: The session's folder, `agents/sessions/{slug}`.
            on_save_callback: Called with `session_dir` after every save, even a failed
                one; what it raises is logged and never breaks the save.
        """
        self.session_dir = Path(session_dir)
        self.on_save_callback = on_save_callback
        self._state: SessionState | None = None
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return f"SessionStateManager({str(self.session_dir)!r})"

    @property
    def state_file(self) -> Path:
        """The `state.json` this manager reads and writes."""
        return self.session_dir / STATE_FILE

    @property
    def state(self) -> SessionState:
        """The loaded state (loaded on first use); change it, then `save()`."""
        with self._lock:
            return self._state if self._state is not None else self.load()

    def load(self) -> SessionState:
        """Read state.json (either version) into a new `state` and return it.

        Raises:
            SessionNotFoundError: The folder has no state.json.
            StateValidationError: The file is not a valid session state.
        """
        with self._lock:
            document = read_state_document(self.session_dir)
            try:
                self._state = SessionState.model_validate(document)
            except ValidationError as error:
                message = f"invalid {self.state_file}: {_validation_message(error)}"
                raise StateValidationError(message) from None
            return self._state

    def save(self) -> None:
        """Stamp `updated_at`, write the state atomically, then call the callback.

        Raises:
            RuntimeError: Nothing was loaded yet.
            StateValidationError: A field holds a value the format does not allow
                (nothing is written).
            OSError: The file could not be written (the old file stays whole).
        """
        if self._state is None:
            raise RuntimeError("no state loaded: call load() first")
        try:
            with self._lock:
                self._state.updated_at = datetime.now(UTC)
                # Lists changed in place skipped the assignment checks: check it whole.
                document = self._state.model_dump(mode="json", by_alias=True, warnings=False)
                _check(document, f"refusing to save an invalid {STATE_FILE}")
                write_atomically(self.state_file, _encode(document))
        finally:
            _notify(self.on_save_callback, self.session_dir)

    def transition_to_phase(self, new_phase: Phase | str) -> None:
        """Move to the next phase, stamping when the current one completed and the next started.

        Raises:
            InvalidPhaseTransitionError: The phase is unknown or not the next one.
        """
        with self._lock:
            state = self.state
            current = Phase(state.current_phase)
            target = str(new_phase.value if isinstance(new_phase, Phase) else new_phase)
            if _next_phase(current.value) != target:
                raise InvalidPhaseTransitionError(current.value, target)
            now = datetime.now(UTC)
            setattr(state.phase_history, f"{current.value}_completed_at", now)
            if target != Phase.complete:  # complete is where the workflow ends: no start
                setattr(state.phase_history, f"{target}_started_at", now)
            state.current_phase = Phase(target)
            self.save()

    def init_build_progress(self, checkpoints_total: int) -> None:
        """Plan the build: this many checkpoints, none completed, checkpoint 1 current.

        Raises:
            ValueError: `checkpoints_total` is not a whole number of at least 1.
        """
        if not _is_checkpoint_id(checkpoints_total):
            raise ValueError(f"checkpoints_total must be at least 1, not {checkpoints_total!r}")
        with self._lock:
            progress = self.state.build_progress
            progress.checkpoints_total = checkpoints_total
            progress.checkpoints_completed = []
            progress.current_checkpoint = 1
            self.save()

    def start_checkpoint(self, checkpoint_id: int) -> None:
        """Make a checkpoint the current one.

        Raises:
            StateError: The build is not planned yet, or there is no such checkpoint.
        """
        with self._lock:
            self._check_checkpoint(checkpoint_id)
            self.state.build_progress.current_checkpoint = checkpoint_id
            self.save()

    def complete_checkpoint(self, checkpoint_id: int) -> None:
        """Mark a checkpoint completed; the next one becomes current (None after the last).

        Raises:
            StateError: The build is not planned yet, there is no such checkpoint, or it
                is already completed.
        """
        with self._lock:
            total = self._check_checkpoint(checkpoint_id)
            progress = self.state.build_progress
            if checkpoint_id in progress.checkpoints_completed:
                raise StateError(f"checkpoint {checkpoint_id} is already completed")
            progress.checkpoints_completed = sorted(
                [*progress.checkpoints_completed, checkpoint_id]
            )
            progress.current_checkpoint = checkpoint_id + 1 if checkpoint_id < total else None
            self.save()

    def _check_checkpoint(self, checkpoint_id: int) -> int:
        total = self.state.build_progress.checkpoints_total
        if total is None:
            raise StateError("the build is not planned yet: call init_build_progress first")
        if not _is_checkpoint_id(checkpoint_id) or checkpoint_id > total:
            raise StateError(f"checkpoint_id must be between 1 and {total}, not {checkpoint_id!r}")
        return total

    def add_commit(self, sha: str, message: str, checkpoint: int | None = None) -> None:
        """Record a commit made during the session, stamped now."""
        with self._lock:
            commit = Commit(
                sha=sha, message=message, checkpoint=checkpoint, created_at=datetime.now(UTC)
            )
            self.state.commits = [*self.state.commits, commit]
            self.save()

    def set_status(self, status: Status | str) -> None:
        """Set the lifecycle status (active, paused, complete or failed).

        Raises:
            ValueError: The status is unknown.
        """
        with self._lock:
            try:
                self.state.status = Status(status)
            except ValueError:
                raise StateError(
                    f"unknown status {status!r}; statuses are {', '.join(Status)}"
                ) from None
            self.save()

    def set_git_branch(self, branch: str) -> None:
        """Set the git branch the session works on."""
        with self._lock:
            self.state.git.branch = branch
            self.save()

    def set_git_worktree(self, worktree: str | os.PathLike[str] | None) -> None:
        """Set the git worktree the session works in (None: no worktree)."""
        with self._lock:
            self.state.git.worktree = None if worktree is None else os.fspath(worktree)
            self.save()
