"""The filesystem is the source of truth: the state managers, the one-way sync, the pool.

Names load on first use, so `from session_db.sync import StateManager` (or the seeds'
own `SessionStateManager`) stays free of SQLAlchemy and the models: the state managers
know nothing about databases.
"""

import importlib
from typing import TYPE_CHECKING, Any

_STATE_MODELS = "session_db.sync.state_models"
_STATE_MANAGER = "session_db.sync.state_manager"
_EXPORTS = {
    "StateManager": _STATE_MANAGER,
    "StateError": _STATE_MANAGER,
    # The seeds' own StateManager API, under its own names.
    "SessionStateManager": _STATE_MANAGER,
    "SaveCallback": _STATE_MANAGER,
    "InvalidPhaseTransitionError": _STATE_MANAGER,
    "SessionNotFoundError": _STATE_MANAGER,
    "StateValidationError": _STATE_MANAGER,
    "SessionState": _STATE_MODELS,
    "Phase": _STATE_MODELS,
    "Status": _STATE_MODELS,
    "SessionType": _STATE_MODELS,
    "PhaseHistory": _STATE_MODELS,
    "BuildProgress": _STATE_MODELS,
    "GitContext": _STATE_MODELS,
    "Commit": _STATE_MODELS,
    "Artifacts": _STATE_MODELS,
    "FormatError": "session_db.sync.formats",
    "UnrecognisedFileError": "session_db.sync.formats",
    "sync_session": "session_db.sync.mirror",
    "sync_project": "session_db.sync.mirror",
    "SyncOutcome": "session_db.sync.mirror",
    "SyncResult": "session_db.sync.mirror",
    "ProjectSyncReport": "session_db.sync.mirror",
    "SyncPool": "session_db.sync.pool",
    "SyncPoolStats": "session_db.sync.pool",
}

__all__ = [
    "Artifacts",
    "BuildProgress",
    "Commit",
    "FormatError",
    "GitContext",
    "InvalidPhaseTransitionError",
    "Phase",
    "PhaseHistory",
    "ProjectSyncReport",
    "SaveCallback",
    "SessionNotFoundError",
    "SessionState",
    "SessionStateManager",
    "SessionType",
    "StateError",
    "StateManager",
    "StateValidationError",
    "Status",
    "SyncOutcome",
    "SyncPool",
    "SyncPoolStats",
    "SyncResult",
    "UnrecognisedFileError",
    "sync_project",
    "sync_session",
]

if TYPE_CHECKING:
    from session_db.sync.formats import FormatError, UnrecognisedFileError
    from session_db.sync.mirror import (
        ProjectSyncReport,
        SyncOutcome,
        SyncResult,
        sync_project,
        sync_session,
    )
    from session_db.sync.pool import SyncPool, SyncPoolStats
    from session_db.sync.state_manager import (
        InvalidPhaseTransitionError,
        SaveCallback,
        SessionNotFoundError,
        SessionStateManager,
        StateError,
        StateManager,
        StateValidationError,
    )
    from session_db.sync.state_models import (
        Artifacts,
        BuildProgress,
        Commit,
        GitContext,
        Phase,
        PhaseHistory,
        SessionState,
        SessionType,
        Status,
    )


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'session_db.sync' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
