"""Hook events: a spooled line parsed, and what each event changes in the database.

Every field of a payload is optional and every value is kept as sent (an event type or
permission mode newer than this code is stored as it is). The fields people filter on
are promoted to `agent_logs` columns (clipped to the column, the payload keeps them
whole), and the rows users ask for are built from the events:

- a session per Claude Code `session_id`, created on first sight, project from
  `CLAUDE_PROJECT_DIR` or `cwd`; `started_at` is the SessionStart (or first event),
  `ended_at` the SessionEnd or, until one arrives (it does not always fire), the last
  event; SessionEnd marks it completed;
- a child session per subagent (events carrying `agent_id`), linked to its parent with
  spawn reason `task_tool`, so the parent's tree and cost include it;
- a tool call per `tool_use_id`: PreToolUse starts it, PostToolUse or
  PostToolUseFailure ends it with its response or error and duration; an `Agent` (or
  older `Task`) call names the child session of the subagent it launched.
"""

from __future__ import annotations

import contextlib
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.claude import spool
from session_db.crud._base import BULK_CHUNK, upsert_insert
from session_db.crud.projects import upsert_project
from session_db.crud.relationships import link_sessions
from session_db.crud.sessions import elapsed_ms, ensure_session
from session_db.errors import ConflictError
from session_db.models import (
    AgentLog,
    EventCategory,
    RelationshipType,
    Session,
    SessionRole,
    SessionStatus,
    SpawnReason,
    ToolCall,
    ToolCallStatus,
)
from session_db.models.base import scrub_nul

SOURCE_APP = "claude-code"
# Events with no session id still need a session row: they all go to this one.
UNATTRIBUTED_SLUG = "claude-code:unattributed"
SUBAGENT_TOOLS = frozenset({"Agent", "Task"})
# Events after which Claude Code has written more of the transcript worth importing.
TRANSCRIPT_EVENTS = frozenset({"Stop", "SubagentStop", "SessionEnd", "PreCompact"})

# (payload key, agent_logs column, column length or None for text)
PROMOTED: tuple[tuple[str, str, int | None], ...] = (
    ("session_id", "external_session_id", 255),
    ("agent_id", "external_agent_id", 255),
    ("agent_type", "agent_type", 128),
    ("tool_name", "tool_name", 128),
    ("tool_use_id", "tool_use_id", 255),
    ("prompt_id", "prompt_id", 255),
    ("permission_mode", "permission_mode", 64),
    ("cwd", "cwd", None),
    ("transcript_path", "transcript_path", None),
    ("source", "source", 64),
    ("reason", "reason", None),
)


def subagent_slug(session_id: str, agent_id: str) -> str:
    """Return the slug of a subagent's child session (mirrors its transcript path)."""
    return f"{session_id}/agent-{agent_id}"


@dataclass(frozen=True)
class HookEvent:
    """One spooled hook event: its spool id, when the hook received it, and the payload."""

    spool_id: str
    received_at: datetime
    payload: dict[str, Any]
    project_dir: str | None = None

    def text(self, key: str) -> str | None:
        """Return payload[key] as text if it is a non-empty string or a number, else None."""
        value = self.payload.get(key)
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, int | float):
            return str(value)
        return value if isinstance(value, str) and value else None

    @property
    def name(self) -> str:
        """The hook event name, or "unknown" when the payload has none."""
        return self.text("hook_event_name") or "unknown"


def parse_line(line: bytes) -> HookEvent:
    """Parse one spool line.

    Raises:
        ValueError: The line is torn, or its payload is not a JSON object; the message
            says which (the spool id is in it when the header could be read).
    """
    header_bytes, payload_bytes = spool.split_line(line)
    header = json.loads(header_bytes)
    spool_id = header.get("spool_id")
    received_ns = header.get("received_at_ns")
    if not isinstance(spool_id, str) or not isinstance(received_ns, int):
        raise ValueError("the spool header has no spool_id or received_at_ns")
    try:
        payload = json.loads(payload_bytes, parse_float=_finite_or_text, parse_constant=str)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"event {spool_id}: the payload is not valid JSON ({error})") from None
    if not isinstance(payload, dict):
        raise ValueError(f"event {spool_id}: the payload is a {type(payload).__name__}")
    project_dir = header.get("project_dir")
    return HookEvent(
        spool_id=spool_id,
        received_at=datetime.fromtimestamp(received_ns / 1e9, UTC),
        payload=clean_text(payload),
        project_dir=clean_text(project_dir)
        if isinstance(project_dir, str) and project_dir
        else None,
    )


def _finite_or_text(literal: str) -> float | str:
    number = float(literal)
    return number if math.isfinite(number) else literal


def clean_text(value: Any) -> Any:
    """Return `value` with NUL and unpaired surrogates in its strings replaced by U+FFFD.

    Both engines refuse them (PostgreSQL in text and JSON, SQLite's driver in UTF-8), and
    a hook payload can carry them (a tool output cut in the middle of an emoji). Numbers
    too large for a float (and NaN, Infinity) were already kept as their text, which
    PostgreSQL's JSON would refuse as numbers. A documented normalisation, not a refusal.
    """
    if isinstance(value, str):
        if any("\ud800" <= char <= "\udfff" for char in value):
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return scrub_nul(value)
    if isinstance(value, dict):
        return {clean_text(key): clean_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_text(item) for item in value]
    return value


def log_row(event: HookEvent, session_id: uuid.UUID, parent_id: uuid.UUID | None) -> dict[str, Any]:
    """Return the `agent_logs` values of an event, with the promoted columns filled."""
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "spool_id": event.spool_id,
        "session_id": session_id,
        "parent_session_id": parent_id,
        "session_depth": 0 if parent_id is None else 1,
        "event_category": EventCategory.HOOK.value,
        "event_type": event.name[:128],
        "source_app": SOURCE_APP,
        "payload": event.payload,
        "occurred_at": event.received_at,
    }
    for key, column, length in PROMOTED:
        text = event.text(key)
        values[column] = text if text is None or length is None else text[:length]
    tool_input = event.payload.get("tool_input")
    values["tool_input"] = tool_input if isinstance(tool_input, dict) else None
    return values


@dataclass
class SessionResolver:
    """Finds or creates the session rows a batch of events belongs to, each once."""

    db: AsyncSession
    _ids: dict[str, uuid.UUID] = field(default_factory=dict)
    _projects: dict[str, uuid.UUID] = field(default_factory=dict)

    async def project_id(self, root: str | None) -> uuid.UUID | None:
        """Return the project id for a root folder (None for none)."""
        if not root:
            return None
        if root not in self._projects:
            self._projects[root] = await upsert_project(self.db, root[:1024])
        return self._projects[root]

    async def session(self, external: str, root: str | None) -> tuple[uuid.UUID, uuid.UUID | None]:
        """Return (session id, project id) of a Claude Code session, creating it if new."""
        project_id = await self.project_id(root)
        session_id = await self._ensure(
            external[:255],
            {"project_id": project_id, "working_dir": (root or "")[:4096] or None},
        )
        return session_id, project_id

    async def resolve(self, event: HookEvent) -> tuple[uuid.UUID, uuid.UUID | None]:
        """Return (session id, parent session id or None) for an event."""
        external = event.text("session_id")
        agent_id = event.text("agent_id")
        if external is None:
            return await self._ensure(UNATTRIBUTED_SLUG, {}), None
        parent, project_id = await self.session(external, event.project_dir or event.text("cwd"))
        if agent_id is None:
            return parent, None
        child = await self.subagent(
            external, agent_id, parent, project_id, event.text("agent_type")
        )
        return child, parent

    async def subagent(
        self,
        external: str,
        agent_id: str,
        parent_id: uuid.UUID,
        project_id: uuid.UUID | None,
        agent_type: str | None,
    ) -> uuid.UUID:
        """Return the child session of a subagent, creating and linking it if new."""
        slug = subagent_slug(external, agent_id)[:255]
        if slug in self._ids:
            return self._ids[slug]
        child_id = await ensure_session(
            self.db,
            slug,
            project_id=project_id,
            parent_session_id=parent_id,
            session_role=SessionRole.SUBAGENT.value,
            source_app=SOURCE_APP,
            name=(agent_type or "subagent")[:255],
        )
        link = {
            "parent_session_id": parent_id,
            "child_session_id": child_id,
            "relationship_type": RelationshipType.PARENT_CHILD,
            "spawn_reason": SpawnReason.TASK_TOOL,
            "spawn_metadata": {"source": SOURCE_APP, "agent_id": agent_id},
        }
        with contextlib.suppress(ConflictError):  # linked when first seen
            await link_sessions(self.db, link)
        self._ids[slug] = child_id
        return child_id

    async def _ensure(self, slug: str, values: dict[str, Any]) -> uuid.UUID:
        if slug not in self._ids:
            given = {name: value for name, value in values.items() if value}
            self._ids[slug] = await ensure_session(self.db, slug, source_app=SOURCE_APP, **given)
        return self._ids[slug]


def _later(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at > current else current


def _earlier(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at < current else current


def cover_span(session: Session, first: datetime | None, last: datetime | None) -> None:
    """Widen a session's start, last activity and end to cover [first, last]."""
    if first is not None:
        session.started_at = _earlier(session.started_at, first)
    if last is not None:
        session.last_activity_at = _later(session.last_activity_at, last)
        session.ended_at = _later(session.ended_at, last)
    session.duration_ms = elapsed_ms(session.started_at, session.ended_at)


def touch_session(session: Session, event: HookEvent) -> None:
    """Move a session's start, last activity and end to cover this event."""
    at = event.received_at
    cover_span(session, at, at)
    name = event.name
    metadata = dict(session.session_metadata or {})
    if name == "SessionStart":
        session.status = SessionStatus.ACTIVE
        if source := event.text("source"):
            metadata["start_source"] = source
        if model := event.text("model"):
            metadata["model"] = model
    elif name in ("SessionEnd", "SubagentStop"):
        session.status = SessionStatus.COMPLETED
        session.completed_at = at
        if reason := event.text("reason"):
            metadata["end_reason"] = reason
    if name == "SubagentStart" and (agent_type := event.text("agent_type")):
        session.name = agent_type[:255]
    if metadata != (session.session_metadata or {}):
        session.session_metadata = metadata


class ToolCalls:
    """Pairs tool events into `tool_calls` rows for one batch."""

    def __init__(self, db: AsyncSession) -> None:
        self.db = db

    async def apply(self, event: HookEvent, session_id: uuid.UUID) -> ToolCall | None:
        """Start or finish the tool call an event belongs to; return it."""
        name = event.name
        if name not in ("PreToolUse", "PostToolUse", "PostToolUseFailure"):
            return None
        call = await self._find(event, session_id, starting=name == "PreToolUse")
        at = event.received_at
        tool_input = event.payload.get("tool_input")
        if call.tool_name is None:
            call.tool_name = (event.text("tool_name") or "")[:128] or None
        if call.tool_input is None and isinstance(tool_input, dict):
            call.tool_input = tool_input
        if name == "PreToolUse":
            call.started_at = _earlier(call.started_at, at)
        else:
            call.ended_at = at
            if name == "PostToolUse":
                call.status = ToolCallStatus.SUCCEEDED
                call.tool_response = event.payload.get("tool_response")
            else:
                call.status = ToolCallStatus.FAILED
                error = event.payload.get("error")
                call.error = error if isinstance(error, str) else json.dumps(error)
                interrupt = event.payload.get("is_interrupt")
                call.is_interrupt = interrupt if isinstance(interrupt, bool) else None
        call.duration_ms = elapsed_ms(call.started_at, call.ended_at)
        self.db.add(call)
        await self.db.flush()
        return call

    async def _find(self, event: HookEvent, session_id: uuid.UUID, *, starting: bool) -> ToolCall:
        tool_use_id = event.text("tool_use_id")
        if tool_use_id is not None:
            tool_use_id = tool_use_id[:255]
            found = (
                await self.db.exec(
                    select(ToolCall).where(
                        ToolCall.session_id == session_id, ToolCall.tool_use_id == tool_use_id
                    )
                )
            ).first()
            return found or ToolCall(session_id=session_id, tool_use_id=tool_use_id)
        if not starting:
            # Payloads from before `tool_use_id` existed: the oldest running call of the
            # same tool with the same input is the one this outcome ends.
            candidates = (
                await self.db.exec(
                    select(ToolCall)
                    .where(
                        ToolCall.session_id == session_id,
                        ToolCall.tool_use_id.is_(None),  # type: ignore[union-attr]
                        ToolCall.status == ToolCallStatus.RUNNING,
                        ToolCall.tool_name == event.text("tool_name"),
                    )
                    .order_by(ToolCall.started_at, ToolCall.id)
                )
            ).all()
            for candidate in candidates:
                if candidate.tool_input == event.payload.get("tool_input"):
                    return candidate
        return ToolCall(session_id=session_id)


def launched_agent_id(event: HookEvent) -> str | None:
    """Return the subagent id an Agent/Task tool's PostToolUse reports, if any."""
    if event.name != "PostToolUse" or event.text("tool_name") not in SUBAGENT_TOOLS:
        return None
    response = event.payload.get("tool_response")
    if isinstance(response, dict):
        agent_id = response.get("agentId") or response.get("agent_id")
        if isinstance(agent_id, str) and agent_id:
            return agent_id
    return None


async def apply_events(
    db: AsyncSession,
    resolver: SessionResolver,
    events: list[tuple[HookEvent, uuid.UUID, uuid.UUID | None]],
) -> None:
    """Build sessions, subagents and tool calls from newly stored events, in order."""
    sessions_by_id: dict[uuid.UUID, Session] = {}
    wanted = {sid for _, sid, _ in events} | {pid for _, _, pid in events if pid}
    if wanted:
        rows = await db.exec(select(Session).where(Session.id.in_(wanted)))  # type: ignore[attr-defined]
        sessions_by_id = {row.id: row for row in rows.all()}
    tools = ToolCalls(db)
    for event, session_id, parent_id in sorted(events, key=lambda item: item[0].received_at):
        touch_session(sessions_by_id[session_id], event)
        if parent_id is not None:
            sessions_by_id[parent_id].last_activity_at = _later(
                sessions_by_id[parent_id].last_activity_at, event.received_at
            )
        call = await tools.apply(event, session_id)
        agent_id = launched_agent_id(event)
        external = event.text("session_id")
        if call is None or agent_id is None or external is None:
            continue
        parent = sessions_by_id[session_id]
        tool_input = call.tool_input or {}
        subagent_type = tool_input.get("subagent_type")
        child_id = await resolver.subagent(
            external,
            agent_id,
            session_id,
            parent.project_id,
            subagent_type if isinstance(subagent_type, str) else None,
        )
        call.subagent_session_id = child_id
        child = await db.get(Session, child_id)
        if child is not None:
            description = tool_input.get("description")
            if child.title is None and isinstance(description, str):
                child.title = description[:500]
            cover_span(child, call.started_at or event.received_at, event.received_at)
    await db.flush()


async def store_events(db: AsyncSession, events: list[HookEvent]) -> list[HookEvent]:
    """Store events not stored before (keyed by spool id) and apply them; return those.

    Runs inside the caller's transaction: the rows and everything built from them
    commit together, so a delivery interrupted and repeated changes nothing twice.
    """
    unique = list({event.spool_id: event for event in events}.values())
    resolver = SessionResolver(db)
    rows, placed = [], {}
    for event in unique:
        session_id, parent_id = await resolver.resolve(event)
        placed[event.spool_id] = (event, session_id, parent_id)
        rows.append(log_row(event, session_id, parent_id))
    if not rows:
        return []
    stored: set[str] = set()
    for start in range(0, len(rows), BULK_CHUNK):
        insert = upsert_insert(db, AgentLog).values(rows[start : start + BULK_CHUNK])
        statement = insert.on_conflict_do_nothing(index_elements=[AgentLog.spool_id]).returning(
            AgentLog.spool_id
        )
        stored.update(spool_id for (spool_id,) in (await db.exec(statement)).all())
    new = [placed[spool_id] for spool_id in placed if spool_id in stored]
    await apply_events(db, resolver, new)
    return [event for event, _, _ in new]
