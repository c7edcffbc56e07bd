"""Read Claude Code's JSONL transcripts: find the files, read new lines, pull out token usage.

Claude Code writes one transcript per session at
`<projects dir>/<project-folder>/<session-id>.jsonl`, and one per subagent at
`<projects dir>/<project-folder>/<session-id>/subagents/agent-<agent-id>.jsonl`
(`agent-acompact-<hex>.jsonl` is a context-compaction run of the parent, not a subagent).

Pure: no database code. Everything here is lenient about odd lines and never raises on them:
a line that is not JSON is counted as bad and skipped, a known line type with fields of the
wrong shape is ignored, and line types this code does not know are skipped.

`scan_lines` reads a file's new lines in one pass and keeps what the importer stores:

- usage: one entry per response, by ccusage's rule (`dedupe`);
- the session's span, place, version, slug and models (`SessionFacts`);
- Task/Agent launches and their results (`SubagentLaunch`);
- names: the latest `custom-title` (a user's `/rename`), `ai-title` and `summary`, each
  kept apart so the importer can rank them (`Names.best`);
- `pr-link` lines (`PullRequest`), the latest `cost-state` (`CostState`), and the latest
  value of `tag`, `agent-name`, `permission-mode` and `continued-in` lines.

Everything else (`progress`, `system`, `file-history-snapshot`, `queue-operation`, and
types newer than this code) counts only for the session's span.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from session_db.claude.pricing import normalize_model

__all__ = [
    "CostState",
    "ModelCost",
    "Names",
    "PullRequest",
    "SessionFacts",
    "SubagentLaunch",
    "TranscriptFile",
    "TranscriptKind",
    "TranscriptScan",
    "UsageEntry",
    "classify",
    "dedupe",
    "default_projects_dir",
    "discover",
    "parse_cost_state",
    "parse_line",
    "parse_subagent_launches",
    "parse_usage",
    "read_complete_lines",
    "scan_lines",
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


# --- Parsing a line -------------------------------------------------------------------------

# Every digit becomes "0", so one C-speed `in` finds a run of 19 digits.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"0" * 9)
_LONG_RUN = b"0" * 19
_STDLIB = json.JSONDecoder()


def has_long_digit_run(raw: bytes) -> bool:
    """Whether `raw` holds 19 or more digits in a row: an integer orjson would change.

    orjson reads an integer beyond 64 bits (past 2**64 - 1, or below -2**63) as a float;
    such a number has at least 19 digits.
    """
    return _LONG_RUN in raw.translate(_DIGITS_AS_ZERO)


def _stdlib_loads(raw: bytes) -> Any:
    """The stdlib's reading of a line, or None where it is not JSON either."""
    try:
        return _STDLIB.decode(raw.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError, too deep
        return None


def parse_line(raw: bytes) -> Any:
    """The JSON value of one transcript line, or None if it is not JSON.

    orjson reads it, several times faster than `json.loads`; where orjson refuses a line
    (NaN or Infinity, a lone surrogate escape, nesting past 1,024 levels) or would change
    a value (an integer beyond 64 bits, which it reads as a float), the stdlib decides,
    so what is read and what counts as a bad line are the stdlib's.
    """
    if not has_long_digit_run(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return _stdlib_loads(raw)


# --- Lenient field readers ------------------------------------------------------------------


def _count(value: Any) -> int:
    """A token count: a non-negative int, else 0."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return 0


def _text(value: Any) -> str | None:
    """A non-empty string, else None."""
    return value if isinstance(value, str) and value else None


def _kept_text(value: Any, limit: int) -> str | None:
    """A non-empty string to store, at most `limit` characters: NUL and lone surrogates
    (which PostgreSQL's text refuses) become U+FFFD, surrounding blanks go; else None."""
    if not isinstance(value, str):
        return None
    value = value.strip()[:limit]
    if not value:
        return None
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # only lone surrogates fail to encode
            value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


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
    # `isSidechain: true`: written by a subagent or sidechain (a `/btw` aside, say), which
    # may replay the parent's responses (see `dedupe`).
    is_sidechain: bool = False

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
        is_sidechain=record.get("isSidechain") is True,
    )


def beats(new: UsageEntry, old: UsageEntry) -> bool:
    """Whether `new` replaces `old`, two lines of one response (ccusage's order).

    A line of the main conversation beats a sidechain's; then the larger token total
    wins; then, on a tie, a line that says its `speed` beats one that does not.
    """
    if new.is_sidechain != old.is_sidechain:
        return old.is_sidechain
    if new.total_tokens != old.total_tokens:
        return new.total_tokens > old.total_tokens
    return "speed" in new.usage and "speed" not in old.usage


def same_response(new: UsageEntry, old: UsageEntry) -> bool:
    """Whether two entries are one response: same (message id, request id), or the same
    message id with another request id where one of them is a sidechain's (a replay)."""
    if new.message_id != old.message_id or not new.message_id:
        return False
    return new.request_id == old.request_id or new.is_sidechain or old.is_sidechain


def dedupe(entries: Iterable[UsageEntry]) -> list[UsageEntry]:
    """One entry per response, by ccusage's rule; in the order responses were first seen.

    A response is keyed by (message_id, request_id): Claude Code writes one as several
    lines repeating both, and an early line's output_tokens is a streaming placeholder.
    Of two lines of one key, `beats` decides (the main conversation's, then the larger
    total, the first on a tie). A sidechain line whose message id is already known under
    another request id is a replay of that message (a `/btw` aside replays its parent's
    messages under new request ids): one response too, decided the same way. Two main
    conversation lines with one message id and different request ids stay two responses.
    Entries without any message id are never merged.
    """
    kept: list[UsageEntry] = []
    by_key: dict[tuple[str, str], int] = {}
    by_message: dict[str, list[int]] = {}
    for entry in entries:
        message_id = entry.message_id
        if not message_id:
            kept.append(entry)
            continue
        key = (message_id, entry.request_id)
        position = by_key.get(key)
        if position is None:
            for candidate in by_message.get(message_id, ()):
                if same_response(entry, kept[candidate]):
                    position = candidate
                    break
        if position is None:
            by_key[key] = len(kept)
            by_message.setdefault(message_id, []).append(len(kept))
            kept.append(entry)
        else:
            by_key[key] = position  # later lines of this key are this response too
            if beats(entry, kept[position]):
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


def _has_launch(record: Mapping[str, Any]) -> bool:
    """Whether an assistant line calls the Task/Agent tool."""
    return any(
        block.get("type") == "tool_use" and block.get("name") in LAUNCH_TOOLS
        for block in _content_blocks(record)
    )


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


# --- Names, pull requests, the client's own cost ---------------------------------------------

# The session row's bounds (name 255 characters; a URL or repository kept as given).
NAME_LIMIT = 255
URL_LIMIT = 2048
SETTING_LIMIT = 255
# The bound of a stored cost (NUMERIC(18, 9)): a reported figure past it is not a cost.
MAX_REPORTED_COST = Decimal("999999999.999999999")
# A model id in `modelUsage` may carry a context-window suffix: "claude-opus-5[1m]".
_MODEL_SUFFIX = re.compile(r"\[[^\]]*\]$")


@dataclass(frozen=True)
class Names:
    """The latest title of each kind a transcript gave its session.

    `best` ranks them: a user's own title (`custom-title`, from `/rename`) beats the one
    Claude Code generated (`ai-title`), which beats a conversation `summary`.
    """

    custom_title: str | None = None
    ai_title: str | None = None
    summary: str | None = None

    @property
    def best(self) -> str | None:
        """The name to show: custom title, else AI title, else summary."""
        return self.custom_title or self.ai_title or self.summary

    def then(self, later: Names) -> Names:
        """These names updated by later ones: the latest of each kind wins."""
        return Names(
            later.custom_title or self.custom_title,
            later.ai_title or self.ai_title,
            later.summary or self.summary,
        )


@dataclass(frozen=True)
class PullRequest:
    """A pull request the session opened or worked on (a `pr-link` line)."""

    number: int | None
    url: str | None
    repository: str | None

    @property
    def key(self) -> tuple[Any, ...]:
        """What tells two links apart: the URL, else repository and number."""
        return ("url", self.url) if self.url else ("number", self.repository, self.number)


def _pull_request(record: Mapping[str, Any]) -> PullRequest | None:
    number = _int_or_none(record.get("prNumber"))
    url = _kept_text(record.get("prUrl"), URL_LIMIT)
    repository = _kept_text(record.get("prRepository"), URL_LIMIT)
    if url is None and number is None:
        return None
    return PullRequest(number if number is None or number >= 0 else None, url, repository)


@dataclass(frozen=True)
class ModelCost:
    """One model's share of a `cost-state` line: the client's cost and token counts."""

    cost_usd: Decimal | None
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_creation_tokens: int = 0


@dataclass(frozen=True)
class CostState:
    """The client's own running totals for its session (a `cost-state` line).

    Claude Code keeps them for the whole session, its subagents and background requests
    included, and restores them on resume: the latest line covers everything before it.
    `at` is the line's timestamp, else that of the last line before it with one.
    """

    total_cost_usd: Decimal | None
    models: dict[str, ModelCost]  # by normalised model id
    at: datetime | None


def _reported_cost(value: Any) -> Decimal | None:
    amount = _cost(value)
    return amount if amount is not None and amount <= MAX_REPORTED_COST else None


def parse_cost_state(record: Mapping[str, Any], at: datetime | None = None) -> CostState | None:
    """The figures of a `cost-state` line; None where it holds none it could use.

    Model ids are normalised like usage's (a `[1m]` suffix dropped too), so their costs
    meet the usage of the same model; two ids of one model add up. A model whose cost is
    missing or unusable is left out, and `at` stands in for a line without a timestamp.
    """
    if not isinstance(record, Mapping) or record.get("type") != "cost-state":
        return None
    usage = record.get("modelUsage")
    models: dict[str, ModelCost] = {}
    if isinstance(usage, Mapping):
        for raw_model, figures in usage.items():
            if not isinstance(raw_model, str) or not isinstance(figures, Mapping):
                continue
            cost = _reported_cost(figures.get("costUSD"))
            model = normalize_model(_MODEL_SUFFIX.sub("", raw_model.strip()))
            if cost is None or not model or model == SYNTHETIC_MODEL:
                continue
            seen = models.get(model)
            counts = (
                _count(figures.get("inputTokens")),
                _count(figures.get("outputTokens")),
                _count(figures.get("cacheReadInputTokens")),
                _count(figures.get("cacheCreationInputTokens")),
            )
            if seen is not None:
                cost += seen.cost_usd or 0
                counts = (
                    counts[0] + seen.input_tokens,
                    counts[1] + seen.output_tokens,
                    counts[2] + seen.cache_read_tokens,
                    counts[3] + seen.cache_creation_tokens,
                )
            models[model] = ModelCost(cost, *counts)
    total = _reported_cost(record.get("totalCostUSD"))
    if total is None and not models:
        return None
    return CostState(total, models, _timestamp(record.get("timestamp")) or at)


# --- One pass over a file's new lines -------------------------------------------------------

# Line types whose numbers are read (token counts, costs, PR numbers): only there would
# orjson's reading of an integer beyond 64 bits change a stored value.
_NUMERIC_TYPES = frozenset({"assistant", "cost-state", "pr-link"})
# The latest value of these line types' field is kept in the session's metadata.
SETTING_LINES = {
    "tag": ("tag", "tag"),
    "agent-name": ("agentName", "agent_name"),
    "permission-mode": ("permissionMode", "permission_mode"),
    "continued-in": ("continuedInSessionId", "continued_in_session_id"),
}


@dataclass
class TranscriptScan:
    """What a file's new lines hold, for the importer (see the module docstring)."""

    lines: int = 0
    bad_lines: int = 0
    facts: SessionFacts = field(
        default_factory=lambda: SessionFacts(None, None, None, None, None, None, ())
    )
    usage: list[UsageEntry] = field(default_factory=list)
    launches: list[SubagentLaunch] = field(default_factory=list)
    names: Names = field(default_factory=Names)
    pull_requests: list[PullRequest] = field(default_factory=list)
    cost_state: CostState | None = None
    settings: dict[str, str] = field(default_factory=dict)


def _is_canonical_time(value: str) -> bool:
    """Claude Code's own form, `2026-02-12T16:02:23.545Z`: comparable as text."""
    return (
        len(value) == 24
        and value[23] == "Z"
        and value[10] == "T"
        and value[19] == "."
        and value[4] == "-"
    )


def _extremes(stamps: list[str]) -> list[datetime]:
    """The earliest and latest valid times among timestamps of one form (text order)."""
    if not stamps:
        return []
    low, high = _timestamp(min(stamps)), _timestamp(max(stamps))
    if low is None or high is None:  # one that looks right but is not a time: the slow way
        ordered = sorted(set(stamps))
        low = next((at for at in map(_timestamp, ordered) if at is not None), None)
        high = next((at for at in map(_timestamp, reversed(ordered)) if at is not None), None)
    return [at for at in (low, high) if at is not None]


def scan_lines(raw_lines: Iterable[bytes]) -> TranscriptScan:
    """Read a file's new lines once: usage, facts, launches, names, links, cost, settings.

    Equivalent to parsing each line (`parse_line`) and calling `parse_usage` + `dedupe`,
    `session_facts` and `parse_subagent_launches` on the records, in one pass. A line
    that is not a JSON object counts as bad; a known line type with fields of the wrong
    shape is ignored.
    """
    scan = TranscriptScan()
    usage: list[UsageEntry] = []
    # Only the lines holding a launch or its result are kept for pairing: keeping every
    # record until the end would let them outlive the young GC generations, and the
    # full collections that follow cost more than the parsing.
    results: list[Mapping[str, Any]] = []
    # Timestamps in Claude Code's own form compare as text: collected, and only the
    # extremes parsed. Others are parsed as they come.
    canonical: list[str] = []
    first_at: datetime | None = None
    last_at: datetime | None = None
    latest_text: str | None = None  # the last timestamp seen, for a cost-state without one
    cwd = git_branch = version = slug = None
    models: dict[str, None] = {}
    custom = ai = summary = None
    links: dict[tuple[Any, ...], PullRequest] = {}
    bad = count = 0
    loads = orjson.loads
    for raw in raw_lines:
        count += 1
        try:
            record = loads(raw)
        except orjson.JSONDecodeError:
            record = _stdlib_loads(raw)
        if type(record) is not dict:
            bad += 1
            continue
        kind = record.get("type")
        result = record.get("toolUseResult") if kind == "user" else None
        launched = type(result) is dict and "agentId" in result
        if (kind in _NUMERIC_TYPES or launched) and has_long_digit_run(raw):
            record = _stdlib_loads(raw)  # an integer orjson would have read as a float
            if type(record) is not dict:
                bad += 1
                continue
        stamp = record.get("timestamp")
        if type(stamp) is str:
            latest_text = stamp
            if _is_canonical_time(stamp):
                canonical.append(stamp)
            else:
                at = _timestamp(stamp)
                if at is not None:
                    first_at = at if first_at is None or at < first_at else first_at
                    last_at = at if last_at is None or at > last_at else last_at
        if cwd is None:
            cwd = _text(record.get("cwd"))
        if git_branch is None:
            git_branch = _text(record.get("gitBranch"))
        if slug is None:
            slug = _text(record.get("slug"))
        version = _text(record.get("version")) or version
        if kind == "progress":
            continue
        if kind == "assistant":
            entry = parse_usage(record)
            if entry is not None:
                usage.append(entry)
                if entry.model:
                    models.setdefault(entry.model)
            if _has_launch(record):
                results.append(record)
        elif launched:
            results.append(record)
        elif kind == "custom-title":
            custom = _kept_text(record.get("customTitle"), NAME_LIMIT) or custom
        elif kind == "ai-title":
            ai = _kept_text(record.get("aiTitle"), NAME_LIMIT) or ai
        elif kind == "summary":
            summary = _kept_text(record.get("summary"), NAME_LIMIT) or summary
        elif kind == "pr-link":
            link = _pull_request(record)
            if link is not None:
                links.pop(link.key, None)  # the latest line's figures, in the latest order
                links[link.key] = link
        elif kind == "cost-state":
            state = parse_cost_state(record, _timestamp(latest_text))
            if state is not None:
                scan.cost_state = state
        elif kind in SETTING_LINES:
            source, name = SETTING_LINES[kind]
            value = _kept_text(record.get(source), SETTING_LIMIT)
            if value is not None:
                scan.settings[name] = value
    for at in _extremes(canonical):
        first_at = at if first_at is None or at < first_at else first_at
        last_at = at if last_at is None or at > last_at else last_at
    scan.lines, scan.bad_lines = count, bad
    scan.facts = SessionFacts(first_at, last_at, cwd, git_branch, version, slug, tuple(models))
    scan.usage = dedupe(usage)
    scan.launches = parse_subagent_launches(results)
    scan.names = Names(custom, ai, summary)
    scan.pull_requests = list(links.values())
    return scan
