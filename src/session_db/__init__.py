"""session_db: record what AI coding agents do.

Start here::

    from session_db import init_db, get_async_session, crud, models, SessionDBError

Importing the package does nothing else: no settings are read, no engine is built and
no SQLAlchemy is loaded until a name is first used (PEP 562), so the Claude Code hook,
which imports `session_db.claude.hook`, stays fast. Besides the names listed here, every
CRUD function and every model is reachable from the top (`session_db.create_agent_log`,
`session_db.AgentLogCreate`), as seed 001's code and its hook logger import them.
"""

# Nothing is imported here, not even `typing`: the hook imports this package first.
TYPE_CHECKING = False

__version__ = "0.1.0"

_EXPORTS = {
    "create_engine": "session_db.database",
    "get_engine": "session_db.database",
    "dispose_engine": "session_db.database",
    "get_async_session": "session_db.database",
    "init_db": "session_db.database",
    "reset_db": "session_db.database",
    "SessionDBError": "session_db.errors",
    "ConfigurationError": "session_db.errors",
    "NotFoundError": "session_db.errors",
    "ConflictError": "session_db.errors",
    "InvalidInputError": "session_db.errors",
    "DatabaseError": "session_db.errors",
    "DatabaseUnavailableError": "session_db.errors",
    "DatabaseNotMigratedError": "session_db.errors",
    "Settings": "session_db.config",
    "get_settings": "session_db.config",
}
_MODULES = frozenset({"crud", "models", "errors", "database", "config", "sync", "claude"})
# Where any other public name is looked for, in this order.
_FALLBACKS = ("session_db.crud", "session_db.models")

__all__ = [
    "ConfigurationError",
    "ConflictError",
    "DatabaseError",
    "DatabaseNotMigratedError",
    "DatabaseUnavailableError",
    "InvalidInputError",
    "NotFoundError",
    "SessionDBError",
    "Settings",
    "__version__",
    "claude",
    "config",
    "create_engine",
    "crud",
    "database",
    "dispose_engine",
    "errors",
    "get_async_session",
    "get_engine",
    "get_settings",
    "init_db",
    "models",
    "reset_db",
    "sync",
]

if TYPE_CHECKING:
    from session_db import claude, config, crud, database, errors, models, sync
    from session_db.config import Settings, get_settings
    from session_db.database import (
        create_engine,
        dispose_engine,
        get_async_session,
        get_engine,
        init_db,
        reset_db,
    )
    from session_db.errors import (
        ConfigurationError,
        ConflictError,
        DatabaseError,
        DatabaseNotMigratedError,
        DatabaseUnavailableError,
        InvalidInputError,
        NotFoundError,
        SessionDBError,
    )


def __getattr__(name: str) -> object:
    import importlib
    import importlib.util

    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
    elif name.startswith("_"):
        raise AttributeError(f"module 'session_db' has no attribute {name!r}")
    elif name in _MODULES or importlib.util.find_spec(f"session_db.{name}") is not None:
        # Any submodule (`from session_db import jsoncodec` asks here before importing it).
        value = importlib.import_module(f"session_db.{name}")
    else:
        for module_name in _FALLBACKS:
            module = importlib.import_module(module_name)
            if name in getattr(module, "__all__", ()):
                value = getattr(module, name)
                break
        else:
            raise AttributeError(f"module 'session_db' has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> "list[str]":
    return sorted(set(globals()) | set(__all__))
