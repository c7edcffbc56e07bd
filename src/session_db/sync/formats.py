"""Reading the files a session folder holds, as the seeds' system really writes them.

`state.json` comes in version 1 (per-phase records, no `$schema`) and version 2, and
version 2 files may carry version 1 keys and lack others; `plan.json` keeps its groups
under `task_groups` or, in older plans, `tranches`. The sync reads them strictly only
where it matters:

- a key the mirror does not map is kept as it is, whatever its type (the whole file is
  stored beside the mapped columns);
- a mapped key with an unexpected type or value is normalised where the meaning is
  clear (a null count is 0, "Build" is build, 4 and "4" are the same id), and is
  otherwise ignored, as if absent, with a warning that names it;
- a file is refused only when it is not JSON, holds a value no database can store
  (NaN, Infinity, an integer beyond 64 bits, nesting past `MAX_DEPTH`), is not a JSON
  object, or has no usable identity (`session_id`).

Nothing here touches a database: StateManager imports this module.
"""

import copy
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
)

from session_db.errors import SessionDBError
from session_db.sync.state_models import (
    STATE_V2_SCHEMA,
    Phase,
    PhaseName,
    SessionState,
    SessionTypeName,
    Status,
    StatusName,
)

__all__ = [
    "MAX_DEPTH",
    "PHASES",
    "PLAN_FILE",
    "STATE_FILE",
    "STATE_V2_SCHEMA",
    "AgentRecord",
    "FormatError",
    "Phase",
    "Plan",
    "PlanCheckpoint",
    "PlanGroup",
    "PlanTask",
    "StateSummary",
    "Status",
    "UnrecognisedFileError",
    "check_slug",
    "load_json",
    "parse_plan",
    "parse_state",
    "plan_tasks",
]

STATE_FILE = "state.json"
PLAN_FILE = "plan.json"
PHASES = ("spec", "plan", "build", "docs")
# Deeper than any real file by far, and shallow enough that every step after reading
# (validation, the JSON writers of both engines) stays clear of Python's recursion limit.
MAX_DEPTH = 256
# The sessions table's counters are 32-bit integers on PostgreSQL.
_COUNT_MAX = 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

M = TypeVar("M", bound=BaseModel)


class FormatError(SessionDBError, ValueError):
    """A file exists but cannot be used: not JSON, not an object, or without an identity."""


class UnrecognisedFileError(FormatError):
    """A `state.json` that is not a session state at all (another tool's file)."""


# Decoding --------------------------------------------------------------------------------


class _Unstorable(Exception):
    """A JSON value no database column can hold as it is (raised from the decoder's hooks)."""


def _no_constant(name: str) -> Any:
    raise _Unstorable(f"holds {name}, which is not a JSON number and no database can store")


def _checked_int(literal: str) -> int:
    value = int(literal)
    if len(literal) >= 19 and not _INT64_MIN <= value <= _INT64_MAX:
        shown = literal if len(literal) <= 24 else f"{literal[:20]}… ({len(literal)} digits)"
        raise _Unstorable(f"holds the integer {shown}, beyond the 64-bit range a database stores")
    return value


def _checked_float(literal: str) -> float:
    value = float(literal)
    if not math.isfinite(value):
        raise _Unstorable(f"holds the number {literal[:24]}, too large for a database to store")
    return value


_DECODER = json.JSONDecoder(
    parse_constant=_no_constant, parse_int=_checked_int, parse_float=_checked_float
)


def _depth(value: Any) -> int:
    """How deeply containers nest in `value`, found without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children if isinstance(child, dict | list))
    return deepest if isinstance(value, dict | list) else 0


def load_json(data: bytes, name: str) -> Any:
    """Decode a JSON file's bytes, or raise FormatError saying why it cannot be used."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise FormatError(f"{name} is not UTF-8 text (byte {error.start})") from None
    too_deep = FormatError(f"{name} is nested more than {MAX_DEPTH} levels deep")
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as error:
        raise FormatError(
            f"{name} is not valid JSON (line {error.lineno}, column {error.colno}: {error.msg})"
        ) from None
    except _Unstorable as error:
        raise FormatError(f"{name} {error}") from None
    except RecursionError:
        raise too_deep from None
    # Counting brackets is C-speed; only a text with many of them needs the walk.
    if text.count("[") + text.count("{") > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        raise too_deep
    return value


# Lenient validation ----------------------------------------------------------------------

_GONE = object()  # marks a value the lenient validation drops


def _existing_path(data: Any, loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """The longest prefix of an error's location that names a value in `data`.

    What follows is a missing field or a union member's tag ('int', 'str').
    """
    path: list[int | str] = []
    for part in loc:
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_dict or in_list):
            break
        data = data[part]
        path.append(part)
    return tuple(path)


def _set_gone(data: Any, path: tuple[int | str, ...]) -> None:
    for part in path[:-1]:
        data = data[part]  # type: ignore[index]
        if data is _GONE:
            return  # a container around it is already dropped
    data[path[-1]] = _GONE  # type: ignore[index]


def _purge(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _purge(value) for key, value in data.items() if value is not _GONE}
    if isinstance(data, list):
        return [_purge(value) for value in data if value is not _GONE]
    return data


def _dotted(path: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in path)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def _validate_leniently(
    model: type[M], data: dict[str, Any], name: str
) -> tuple[M, list[str], set[tuple[int | str, ...]]]:
    """Validate `data`, dropping each value the model refuses instead of failing.

    Returns:
        The model, one warning per dropped value, and the paths of the dropped values.

    Raises:
        FormatError: The model refuses the data as a whole.
    """
    warnings: list[str] = []
    dropped: set[tuple[int | str, ...]] = set()
    # Each pass drops at least one value, so this ends; nested refusals can need a few.
    for _ in range(32):
        try:
            return model.model_validate(data), warnings, dropped
        except ValidationError as error:
            this_pass: set[tuple[int | str, ...]] = set()
            for problem in error.errors(include_url=False):
                path = _existing_path(data, problem["loc"])
                if not path:
                    raise FormatError(f"{name}: {problem['msg']}") from None
                if path in this_pass:  # a union reports one value once per member
                    continue
                this_pass.add(path)
                if problem["type"] == "missing":
                    missing = problem["loc"][len(path)]
                    warnings.append(
                        f"{name}: {_dotted(path)}: {missing}: {problem['msg']}; "
                        f"{_dotted(path)} is ignored"
                    )
                else:
                    warnings.append(
                        f"{name}: {_dotted(path)}: {problem['msg']} "
                        f"(got {_shown(problem['input'])}); the value is ignored"
                    )
            if not dropped:  # validation never changes its input; dropping does
                data = copy.deepcopy(data)
            for path in this_pass:
                _set_gone(data, path)
            dropped |= this_pass
            data = _purge(data)
    raise FormatError(f"{name}: too many values the sync cannot use")


# Field types -----------------------------------------------------------------------------


def _id_text(value: Any) -> Any:
    # Writers spell ids as numbers or strings ("1" and 1 are the same checkpoint).
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    return value


def _null_is_empty(value: Any) -> Any:
    return [] if value is None else value


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


def _slug(value: str) -> str:
    return check_slug(value, "a session reference")


IdText = Annotated[str, BeforeValidator(_id_text)]
Slug = Annotated[str, AfterValidator(_slug)]
Count = Annotated[int, Field(ge=0, le=_COUNT_MAX)]


class _Read(BaseModel):
    """A reading of some keys of a file; the others are kept elsewhere, whole."""

    model_config = ConfigDict(extra="ignore")


class _Kept(BaseModel):
    """A reading that keeps the keys it does not name (they go into metadata)."""

    model_config = ConfigDict(extra="allow")


# state.json ------------------------------------------------------------------------------


class _PhaseTimes(_Read):
    spec_started_at: datetime | None = None
    spec_completed_at: datetime | None = None
    plan_started_at: datetime | None = None
    plan_completed_at: datetime | None = None
    build_started_at: datetime | None = None
    build_completed_at: datetime | None = None
    docs_started_at: datetime | None = None
    docs_completed_at: datetime | None = None


def _phase_record(value: Any) -> Any:
    # {"spec": "finalized"} says what {"spec": {"status": "finalized"}} says.
    return {"status": value} if isinstance(value, str) else value


class _PhaseV1(_Read):
    status: str | None = None
    started_at: datetime | None = None
    finalized_at: datetime | None = None
    completed_at: datetime | None = None


class _Progress(_Read):
    checkpoints_total: Count | None = None
    checkpoints_completed: Annotated[list[IdText], BeforeValidator(_null_is_empty)] = Field(
        default_factory=list
    )


class _Git(_Read):
    worktree: str | None = None


class AgentRecord(_Kept):
    """An agent run of the session, with the SDK session id to resume it.

    Not in the seeds' files: an optional `agents` list this package's StateManager writes,
    so resume ids travel with the folder. Agents a runtime records only in the database
    are left alone by the sync.
    """

    agent_type: str = Field(min_length=1, max_length=64)
    sdk_session_id: str | None = Field(default=None, max_length=255)
    status: Literal["pending", "executing", "complete", "failed"] = "pending"
    model: str | None = Field(default=None, max_length=128)
    checkpoint_id: Count | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None


class _StateKeys(_Read):
    """The keys of state.json (either version) the mirror maps to columns and rows."""

    topic: str | None = None
    description: str | None = None
    session_type: SessionTypeName | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    current_phase: PhaseName | None = None
    status: StatusName | None = None
    phase_history: _PhaseTimes = Field(default_factory=_PhaseTimes)
    phases: dict[str, Annotated[_PhaseV1, BeforeValidator(_phase_record)]] = Field(
        default_factory=dict
    )
    build_progress: _Progress = Field(default_factory=_Progress)
    git: _Git = Field(default_factory=_Git)
    parent_session: Slug | None = None
    prior_session: Slug | None = None
    agents: list[AgentRecord] = Field(default_factory=list)


# A null where an object or a list belongs says "none": the same as the key absent.
_CONTAINERS = {"phase_history", "phases", "build_progress", "git", "agents"}
# Keys that show a JSON object without `$schema` is a version 1 state (with session_id).
_STATE_KEYS = {"phases", "current_phase", "status", "phase_history", "build_progress", "topic"}


@dataclass
class StateSummary:
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
    worktree: str | None
    parent_session: str | None
    prior_session: str | None
    agents: list[AgentRecord]
    raw: dict[str, Any] = field(repr=False)
    warnings: list[str] = field(default_factory=list)


def _identity(raw: dict[str, Any]) -> str:
    session_id = _id_text(raw.get("session_id"))
    if not isinstance(session_id, str) or not session_id.strip():
        raise FormatError(
            f"{STATE_FILE} has no usable identity: session_id is "
            + ("missing" if "session_id" not in raw else f"{_shown(raw['session_id'])}")
        )
    return session_id


def parse_state(raw: Any) -> StateSummary:
    """Recognise and read a decoded state.json of either version, leniently.

    Raises:
        UnrecognisedFileError: The JSON is not a session state (another tool's file).
        FormatError: It is a session state without a usable session_id.
    """
    if not isinstance(raw, dict):
        raise UnrecognisedFileError(
            f"{STATE_FILE} holds a JSON {type(raw).__name__}, not a session state object"
        )
    has_schema = isinstance(raw.get("$schema"), str)
    if not has_schema and not ("session_id" in raw and _STATE_KEYS & raw.keys()):
        raise UnrecognisedFileError(
            f"{STATE_FILE} is not a session state: it has no $schema string, and no "
            "session_id with phases, current_phase or the other keys of a state"
        )
    session_id = _identity(raw)
    mapped = {
        key: value
        for key, value in raw.items()
        if key in _StateKeys.model_fields and not (value is None and key in _CONTAINERS)
    }
    keys, warnings, _ = _validate_leniently(_StateKeys, mapped, STATE_FILE)
    history = keys.phase_history.model_dump()
    for name in PHASES:  # version 1 records fill what phase_history does not say
        record = keys.phases.get(name)
        if record is not None:
            history[f"{name}_started_at"] = history[f"{name}_started_at"] or record.started_at
            history[f"{name}_completed_at"] = history[f"{name}_completed_at"] or (
                record.completed_at or record.finalized_at
            )
    phase = keys.current_phase or _first_phase_not_done(history, keys.phases)
    progress = keys.build_progress
    return StateSummary(
        version=2 if has_schema or "phase_history" in raw else 1,
        session_id=session_id,
        topic=keys.topic,
        description=keys.description,
        session_type=keys.session_type.value if keys.session_type else None,
        phase=phase,
        status=keys.status or (Status.complete if phase is Phase.complete else Status.active),
        created_at=keys.created_at,
        updated_at=keys.updated_at,
        phase_history=history,
        checkpoints_total=progress.checkpoints_total or 0,  # null until the build is planned
        checkpoints_completed=len(set(progress.checkpoints_completed)),
        worktree=keys.git.worktree,
        parent_session=keys.parent_session,
        prior_session=keys.prior_session,
        agents=keys.agents,
        raw=raw,
        warnings=warnings,
    )


_DONE_WORDS = {"complete", "completed", "finalized", "finalised", "done"}


def _first_phase_not_done(
    history: dict[str, datetime | None], phases: dict[str, _PhaseV1]
) -> Phase:
    """The first phase not yet done (completed in the history, or done by its record)."""
    for name in PHASES:
        record = phases.get(name)
        done = history[f"{name}_completed_at"] is not None or (
            record is not None and (record.status or "").strip().lower() in _DONE_WORDS
        )
        if not done:
            return Phase(name)
    return Phase.complete


# plan.json -------------------------------------------------------------------------------


class PlanTask(_Kept):
    """A task in plan.json ("1.1.1"); `actions`, `action`, `subtasks` and the rest are kept."""

    id: IdText
    title: str | None = None
    description: str | None = None
    status: str | None = None
    depends_on: Annotated[list[IdText], BeforeValidator(_null_is_empty)] = Field(
        default_factory=list
    )


class PlanGroup(_Kept):
    """A group of tasks ("1.1"): an entry of `task_groups`, or of an older plan's `tranches`."""

    id: IdText
    title: str | None = None
    objective: str | None = None
    goal: str | None = None  # a tranche's word for its objective
    tasks: Annotated[list[PlanTask], BeforeValidator(_null_is_empty)] = Field(default_factory=list)


class PlanCheckpoint(_Kept):
    """A checkpoint in plan.json (an integer id, usually)."""

    id: IdText
    title: str | None = None
    goal: str | None = None
    task_groups: Annotated[list[PlanGroup], BeforeValidator(_null_is_empty)] = Field(
        default_factory=list
    )
    tranches: Annotated[list[PlanGroup], BeforeValidator(_null_is_empty)] = Field(
        default_factory=list
    )

    @property
    def groups(self) -> list[PlanGroup]:
        """The checkpoint's groups, whichever key holds them."""
        return [*self.task_groups, *self.tranches]


class Plan(_Kept):
    """plan.json: checkpoints of task groups of tasks.

    `checkpoints` is None when the file holds them in a form the sync cannot read: the
    plan is then not mirrored, and the rows of its last good reading stay.
    """

    checkpoints: list[PlanCheckpoint] | None = Field(default_factory=list)
    _warnings: list[str] = PrivateAttr(default_factory=list)

    @property
    def warnings(self) -> list[str]:
        """What the reading left out, one line each."""
        return self._warnings


def parse_plan(raw: Any) -> Plan:
    """Read a decoded plan.json leniently: what cannot be used is left out, with a warning.

    A repeated id, a dependency on an unknown task, and a dependency that closes a cycle
    are each dropped with a warning.

    Raises:
        FormatError: It is not a JSON object.
    """
    if not isinstance(raw, dict):
        raise FormatError(f"{PLAN_FILE} holds a JSON {type(raw).__name__}, not a plan object")
    data = dict(raw)
    if data.get("checkpoints", ()) is None:
        data["checkpoints"] = []
    plan, warnings, dropped = _validate_leniently(Plan, data, PLAN_FILE)
    if ("checkpoints",) in dropped:
        plan.checkpoints = None
    plan.warnings.extend([*warnings, *_drop_repeated_ids(plan), *_drop_bad_dependencies(plan)])
    return plan


def plan_tasks(plan: Plan) -> list[tuple[PlanCheckpoint, PlanGroup, PlanTask]]:
    """Every task of a plan with its checkpoint and group, in plan order."""
    return [
        (checkpoint, group, task)
        for checkpoint in plan.checkpoints or []
        for group in checkpoint.groups
        for task in group.tasks
    ]


def _drop_repeated_ids(plan: Plan) -> list[str]:
    """Keep the first checkpoint, group or task of each id; later ones are dropped."""
    warnings: list[str] = []
    seen: set[str] = set()
    tasks_seen: set[str] = set()

    def first(ref: str, what: str, ids: set[str]) -> bool:
        if ref in ids:
            warnings.append(
                f"{PLAN_FILE}: the {what} id {ref!r} is used again; the later one is ignored"
            )
            return False
        ids.add(ref)
        return True

    checkpoints = [cp for cp in plan.checkpoints or [] if first(cp.id, "checkpoint", seen)]
    for checkpoint in checkpoints:
        checkpoint.task_groups = [g for g in checkpoint.task_groups if first(g.id, "group", seen)]
        checkpoint.tranches = [g for g in checkpoint.tranches if first(g.id, "group", seen)]
        for group in checkpoint.groups:
            group.tasks = [t for t in group.tasks if first(t.id, "task", tasks_seen)]
    if plan.checkpoints is not None:
        plan.checkpoints = checkpoints
    return warnings


def _drop_bad_dependencies(plan: Plan) -> list[str]:
    """Drop dependencies on unknown tasks, then each one that closes a cycle."""
    warnings: list[str] = []
    tasks = {task.id: task for _, _, task in plan_tasks(plan)}
    for task in tasks.values():
        kept = []
        for needed in dict.fromkeys(task.depends_on):
            if needed in tasks:
                kept.append(needed)
            else:
                warnings.append(
                    f"{PLAN_FILE}: task {task.id} depends on unknown task {needed}; "
                    "that dependency is ignored"
                )
        task.depends_on = kept
    for task_id, needed in _cycle_edges({task_id: t.depends_on for task_id, t in tasks.items()}):
        tasks[task_id].depends_on.remove(needed)
        warnings.append(
            f"{PLAN_FILE}: task {task_id} depending on {needed} closes a cycle; "
            "that dependency is ignored"
        )
    return warnings


def _cycle_edges(edges: dict[str, list[str]]) -> Iterator[tuple[str, str]]:
    """The edges whose removal leaves the graph acyclic (the back edges of a search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for root in sorted(edges):
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(list(edges[root])))]
        while stack:  # iterative: a plan's chains can be longer than the recursion limit
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                yield node, child
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(list(edges[child]))))


# JSON Schemas ----------------------------------------------------------------------------


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schemas of the files, keyed by file name under `sync/schemas/`.

    state.json's is what the writers (StateManager, SessionStateManager) produce; the
    sync reads more than that, as the module docstring says.
    """
    models: dict[str, type[BaseModel]] = {
        "state.v2.schema.json": SessionState,
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
