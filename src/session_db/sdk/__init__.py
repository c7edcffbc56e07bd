"""The Claude Agent SDK integration: a session store and a run recorder (`session-db[sdk]`).

`SessionDBStore` is a `SessionStore` for `ClaudeAgentOptions(session_store=...)`: the SDK
mirrors each transcript entry into the database, which can resume the session anywhere.
`RunRecorder` takes the messages an agent runtime receives (the init system message,
assistant messages, the result) and records the run's session, agent, usage and cost.
Both feed the same tables as `session-db import claude`.
"""

try:
    import claude_agent_sdk  # noqa: F401
except ImportError as error:  # the optional extra is not installed
    raise ImportError(
        "session_db.sdk needs the Claude Agent SDK: pip install 'session-db[sdk]'"
    ) from error

from session_db.sdk.recorder import RunRecorder
from session_db.sdk.store import SessionDBStore

__all__ = ["RunRecorder", "SessionDBStore"]
