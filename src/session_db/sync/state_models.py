"""The seeds' own state.json version 2, as typed models: the names their StateManager API uses.

`SessionState` and its parts are what `SessionStateManager` loads and saves, and what
`StateManager` checks every save against, so a file either one writes has the keys and
value types the seeds' own models read: `checkpoints_total` is null until the build is
planned, every `phase_history` key is present, and `$schema` is the seeds' text. Keys
these models do not name (`goals`, `parent_session`, `agents`, ...) are kept as they are.

Pure pydantic, no database: StateManager imports this module.
"""

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

STATE_V2_SCHEMA = "Session state manifest v2 - programmatic updates only"


class Phase(StrEnum):
    """A session's place in the workflow: spec → plan → build → docs → complete."""

    spec = "spec"
    plan = "plan"
    build = "build"
    docs = "docs"
    complete = "complete"


class Status(StrEnum):
    """A session's lifecycle state."""

    active = "active"
    paused = "paused"
    complete = "complete"
    failed = "failed"


class SessionType(StrEnum):
    """The workflow a session follows."""

    full = "full"
    quick = "quick"
    research = "research"


def _lower(value: Any) -> Any:
    # "Build" and "build" are the same phase; the files are written by hand at times.
    return value.strip().lower() if isinstance(value, str) else value


PhaseName = Annotated[Phase, BeforeValidator(_lower)]
StatusName = Annotated[Status, BeforeValidator(_lower)]
SessionTypeName = Annotated[SessionType, BeforeValidator(_lower)]


class _Model(BaseModel):
    """Keeps the keys it does not name, and checks a value when a field is assigned."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, populate_by_name=True)


class PhaseHistory(_Model):
    """When each phase started and was completed (null until it happens)."""

    spec_started_at: datetime | None = None
    spec_completed_at: datetime | None = None
    plan_started_at: datetime | None = None
    plan_completed_at: datetime | None = None
    build_started_at: datetime | None = None
    build_completed_at: datetime | None = None
    docs_started_at: datetime | None = None
    docs_completed_at: datetime | None = None


class BuildProgress(_Model):
    """Checkpoints planned (null until the build is planned), completed and in progress."""

    checkpoints_total: int | None = None
    checkpoints_completed: list[int] = Field(default_factory=list)
    current_checkpoint: int | None = None


class GitContext(_Model):
    """Where the session's work lives in git."""

    branch: str | None = None
    worktree: str | None = None
    base_branch: str | None = None


class Commit(_Model):
    """A commit made during the session."""

    sha: str
    message: str
    checkpoint: int | None = None
    created_at: datetime


class Artifacts(_Model):
    """The session's files, relative to its folder."""

    spec: str = "spec.md"
    plan: str = "plan.json"
    plan_readable: str = "plan.md"


class SessionState(_Model):
    """A whole state.json version 2."""

    schema_: str = Field(default=STATE_V2_SCHEMA, alias="$schema")
    session_id: str
    topic: str
    description: str | None = None
    session_type: SessionTypeName = SessionType.full
    created_at: datetime
    updated_at: datetime
    current_phase: PhaseName = Phase.spec
    status: StatusName = Status.active
    phase_history: PhaseHistory = Field(default_factory=PhaseHistory)
    build_progress: BuildProgress = Field(default_factory=BuildProgress)
    git: GitContext = Field(default_factory=GitContext)
    commits: list[Commit] = Field(default_factory=list)
    artifacts: Artifacts = Field(default_factory=Artifacts)

    def to_document(self) -> dict[str, Any]:
        """The state as state.json holds it: `$schema` first, every key kept."""
        return self.model_dump(mode="json", by_alias=True)
