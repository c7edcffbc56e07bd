"""Realistic Claude Code hook events for the benchmarks, written as the hook spools them.

`generate(count, seed)` yields `(received_at_ns, project_dir, payload)` for a stream of
hook events shaped as in REFERENCE.md §2: every payload has `session_id`,
`transcript_path`, `cwd`, `hook_event_name` and `permission_mode`; tool events carry
`tool_name`, `tool_input` and `tool_use_id`, and PostToolUse adds `tool_response` and
`duration_ms`. A payload is about 1 KB (PreToolUse smaller, PostToolUse larger).

The stream interleaves a few concurrent sessions, so the PreToolUse and PostToolUse of a
call are often apart, and some pairs lie hundreds of events apart (an `Agent` call
encloses its subagent's events), across any delivery chunk boundary. Most events are
PreToolUse/PostToolUse pairs; the rest are SessionStart, UserPromptSubmit, Notification,
Stop, SubagentStart/SubagentStop (with `agent_id` and `agent_type`), the odd
PostToolUseFailure, and SessionEnd.

`write_spool(folder, count)` writes them with `spool.spool_line` (the bytes the hook
writes) to `<folder>/events.jsonl`. `baseline_rows(path)` reads such a file back into the
`agent_logs`, `tool_calls` and `sessions` rows delivery is expected to produce, for the
COPY / executemany baselines.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from session_db.claude import spool
from session_db.claude.events import PROMOTED
from session_db.crud import tool_calls
from session_db.models import AgentLog
from session_db.models.base import clip

HOME = "/home/dev"
PROJECTS = ("webshop", "session-db", "infra-terraform", "ml-pipeline")
MODELS = ("claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929")
PERMISSION_MODES = ("default", "default", "default", "acceptEdits", "plan", "bypassPermissions")
AGENT_TYPES = ("Explore", "general-purpose", "Plan")
SOURCE_APP = "claude-code"
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

CODE = (
    "def handle(request: Request) -> Response:",
    '    """Return the page for a request, from the cache when it is fresh."""',
    "    cached = cache.get(request.path)",
    "    if cached is not None and not cached.expired(now()):",
    "        return cached.response",
    "    response = render(request, template='page.html', context=context_for(request))",
    "    cache.put(request.path, response, ttl=timedelta(minutes=5))",
    "    return response",
    "class OrderRepository:",
    "    def __init__(self, db: AsyncSession) -> None:",
    "        self.db = db",
    "    async def by_customer(self, customer_id: uuid.UUID) -> list[Order]:",
    "        rows = await self.db.exec(select(Order).where(Order.customer_id == customer_id))",
    "        return list(rows.all())",
    "import logging",
    "logger = logging.getLogger(__name__)",
    "for item in items:",
    "    total += item.price * item.quantity",
    "# TODO: move the retry policy into the settings",
    "    raise ValueError(f'unknown currency {code!r}')",
)
OUTPUT = (
    "============================= test session starts ==============================",
    "platform linux -- Python 3.12.3, pytest-8.3.4, pluggy-1.5.0",
    "collected 214 items",
    "tests/test_orders.py ........................................            [ 18%]",
    "tests/test_cache.py ..............F.......                                [ 29%]",
    "FAILED tests/test_cache.py::test_expiry - AssertionError: assert 300 == 299",
    "src/shop/orders.py:41: error: Incompatible return value type",
    " M src/shop/orders.py",
    "?? src/shop/cache_policy.py",
    "[main 3f9c2a1] Cache rendered pages for five minutes",
    " 3 files changed, 58 insertions(+), 12 deletions(-)",
    "Successfully installed httpx-0.28.1 anyio-4.7.0",
)
PROMPTS = (
    "The checkout page is slow when the cart has many items; profile it and fix the worst "
    "offender, keeping the public API of OrderRepository as it is.",
    "Add a retry with exponential backoff to the payment client, with tests.",
    "Why does test_expiry fail on CI but not locally? Look at the clock handling.",
    "Rename the `cust` variables to `customer` across src/shop and run the tests.",
    "Write a migration that adds an index on orders(customer_id, created_at).",
)


def _text(rng: random.Random, lines: tuple[str, ...], size: int) -> str:
    out: list[str] = []
    length = 0
    while length < size:
        line = rng.choice(lines)
        out.append(line)
        length += len(line) + 1
    return "\n".join(out)


def _tool_use_id(rng: random.Random) -> str:
    return "toolu_01" + "".join(rng.choices(_ALPHABET, k=22))


def _path(rng: random.Random, root: str) -> str:
    folder = rng.choice(("src/shop", "src/shop/api", "tests", "src/shop/db", "docs"))
    name = rng.choice(("orders", "cache", "payments", "customers", "views", "models"))
    return f"{root}/{folder}/{name}.py"


def _tool(rng: random.Random, root: str, subagent: bool) -> tuple[str, dict, Any]:
    """Return a tool name, its input and its response."""
    choice = rng.random()
    if choice < 0.30:
        command = rng.choice(
            ("uv run pytest -x -q tests/", "git status --short", "git diff --stat", "ruff check .")
        )
        return (
            "Bash",
            {"command": command, "description": "Run " + command.split()[0], "timeout": 120000},
            {
                "stdout": _text(rng, OUTPUT, rng.randint(200, 900)),
                "stderr": "",
                "interrupted": False,
                "isImage": False,
            },
        )
    if choice < 0.55:
        file_path = _path(rng, root)
        content = _text(rng, CODE, rng.randint(300, 800))
        return (
            "Read",
            {"file_path": file_path},
            {
                "type": "text",
                "file": {
                    "filePath": file_path,
                    "content": content,
                    "numLines": content.count("\n") + 1,
                    "startLine": 1,
                    "totalLines": content.count("\n") + 1,
                },
            },
        )
    if choice < 0.75 and not subagent:
        file_path = _path(rng, root)
        old = _text(rng, CODE, rng.randint(80, 250))
        new = _text(rng, CODE, rng.randint(80, 250))
        return (
            "Edit",
            {"file_path": file_path, "old_string": old, "new_string": new, "replace_all": False},
            {
                "filePath": file_path,
                "oldString": old,
                "newString": new,
                "structuredPatch": [
                    {
                        "oldStart": 12,
                        "oldLines": old.count("\n") + 1,
                        "newStart": 12,
                        "newLines": new.count("\n") + 1,
                        "lines": ["-" + old[:60], "+" + new[:60]],
                    }
                ],
                "userModified": False,
                "replaceAll": False,
            },
        )
    if choice < 0.88:
        pattern = rng.choice(("def handle", "OrderRepository", "cache\\.put", "TODO"))
        files = [_path(rng, root) for _ in range(rng.randint(2, 12))]
        return (
            "Grep",
            {"pattern": pattern, "path": root, "output_mode": "files_with_matches"},
            {"mode": "files_with_matches", "filenames": files, "numFiles": len(files)},
        )
    if choice < 0.95:
        files = [_path(rng, root) for _ in range(rng.randint(3, 15))]
        return (
            "Glob",
            {"pattern": "src/**/*.py", "path": root},
            {
                "filenames": files,
                "durationMs": rng.randint(3, 40),
                "numFiles": len(files),
                "truncated": False,
            },
        )
    todos = [
        {
            "content": rng.choice(PROMPTS)[:70],
            "status": rng.choice(("pending", "in_progress")),
            "activeForm": "Working",
        }
        for _ in range(rng.randint(2, 5))
    ]
    return ("TodoWrite", {"todos": todos}, {"oldTodos": [], "newTodos": todos})


@dataclass
class _Clock:
    rng: random.Random
    now_ns: int

    def tick(self) -> int:
        self.now_ns += int(self.rng.expovariate(1 / 40e6)) + 1000  # ~40 ms apart
        return self.now_ns


@dataclass
class _Session:
    rng: random.Random
    clock: _Clock
    session_id: str = field(init=False)
    root: str = field(init=False)
    mode: str = field(init=False)

    def __post_init__(self) -> None:
        self.session_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        self.root = f"{HOME}/projects/{self.rng.choice(PROJECTS)}"
        self.mode = self.rng.choice(PERMISSION_MODES)

    def base(self, name: str, agent: tuple[str, str] | None = None) -> dict[str, Any]:
        project = self.root.replace("/", "-")
        payload: dict[str, Any] = {
            "session_id": self.session_id,
            "transcript_path": f"{HOME}/.claude/projects/{project}/{self.session_id}.jsonl",
            "cwd": self.root,
            "permission_mode": self.mode,
            "hook_event_name": name,
        }
        if agent is not None:
            payload["agent_id"], payload["agent_type"] = agent
        return payload

    def tool_pair(self, agent: tuple[str, str] | None) -> Iterator[dict[str, Any]]:
        """A PreToolUse, then (other work of this session may come between) its outcome."""
        tool_name, tool_input, response = _tool(self.rng, self.root, agent is not None)
        tool_use_id = _tool_use_id(self.rng)
        pre = self.base("PreToolUse", agent)
        pre.update(tool_name=tool_name, tool_input=tool_input, tool_use_id=tool_use_id)
        started = self.clock.now_ns  # the time of this event (generate ticks first)
        yield pre
        if self.rng.random() < 0.03:
            post = self.base("PostToolUseFailure", agent)
            post.update(
                tool_name=tool_name,
                tool_input=tool_input,
                tool_use_id=tool_use_id,
                error="Exit code 1\n" + _text(self.rng, OUTPUT, 120),
                is_interrupt=False,
            )
        else:
            post = self.base("PostToolUse", agent)
            post.update(
                tool_name=tool_name,
                tool_input=tool_input,
                tool_response=response,
                tool_use_id=tool_use_id,
            )
        post["duration_ms"] = max(1, (self.clock.now_ns - started) // 1_000_000)
        yield post

    def tools(self, agent: tuple[str, str] | None) -> Iterator[dict[str, Any]]:
        """One step: a tool call, or two or three in parallel (starts, then outcomes)."""
        if self.rng.random() < 0.25:
            pairs = [self.tool_pair(agent) for _ in range(self.rng.randint(2, 3))]
            for pair in pairs:
                yield next(pair)
            for pair in pairs:
                yield from pair
        else:
            yield from self.tool_pair(agent)

    def subagent(self) -> Iterator[dict[str, Any]]:
        """An Agent call enclosing a subagent's own events (a pair far apart)."""
        agent_type = self.rng.choice(AGENT_TYPES)
        agent_id = f"{self.rng.getrandbits(64):016x}"[:17]
        tool_use_id = _tool_use_id(self.rng)
        tool_input = {
            "description": "Explore the caching code",
            "prompt": self.rng.choice(PROMPTS) + " Report the files and functions involved.",
            "subagent_type": agent_type,
        }
        pre = self.base("PreToolUse")
        pre.update(tool_name="Agent", tool_input=tool_input, tool_use_id=tool_use_id)
        started = self.clock.now_ns
        yield pre
        agent = (agent_id, agent_type)
        yield self.base("SubagentStart", agent)
        for _ in range(self.rng.randint(5, 25)):
            yield from self.tools(agent)
        stop = self.base("SubagentStop", agent)
        stop.update(
            stop_hook_active=False,
            agent_transcript_path=stop["transcript_path"].replace(
                ".jsonl", f"/subagents/agent-{agent_id}.jsonl"
            ),
            last_assistant_message="The cache lives in src/shop/cache.py; " * 3,
        )
        yield stop
        post = self.base("PostToolUse")
        post.update(
            tool_name="Agent",
            tool_input=tool_input,
            tool_use_id=tool_use_id,
            tool_response={
                "status": "completed",
                "agentId": agent_id,
                "content": [{"type": "text", "text": _text(self.rng, CODE, 400)}],
                "totalDurationMs": (self.clock.now_ns - started) // 1_000_000,
                "totalTokens": self.rng.randint(8000, 60000),
                "totalToolUseCount": self.rng.randint(5, 25),
            },
            duration_ms=max(1, (self.clock.now_ns - started) // 1_000_000),
        )
        yield post

    def events(self) -> Iterator[dict[str, Any]]:
        start = self.base("SessionStart")
        start.update(source="startup", model=self.rng.choice(MODELS))
        yield start
        for _ in range(self.rng.randint(10, 40)):
            prompt = self.base("UserPromptSubmit")
            prompt["prompt"] = self.rng.choice(PROMPTS)
            yield prompt
            for _ in range(self.rng.randint(3, 15)):
                if self.rng.random() < 0.02:
                    yield from self.subagent()
                else:
                    yield from self.tools(None)
                if self.rng.random() < 0.02:
                    note = self.base("Notification")
                    note.update(
                        message="Claude needs your permission to use Bash",
                        notification_type="permission_prompt",
                    )
                    yield note
            stop = self.base("Stop")
            stop.update(
                stop_hook_active=False, last_assistant_message="Done: " + self.rng.choice(PROMPTS)
            )
            yield stop
        end = self.base("SessionEnd")
        end["reason"] = "prompt_input_exit"
        yield end


def generate(
    count: int, seed: int = 1, *, concurrent: int = 3, start_ns: int | None = None
) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """Yield `count` events as (received_at_ns, project_dir, payload), in arrival order."""
    rng = random.Random(seed)
    clock = _Clock(rng, start_ns if start_ns is not None else 1_780_000_000 * 10**9)
    live: list[tuple[_Session, Iterator[dict[str, Any]]]] = []
    produced = 0
    while produced < count:
        while len(live) < concurrent:
            session = _Session(rng, clock)
            live.append((session, session.events()))
        index = rng.randrange(len(live))
        session, events = live[index]
        # A session emits a short run of its own events before another gets a turn.
        for _ in range(rng.randint(1, 6)):
            at = clock.tick()  # first, so an event built now knows its own time
            payload = next(events, None)
            if payload is None:
                del live[index]
                break
            yield at, session.root, payload
            produced += 1
            if produced == count:
                return


def spool_lines(count: int, seed: int = 1) -> Iterator[bytes]:
    """Yield `count` spool lines, exactly as the hook writes them."""
    for received_at_ns, project_dir, payload in generate(count, seed):
        body = json.dumps(payload).encode()
        yield spool.spool_line(
            body, spool.new_spool_id(received_at_ns), received_at_ns, project_dir
        )


def write_spool(folder: str, count: int, seed: int = 1) -> tuple[str, int]:
    """Write `count` events to `<folder>/events.jsonl`; return its path and size in bytes."""
    os.makedirs(folder, mode=0o700, exist_ok=True)
    path = os.path.join(folder, spool.LIVE_FILE)
    size = 0
    with open(path, "wb", buffering=1 << 20) as handle:
        for line in spool_lines(count, seed):
            handle.write(line)
            size += len(line)
    return path, size


# --- the rows delivery is expected to produce, for the baselines -------------------------

AGENT_LOG_COLUMNS = (
    "id",
    "spool_id",
    "session_id",
    "parent_session_id",
    "session_depth",
    "event_category",
    "event_type",
    "source_app",
    "payload",
    "occurred_at",
    "external_session_id",
    "external_agent_id",
    "agent_type",
    "tool_name",
    "tool_use_id",
    "prompt_id",
    "permission_mode",
    "cwd",
    "transcript_path",
    "source",
    "reason",
    "tool_input",
)
# The baseline writes the columns delivery writes.
TOOL_CALL_COLUMNS = tool_calls.COLUMNS
SESSION_COLUMNS = (
    "id",
    "session_slug",
    "source_app",
    "session_role",
    "parent_session_id",
    "working_dir",
    "session_metadata",
    "started_at",
)
# payload key -> agent_logs column, as delivery promotes them (clipped to the column)
_PROMOTED = PROMOTED


@dataclass
class BaselineRows:
    """Rows as Python values: UUIDs, aware datetimes, JSON already serialised to text."""

    sessions: list[tuple] = field(default_factory=list)
    agent_logs: list[tuple] = field(default_factory=list)
    tool_calls: list[tuple] = field(default_factory=list)


def _text_value(payload: dict[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    return value if isinstance(value, str) and value else None


def baseline_rows(path: str) -> BaselineRows:
    """Read a spool file into the rows delivery should write (sessions first, for the FK)."""
    rows = BaselineRows()
    sessions: dict[str, uuid.UUID] = {}
    calls: dict[tuple[uuid.UUID, str], list[Any]] = {}

    def session_for(slug: str, at: datetime, parent: uuid.UUID | None, root: str | None):
        if slug not in sessions:
            sessions[slug] = uuid.uuid4()
            rows.sessions.append(
                (
                    sessions[slug],
                    slug,
                    SOURCE_APP,
                    "main" if parent is None else "subagent",
                    parent,
                    root,
                    "{}",
                    at,
                )
            )
        return sessions[slug]

    with open(path, "rb") as handle:
        for line in handle:
            header_bytes, payload_bytes = spool.split_line(line)
            header = json.loads(header_bytes)
            payload = json.loads(payload_bytes)
            at = datetime.fromtimestamp(header["received_at_ns"] / 1e9, UTC)
            external = payload["session_id"]
            session_id = session_for(external, at, None, header.get("project_dir"))
            parent_id = None
            agent_id = payload.get("agent_id")
            if agent_id:
                parent_id = session_id
                session_id = session_for(f"{external}/agent-{agent_id}", at, parent_id, None)
            name = payload.get("hook_event_name", "unknown")
            tool_input = payload.get("tool_input")
            # SQLAlchemy's JSON type stores None as JSON null, as delivery does.
            tool_input_json = json.dumps(tool_input if isinstance(tool_input, dict) else None)
            values = {
                "id": uuid.uuid4(),
                "spool_id": header["spool_id"],
                "session_id": session_id,
                "parent_session_id": parent_id,
                "session_depth": 0 if parent_id is None else 1,
                "event_category": "hook",
                "event_type": name[:128],
                "source_app": SOURCE_APP,
                "payload": payload_bytes.decode(),
                "occurred_at": at,
                "tool_input": tool_input_json,
            }
            for key, column in _PROMOTED:
                values[column] = clip(AgentLog, column, _text_value(payload, key))
            rows.agent_logs.append(tuple(values[column] for column in AGENT_LOG_COLUMNS))
            tool_use_id = payload.get("tool_use_id")
            if name not in ("PreToolUse", "PostToolUse", "PostToolUseFailure") or not tool_use_id:
                continue
            key = (session_id, tool_use_id)
            call = calls.get(key)
            if call is None:
                call = dict.fromkeys(TOOL_CALL_COLUMNS)
                call |= {
                    "id": uuid.uuid4(),
                    "session_id": session_id,
                    "tool_use_id": tool_use_id,
                    "tool_name": payload.get("tool_name"),
                    "mcp_server": payload.get("mcp_server"),
                    "status": "running",
                    "tool_input": tool_input_json,
                    "tool_response": "null",
                }
                calls[key] = call
            if name == "PreToolUse":
                call["started_at"] = at
            else:
                call["ended_at"] = at
                if name == "PostToolUse":
                    call["status"] = "succeeded"
                    call["tool_response"] = json.dumps(payload.get("tool_response"))
                else:
                    call["status"], call["error"] = "failed", payload.get("error")
                    call["is_interrupt"] = False
                # The CLI's own measure when the outcome carries one, as delivery takes it.
                reported = payload.get("duration_ms")
                if isinstance(reported, int):
                    call["duration_ms"] = reported
                elif call["started_at"] is not None:
                    call["duration_ms"] = int((at - call["started_at"]).total_seconds() * 1000)
                response = payload.get("tool_response")
                if payload.get("tool_name") == "Agent" and isinstance(response, dict):
                    child = f"{external}/agent-{response.get('agentId')}"
                    call["subagent_session_id"] = sessions.get(child)
    rows.tool_calls = [
        tuple(call[column] for column in TOOL_CALL_COLUMNS) for call in calls.values()
    ]
    return rows
