"""Read Claude Code's JSONL transcripts: find the files, read new lines, pull out token usage.

Claude Code writes one transcript per session at
`<projects dir>/<project-folder>/<session-id>.jsonl`, and one per subagent at
`<projects dir>/<project-folder>/<session-id>/subagents/agent-<agent-id>.jsonl`
(`agent-acompact-<hex>.jsonl` is a context-compaction run of the parent, not a subagent).

Pure: no database code. Everything here is lenient about odd lines and never raises on them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any

from session_db.claude.pricing import normalize_model

__all__ = [
    "SessionFacts",
    "SubagentLaunch",
    "TranscriptFile",
    "TranscriptKind",
    "UsageEntry",
    "classify",
    "dedupe",
    "default_projects_dir",
    "discover",
    "parse_subagent_launches",
    "parse_usage",
    "read_complete_lines",
    "session_facts",
]

SUFFIX = ".jsonl"
SUBAGENTS_DIR = "subagents"
AGENT_PREFIX = "agent-"
COMPACT_PREFIX = "acompact"
SYNTHETIC_MODEL = "<synthetic>"
LAUNCH_TOOLS = frozenset({"Task", "Agent"})


def default_projects_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Claude Code's transcripts: `$CLAUDE_CONFIG_DIR/projects`, else `~/.claude/projects`."""
    env = os.environ if environ is None else environ
    config_dir = env.get("CLAUDE_CONFIG_DIR", "").strip()
    base = Path(config_dir).expanduser() if config_dir else Path("~/.claude").expanduser()
    return base / "projects"


class TranscriptKind(StrEnum):
    """What a transcript file records."""

    MAIN = "main"
    SUBAGENT = "subagent"
    COMPACT = "compact"


_MAIN = frozenset({TranscriptKind.MAIN})
_AGENTS = frozenset({TranscriptKind.SUBAGENT, TranscriptKind.COMPACT})


@dataclass(frozen=True)
class TranscriptFile:
    """One transcript file and the session (and agent) it belongs to."""

    path: Path
    session_id: str
    agent_id: str | None
    kind: TranscriptKind


def classify(path: Path) -> TranscriptFile | None:
    """Tell a session, subagent or compaction transcript apart by its path; None if it is none."""
    path = Path(path)
    if path.suffix != SUFFIX:
        return None
    stem = path.stem
    if path.parent.name == SUBAGENTS_DIR:
        agent_id = stem.removeprefix(AGENT_PREFIX)
        session_id = path.parent.parent.name
        if not stem.startswith(AGENT_PREFIX) or not agent_id or not session_id:
            return None
        kind = (
            TranscriptKind.COMPACT
            if agent_id.startswith(COMPACT_PREFIX)
            else TranscriptKind.SUBAGENT
        )
        return TranscriptFile(path, session_id, agent_id, kind)
    if not stem or stem.startswith("."):
        return None
    return TranscriptFile(path, stem, None, TranscriptKind.MAIN)


def _sort_key(tf: TranscriptFile) -> tuple[str, str, int, str]:
    """Project folder, session, then the session's subagent/compact files before its main file."""
    project = tf.path.parent if tf.kind is TranscriptKind.MAIN else tf.path.parent.parent.parent
    return (str(project), tf.session_id, int(tf.kind is TranscriptKind.MAIN), str(tf.path))


def _inside(path: Path, root: Path) -> bool:
    """Whether `path` (resolved) lies under `root` (already resolved)."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # broken link, symlink loop
        return False


def _scan(directory: Path, root: Path) -> list[os.DirEntry[str]]:
    """Entries of `directory` that are not symlinks leading outside `root`; [] if unreadable."""
    try:
        with os.scandir(directory) as it:
            entries = list(it)
    except OSError:
        return []
    kept = []
    for entry in entries:
        try:
            if entry.is_symlink() and not _inside(Path(entry.path), root):
                continue
        except OSError:
            continue
        kept.append(entry)
    return kept


def _is_file(entry: os.DirEntry[str]) -> bool:
    """A (possibly symlinked) regular file."""
    try:
        return entry.is_file()
    except OSError:
        return False


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """A (possibly symlinked) directory."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def discover(root: Path) -> list[TranscriptFile]:
    """Every transcript under `root` (projects dir, project folder or one file), subagents first.

    Within a session its subagent and compaction files come before its main file; otherwise
    the order is by project folder, session id and path. Symlinks leading outside `root` and
    folders that cannot be read are skipped.
    """
    root = Path(root)
    if not root.is_dir():
        tf = classify(root) if root.is_file() else None
        return [tf] if tf is not None else []
    try:
        real_root = root.resolve()
    except (OSError, RuntimeError):
        return []
    found: list[TranscriptFile] = []

    def add(entries: list[os.DirEntry[str]], kinds: frozenset[TranscriptKind]) -> None:
        for entry in entries:
            if entry.name.endswith(SUFFIX) and _is_file(entry):
                tf = classify(Path(entry.path))
                if tf is not None and tf.kind in kinds:
                    found.append(tf)

    def session_folders(entries: list[os.DirEntry[str]]) -> list[Path]:
        """Child folders holding a subagents folder (not tool results or other session data)."""
        return [
            Path(entry.path)
            for entry in entries
            if _is_dir(entry) and (Path(entry.path) / SUBAGENTS_DIR).is_dir()
        ]

    def project_folder(entries: list[os.DirEntry[str]]) -> None:
        add(entries, _MAIN)
        for folder in session_folders(entries):
            subagents = folder / SUBAGENTS_DIR
            if _inside(subagents, real_root):  # a symlinked subagents folder may lead outside
                add(_scan(subagents, real_root), _AGENTS)

    entries = _scan(root, real_root)
    if root.name == SUBAGENTS_DIR:
        add(entries, _AGENTS)
    elif any(e.name.endswith(SUFFIX) for e in entries) or session_folders(entries):
        project_folder(entries)
    else:  # the projects dir: one level of project folders
        for entry in entries:
            if _is_dir(entry):
                project_folder(_scan(Path(entry.path), real_root))
    return sorted(found, key=_sort_key)


def read_complete_lines(path: Path, offset: int) -> tuple[list[tuple[int, bytes]], int]:
    """Complete lines from byte `offset` on, as (start offset, line without b"\\n"); new offset.

    A last line without its newline (still being written) is left for the next call. An
    offset past the end of the file (truncated or replaced) gives ([], offset): compare it
    with the file's size to notice that.
    """
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    with open(path, "rb") as handle:
        handle.seek(offset)
        data = handle.read()
    end = data.rfind(b"\n")
    if end < 0:
        return [], offset
    lines: list[tuple[int, bytes]] = []
    start = 0
    while start <= end:
        newline = data.index(b"\n", start)
        lines.append((offset + start, data[start:newline]))
        start = newline + 1
    return lines, offset + end + 1


# --- Lenient field readers ------------------------------------------------------------------


def _count(value: Any) -> int:
    """A token count: a non-negative int, else 0."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0


def _text(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _int_or_none(value: Any) -> int | None:
    """An int (not a bool), else None."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _timestamp(value: Any) -> datetime | None:
    """An ISO timestamp as an aware UTC datetime (naive ones are taken as UTC), else None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        return None


def _cost(value: Any) -> Decimal | None:
    """A reported cost in USD as a Decimal, else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if not isinstance(value, int | float | str | Decimal):
        return None
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    return amount if amount.is_finite() and amount >= 0 else None


# --- Usage ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UsageEntry:
    """The token usage of one assistant line (one API response, possibly repeated)."""

    message_id: str
    request_id: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int
    usage: dict[str, Any]
    reported_cost_usd: Decimal | None
    occurred_at: datetime | None
    session_id: str | None
    agent_id: str | None
    line_uuid: str | None

    @property
    def total_tokens(self) -> int:
        """Input, output, cache-write and cache-read tokens together."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_creation_tokens
            + self.cache_read_tokens
        )


def parse_usage(record: Mapping[str, Any]) -> UsageEntry | None:
    """The usage of an assistant line; None for any other line and for `<synthetic>` messages."""
    if not isinstance(record, Mapping) or record.get("type") != "assistant":
        return None
    message = record.get("message")
    if not isinstance(message, Mapping):
        return None
    usage = message.get("usage")
    if not isinstance(usage, Mapping):
        return None
    raw_model = message.get("model")
    if raw_model == SYNTHETIC_MODEL:
        return None
    model = normalize_model(raw_model) if isinstance(raw_model, str) else ""
    if model == SYNTHETIC_MODEL:
        return None
    line_uuid = _text(record.get("uuid"))
    return UsageEntry(
        message_id=_text(message.get("id")) or line_uuid or "",
        request_id=_text(record.get("requestId")) or "",
        model=model,
        input_tokens=_count(usage.get("input_tokens")),
        output_tokens=_count(usage.get("output_tokens")),
        cache_creation_tokens=_count(usage.get("cache_creation_input_tokens")),
        cache_read_tokens=_count(usage.get("cache_read_input_tokens")),
        usage=dict(usage),
        reported_cost_usd=_cost(record.get("costUSD")),
        occurred_at=_timestamp(record.get("timestamp")),
        session_id=_text(record.get("sessionId")),
        agent_id=_text(record.get("agentId")),
        line_uuid=line_uuid,
    )


def dedupe(entries: Iterable[UsageEntry]) -> list[UsageEntry]:
    """One entry per (message_id, request_id): the largest total wins, first on a tie.

    One API response is written as several lines repeating message.id and requestId, and an
    early line's output_tokens is a streaming placeholder. Entries are returned in the order
    their key was first seen. Entries without any message id are never merged.
    """
    kept: list[UsageEntry] = []
    index: dict[tuple[str, str], int] = {}
    for entry in entries:
        if not entry.message_id:
            kept.append(entry)
            continue
        key = (entry.message_id, entry.request_id)
        position = index.get(key)
        if position is None:
            index[key] = len(kept)
            kept.append(entry)
        elif entry.total_tokens > kept[position].total_tokens:
            kept[position] = entry
    return kept


# --- Subagent launches ----------------------------------------------------------------------


@dataclass(frozen=True)
class SubagentLaunch:
    """A Task/Agent tool call in a parent transcript and, once it arrived, its result."""

    tool_use_id: str
    agent_id: str | None
    subagent_type: str | None
    description: str | None
    prompt: str | None
    final_usage: dict[str, Any] | None
    total_tokens: int | None
    total_duration_ms: int | None


def _content_blocks(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The dict blocks of a line's message.content (a list), else []."""
    message = record.get("message")
    if not isinstance(message, Mapping):
        return []
    content = message.get("content")
    if not isinstance(content, list):
        return []
    return [block for block in content if isinstance(block, Mapping)]


def parse_subagent_launches(records: Iterable[Mapping[str, Any]]) -> list[SubagentLaunch]:
    """Task/Agent tool calls paired with their results (agent id, usage); launch order."""
    launches: dict[str, SubagentLaunch] = {}
    for record in records:
        if not isinstance(record, Mapping):
            continue
        kind = record.get("type")
        if kind == "assistant":
            for block in _content_blocks(record):
                tool_use_id = _text(block.get("id"))
                if (
                    block.get("type") != "tool_use"
                    or block.get("name") not in LAUNCH_TOOLS
                    or tool_use_id is None
                    or tool_use_id in launches
                ):
                    continue
                tool_input = block.get("input")
                if not isinstance(tool_input, Mapping):
                    tool_input = {}
                launches[tool_use_id] = SubagentLaunch(
                    tool_use_id=tool_use_id,
                    agent_id=None,
                    subagent_type=_text(tool_input.get("subagent_type")),
                    description=_text(tool_input.get("description")),
                    prompt=_text(tool_input.get("prompt")),
                    final_usage=None,
                    total_tokens=None,
                    total_duration_ms=None,
                )
        elif kind == "user":
            result = record.get("toolUseResult")
            if not isinstance(result, Mapping):
                continue
            agent_id = _text(result.get("agentId"))
            if agent_id is None:
                continue
            for block in _content_blocks(record):
                tool_use_id = block.get("tool_use_id")
                launch = launches.get(tool_use_id) if isinstance(tool_use_id, str) else None
                if launch is None or launch.agent_id is not None:
                    continue
                usage = result.get("usage")
                launches[launch.tool_use_id] = SubagentLaunch(
                    tool_use_id=launch.tool_use_id,
                    agent_id=agent_id,
                    subagent_type=launch.subagent_type,
                    description=launch.description,
                    prompt=launch.prompt,
                    final_usage=dict(usage) if isinstance(usage, Mapping) else None,
                    total_tokens=_int_or_none(result.get("totalTokens")),
                    total_duration_ms=_int_or_none(result.get("totalDurationMs")),
                )
                break
    return list(launches.values())


# --- Session facts --------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionFacts:
    """What a transcript says about its session: time span, place, version, slug and models."""

    first_at: datetime | None
    last_at: datetime | None
    cwd: str | None
    git_branch: str | None
    version: str | None
    slug: str | None
    models: tuple[str, ...]


def session_facts(records: Iterable[Mapping[str, Any]]) -> SessionFacts:
    """Earliest/latest timestamp, first cwd, branch and slug, last version, models in order."""
    first_at: datetime | None = None
    last_at: datetime | None = None
    cwd: str | None = None
    git_branch: str | None = None
    version: str | None = None
    slug: str | None = None
    models: dict[str, None] = {}
    for record in records:
        if not isinstance(record, Mapping):
            continue
        at = _timestamp(record.get("timestamp"))
        if at is not None:
            first_at = at if first_at is None or at < first_at else first_at
            last_at = at if last_at is None or at > last_at else last_at
        cwd = cwd or _text(record.get("cwd"))
        git_branch = git_branch or _text(record.get("gitBranch"))
        slug = slug or _text(record.get("slug"))
        version = _text(record.get("version")) or version
        entry = parse_usage(record)
        if entry is not None and entry.model:
            models.setdefault(entry.model)
    return SessionFacts(first_at, last_at, cwd, git_branch, version, slug, tuple(models))
