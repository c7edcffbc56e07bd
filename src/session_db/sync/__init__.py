"""The filesystem is the source of truth: StateManager, the one-way sync, the sync pool.

Names load on first use, so `from session_db.sync import StateManager` stays free of
SQLAlchemy and the models: the StateManager knows nothing about databases.
"""

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "StateManager": "session_db.sync.state_manager",
    "StateError": "session_db.sync.state_manager",
    "FormatError": "session_db.sync.formats",
    "UnrecognisedFileError": "session_db.sync.formats",
    "Phase": "session_db.sync.formats",
    "Status": "session_db.sync.formats",
    "sync_session": "session_db.sync.mirror",
    "sync_project": "session_db.sync.mirror",
    "SyncOutcome": "session_db.sync.mirror",
    "SyncResult": "session_db.sync.mirror",
    "ProjectSyncReport": "session_db.sync.mirror",
    "SyncPool": "session_db.sync.pool",
    "SyncPoolStats": "session_db.sync.pool",
}

__all__ = [
    "FormatError",
    "Phase",
    "ProjectSyncReport",
    "StateError",
    "StateManager",
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
    from session_db.sync.formats import FormatError, Phase, Status, UnrecognisedFileError
    from session_db.sync.mirror import (
        ProjectSyncReport,
        SyncOutcome,
        SyncResult,
        sync_project,
        sync_session,
    )
    from session_db.sync.pool import SyncPool, SyncPoolStats
    from session_db.sync.state_manager import StateError, StateManager


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'session_db.sync' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
