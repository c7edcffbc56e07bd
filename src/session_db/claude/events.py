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

A batch is stored set-based (`store_events`): each project, session and new subagent it
needs is found or created once, its events are written in one bulk insert, its tool
events are paired in memory against one lookup of the stored calls, and each session's
span and status are merged by one write. Nothing here depends on the batch's size but
the size of those statements.
"""

from __future__ import annotations

import functools
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import jsoncodec
from session_db.claude import spool
from session_db.crud.agent_logs import add_agent_logs, agent_log_values
from session_db.crud.projects import upsert_projects
from session_db.crud.relationships import link_new_children
from session_db.crud.sessions import (
    SessionActivity,
    elapsed_ms,
    ensure_sessions,
    record_session_activity,
)
from session_db.crud.tool_calls import (
    find_tool_calls,
    list_running_unkeyed_tool_calls,
    save_tool_calls,
)
from session_db.errors import InvalidInputError
from session_db.models import (
    AgentLog,
    EventCategory,
    Project,
    RelationshipType,
    Session,
    SessionRole,
    SessionStatus,
    SpawnReason,
    ToolCall,
    ToolCallStatus,
)
from session_db.models.base import clip, column_length, new_id, scrub_nul

SOURCE_APP = "claude-code"
# Events with no session id still need a session row: they all go to this one.
UNATTRIBUTED_SLUG = "claude-code:unattributed"
SUBAGENT_TOOLS = frozenset({"Agent", "Task"})
# Events after which Claude Code has written more of the transcript worth importing.
TRANSCRIPT_EVENTS = frozenset({"Stop", "SubagentStop", "SessionEnd", "PreCompact"})

# (payload key, agent_logs column): clipped to the column (the payload keeps them whole).
PROMOTED: tuple[tuple[str, str], ...] = (
    ("session_id", "external_session_id"),
    ("agent_id", "external_agent_id"),
    ("agent_type", "agent_type"),
    ("tool_name", "tool_name"),
    ("tool_use_id", "tool_use_id"),
    ("mcp_server", "mcp_server"),
    ("prompt_id", "prompt_id"),
    ("permission_mode", "permission_mode"),
    ("cwd", "cwd"),
    ("transcript_path", "transcript_path"),
    ("source", "source"),
    ("reason", "reason"),
)


def _slug(external: str) -> str:
    """A session slug made from a Claude Code id, cut to fit the column."""
    return clip(Session, "session_slug", external) or ""


def _tool_use_id(value: str) -> str:
    return clip(ToolCall, "tool_use_id", value) or ""


def subagent_slug(session_id: str, agent_id: str) -> str:
    """Return the slug of a subagent's child session (mirrors its transcript path)."""
    return f"{session_id}/agent-{agent_id}"


_UNREAD = object()  # `HookEvent.text` has not looked this key up yet


@dataclass(frozen=True)
class HookEvent:
    """One spooled hook event: its spool id, when the hook received it, and the payload."""

    spool_id: str
    received_at: datetime
    payload: dict[str, Any]
    project_dir: str | None = None
    # What `text` answered, per key: storing a batch asks for the same few keys of each
    # event a dozen times.
    _texts: dict[str, str | None] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def text(self, key: str) -> str | None:
        """Return payload[key] as text if it is a non-empty string or a number, else None."""
        found = self._texts.get(key, _UNREAD)
        if found is not _UNREAD:
            return found  # type: ignore[return-value]
        value = self.payload.get(key)
        kind = type(value)
        if kind is str:  # nearly every value asked for: the one test it needs
            found = value or None
        elif value is None or isinstance(value, bool):
            found = None
        elif isinstance(value, int | float):
            found = str(value)
        else:
            found = value if isinstance(value, str) and value else None
        self._texts[key] = found
        return found

    @functools.cached_property
    def entry(self) -> dict[str, Any]:
        """The event's checked `agent_logs` values (see `log_entry`), computed once.

        Raises:
            InvalidInputError: The event cannot be stored.
        """
        return log_entry(self)

    @functools.cached_property
    def name(self) -> str:
        """The hook event name, or "unknown" when the payload has none."""
        return self.text("hook_event_name") or "unknown"


def parse_line(line: bytes) -> HookEvent:
    """Parse one spool line.

    Raises:
        ValueError: The line is torn, its payload is not a JSON object, or it is nested
            too deeply to read; the message says which (with the spool id when the
            header could be read).
    """
    header_bytes, payload_bytes = spool.split_line(line)
    try:
        header = _read_header(header_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"the spool header is not valid JSON ({error})") from None
    spool_id = header.get("spool_id") if isinstance(header, dict) else None
    received_ns = header.get("received_at_ns") if isinstance(header, dict) else None
    if not isinstance(spool_id, str) or not isinstance(received_ns, int):
        raise ValueError("the spool header has no spool_id or received_at_ns")
    try:
        payload = jsoncodec.loads(payload_bytes, fallback=_DECODER)
        # NUL and lone surrogates can only arrive as \u escapes or as raw surrogate bytes
        # (0xED ...), so a payload with neither needs no cleaning walk.
        if b"\\u" in payload_bytes or b"\xed" in payload_bytes:
            payload = clean_text(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"event {spool_id}: the payload is not valid JSON ({error})") from None
    except RecursionError:
        raise ValueError(f"event {spool_id}: the payload is nested too deeply to read") from None
    if not isinstance(payload, dict):
        raise ValueError(f"event {spool_id}: the payload is a {type(payload).__name__}")
    project_dir = header.get("project_dir")
    return HookEvent(
        spool_id=spool_id,
        received_at=datetime.fromtimestamp(received_ns / 1e9, UTC),
        payload=payload,
        project_dir=clean_text(project_dir)
        if isinstance(project_dir, str) and project_dir
        else None,
    )


def _read_header(data: bytes) -> Any:
    """Parse a spool header, which the hook wrote: no NaN, no integer past 64 bits.

    orjson first (`jsoncodec.loads` would send every header down the stdlib path, since
    received_at_ns has 19 digits). The stdlib reads what orjson refuses: the `\\udcXX`
    escapes the hook writes for a project folder's bytes that are not UTF-8, which
    `parse_line` then replaces with U+FFFD.
    """
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


def _finite_or_text(literal: str) -> float | str:
    number = float(literal)
    return number if math.isfinite(number) else literal


# One decoder for every line: `json.loads` with hooks would build a new one per call.
_DECODER = json.JSONDecoder(parse_float=_finite_or_text, parse_constant=str)


def clean_text(value: Any) -> Any:
    """Return `value` with NUL and unpaired surrogates in its strings replaced by U+FFFD.

    Both engines refuse them (PostgreSQL in text and JSON, SQLite's driver in UTF-8), and
    a hook payload can carry them (a tool output cut in the middle of an emoji). Numbers
    too large for a float (and NaN, Infinity) were already kept as their text, which
    PostgreSQL's JSON would refuse as numbers. A documented normalisation, not a refusal.
    """
    if isinstance(value, str):
        if not value.isascii():  # O(1): an ASCII string holds no surrogate
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # only lone surrogates fail to encode
                value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        return scrub_nul(value)
    if isinstance(value, dict):
        return {clean_text(key): clean_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [clean_text(item) for item in value]
    return value


@functools.cache
def _promoted_lengths() -> tuple[tuple[str, str, int | None], ...]:
    """`PROMOTED` with each column's length: `clip` without its lookup per value."""
    return tuple((key, column, column_length(AgentLog, column)) for key, column in PROMOTED)


@functools.cache
def _plain_columns() -> frozenset[str]:
    """The `log_entry` values built as the model keeps them, so not checked again: our
    constants, the placeholder id, the time, and text clipped to its column (the
    payload's text is clean: `parse_line` replaced NUL and lone surrogates)."""
    clipped = {column for _, column, length in _promoted_lengths() if length is not None}
    return frozenset(
        {"session_id", "event_category", "event_type", "source_app", "occurred_at", *clipped}
    )


# Stands in for the session until the batch has found it: validation needs some id.
_UNPLACED = uuid.UUID(int=0)


def log_entry(event: HookEvent) -> dict[str, Any]:
    """Return the checked `agent_logs` values of an event, its session not yet placed.

    The promoted columns are clipped to their length (the payload keeps them whole).

    Raises:
        InvalidInputError: The event cannot be stored (its payload is too large, say).
    """
    values: dict[str, Any] = {
        "spool_id": event.spool_id,
        "session_id": _UNPLACED,
        "event_category": EventCategory.HOOK.value,
        "event_type": clip(AgentLog, "event_type", event.name),
        "source_app": SOURCE_APP,
        "payload": event.payload,
        "occurred_at": event.received_at,
    }
    for key, column, length in _promoted_lengths():
        value = event.text(key)
        values[column] = value if value is None or length is None else value[:length]
    tool_input = event.payload.get("tool_input")
    values["tool_input"] = tool_input if isinstance(tool_input, dict) else None
    if event.name == "PostCompact":  # the summary a compaction left behind
        values["summary"] = event.text("compact_summary")
    try:
        return agent_log_values(values, plain=_plain_columns())
    except RecursionError:
        raise InvalidInputError("agent_log", "payload", "nested too deeply to store") from None


def _later(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at > current else current


def _earlier(current: datetime | None, at: datetime) -> datetime:
    return at if current is None or at < current else current


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


@dataclass
class StoredEvents:
    """What `store_events` did with a batch: the events it stored, and those it refused."""

    stored: list[HookEvent] = field(default_factory=list)
    refused: list[tuple[HookEvent, str]] = field(default_factory=list)
    duplicates: int = 0


def _launch(event: HookEvent) -> tuple[str, str, str | None] | None:
    """(session id, launched agent id, its type) of an Agent/Task call's outcome, if any."""
    agent_id = launched_agent_id(event)
    if agent_id is None:  # nearly every event: settled by its name alone
        return None
    external = event.text("session_id")
    if external is None:
        return None
    tool_input = event.payload.get("tool_input")
    kind = tool_input.get("subagent_type") if isinstance(tool_input, dict) else None
    return external, agent_id, kind if isinstance(kind, str) else None


@dataclass
class _Placement:
    """Where a batch's events go: each event's (session, parent), and the subagents."""

    sessions: dict[str, tuple[uuid.UUID, uuid.UUID | None]]
    subagents: dict[str, uuid.UUID]
    launches: dict[str, tuple[str, str, str | None]]  # spool id -> what `_launch` says


async def _place(db: AsyncSession, events: list[HookEvent]) -> _Placement:
    """Find or create every session a batch needs: a few statements, whatever its size.

    One pass over the events collects what they name (their sessions, subagents, project
    folders and launches, each the first time it is seen); the rest works on those.
    """
    roots: dict[str, str] = {}  # project folder as sent -> as stored (clipped)
    firsts: dict[str | None, str | None] = {}  # session id -> its first event's root
    agents: dict[tuple[str, str], str | None] = {}  # (session, agent id) -> its agent type
    launched: dict[str, tuple[str, str, str | None]] = {}
    launches: list[tuple[str, str, str | None, str | None]] = []
    named: list[tuple[str | None, str | None]] = []  # each event's (session id, agent id)
    for event in events:
        external, agent_id = event.text("session_id"), event.text("agent_id")
        named.append((external, agent_id))
        root = event.project_dir or event.text("cwd")
        if root:
            root = roots.get(root) or roots.setdefault(root, clip(Project, "root_path", root))
        if external not in firsts:
            firsts[external] = root or None
        if external is None:
            continue
        if agent_id is not None and (external, agent_id) not in agents:
            agents[external, agent_id] = event.text("agent_type")
        if (launch := _launch(event)) is not None:  # an Agent call's outcome names its subagent
            launched[event.spool_id] = launch
            launches.append((*launch, agent_id))
    projects = await upsert_projects(db, set(roots.values()))
    tops: dict[str, tuple[str | None, str | None]] = {}  # slug -> (its first event's root, id)
    for external, root in firsts.items():
        if external is None:
            tops.setdefault(UNATTRIBUTED_SLUG, (None, None))
        else:
            tops.setdefault(_slug(external), (root, external))
    rows = []
    for slug, (root, external) in tops.items():
        values: dict[str, Any] = {"session_slug": slug, "source_app": SOURCE_APP}
        if root and external is not None:
            values["project_id"] = projects[root]
            values["working_dir"] = clip(Session, "working_dir", root)
        rows.append(values)
    top_ids = await ensure_sessions(db, rows)
    project_ids = {slug: row.get("project_id") for slug, row in zip(tops, rows, strict=True)}

    wanted: dict[str, dict[str, Any]] = {}  # subagent slug -> its row
    for (external, agent_id), agent_type in agents.items():
        parent_id = top_ids[_slug(external)][0]
        _want_subagent(wanted, project_ids, external, agent_id, parent_id, agent_type)
    for external, agent_id, kind, inside in launches:
        parent_slug = _slug(subagent_slug(external, inside) if inside else external)
        parent_id = top_ids[_slug(external)][0] if not inside else None
        _want_subagent(wanted, project_ids, external, agent_id, parent_id, kind, parent_slug)
    children = await _ensure_subagents(db, wanted)

    places: dict[tuple[str | None, str | None], tuple[uuid.UUID, uuid.UUID | None]] = {}
    for external, agent_id in set(named):
        if external is None:
            places[external, agent_id] = (top_ids[UNATTRIBUTED_SLUG][0], None)
        elif agent_id is None:
            places[external, agent_id] = (top_ids[_slug(external)][0], None)
        else:
            child = children[_slug(subagent_slug(external, agent_id))]
            places[external, agent_id] = (child, top_ids[_slug(external)][0])
    placed = {event.spool_id: places[key] for event, key in zip(events, named, strict=True)}
    return _Placement(placed, children, launched)


def _want_subagent(
    wanted: dict[str, dict[str, Any]],
    project_ids: dict[str, uuid.UUID | None],
    external: str,
    agent_id: str,
    parent_id: uuid.UUID | None,
    agent_type: str | None,
    parent_slug: str | None = None,
) -> None:
    slug = _slug(subagent_slug(external, agent_id))
    row = subagent_session(slug, parent_id, project_ids.get(_slug(external)), agent_type)
    wanted.setdefault(slug, {**row, "parent_slug": parent_slug, "agent_id": agent_id})


def subagent_session(
    slug: str, parent_id: uuid.UUID | None, project_id: uuid.UUID | None, agent_type: str | None
) -> dict[str, Any]:
    """The values of a subagent's new child session (None where it has no value yet)."""
    return {
        "session_slug": slug,
        "project_id": project_id,
        "parent_session_id": parent_id,
        "session_role": SessionRole.SUBAGENT.value,
        "source_app": SOURCE_APP,
        "name": clip(Session, "name", agent_type or "subagent"),
    }


def subagent_link(parent_id: uuid.UUID, child_id: uuid.UUID, agent_id: str) -> dict[str, Any]:
    """The parent-child edge of a subagent launched by the Task/Agent tool."""
    return {
        "parent_session_id": parent_id,
        "child_session_id": child_id,
        "relationship_type": RelationshipType.PARENT_CHILD,
        "spawn_reason": SpawnReason.TASK_TOOL,
        "spawn_metadata": {"source": SOURCE_APP, "agent_id": agent_id},
    }


async def _ensure_subagents(
    db: AsyncSession, wanted: dict[str, dict[str, Any]]
) -> dict[str, uuid.UUID]:
    """Create the subagent sessions not seen before and link each new one to its parent."""
    if not wanted:
        return {}
    # A subagent launched from inside another names that one as its parent; those are
    # found first, then their children.
    ids: dict[str, uuid.UUID] = {}
    pending = dict(wanted)
    while pending:
        ready = {
            slug: row
            for slug, row in pending.items()
            if row["parent_session_id"] is not None or row["parent_slug"] in ids
        }
        if not ready:  # a parent subagent this batch never saw: attach to the top session
            ready = pending
        rows = []
        for row in ready.values():
            parent = row["parent_session_id"] or ids.get(row["parent_slug"])
            row["parent_session_id"] = parent
            rows.append(
                {
                    key: value
                    for key, value in row.items()
                    if key not in ("parent_slug", "agent_id") and value is not None
                }
            )
        created = await ensure_sessions(db, rows)
        links = []
        for slug, (child_id, is_new) in created.items():
            ids[slug] = child_id
            row = ready[slug]
            if is_new and row["parent_session_id"] is not None:
                links.append(subagent_link(row["parent_session_id"], child_id, row["agent_id"]))
        await link_new_children(db, links)
        for slug in ready:
            pending.pop(slug)
    return ids


def _session_activity(
    activity: dict[uuid.UUID, SessionActivity], event: HookEvent, session_id: uuid.UUID
) -> None:
    seen = activity.get(session_id)
    if seen is None:
        seen = activity[session_id] = SessionActivity()
    at = event.received_at
    seen.cover(at)
    name = event.name
    if title := event.text("session_title"):  # SessionStart, UserPromptSubmit: the CLI's name
        seen.set_title = clip(Session, "title", title)
    if name == "SessionStart":
        seen.status = SessionStatus.ACTIVE
        if source := event.text("source"):
            seen.metadata["start_source"] = source
        if model := event.text("model"):
            seen.metadata["model"] = model
    elif name in ("UserPromptSubmit", "Stop"):
        # A new prompt or a turn that ended well: a session that had failed goes on.
        seen.status = SessionStatus.ACTIVE
    elif name == "StopFailure":
        seen.status = SessionStatus.FAILED
        seen.metadata["error"] = event.text("error") or "unknown"
        if (details := event.payload.get("error_details")) is not None:
            seen.metadata["error_details"] = details
    elif name == "PostModelSwitch":
        if model := event.text("to_model"):
            seen.metadata["model"] = model
        if previous := event.text("from_model"):
            seen.metadata["previous_model"] = previous
    elif name in ("SessionEnd", "SubagentStop"):
        seen.ended = True
        seen.completed_at = at
        if reason := event.text("reason"):
            seen.metadata["end_reason"] = reason
    if name == "SubagentStart" and (agent_type := event.text("agent_type")):
        seen.name = clip(Session, "name", agent_type)


def _merge_tool_event(call: dict[str, Any], event: HookEvent) -> None:
    """Fold one tool event (see TOOL_EVENTS) into a call's state."""
    name, at = event.name, event.received_at
    _describe(call, event.payload, event.text("mcp_server"))
    if name == "PreToolUse":
        call["started_at"] = _earlier(call.get("started_at"), at)
        if call.get("ended_at") is not None and call.get("duration_ms") is None:
            call["duration_ms"] = elapsed_ms(call["started_at"], call["ended_at"])
        return
    call["ended_at"] = at
    if name == "PostToolUse":
        call["status"] = ToolCallStatus.SUCCEEDED
        call["tool_response"] = event.payload.get("tool_response")
    elif name == "PermissionDenied":
        call["status"] = ToolCallStatus.DENIED
        call["error"] = _as_text(event.payload.get("reason"))
    else:
        call["status"] = ToolCallStatus.FAILED
        call["error"] = _as_text(event.payload.get("error"))
        interrupt = event.payload.get("is_interrupt")
        call["is_interrupt"] = interrupt if isinstance(interrupt, bool) else None
    # The CLI's own measure of the execution when it sends one; arrival times otherwise.
    reported = event.payload.get("duration_ms")
    if isinstance(reported, int | float) and not isinstance(reported, bool) and reported >= 0:
        call["duration_ms"] = round(reported)
    else:
        call["duration_ms"] = elapsed_ms(call.get("started_at"), at)


def _describe(call: dict[str, Any], payload: dict[str, Any], mcp_server: str | None) -> None:
    """Fill the call's tool name, input and MCP server from an event, where still unknown."""
    tool_input = payload.get("tool_input")
    if call.get("tool_name") is None:
        name = payload.get("tool_name")
        call["tool_name"] = (
            clip(ToolCall, "tool_name", name) if isinstance(name, str) and name else None
        )
    if call.get("tool_input") is None and isinstance(tool_input, dict):
        call["tool_input"] = tool_input
    if call.get("mcp_server") is None and mcp_server:
        call["mcp_server"] = clip(ToolCall, "mcp_server", mcp_server)


def _complete_from_batch(call: dict[str, Any], listed: dict[str, Any], at: datetime) -> None:
    """Complete a call a PostToolBatch lists, unless its own outcome already arrived."""
    _describe(call, listed, None)
    if call.get("ended_at") is not None and call.get("status") != ToolCallStatus.RUNNING:
        return
    call["ended_at"] = at
    call["status"] = ToolCallStatus.SUCCEEDED
    if "tool_response" in listed:
        call["tool_response"] = listed["tool_response"]
    call["duration_ms"] = elapsed_ms(call.get("started_at"), at)


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else jsoncodec.dumps(value)


def _batch_calls(event: HookEvent) -> list[tuple[str, dict[str, Any]]]:
    """(tool_use_id, entry) of each call a PostToolBatch lists with an id."""
    listed = event.payload.get("tool_calls")
    if event.name != "PostToolBatch" or not isinstance(listed, list):
        return []
    return [
        (_tool_use_id(entry["tool_use_id"]), entry)
        for entry in listed
        if isinstance(entry, dict)
        and isinstance(entry.get("tool_use_id"), str)
        and entry["tool_use_id"]
    ]


# The events that start, end or complete a tool call.
TOOL_EVENTS = frozenset(
    {"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionDenied", "PostToolBatch"}
)


async def _pair_tool_calls(
    db: AsyncSession, events: list[tuple[HookEvent, uuid.UUID]]
) -> tuple[dict[str, dict[str, Any]], set[uuid.UUID]]:
    """Pair a batch's tool events into calls: in memory, with one lookup of stored calls.

    Returns:
        {spool id of the event: the state of the call it belongs to}, events of one call
        sharing the same dict; and the ids of the calls found stored.
    """
    keys: list[tuple[uuid.UUID, str] | None] = []  # each event's call, if it names one
    keyed: set[tuple[uuid.UUID, str]] = set()  # every call named, a PostToolBatch's too
    unkeyed_outcome = False
    for event, session_id in events:
        tool_use_id = event.text("tool_use_id")
        if tool_use_id is None:
            keys.append(None)
            unkeyed_outcome = unkeyed_outcome or event.name in _OUTCOMES
        else:
            keys.append(key := (session_id, _tool_use_id(tool_use_id)))
            keyed.add(key)
        if event.name == "PostToolBatch":
            keyed.update((session_id, listed) for listed, _ in _batch_calls(event))
    stored = await find_tool_calls(db, keyed)
    calls: dict[tuple[uuid.UUID, str], dict[str, Any]] = {
        key: call.model_dump() for key, call in stored.items()
    }
    running: dict[uuid.UUID, list[dict[str, Any]]] = {}  # calls without a tool_use_id
    if unkeyed_outcome:
        old = await list_running_unkeyed_tool_calls(db, {sid for _, sid in events})
        for call in old:
            running.setdefault(call.session_id, []).append(call.model_dump())
    by_event: dict[str, dict[str, Any]] = {}
    for (event, session_id), key in zip(events, keys, strict=True):
        if event.name == "PostToolBatch":
            for listed_id, listed in _batch_calls(event):
                call = calls.get((session_id, listed_id)) or calls.setdefault(
                    (session_id, listed_id), _new_call(session_id, listed_id)
                )
                _complete_from_batch(call, listed, event.received_at)
            continue
        if key is not None:
            call = calls.get(key) or calls.setdefault(key, _new_call(session_id, key[1]))
        else:
            call = _unkeyed_call(running.setdefault(session_id, []), event, session_id)
        _merge_tool_event(call, event)
        by_event[event.spool_id] = call
    return by_event, {call.id for call in stored.values()}


def _new_call(session_id: uuid.UUID, tool_use_id: str | None) -> dict[str, Any]:
    # Made only for a call not met before: an id costs more than the lookup.
    return {"id": new_id(), "session_id": session_id, "tool_use_id": tool_use_id}


# Events that end one call; without a tool_use_id they are paired by tool and input.
_OUTCOMES = frozenset({"PostToolUse", "PostToolUseFailure", "PermissionDenied"})


def _unkeyed_call(
    running: list[dict[str, Any]], event: HookEvent, session_id: uuid.UUID
) -> dict[str, Any]:
    if event.name in _OUTCOMES:
        # Payloads from before `tool_use_id` existed: the oldest running call of the
        # same tool with the same input is the one this outcome ends.
        for index, call in enumerate(running):
            if call.get("tool_name") == event.text("tool_name") and call.get(
                "tool_input"
            ) == event.payload.get("tool_input"):
                return running.pop(index)
        return _new_call(session_id, None)
    call = _new_call(session_id, None)
    running.append(call)
    return call


async def apply_events(
    db: AsyncSession,
    placement: _Placement,
    events: list[tuple[HookEvent, uuid.UUID, uuid.UUID | None]],
) -> None:
    """Build sessions, subagents and tool calls from newly stored events, set-based."""
    ordered = sorted(events, key=lambda item: item[0].received_at)
    activity: dict[uuid.UUID, SessionActivity] = {}
    for event, session_id, parent_id in ordered:
        _session_activity(activity, event, session_id)
        if parent_id is not None:
            parent = activity.get(parent_id)
            if parent is None:
                parent = activity[parent_id] = SessionActivity()
            parent.touched_at = _later(parent.touched_at, event.received_at)
    tool_events = [(e, sid) for e, sid, _ in ordered if e.name in TOOL_EVENTS]
    calls, stored_ids = await _pair_tool_calls(db, tool_events) if tool_events else ({}, set())
    for event, _session_id, _ in ordered:
        launch = placement.launches.get(event.spool_id)
        call = calls.get(event.spool_id)
        if launch is None or call is None:
            continue
        child_id = placement.subagents[_slug(subagent_slug(launch[0], launch[1]))]
        call["subagent_session_id"] = child_id
        child = activity.setdefault(child_id, SessionActivity())
        description = (call.get("tool_input") or {}).get("description")
        if isinstance(description, str):
            child.title = child.title or clip(Session, "title", description)
        child.cover(call.get("started_at") or event.received_at)
        child.cover(event.received_at)
    unique_calls = {id(call): call for call in calls.values()}
    await save_tool_calls(db, list(unique_calls.values()), stored_ids=stored_ids)
    await record_session_activity(db, activity)


async def store_events(db: AsyncSession, events: list[HookEvent]) -> StoredEvents:
    """Store events not stored before (keyed by spool id) and apply them, set-based.

    Runs inside the caller's transaction: the rows and everything built from them
    commit together, so a delivery interrupted and repeated changes nothing twice. An
    event that cannot be stored (too large, too deeply nested) is refused with its
    reason before anything is written; the others go on.
    """
    result = StoredEvents()
    unique = list({event.spool_id: event for event in events}.values())
    result.duplicates = len(events) - len(unique)
    entries: list[tuple[HookEvent, dict[str, Any]]] = []
    for event in unique:
        try:
            entries.append((event, event.entry))
        except Exception as error:  # this event's own problem: it fails alone
            result.refused.append((event, f"{type(error).__name__}: {error}"))
    if not entries:
        return result
    placement = await _place(db, [event for event, _ in entries])
    rows = []
    for event, entry in entries:
        session_id, parent_id = placement.sessions[event.spool_id]
        row = entry.copy()  # the entry stays as it was, should the chunk be tried again
        row["session_id"], row["parent_session_id"] = session_id, parent_id
        row["session_depth"] = 0 if parent_id is None else 1
        rows.append(row)
    inserted = {key.spool_id for key in await add_agent_logs(db, rows, checked=True)}
    new = [(event, *placement.sessions[event.spool_id]) for event, _ in entries]
    new = [item for item in new if item[0].spool_id in inserted]
    result.duplicates += len(entries) - len(new)
    if new:
        await apply_events(db, placement, new)
    result.stored = [event for event, _, _ in new]
    return result
