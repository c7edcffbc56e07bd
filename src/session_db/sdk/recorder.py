"""`RunRecorder`: record an agent run from the Claude Agent SDK's messages, as they arrive.

An agent runtime hands it each message `query()` or `ClaudeSDKClient` yields:

- the init system message creates the session (its slug is the SDK's session id, as for
  a hook or an import) or finds it, and creates or updates the main agent row with the
  id to resume (`sdk_session_id`), status `executing`;
- an assistant message's usage is a response, priced from list prices (an estimate).
  The SDK's messages carry no request id, so it is keyed by its message id and
  `LIVE_REQUEST_ID`: when the transcript's line of that response arrives (through
  `SessionDBStore`, the hook or `import claude`), the line is the response instead, and
  one that arrived first makes the live copy unnecessary. Nothing is counted twice.
  Subagents' messages (`parent_tool_use_id`) are left to their transcripts;
- the result message records `total_cost_usd` and `model_usage` as the client's own
  running totals (what a transcript's `cost-state` line says), which win over the
  estimates per model; and `usage`, `num_turns`, `duration_ms` on the main agent, which
  it marks `complete` (or `failed`), the whole result kept in its metadata (`sdk_result`).

Each message is one transaction, run again after a transient fault; it goes through the
transcript import's own code (`claude.importer.import_entries`), taking the same
per-session lock as the store, so a session reads the same however it arrived.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from claude_agent_sdk import AssistantMessage, Message, ResultMessage, SystemMessage
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud
from session_db.claude.events import SOURCE_APP
from session_db.claude.importer import LIVE_REQUEST_ID, MAIN_ROLE, agent_key, import_entries
from session_db.claude.pricing import normalize_model
from session_db.claude.transcript import SUFFIX, TranscriptFile, TranscriptKind, scan_lines
from session_db.database import get_async_session
from session_db.jsoncodec import dumps
from session_db.models import Agent, AgentCreate, AgentStatus, Session
from session_db.models.base import clip, utcnow
from session_db.retry import retry_transient

__all__ = ["RunRecorder"]

# A model id in the SDK's figures may carry a context-window suffix: "claude-opus-4-6[1m]".
_MODEL_SUFFIX = re.compile(r"\[[^\]]*\]$")


def _stamp(at: datetime) -> str:
    """A time as Claude Code writes it in transcripts: `2026-02-12T16:02:23.545Z`."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class RunRecorder:
    """Records a Claude Agent SDK run from its messages: session, agent, usage and cost."""

    def __init__(self, engine: AsyncEngine | None = None, *, attempts: int | None = 5) -> None:
        """Use `engine`, else the configured database; retry a message up to `attempts` times."""
        self._engine = engine
        self._attempts = attempts
        self.session_id: str | None = None  # the SDK's session id: what resumes the run
        self.model: str | None = None  # the run's model, from the init message
        self.agent_id: uuid.UUID | None = None  # the main agent's row

    async def record(self, message: Message, *, at: datetime | None = None) -> None:
        """Record one message the SDK yielded; kinds other than init, assistant and result
        messages are skipped. `at` is when it arrived (now by default)."""
        at = at or utcnow()
        if isinstance(message, SystemMessage) and message.subtype == "init":
            await self._init(message.data, at)
        elif isinstance(message, AssistantMessage):
            await self._assistant(message, at)
        elif isinstance(message, ResultMessage):
            await self._result(message, at)

    async def _run(self, session_id: str, lines: list[dict[str, Any]], after: Any = None) -> Any:
        """Import `lines` as the session's transcript would, then `after(db, session)`, in
        one transaction retried whole; returns what `after` returned."""

        async def work() -> Any:
            async with get_async_session(self._engine) as db:
                await crud.lock_sdk_session(db, session_id)
                if lines:
                    scan = scan_lines(dumps(line).encode() for line in lines)
                    transcript = TranscriptFile(
                        Path("agent-sdk") / f"{session_id}{SUFFIX}",
                        session_id,
                        None,
                        TranscriptKind.MAIN,
                    )
                    await import_entries(db, [(transcript, scan)])
                if after is None:
                    return None
                session = await crud.get_session_by_slug(
                    db, clip(Session, "session_slug", session_id)
                )
                return await after(db, session)

        return await retry_transient(
            work, attempts=self._attempts, what=f"recording session {session_id}"
        )

    async def _init(self, data: dict[str, Any], at: datetime) -> None:
        session_id = data.get("session_id")
        if not isinstance(session_id, str) or not session_id:
            return  # nothing to find the session by
        model = _model(data.get("model"))
        stamp = {"sessionId": session_id, "timestamp": _stamp(at)}
        line: dict[str, Any] = {"type": "system", "subtype": "init", **stamp}
        for name, value in (("cwd", data.get("cwd")), ("version", data.get("claude_code_version"))):
            if isinstance(value, str) and value:
                line[name] = value
        lines = [line]
        mode = data.get("permissionMode")
        if isinstance(mode, str) and mode:  # kept as a transcript's permission-mode line is
            lines.append({"type": "permission-mode", "permissionMode": mode, **stamp})

        async def agent(db: AsyncSession, session: Session) -> uuid.UUID | None:
            if model is None:
                return None
            agent_id = agent_key(session.id, MAIN_ROLE, clip(Agent, "model", model))
            await crud.ensure_usage_agents(
                db,
                {
                    agent_id: AgentCreate(
                        session_id=session.id,
                        agent_type=MAIN_ROLE,
                        model=clip(Agent, "model", model),
                        sdk_session_id=clip(Session, "session_slug", session_id),
                        status=AgentStatus.EXECUTING,
                        started_at=at,
                        agent_metadata={"source": SOURCE_APP, "role": MAIN_ROLE},
                    )
                },
            )
            # Found rather than created (an imported session, or a resumed run): running again.
            await crud.upsert_agents(
                db,
                {
                    agent_id: {
                        "session_id": session.id,
                        "agent_type": MAIN_ROLE,
                        "sdk_session_id": clip(Session, "session_slug", session_id),
                        "status": AgentStatus.EXECUTING,
                    }
                },
            )
            return agent_id

        agent_id = await self._run(session_id, lines, agent)
        self.session_id, self.model = session_id, model
        self.agent_id = agent_id or self.agent_id

    async def _assistant(self, message: AssistantMessage, at: datetime) -> None:
        session_id = message.session_id or self.session_id
        if message.parent_tool_use_id is not None or not message.usage or not message.message_id:
            return  # a subagent's (its transcript counts it), or nothing to count or key
        if not session_id:
            return
        line = {
            "type": "assistant",
            "sessionId": session_id,
            "timestamp": _stamp(at),
            "requestId": LIVE_REQUEST_ID,
            "isSidechain": False,
            "message": {"id": message.message_id, "model": message.model, "usage": message.usage},
        }
        if message.uuid:
            line["uuid"] = message.uuid
        await self._run(session_id, [line])

    async def _result(self, message: ResultMessage, at: datetime) -> None:
        session_id = message.session_id or self.session_id
        if not session_id:
            return
        model_usage: dict[str, Any] = dict(message.model_usage or {})
        if not model_usage and message.total_cost_usd is not None and self.model:
            # A total without its split: all of it is the run's model's.
            model_usage = {self.model: {"costUSD": message.total_cost_usd}}
        lines = []
        if model_usage or message.total_cost_usd is not None:
            lines.append(
                {
                    "type": "cost-state",
                    "sessionId": session_id,
                    "timestamp": _stamp(at),
                    "totalCostUSD": message.total_cost_usd,
                    "modelUsage": model_usage,
                }
            )
        model = self.model or _costliest(model_usage)
        result = {
            "subtype": message.subtype,
            "is_error": message.is_error,
            "num_turns": message.num_turns,
            "duration_ms": message.duration_ms,
            "duration_api_ms": message.duration_api_ms,
            "total_cost_usd": message.total_cost_usd,
            "usage": message.usage,
            "model_usage": message.model_usage,
            "stop_reason": message.stop_reason,
            "at": _stamp(at),
        }

        async def agent(db: AsyncSession, session: Session) -> uuid.UUID | None:
            if model is None:
                return None  # no model to find the agent by: the cost is recorded all the same
            agent_id = agent_key(session.id, MAIN_ROLE, clip(Agent, "model", model))
            status = AgentStatus.FAILED if message.is_error else AgentStatus.COMPLETE
            await crud.ensure_usage_agents(
                db,
                {
                    agent_id: AgentCreate(
                        session_id=session.id,
                        agent_type=MAIN_ROLE,
                        model=clip(Agent, "model", model),
                        sdk_session_id=clip(Session, "session_slug", session_id),
                        status=status,
                        agent_metadata={"source": SOURCE_APP, "role": MAIN_ROLE},
                    )
                },
            )
            stored = await crud.get_agent(db, agent_id)
            changes: dict[str, Any] = {
                "status": status,
                "completed_at": at,
                "duration_ms": max(message.duration_ms, 0),
                "num_turns": max(message.num_turns, 0),
                "agent_metadata": {**(stored.agent_metadata or {}), "sdk_result": result},
            }
            if message.is_error:
                changes["error_message"] = "; ".join(message.errors or []) or message.result
            await crud.update_agent(db, agent_id, changes)
            return agent_id

        agent_id = await self._run(session_id, lines, agent)
        self.session_id = session_id
        self.agent_id = agent_id or self.agent_id


def _model(raw: Any) -> str | None:
    """A model id as usage records name it: normalised, without a `[1m]` suffix."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    return normalize_model(_MODEL_SUFFIX.sub("", raw.strip())) or None


def _costliest(model_usage: dict[str, Any]) -> str | None:
    """The model the client reports the most cost for, or None."""
    best: tuple[float, str] | None = None
    for raw, figures in model_usage.items():
        cost = figures.get("costUSD") if isinstance(figures, dict) else None
        usable = isinstance(cost, int | float) and not isinstance(cost, bool)
        if usable and (best is None or cost > best[0]):
            best = (float(cost), raw)
    return None if best is None else _model(best[1])
