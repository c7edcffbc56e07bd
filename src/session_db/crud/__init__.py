"""The CRUD layer: plain async functions over an AsyncSession, one module per domain.

Every function flushes and never commits: the session scope (`get_async_session()`)
commits on clean exit. Each takes the input model (`XCreate`, `XUpdate`) or a mapping,
and raises only `session_db.errors.SessionDBError` kinds.
"""

# Each module lists its public names once, in its own __all__; this package gathers them.
from session_db.crud import (
    active_session,
    agent_logs,
    agents,
    analytics,
    modes,
    projects,
    relationships,
    sdk_store,
    sessions,
    sync_states,
    tasks,
    threads,
    tool_calls,
    transcript_imports,
    usage_records,
    usage_reports,
)
from session_db.crud.active_session import *  # noqa: F403
from session_db.crud.agent_logs import *  # noqa: F403
from session_db.crud.agents import *  # noqa: F403
from session_db.crud.analytics import *  # noqa: F403
from session_db.crud.modes import *  # noqa: F403
from session_db.crud.projects import *  # noqa: F403
from session_db.crud.relationships import *  # noqa: F403
from session_db.crud.sdk_store import *  # noqa: F403
from session_db.crud.sessions import *  # noqa: F403
from session_db.crud.sync_states import *  # noqa: F403
from session_db.crud.tasks import *  # noqa: F403
from session_db.crud.threads import *  # noqa: F403
from session_db.crud.tool_calls import *  # noqa: F403
from session_db.crud.transcript_imports import *  # noqa: F403
from session_db.crud.usage_records import *  # noqa: F403
from session_db.crud.usage_reports import *  # noqa: F403

__all__ = sorted(
    name
    for module in (
        active_session,
        agent_logs,
        agents,
        analytics,
        modes,
        projects,
        relationships,
        sdk_store,
        sessions,
        sync_states,
        tasks,
        threads,
        tool_calls,
        transcript_imports,
        usage_records,
        usage_reports,
    )
    for name in module.__all__
)
