"""What the Amp, Codex and Gemini importers share: a history's shape, its writer, the loop.

Each importer reads its files (its `formats` module) into a `History`: the session a file
belongs to, the thread messages and model responses it adds, and its links to other
sessions. `write_history` stores one through the CRUD layer inside the caller's
transaction, in a bounded number of statements however many messages it holds.
`import_files` runs one file per transaction, retried whole after a transient database
fault (`retry_transient`); any other fault is that file's alone, reported with its reason
and tried again next time, while the other files go on. How far each file was read is
kept in `transcript_imports`, so a file that did not change is not read again and one
that grew adds only what is new.

Every history gets a session (`<app>:<the agent's own id>` is its slug, `source_app` the
agent's name), one thread holding its messages in their order (the thread's id is
derived from the session's, so an import run again finds it), an agent row per model
carrying the usage totals, and a usage record per model response, keyed so that reading a
response again never counts it twice. Tokens are priced through genai-prices (Claude
models through `session_db.claude.pricing`, which knows Anthropic's ids and fast mode)
(Amp, Codex and Gemini report no cost of their own: Amp's credits are its own unit).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import jsoncodec
from session_db.claude.importer import agent_key
from session_db.claude.pricing import Cost, normalize_model, price_usage
from session_db.crud import projects as project_crud
from session_db.crud import relationships as relationship_crud
from session_db.crud import sessions as session_crud
from session_db.crud import threads as thread_crud
from session_db.crud import transcript_imports, usage_records
from session_db.crud.sessions import SessionActivity
from session_db.database import get_async_session
from session_db.errors import (
    DatabaseUnavailableError,
    InvalidInputError,
    NotFoundError,
    SessionDBError,
    is_transient,
)
from session_db.models import (
    Agent,
    AgentCreate,
    AgentStatus,
    MessageRole,
    RelationshipType,
    Session,
    SpawnReason,
    TranscriptImport,
    UsageRecord,
)
from session_db.models.base import MAX_TEXT_CHARS, clip, to_money, utcnow
from session_db.retry import retry_transient

logger = logging.getLogger(__name__)

__all__ = [
    "History",
    "HistoryFormatError",
    "HistorySource",
    "ImportReport",
    "Link",
    "Message",
    "Response",
    "Tokens",
    "blocks_text",
    "content_identity",
    "count_of",
    "counts_of",
    "files_under",
    "history_slug",
    "import_files",
    "import_whole_file",
    "label",
    "message_of",
    "parse_time",
    "price_response",
    "read_json",
    "stored_metadata",
    "text_of",
    "thread_key",
    "whole_file_fingerprint",
    "write_history",
]

# Namespace of thread ids derived from their session's id, so re-imports find the thread.
THREAD_NAMESPACE = uuid.UUID("0c8d4e2a-6f1b-4d7e-9a3c-5e2f1b7d9a40")
MAIN_ROLE = "main"
MAX_SLUG = 255
MAX_NAME = 255


class HistoryFormatError(SessionDBError, ValueError):
    """A history file that cannot be read as its agent writes it (the reason says why)."""


@dataclass(frozen=True)
class Tokens:
    """One response's tokens as the four kinds stored, each counted once.

    `input` is the uncached input; `output` includes reasoning; `cache_write` and
    `cache_read` are the prompt-cache writes and reads. Their sum is the response's total.
    """

    input: int = 0
    output: int = 0
    cache_write: int = 0
    cache_read: int = 0

    @property
    def total(self) -> int:
        """The four kinds together."""
        return self.input + self.output + self.cache_write + self.cache_read


@dataclass(frozen=True)
class Message:
    """One thread message: its role, its text, and when it was written (if known)."""

    role: MessageRole
    content: str
    at: datetime | None = None


@dataclass(frozen=True)
class Response:
    """One model response's usage, keyed by (`message_id`, `request_id`) across imports."""

    message_id: str
    model: str
    tokens: Tokens
    at: datetime | None = None
    request_id: str = ""


@dataclass(frozen=True)
class Link:
    """An edge between two histories' sessions, by slug (either may not be imported yet)."""

    parent: str
    child: str
    relationship_type: RelationshipType
    spawn_reason: SpawnReason | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class History:
    """What one file adds to its session.

    Attributes:
        app: The agent: `source_app` of the session, and its key in `session_metadata`.
        slug: The session's slug (`history_slug`).
        thread_name: The name of the session's thread.
        resume_id: The id the agent's own command line resumes the session with.
        metadata: The session's `session_metadata[app]`, replaced whole: the file's
            fields the mapping does not use, and what the importer needs next time.
        messages: Thread messages in order. With `start_idx` 0 they are the whole
            history from its start (a place already stored keeps its message, which
            takes the new text if it changed); with None they follow those stored.
        responses: Model responses, each with its own key.
        links: Edges to other sessions (handoffs, forks).
    """

    app: str
    slug: str
    thread_name: str
    resume_id: str | None = None
    name: str | None = None
    working_dir: str | None = None
    first_at: datetime | None = None
    last_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    messages: list[Message] = field(default_factory=list)
    start_idx: int | None = 0
    responses: list[Response] = field(default_factory=list)
    links: list[Link] = field(default_factory=list)


@dataclass
class ImportReport:
    """What an import did, per file and in total."""

    files: int = 0
    unchanged: int = 0
    messages: int = 0  # thread messages added
    responses: int = 0  # model responses recorded (new, or grown)
    bad_lines: int = 0  # lines of a JSONL file that are not JSON objects, skipped
    sessions: set[str] = field(default_factory=set)
    errors: list[tuple[str, str]] = field(default_factory=list)

    def add(self, other: ImportReport) -> None:
        """Count what `other` (one file's import) did in this report."""
        self.files += other.files
        self.unchanged += other.unchanged
        self.messages += other.messages
        self.responses += other.responses
        self.bad_lines += other.bad_lines
        self.sessions |= other.sessions
        self.errors.extend(other.errors)

    def as_json(self) -> dict[str, Any]:
        """The report as `--json` prints it."""
        return {
            "files": self.files,
            "unchanged": self.unchanged,
            "messages": self.messages,
            "responses": self.responses,
            "bad_lines": self.bad_lines,
            "sessions": sorted(self.sessions),
            "errors": [{"path": path, "error": error} for path, error in self.errors],
        }


def history_slug(app: str, external_id: str) -> str:
    """Return the slug of an agent's session: `<app>:<its own id>`, cut to fit."""
    return f"{app}:{external_id}"[:MAX_SLUG]


def thread_key(session_id: uuid.UUID) -> uuid.UUID:
    """Return the id of the thread an imported history keeps in its session."""
    return uuid.uuid5(THREAD_NAMESPACE, str(session_id))


# --- Reading ------------------------------------------------------------------------------


def count_of(value: Any) -> int:
    """A token count read leniently: a non-negative int, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def counts_of(value: Any, names: Sequence[str]) -> list[int] | None:
    """The counts `names` of an object read leniently (0 where one is missing or not a
    count), or None where `value` is not an object holding any of them."""
    if not isinstance(value, dict) or not any(name in value for name in names):
        return None
    return [count_of(value.get(name)) for name in names]


def text_of(value: Any) -> str | None:
    """Text read leniently: a non-empty str, else None."""
    return value if isinstance(value, str) and value else None


def label(*parts: Any) -> str:
    """A block's label from its parts (kind, name, id, ...), the missing ones left out."""
    return " ".join(str(part) for part in parts if part not in (None, ""))


def parse_time(value: Any) -> datetime | None:
    """An aware UTC time from ISO 8601 text (`Z` allowed) or epoch milliseconds, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value / 1000, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def read_json(data: bytes, what: str) -> Any:
    """The JSON value of a whole file, or HistoryFormatError saying why it is not JSON."""
    try:
        return jsoncodec.loads(data)
    except (ValueError, RecursionError) as error:  # JSONDecodeError, UnicodeDecodeError
        raise HistoryFormatError(f"{what} is not valid JSON ({error})") from None


def content_identity(data: bytes) -> str:
    """The identity of a file read whole: a hash of its bytes (same bytes, same file)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()[:48]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return jsoncodec.dumps(value)
    except TypeError:
        return repr(value)


def blocks_text(blocks: Iterable[tuple[str | None, Any]], *, heading: str | None = None) -> str:
    """One message's parts as text: each `(label, body)` as `[label]` over its body.

    A part without a label is plain text; a body that is not text is written as JSON,
    so tool inputs and results stay readable and whole. A `heading` (the role an agent
    gave a message stored as another) is the first line, `[heading]`. The text is cut,
    with a note of how much was left out, to the longest text a column takes (1,000,000
    characters).
    """
    parts = []
    for label, body in blocks:
        text = _text(body) if body is not None else ""
        parts.append(text if label is None else f"[{label}]\n{text}" if text else f"[{label}]")
    joined = "\n\n".join(part for part in parts if part)
    if heading is not None:
        joined = f"[{heading}]\n{joined}" if joined else f"[{heading}]"
    if len(joined) <= MAX_TEXT_CHARS:
        return joined
    note = f"\n[… {len(joined) - MAX_TEXT_CHARS + 64} more characters not kept]"
    return joined[: MAX_TEXT_CHARS - 64] + note


_ROLES = {role.value: role for role in MessageRole}


def message_of(
    role: str,
    blocks: Iterable[tuple[str | None, Any]],
    at: datetime | None,
    *,
    aliases: Mapping[str, MessageRole] | None = None,
) -> Message:
    """A message with an agent's role word: user, assistant and system (or an alias's role)
    as they are; any other word (Amp's info, Codex's developer, …) makes a system message
    whose first line names it, so nothing the agent said about it is lost."""
    mapped = (aliases or {}).get(role) or _ROLES.get(role)
    if mapped is None:
        return Message(MessageRole.SYSTEM, blocks_text(blocks, heading=role), at)
    return Message(mapped, blocks_text(blocks), at)


def files_under(paths: Iterable[str | Path], matches: Callable[[str], bool]) -> list[Path]:
    """Every file under `paths` whose name `matches` accepts, each once, in path order.

    A folder is searched through, without following links to folders; a file named
    itself is taken whatever its name.
    """
    found: set[Path] = set()
    for raw in paths:
        path = Path(raw).expanduser().absolute()
        if path.is_file():
            found.add(path)
            continue
        for folder, _, names in os.walk(path):
            found.update(Path(folder) / name for name in names if matches(name))
    return sorted(found)


# --- Pricing ------------------------------------------------------------------------------

# (model, provider) pairs genai-prices does not know, so a long import asks once for each.
_UNKNOWN: set[tuple[str, str | None]] = set()


def _provider(model: str) -> tuple[str, str | None]:
    """The model id genai-prices looks up, and its provider where the id tells it."""
    provider, _, name = model.rpartition("/")
    if provider:
        return name, provider
    if name.startswith(("gpt-", "o1", "o3", "o4", "codex")):
        return name, "openai"
    if name.startswith("gemini"):
        return name, "google"
    return name, None


def price_response(response: Response) -> Cost:
    """The list price of one response, from genai-prices (none of these agents reports one).

    Claude models go through `session_db.claude.pricing.price_usage` (Anthropic's ids,
    Bedrock and Vertex forms, its price cache); others through `genai_prices.calc_price`,
    whose input count includes the cached tokens. A model genai-prices does not know is
    `unpriced`.
    """
    tokens = response.tokens
    if normalize_model(response.model).startswith("claude"):
        usage = {
            "input_tokens": tokens.input,
            "output_tokens": tokens.output,
            "cache_creation_input_tokens": tokens.cache_write,
            "cache_read_input_tokens": tokens.cache_read,
        }
        return price_usage(response.model, usage, at=response.at)
    name, provider = _provider(response.model)
    if not name or (name, provider) in _UNKNOWN:
        return Cost(None, "unpriced", estimate=True)
    import genai_prices  # deferred: slow to import

    usage = genai_prices.Usage(
        input_tokens=tokens.input + tokens.cache_write + tokens.cache_read,
        cache_write_tokens=tokens.cache_write,
        cache_read_tokens=tokens.cache_read,
        output_tokens=tokens.output,
    )
    try:
        price = genai_prices.calc_price(
            usage, name, provider_id=provider, genai_request_timestamp=response.at
        )
    except LookupError:
        _UNKNOWN.add((name, provider))
        return Cost(None, "unpriced", estimate=True)
    except (ValueError, TypeError, ArithmeticError):
        return Cost(None, "unpriced", estimate=True)
    return Cost(Decimal(price.total_price), "computed", estimate=True)


# --- Writing ------------------------------------------------------------------------------


async def stored_metadata(db: AsyncSession, slug: str, app: str) -> dict[str, Any]:
    """The `session_metadata[app]` an earlier import stored for this slug ({} if none)."""
    try:
        session = await session_crud.get_session_by_slug(db, slug)
    except NotFoundError:
        return {}
    kept = (session.session_metadata or {}).get(app)
    db.expunge(session)  # its row is written by Core statements below; no stale copy
    return dict(kept) if isinstance(kept, dict) else {}


async def write_history(
    db: AsyncSession, history: History, progress: TranscriptImport, report: ImportReport
) -> None:
    """Store what one file adds, inside the caller's transaction, and record its progress.

    Statements: the project, the session (one upsert), the thread (one upsert), its new
    messages (a lock, a read, one insert per 1,000), the agents and responses (one
    statement each per page), the totals, the session's span and metadata, the links
    (a few per link), and the file's progress row. Nothing here depends on how many
    messages or responses the history holds.
    """
    if history.working_dir:
        root = clip(Session, "working_dir", history.working_dir)
        # Fills in a placeholder (a session another history linked to first).
        session_id = await session_crud.upsert_session_by_slug(
            db,
            {
                "session_slug": history.slug,
                "source_app": history.app,
                "working_dir": root,
                "project_id": await project_crud.upsert_project(db, root),
            },
        )
    else:  # lines that follow others, say: the session keeps what it has
        session_id = await session_crud.ensure_session(db, history.slug, source_app=history.app)
    thread_id = thread_key(session_id)
    await thread_crud.ensure_threads(
        db, {thread_id: {"session_id": session_id, "name": history.thread_name[:MAX_NAME]}}
    )
    stored = await thread_crud.add_thread_messages(
        db,
        thread_id,
        [
            {"role": message.role, "content": message.content, "created_at": message.at}
            for message in history.messages
        ],
        start_idx=history.start_idx,
        # A history read from its start is the whole of it: a message that changed
        # since (saved half written before) takes its new text.
        update_changed=history.start_idx == 0,
    )
    report.messages += len(stored)
    report.responses += await _store_responses(db, history, session_id)
    await usage_records.refresh_usage_totals(db, [session_id])
    activity = SessionActivity(metadata={history.app: history.metadata}, name=history.name)
    activity.widen(history.first_at, history.last_at)
    await session_crud.record_session_activity(db, {session_id: activity})
    await _link(db, history, session_id)
    progress.session_id = session_id
    progress.last_imported_at = utcnow()
    await transcript_imports.record_transcript_imports(db, [progress])
    report.sessions.add(history.slug)


async def _store_responses(db: AsyncSession, history: History, session_id: uuid.UUID) -> int:
    """Write the responses and the agent row of each model; how many records changed."""
    responses = [response for response in history.responses if response.tokens.total > 0]
    if not responses:
        return 0
    agents: dict[uuid.UUID, AgentCreate] = {}
    rows = []
    for response in responses:
        model = clip(UsageRecord, "model", response.model)
        agent_id = agent_key(session_id, MAIN_ROLE, model)
        if agent_id not in agents:
            agents[agent_id] = AgentCreate(
                session_id=session_id,
                agent_type=MAIN_ROLE,
                model=model,
                sdk_session_id=clip(Agent, "sdk_session_id", history.resume_id) or None,
                status=AgentStatus.COMPLETE,
                agent_metadata={"source": history.app, "role": MAIN_ROLE},
            )
        cost = price_response(response)
        rows.append(
            {
                "session_id": session_id,
                "agent_id": agent_id,
                "message_id": clip(UsageRecord, "message_id", response.message_id),
                "request_id": clip(UsageRecord, "request_id", response.request_id),
                "model": model,
                "input_tokens": response.tokens.input,
                "output_tokens": response.tokens.output,
                "cache_creation_tokens": response.tokens.cache_write,
                "cache_read_tokens": response.tokens.cache_read,
                "cost": to_money(cost.amount or 0),
                "cost_source": cost.source,
                "cost_is_estimate": cost.estimate,
                "occurred_at": response.at,
            }
        )
    await usage_records.ensure_usage_agents(db, agents)
    # A response already stored keeps its record; only a larger count replaces it.
    return len(await usage_records.add_usage_records(db, rows))


async def _link(db: AsyncSession, history: History, session_id: uuid.UUID) -> None:
    """Link the history's session to the others it names (placeholders until imported)."""
    if not history.links:
        return
    others = sorted({slug for link in history.links for slug in (link.parent, link.child)})
    placeholders = [
        {"session_slug": slug, "source_app": history.app} for slug in others if slug != history.slug
    ]
    ensured = await session_crud.ensure_sessions(db, placeholders)
    ids = {slug: session for slug, (session, _) in ensured.items()}
    ids[history.slug] = session_id
    for link in history.links:
        try:
            await relationship_crud.link_sessions_once(
                db,
                {
                    "parent_session_id": ids[link.parent],
                    "child_session_id": ids[link.child],
                    "relationship_type": link.relationship_type,
                    "spawn_reason": link.spawn_reason,
                    "spawn_metadata": dict(link.metadata),
                },
            )
        except InvalidInputError as error:  # a self-link or a cycle: the file is kept
            logger.warning("%s: link to %s not made: %s", history.slug, link, error)


# --- The loop -----------------------------------------------------------------------------

FileImport = Callable[[AsyncSession, Path, TranscriptImport], Awaitable[ImportReport]]
Fingerprint = Callable[[Path], tuple[str, int]]


async def import_files(
    engine: AsyncEngine,
    files: Sequence[Path],
    import_file: FileImport,
    fingerprint: Fingerprint,
    *,
    attempts: int | None = 8,
    progress: Callable[[Path, ImportReport], None] | None = None,
) -> ImportReport:
    """Import each file in its own transaction, retried whole after a transient fault.

    `import_file(db, path, progress_row)` reads the file's new part and writes it;
    `fingerprint(path)` gives the (identity, size) a finished import records, so a file
    whose fingerprint matches its stored progress is counted unchanged without a write.
    A file that fails otherwise is listed in the report's errors, its progress left as
    it was, and the others go on.

    Raises:
        DatabaseUnavailableError: The database stayed unreachable for all `attempts`;
            what was imported before stays imported.
    """
    report = ImportReport()
    known = await _known_progress(engine, files)
    for path in files:
        report.files += 1
        row = known.get(str(path)[: transcript_imports.MAX_PATH])
        if row is not None and await asyncio.to_thread(_unchanged, path, row, fingerprint):
            report.unchanged += 1
        else:
            outcome = await _import_one(engine, path, import_file, attempts)
            if isinstance(outcome, str):
                report.errors.append((str(path), outcome))
                logger.warning("could not import %s: %s", path, outcome)
            else:
                report.add(outcome)
        if progress is not None:
            progress(path, report)
    return report


@dataclass(frozen=True)
class HistorySource:
    """Where an agent keeps its histories, which files they are, how one is imported.

    Attributes:
        app: The agent's name (`source_app`, the slug's prefix).
        variable, fallback, below: The agent's folder is `$variable`, else `fallback`;
            its histories are in `below` inside it ("" for the folder itself).
        matches: Whether a file name is one of its histories.
        import_file: Imports one file's new part inside the caller's transaction.
        fingerprint: The (identity, size) an import of the file records.
    """

    app: str
    variable: str
    fallback: str
    below: str
    matches: Callable[[str], bool]
    import_file: FileImport
    fingerprint: Fingerprint

    def default_dir(self, environ: Mapping[str, str] | None = None) -> Path:
        """The folder of the agent's histories, from the environment (blank means unset)."""
        env = os.environ if environ is None else environ
        base = Path(env.get(self.variable, "").strip() or self.fallback).expanduser()
        return base / self.below if self.below else base

    def files(self, paths: Iterable[str | Path]) -> list[Path]:
        """The agent's history files under `paths`, or named by them."""
        return files_under(paths, self.matches)

    async def import_paths(
        self,
        engine: AsyncEngine,
        paths: Iterable[str | Path],
        *,
        attempts: int | None = 8,
        progress: Callable[[Path, ImportReport], None] | None = None,
    ) -> ImportReport:
        """Import every history file under `paths`, each in its own transaction.

        Raises:
            DatabaseUnavailableError: The database stayed unreachable for all `attempts`.
        """
        return await import_files(
            engine,
            self.files(paths),
            self.import_file,
            self.fingerprint,
            attempts=attempts,
            progress=progress,
        )


def _unchanged(path: Path, row: TranscriptImport, fingerprint: Fingerprint) -> bool:
    try:
        identity, size = fingerprint(path)
    except OSError:
        return False  # the import says why
    return row.file_identity == identity and row.byte_offset == size


async def _known_progress(
    engine: AsyncEngine, files: Sequence[Path]
) -> dict[str, TranscriptImport]:
    """The stored progress of the files, by path: one read-only pass, 1,000 rows a page."""
    if not files:
        return {}
    under = os.path.commonpath([str(path) for path in files])

    async def read() -> dict[str, TranscriptImport]:
        found: dict[str, TranscriptImport] = {}
        async with get_async_session(engine, read_only=True) as db:
            while True:
                page = await transcript_imports.list_transcript_imports(
                    db, under=under, limit=1000, offset=len(found)
                )
                found.update((row.path, row) for row in page)
                if len(page) < 1000:
                    return found

    return await retry_transient(read, what="reading what was imported before")


async def _import_one(
    engine: AsyncEngine, path: Path, import_file: FileImport, attempts: int | None
) -> ImportReport | str:
    """One file's import in its own transaction: its report, or why it failed."""

    async def work() -> ImportReport:
        async with get_async_session(engine) as db:
            claimed = await transcript_imports.claim_transcript_imports(db, [str(path)])
            return await import_file(db, path, claimed[str(path)])

    try:
        return await retry_transient(work, attempts=attempts, what=f"importing {path}")
    except Exception as error:
        if not is_transient(error):
            return _describe(error)
        if isinstance(error, SessionDBError):
            raise
        raise DatabaseUnavailableError(
            f"database unavailable while importing {path}: {_describe(error)}"
        ) from error


def _describe(error: BaseException) -> str:
    """One line naming what went wrong, for the report."""
    text = str(getattr(error, "orig", None) or error).strip()
    line = text.splitlines()[0] if text else ""
    if isinstance(error, SessionDBError | OSError):
        return line or type(error).__name__
    return f"{type(error).__name__}: {line}" if line else type(error).__name__  # a bug of ours


def whole_file_fingerprint(path: Path) -> tuple[str, int]:
    """The (identity, size) a file read whole records: the hash of its bytes, their count."""
    data = path.read_bytes()
    return content_identity(data), len(data)


async def import_whole_file(
    db: AsyncSession,
    path: Path,
    progress: TranscriptImport,
    read: Callable[[bytes, Path], tuple[History, int, int]],
) -> ImportReport:
    """Import a file its agent rewrites whole (Amp's threads, Gemini's chats), if it changed.

    `read(data, path)` gives the history the file holds, how many items (messages) it
    has, and how many of its lines it skipped as unreadable. The file is read whole each
    time its bytes change; positions keep each message's place, so only those past what
    is stored are added.

    Raises:
        HistoryFormatError: `read` could not make sense of the file.
    """
    report = ImportReport()
    data = await asyncio.to_thread(path.read_bytes)
    identity = content_identity(data)
    # Checked again here, under the progress row's lock: another import may have run.
    if progress.file_identity == identity and progress.byte_offset == len(data):
        report.unchanged += 1
        return report
    history, items, report.bad_lines = read(data, path)
    history.start_idx = 0
    progress.file_identity, progress.byte_offset, progress.lines_read = identity, len(data), items
    await write_history(db, history, progress, report)
    return report
