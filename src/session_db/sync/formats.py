"""The files a session folder holds: `state.json` (versions 1 and 2) and `plan.json`.

Reading is lenient where the seeds' own system varies (missing keys, `Z` or `+00:00`,
nulls, numbers where strings are expected) and strict where a wrong type means the file
is broken. Keys this code does not map are kept: every model allows extra fields, and
the sync stores the whole file alongside the mapped columns.

Nothing here touches a database: StateManager imports this module.
"""

import json
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

STATE_FILE = "state.json"
PLAN_FILE = "plan.json"
STATE_V2_SCHEMA = "https://session-db.dev/schemas/state.v2.schema.json"

PHASES = ("spec", "plan", "build", "docs")


class Phase(StrEnum):
    """A session's place in the workflow; `complete` follows `docs`."""

    SPEC = "spec"
    PLAN = "plan"
    BUILD = "build"
    DOCS = "docs"
    COMPLETE = "complete"


class Status(StrEnum):
    """A session's lifecycle state, as state.json writes it."""

    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETE = "complete"
    FAILED = "failed"


class FormatError(ValueError):
    """A file exists but cannot be used: not JSON, truncated, or wrongly typed."""


class UnrecognisedFileError(FormatError):
    """A `state.json` that is not a session state at all (another tool's file)."""


class _Lenient(BaseModel):
    """Keeps unknown keys; turns numeric ids into strings."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def _id_text(value: Any) -> Any:
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value


# Writers spell ids as numbers or strings ("1" and 1 are the same checkpoint).
IdText = Annotated[str, BeforeValidator(_id_text)]


class PhaseHistory(_Lenient):
    """When each phase started and was completed (version 2)."""

    spec_started_at: datetime | None = None
    spec_completed_at: datetime | None = None
    plan_started_at: datetime | None = None
    plan_completed_at: datetime | None = None
    build_started_at: datetime | None = None
    build_completed_at: datetime | None = None
    docs_started_at: datetime | None = None
    docs_completed_at: datetime | None = None


class BuildProgress(_Lenient):
    """How far the build phase is: checkpoints planned, done, and in progress."""

    checkpoints_total: int = Field(default=0, ge=0)
    checkpoints_completed: list[IdText] = Field(default_factory=list)
    current_checkpoint: IdText | None = None


class GitState(_Lenient):
    """Where the session's work lives in git."""

    branch: str | None = None
    worktree: str | None = None
    base_branch: str | None = None


class CommitRecord(_Lenient):
    """One commit made during the session."""

    sha: str
    message: str | None = None
    checkpoint: IdText | None = None
    created_at: datetime | None = None


class AgentRecord(_Lenient):
    """An agent run of the session, with the SDK session id to resume it.

    Not in the seeds' files: an optional `agents` list this package's StateManager writes,
    so resume ids travel with the folder. Agents a runtime records only in the database
    are left alone by the sync.
    """

    agent_type: str = Field(min_length=1, max_length=64)
    sdk_session_id: str | None = Field(default=None, max_length=255)
    status: Literal["pending", "executing", "complete", "failed"] = "pending"
    model: str | None = Field(default=None, max_length=128)
    checkpoint_id: int | None = Field(default=None, ge=0)
    started_at: datetime | None = None
    completed_at: datetime | None = None


class StateV2(_Lenient):
    """`state.json` version 2, marked by its `$schema` string."""

    schema_: str = Field(alias="$schema")
    session_id: str = Field(min_length=1)
    topic: str | None = None
    description: str | None = None
    session_type: Literal["full", "quick", "research"] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    current_phase: Phase = Phase.SPEC
    status: Status = Status.ACTIVE
    phase_history: PhaseHistory = Field(default_factory=PhaseHistory)
    build_progress: BuildProgress = Field(default_factory=BuildProgress)
    git: GitState = Field(default_factory=GitState)
    commits: list[CommitRecord] = Field(default_factory=list)
    artifacts: dict[str, str | None] = Field(default_factory=dict)
    parent_session: str | None = None
    prior_session: str | None = None
    plan_state: Any = None
    agents: list[AgentRecord] = Field(default_factory=list)


class PhaseV1(_Lenient):
    """One phase of a version 1 state (`phases.spec`, ...)."""

    status: str | None = None
    started_at: datetime | None = None
    finalized_at: datetime | None = None
    completed_at: datetime | None = None


class StateV1(_Lenient):
    """Legacy `state.json` version 1: per-phase records instead of one current phase."""

    session_id: str = Field(min_length=1)
    topic: str | None = None
    description: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    current_phase: Phase | None = None
    phases: dict[str, PhaseV1] = Field(default_factory=dict)
    granularity: str | None = None
    parent_session: str | None = None
    prior_session: str | None = None
    goals: list[Any] = Field(default_factory=list)
    key_decisions: list[Any] = Field(default_factory=list)
    open_questions: list[Any] = Field(default_factory=list)
    plan_state: Any = None
    commits: list[CommitRecord] = Field(default_factory=list)
    doc_updates: list[Any] = Field(default_factory=list)
    research_artifacts: list[Any] = Field(default_factory=list)


class PlanTask(_Lenient):
    """A task in plan.json ("1.1.1")."""

    id: IdText
    title: str
    description: str | None = None
    file_path: str | None = None
    status: str | None = None
    depends_on: list[IdText] = Field(default_factory=list)
    context: Any = None
    actions: Any = None


class PlanGroup(_Lenient):
    """A task group in plan.json ("1.1")."""

    id: IdText
    title: str | None = None
    objective: str | None = None
    status: str | None = None
    tasks: list[PlanTask] = Field(default_factory=list)


class PlanCheckpoint(_Lenient):
    """A checkpoint in plan.json (an integer id)."""

    id: int
    title: str | None = None
    goal: str | None = None
    prerequisites: list[Any] = Field(default_factory=list)
    status: str | None = None
    task_groups: list[PlanGroup] = Field(default_factory=list)


class Plan(_Lenient):
    """plan.json: checkpoints of task groups of tasks."""

    session_id: str | None = None
    status: str | None = None
    checkpoints: list[PlanCheckpoint] = Field(default_factory=list)


@dataclass
class SessionState:
    """A state.json of either version, reduced to what the database mirrors."""

    version: int
    session_id: str
    topic: str | None
    description: str | None
    session_type: str | None
    phase: Phase
    status: Status
    created_at: datetime | None
    updated_at: datetime | None
    phase_history: dict[str, datetime | None]
    checkpoints_total: int
    checkpoints_completed: int
    parent_session: str | None
    prior_session: str | None
    agents: list[AgentRecord]
    raw: dict[str, Any] = field(repr=False)


def load_json(data: bytes, name: str) -> Any:
    """Decode a JSON file's bytes, or raise FormatError saying where it broke."""
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise FormatError(f"{name} is not UTF-8 text (byte {error.start})") from None
    except json.JSONDecodeError as error:
        raise FormatError(
            f"{name} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None


def _validation_message(name: str, error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{name}: {where}: {first['msg']}" if where else f"{name}: {first['msg']}"


def parse_state(raw: Any) -> SessionState:
    """Recognise and read a decoded state.json of either version.

    Raises:
        UnrecognisedFileError: The JSON is not a session state (another tool's file).
        FormatError: It is a session state, but a field has the wrong type or value.
    """
    if not isinstance(raw, dict):
        raise UnrecognisedFileError(
            f"{STATE_FILE} holds a JSON {type(raw).__name__}, not a session state object"
        )
    if isinstance(raw.get("$schema"), str):
        return _from_v2(raw)
    if "session_id" in raw and ("phases" in raw or "current_phase" in raw):
        return _from_v1(raw)
    raise UnrecognisedFileError(
        f"{STATE_FILE} is not a session state: it has no $schema string, and no "
        "session_id with phases or current_phase"
    )


def check_slug(value: str, what: str) -> str:
    """Return `value` if it is a plain session folder name, or raise FormatError.

    A name with a separator, `.` or `..` could point outside `agents/sessions/`.
    """
    if (
        not value
        or value in {".", ".."}
        or "/" in value
        or "\\" in value
        or "\x00" in value
        or len(value) > 255
    ):
        raise FormatError(f"{what} must be a session folder name, not {value!r}")
    return value


def _check_references(state: StateV1 | StateV2) -> None:
    for name in ("parent_session", "prior_session"):
        value = getattr(state, name)
        if value is not None:
            check_slug(value, f"{STATE_FILE}: {name}")


def _from_v2(raw: dict[str, Any]) -> SessionState:
    try:
        state = StateV2.model_validate(raw)
    except ValidationError as error:
        raise FormatError(_validation_message(STATE_FILE, error)) from None
    _check_references(state)
    return SessionState(
        version=2,
        session_id=state.session_id,
        topic=state.topic,
        description=state.description,
        session_type=state.session_type,
        phase=state.current_phase,
        status=state.status,
        created_at=state.created_at,
        updated_at=state.updated_at,
        phase_history={
            name: getattr(state.phase_history, name) for name in PhaseHistory.model_fields
        },
        checkpoints_total=state.build_progress.checkpoints_total,
        checkpoints_completed=len(set(state.build_progress.checkpoints_completed)),
        parent_session=state.parent_session,
        prior_session=state.prior_session,
        agents=state.agents,
        raw=raw,
    )


_DONE_WORDS = {"complete", "completed", "finalized", "done"}


def _from_v1(raw: dict[str, Any]) -> SessionState:
    try:
        state = StateV1.model_validate(raw)
    except ValidationError as error:
        raise FormatError(_validation_message(STATE_FILE, error)) from None
    _check_references(state)
    history: dict[str, datetime | None] = {}
    for name in PHASES:
        record = state.phases.get(name, PhaseV1())
        history[f"{name}_started_at"] = record.started_at
        history[f"{name}_completed_at"] = record.completed_at or record.finalized_at
    phase = state.current_phase or _current_phase_v1(state.phases)
    return SessionState(
        version=1,
        session_id=state.session_id,
        topic=state.topic,
        description=state.description,
        session_type=None,
        phase=phase,
        status=Status.COMPLETE if phase == Phase.COMPLETE else Status.ACTIVE,
        created_at=state.created_at,
        updated_at=state.updated_at,
        phase_history=history,
        checkpoints_total=0,
        checkpoints_completed=0,
        parent_session=state.parent_session,
        prior_session=state.prior_session,
        agents=[],
        raw=raw,
    )


def _current_phase_v1(phases: dict[str, PhaseV1]) -> Phase:
    """The first phase not yet done; `complete` when every recorded phase is done."""
    for name in PHASES:
        record = phases.get(name)
        done = record is not None and (
            (record.status or "").lower() in _DONE_WORDS
            or record.completed_at is not None
            or record.finalized_at is not None
        )
        if not done:
            return Phase(name)
    return Phase.COMPLETE


def parse_plan(raw: Any) -> Plan:
    """Read a decoded plan.json.

    Raises:
        FormatError: It is not a plan object, a field has the wrong type, ids repeat, or
            the task dependencies name unknown tasks or form a cycle.
    """
    if not isinstance(raw, dict):
        raise FormatError(f"{PLAN_FILE} holds a JSON {type(raw).__name__}, not a plan object")
    try:
        plan = Plan.model_validate(raw)
    except ValidationError as error:
        raise FormatError(_validation_message(PLAN_FILE, error)) from None
    _check_plan_ids(plan)
    return plan


def plan_tasks(plan: Plan) -> list[tuple[PlanCheckpoint, PlanGroup, PlanTask]]:
    """Every task of a plan with its checkpoint and group, in plan order."""
    return [
        (checkpoint, group, task)
        for checkpoint in plan.checkpoints
        for group in checkpoint.task_groups
        for task in group.tasks
    ]


def _check_plan_ids(plan: Plan) -> None:
    refs: set[str] = set()
    for checkpoint in plan.checkpoints:
        for ref in [str(checkpoint.id), *(group.id for group in checkpoint.task_groups)]:
            if ref in refs:
                raise FormatError(f"{PLAN_FILE}: the id {ref!r} is used twice")
            refs.add(ref)
    tasks = {task.id: task for _, _, task in plan_tasks(plan)}
    if len(tasks) != len(plan_tasks(plan)):
        raise FormatError(f"{PLAN_FILE}: a task id is used twice")
    for task in tasks.values():
        for needed in task.depends_on:
            if needed not in tasks:
                raise FormatError(f"{PLAN_FILE}: task {task.id} depends on unknown task {needed}")
    _check_acyclic({task_id: task.depends_on for task_id, task in tasks.items()})


def _check_acyclic(edges: dict[str, list[str]]) -> None:
    visiting, done = set(), set()

    def visit(node: str, path: list[str]) -> None:
        if node in done:
            return
        if node in visiting:
            cycle = " -> ".join([*path[path.index(node) :], node])
            raise FormatError(f"{PLAN_FILE}: task dependencies form a cycle: {cycle}")
        visiting.add(node)
        for needed in edges[node]:
            visit(needed, [*path, node])
        visiting.discard(node)
        done.add(node)

    for node in sorted(edges):
        visit(node, [])


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of the formats, keyed by file name under `sync/schemas/`."""
    models = {
        "state.v2.schema.json": StateV2,
        "state.v1.schema.json": StateV1,
        "plan.schema.json": Plan,
    }
    return {
        name: {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": f"https://session-db.dev/schemas/{name}",
            **model.model_json_schema(by_alias=True),
        }
        for name, model in models.items()
    }


def write_json_schemas(folder: Path | None = None) -> list[Path]:
    """Write the JSON Schemas into `folder` (default: the package's `schemas/`)."""
    folder = folder or Path(__file__).with_name("schemas")
    folder.mkdir(exist_ok=True)
    written = []
    for name, schema in json_schemas().items():
        path = folder / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":  # python -m session_db.sync.formats regenerates the schemas
    for written_path in write_json_schemas():
        print(written_path)
