"""The CRUD layer: plain async functions over an AsyncSession, one module per domain.

Every function flushes and never commits: the session scope (`get_async_session()`)
commits on clean exit. Each takes the input model (`XCreate`, `XUpdate`) or a mapping,
and raises only `session_db.errors.SessionDBError` kinds.
"""

from session_db.crud.active_session import (
    clear_active_session,
    get_active_session,
    set_active_session,
)
from session_db.crud.agent_logs import (
    count_agent_logs,
    create_agent_log,
    delete_agent_log,
    get_agent_log,
    list_agent_logs,
    update_agent_log,
)
from session_db.crud.agents import (
    create_agent,
    delete_agent,
    get_agent,
    get_agent_by_sdk_session_id,
    list_agents,
    update_agent,
)
from session_db.crud.analytics import (
    get_cost_by_project,
    get_failed_agents,
    get_session_metrics,
    get_sessions_with_checkpoints,
    get_spawn_correlations,
    get_timeline,
    get_wave_summaries,
)
from session_db.crud.modes import (
    bind_session_mode,
    create_session_mode,
    delete_session_mode,
    get_session_mode,
    get_session_modes,
    list_session_modes,
    unbind_session_mode,
    update_session_mode,
)
from session_db.crud.projects import (
    count_projects,
    create_project,
    delete_project,
    get_project,
    get_project_by_path,
    list_projects,
    update_project,
)
from session_db.crud.relationships import (
    get_ancestors,
    get_children,
    get_descendants,
    get_relationship,
    get_session_rollup,
    get_session_tree,
    link_sessions,
    list_relationships,
    unlink_sessions,
    update_relationship,
)
from session_db.crud.sessions import (
    count_sessions,
    create_session,
    delete_session,
    get_session,
    get_session_by_slug,
    list_sessions,
    update_session,
)
from session_db.crud.tasks import (
    add_task_dependency,
    create_task,
    create_task_group,
    delete_task,
    delete_task_group,
    get_blocked_tasks,
    get_task,
    get_task_dependencies,
    get_task_group,
    list_ready_tasks,
    list_task_groups,
    list_tasks,
    remove_task_dependency,
    update_task,
    update_task_group,
)
from session_db.crud.threads import (
    add_thread_message,
    create_thread,
    delete_thread,
    get_session_threads,
    get_thread,
    get_thread_message,
    get_thread_messages,
    update_thread,
    update_thread_message,
    update_thread_timestamp,
)

__all__ = [
    name
    for name in dir()
    if not name.startswith("_")
    and name
    not in {
        "active_session",
        "agent_logs",
        "agents",
        "analytics",
        "modes",
        "projects",
        "relationships",
        "sessions",
        "tasks",
        "threads",
    }
]
