"""`session-db events SESSION` (its hook events, `--follow` to tail them) and
`session-db tools SESSION` (its tool calls), as tables or `--json`."""

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import typer

from session_db.claude.settings_file import HOOK_EVENTS
from session_db.cli.common import (
    Col,
    console,
    duration,
    plural,
    print_json,
    print_table,
    run,
    shorten,
)
from session_db.cli.queries import JsonOption, SessionArgument

POLL_SECONDS = 1.0  # how often `--follow` asks the database for new events
LAG = timedelta(seconds=10)  # how long a writer may take to commit what it stamped
PAGE = 1000
_ZERO = uuid.UUID(int=0)
_KNOWN = {name.lower(): name for name in HOOK_EVENTS}
# The field of a tool's input that says what it did, by tool (else the first of these).
_TOOL_FIELDS = {
    "Bash": "command",
    "Read": "file_path",
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
    "Grep": "pattern",
    "Glob": "pattern",
    "WebFetch": "url",
    "WebSearch": "query",
    "Task": "description",
    "Agent": "description",
    "Skill": "skill",
}
_ANY_FIELDS = ("command", "file_path", "path", "pattern", "url", "query", "description", "prompt")
# The payload field that says what a non-tool event is about, by event.
_EVENT_FIELDS = {
    "UserPromptSubmit": "prompt",
    "UserPromptExpansion": "prompt",
    "SessionStart": "source",
    "SessionEnd": "reason",
    "Setup": "trigger",
    "Stop": "last_assistant_message",
    "StopFailure": "error",
    "SubagentStart": "agent_type",
    "SubagentStop": "agent_type",
    "PreCompact": "trigger",
    "PostCompact": "compact_summary",
    "Notification": "message",
    "TaskCreated": "task_subject",
    "TaskCompleted": "task_subject",
    "ConfigChange": "file_path",
    "InstructionsLoaded": "file_path",
    "CwdChanged": "new_cwd",
    "FileChanged": "file_path",
    "DirectoryAdded": "directory",
    "PostToolUseFailure": "error",
    "PermissionDenied": "reason",
    "PreModelSwitch": "to_model",
    "PostModelSwitch": "to_model",
    "Elicitation": "message",
    "ElicitationResult": "action",
    "WorktreeCreate": "name",
    "WorktreeRemove": "worktree_path",
    "TeammateIdle": "teammate_name",
}
_SPACE = re.compile(r"\s+")


def hook_event_types(values: list[str] | None) -> list[str] | None:
    """The hook event names given to `--type`, spelled as Claude Code does; a usage error
    naming the flag for a name it does not send."""
    if not values:
        return None
    names = []
    for value in values:
        name = _KNOWN.get(value.lower())
        if name is None:
            raise typer.BadParameter(
                f"{value!r} is not a hook event; one of: {', '.join(HOOK_EVENTS)}",
                param_hint="'--type'",
            )
        names.append(name)
    return names


def one_line(value: Any) -> str:
    """Text on one line, runs of whitespace as one space."""
    if value is None:
        return ""
    return _SPACE.sub(" ", str(value)).strip()


def tool_summary(tool_name: str | None, tool_input: Any) -> str:
    """What a tool call did, in a few words: its command, file, pattern or URL."""
    if not isinstance(tool_input, dict):
        return ""
    field = _TOOL_FIELDS.get(tool_name or "")
    for key in (field, *_ANY_FIELDS) if field else _ANY_FIELDS:
        if tool_input.get(key):
            return one_line(tool_input[key])
    return ""


def event_summary(log: Any) -> str:
    """What an event is about: its summary, the tool's input, a prompt, a reason."""
    if log.summary:
        return one_line(log.summary)
    payload = log.payload if isinstance(log.payload, dict) else {}
    field = _EVENT_FIELDS.get(log.event_type)
    told = one_line(payload.get(field)) if field else ""
    if log.tool_name:
        said = tool_summary(log.tool_name, log.tool_input or payload.get("tool_input"))
        return f"{said} — {told}" if said and told else said or told
    return told


def _stamp(moment: datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(UTC).strftime("%m-%d %H:%M:%S")


def _event_json(log: Any) -> dict[str, Any]:
    return {
        "id": str(log.id),
        "occurred_at": log.occurred_at.isoformat(),
        "created_at": log.created_at.isoformat(),
        "event_type": log.event_type,
        "tool_name": log.tool_name,
        "tool_use_id": log.tool_use_id,
        "agent_type": log.agent_type,
        "summary": event_summary(log),
        "payload": log.payload,
    }


def events(
    session: SessionArgument,
    event_type: Annotated[
        list[str] | None,
        typer.Option(
            "--type", metavar="EVENT", help="Only this hook event (PreToolUse, ...); repeatable."
        ),
    ] = None,
    tool: Annotated[str | None, typer.Option(help="Only events of this tool (Bash, ...).")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="At most this many, the latest.")
    ] = 100,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new events until Ctrl-C.")
    ] = False,
    json: JsonOption = False,
) -> None:
    """List a session's hook events in time order; `--follow` tails them as they arrive."""
    types = hook_event_types(event_type)
    if follow:
        run(_follow(session, types, tool, limit, json))
        return
    logs = run(_events(session, types, tool, limit))
    if json:
        print_json([_event_json(log) for log in logs])
        return
    print_table(
        None,
        [
            Col("Time (UTC)", no_wrap=True, shrink=False),
            Col("Event", no_wrap=True, shrink=False),
            Col("Tool", no_wrap=True, max_width=24, min_width=6),
            Col("Summary", no_wrap=True),
        ],
        [
            (_stamp(log.occurred_at), log.event_type, log.tool_name, event_summary(log))
            for log in logs
        ],
        empty="No events match." if types or tool else "No events recorded for this session.",
        compact=True,
    )
    if len(logs) == limit:
        print(f"the latest {plural(limit, 'event')}; --limit shows more")


async def _events(slug_or_id: str, types: list[str] | None, tool: str | None, limit: int):  # type: ignore[no-untyped-def]
    from session_db import crud
    from session_db.database import get_async_session

    async with get_async_session(read_only=True) as db:
        session = await crud.get_session_by_slug_or_id(db, slug_or_id)
        logs = await crud.list_agent_logs(
            db,
            session_id=session.id,
            event_types=types,
            tool_name=tool,
            descending=True,
            limit=limit,
        )
    return logs[::-1]


def _line(log: Any) -> str:
    """One event as one line that fits the terminal."""
    head = f"{_stamp(log.occurred_at)}  {log.event_type:<18}  {log.tool_name or '-':<12}  "
    return head + shorten(event_summary(log), max(console().width - len(head), 10))


async def _follow(
    slug_or_id: str, types: list[str] | None, tool: str | None, limit: int, as_json: bool
) -> None:
    """Print the latest events, then each event stored after them, polling until Ctrl-C.

    Each poll looks `LAG` back from the newest event seen and skips the ids printed: a
    writer's transaction may commit after a later one's, and its rows would be missed by
    a cursor that only moves forward.
    """
    import json as json_module

    from session_db import crud
    from session_db.database import get_async_session

    printed: dict[uuid.UUID, datetime] = {}
    newest = datetime.now(UTC)

    def show(logs: list[Any]) -> None:
        nonlocal newest
        for log in logs:
            if log.id in printed:
                continue
            printed[log.id] = log.created_at
            newest = max(newest, log.created_at)
            text = json_module.dumps(_event_json(log), default=str) if as_json else _line(log)
            print(text, flush=True)

    async def read(after: tuple[datetime, uuid.UUID] | None, count: int) -> list[Any]:
        async with get_async_session(read_only=True) as db:
            return await crud.list_agent_logs(
                db,
                session_id=session.id,
                event_types=types,
                tool_name=tool,
                after=after,
                by_arrival=True,
                descending=after is None,
                limit=count,
            )

    async with get_async_session(read_only=True) as db:
        session = await crud.get_session_by_slug_or_id(db, slug_or_id)

    async def poll(display: bool) -> None:
        cursor = (newest - LAG, _ZERO)
        while True:
            page = await read(cursor, PAGE)
            if display:
                show(page)
            else:  # there before we started, and older than what was shown: not news
                printed.update((log.id, log.created_at) for log in page)
            if len(page) < PAGE:
                return
            cursor = (page[-1].created_at, page[-1].id)  # a burst: page through it

    # The latest stored, shown in the order they happened: one batch's rows are stored
    # together, so their storage order says nothing of the order of events.
    latest = sorted(
        await read(None, limit),
        key=lambda log: (log.occurred_at or log.created_at, log.created_at, log.id),
    )
    newest = max((log.created_at for log in latest), default=newest)
    show(latest)
    await poll(display=False)
    while True:
        await asyncio.sleep(POLL_SECONDS)
        await poll(display=True)
        for log_id, stored_at in list(printed.items()):
            if stored_at < newest - LAG:
                del printed[log_id]


def _tool_json(call: Any) -> dict[str, Any]:
    return {
        "id": str(call.id),
        "tool_name": call.tool_name,
        "tool_use_id": call.tool_use_id,
        "mcp_server": call.mcp_server,
        "status": str(call.status),
        "started_at": call.started_at.isoformat() if call.started_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration_ms": call.duration_ms,
        "error": call.error,
        "is_interrupt": call.is_interrupt,
        "tool_input": call.tool_input,
        "subagent_session_id": str(call.subagent_session_id) if call.subagent_session_id else None,
    }


ToolStatus = Literal["running", "succeeded", "failed", "denied"]


def tools(
    session: SessionArgument,
    status: Annotated[ToolStatus | None, typer.Option(help="Only calls with this outcome.")] = None,
    tool: Annotated[str | None, typer.Option(help="Only calls of this tool (Bash, ...).")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="At most this many, the latest.")
    ] = 100,
    json: JsonOption = False,
) -> None:
    """List a session's tool calls: when, how long, how each ended, and its error."""
    calls = run(_tools(session, status, tool, limit))
    if json:
        print_json([_tool_json(call) for call in calls])
        return
    print_table(
        None,
        [
            Col("Started (UTC)", no_wrap=True, shrink=False),
            Col("Tool", no_wrap=True, max_width=24, min_width=6),
            Col("Took", justify="right", no_wrap=True, shrink=False),
            Col("Status", no_wrap=True, shrink=False),
            Col("Error, or what it did", no_wrap=True),
        ],
        [
            (
                _stamp(call.started_at),
                call.tool_name,
                duration(call.duration_ms),
                str(call.status),
                one_line(call.error) or tool_summary(call.tool_name, call.tool_input),
            )
            for call in calls
        ],
        empty="No tool calls match." if status or tool else "No tool calls recorded.",
        compact=True,
    )
    failed = sum(1 for call in calls if str(call.status) in ("failed", "denied"))
    said = f"{plural(len(calls), 'tool call')}, {failed} failed or denied" if calls else ""
    if len(calls) == limit:
        said += "; the latest only, --limit shows more"
    if said:
        print(said)


async def _tools(slug_or_id: str, status: str | None, tool: str | None, limit: int):  # type: ignore[no-untyped-def]
    from session_db import crud
    from session_db.database import get_async_session

    async with get_async_session(read_only=True) as db:
        session = await crud.get_session_by_slug_or_id(db, slug_or_id)
        calls = await crud.list_tool_calls(
            db, session_id=session.id, status=status, tool_name=tool, descending=True, limit=limit
        )
    return calls[::-1]
