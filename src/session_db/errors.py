"""The errors session_db raises; callers catch `SessionDBError` to catch them all.

Driver errors are translated here, in one place, so no asyncpg or sqlite3 exception
leaves the CRUD layer, and messages name the entity and the field on both engines.
"""

from __future__ import annotations

import errno
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


class SessionDBError(Exception):
    """Base of every error session_db raises on purpose."""


class ConfigurationError(SessionDBError):
    """The settings cannot work (bad URL, unsupported driver); the message hides secrets."""


class ResetRefusedError(SessionDBError):
    """`reset_db()` was called without an explicit request to delete everything."""


class NotFoundError(SessionDBError, LookupError):
    """A row that was asked for, or referred to, does not exist."""

    def __init__(self, entity: str, key: Any, *, field: str = "id", detail: str | None = None):
        self.entity, self.field, self.key = entity, field, key
        super().__init__(detail or f"{entity} with {field}={key} not found")


class ConflictError(SessionDBError):
    """A write would duplicate a unique value (a slug, a path, an edge)."""

    def __init__(self, entity: str, field: str, detail: str | None = None) -> None:
        self.entity, self.field = entity, field
        super().__init__(detail or f"{entity} with this {field} already exists")


class InvalidInputError(SessionDBError, ValueError):
    """Input breaks a rule: an unknown enum value, a number out of range, a cycle."""

    def __init__(self, entity: str, field: str | None, problem: str) -> None:
        self.entity, self.field, self.problem = entity, field, problem
        where = f"{entity}.{field}" if field else entity
        super().__init__(f"{where}: {problem}")


class PathEscapeError(InvalidInputError):
    """A session slug or folder that points outside its project's `agents/sessions/`."""

    def __init__(self, path: object, problem: str) -> None:
        self.path = path
        super().__init__("session_dir", None, f"{path}: {problem}")


class MigrationError(SessionDBError):
    """A migration could not run: an unknown revision, models that differ from the
    migrations (`check`), or an installation without its migrations."""


class DatabaseError(SessionDBError):
    """The database failed in a way that is not the caller's input (a bug, a full disk)."""


class DatabaseUnavailableError(DatabaseError):
    """The database could not be reached or dropped the connection; retrying may work."""


class DatabaseBusyError(DatabaseUnavailableError):
    """Another writer held SQLite's write lock past the busy timeout; retrying may work."""


class DatabaseNotMigratedError(DatabaseUnavailableError):
    """The database is not at the newest migration yet; work waits until it is."""


# The one classification of faults: transient ones retry the whole unit of work; the
# database's own state (`is_database_fault`: read-only, no privilege, not our schema,
# corrupt) stops the work, nothing set aside; everything else is the offending item's
# own problem and sets aside only that item.
#
# PostgreSQL SQLSTATEs (and classes, by their two-letter prefix) that a retry can outlive:
# connection exceptions (08), insufficient resources such as a full disk or too many
# connections (53), an administrator's or a crash's shutdown (57P01-57P03), a cancelled
# statement or lock timeout (57014, 55P03), serialization failures and deadlocks (40001,
# 40P01).
_TRANSIENT_SQLSTATE_CLASSES = ("08", "53")
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03"})
# SQLite primary result codes: BUSY, LOCKED, IOERR, FULL, CANTOPEN, PROTOCOL.
_TRANSIENT_SQLITE_CODES = frozenset({5, 6, 10, 13, 14, 15})
# Driver messages that mean the connection is gone, for errors that carry no code.
_CONNECTION_GONE = ("connection is closed", "connection was closed", "underlying connection")


def is_transient(error: BaseException) -> bool:
    """Return whether retrying the whole unit of work after `error` may succeed.

    A lost, refused or invalidated connection, a timeout, a serialization failure or
    deadlock, and SQLite's busy or locked database are transient; so is our own
    `DatabaseUnavailableError`. Anything else (a constraint, a value the database refuses,
    a bug) is permanent: the item that caused it is set aside, the rest goes on. The
    decision looks at SQLAlchemy's `connection_invalidated` flag and at the driver's own
    exception and codes, not at the wrapper's class alone: asyncpg reports a connection
    killed by the server as a plain `DBAPIError`.
    """
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, SessionDBError):
            # Our own error is a verdict already made; what it was raised while handling
            # (say the NotADirectoryError behind "project root is not a folder") must
            # not turn it into an outage.
            return isinstance(current, DatabaseUnavailableError)
        if _transient_by_itself(current):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False


def _transient_by_itself(error: BaseException) -> bool:
    if getattr(error, "connection_invalidated", False):
        return True
    if isinstance(error, ConnectionError | TimeoutError):
        return True
    if isinstance(error, OSError) and not isinstance(error, FileNotFoundError | PermissionError):
        return True  # a socket or disk failure under the driver
    sqlstate = getattr(error, "sqlstate", None)
    if isinstance(sqlstate, str):
        return sqlstate in _TRANSIENT_SQLSTATES or sqlstate[:2] in _TRANSIENT_SQLSTATE_CLASSES
    code = getattr(error, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in _TRANSIENT_SQLITE_CODES
    name = type(error).__name__
    if name in ("DisconnectionError", "TimeoutError", "ConnectionDoesNotExistError"):
        return True  # SQLAlchemy's pool gave up, or the driver lost the connection
    if name == "InterfaceError":
        return any(text in str(error).lower() for text in _CONNECTION_GONE)
    # asyncpg's protocol left mid-operation by a connection the server killed: that
    # connection is unusable, a new one is not.
    return name == "InternalClientError" and "another operation" in str(error)


# Faults of the database itself, which refuse every row alike: a read-only transaction
# or database (25006, a standby after a failover), a missing privilege (42501), a table
# or column that is not there (42P01, 42703: a schema that is not ours), a database
# being dropped (57P04), a system or I/O error and corruption (classes 58 and XX);
# SQLite's PERM, READONLY, CORRUPT and NOTADB.
_DATABASE_SQLSTATES = frozenset({"25006", "42501", "42P01", "42703", "57P04"})
_DATABASE_SQLSTATE_CLASSES = ("58", "XX")
_DATABASE_SQLITE_CODES = frozenset({3, 8, 11, 26})
_SQLITE_SCHEMA_MISSING = ("no such table", "no such column")


def is_database_fault(error: BaseException) -> bool:
    """Return whether `error` is the database's own state, not the item being written.

    A read-only or corrupt database, a missing privilege or a schema that is not ours
    refuses every row alike, and is not transient either (retrying soon does not help):
    a writer that sets aside the item a permanent fault is blamed on checks this first,
    so no item is set aside for it. The work stops and waits for the database to be mended.
    """
    for current in _chain(error):
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and (
            sqlstate in _DATABASE_SQLSTATES or sqlstate[:2] in _DATABASE_SQLSTATE_CLASSES
        ):
            return True
        code = getattr(current, "sqlite_errorcode", None)
        if isinstance(code, int):
            if code & 0xFF in _DATABASE_SQLITE_CODES:
                return True
            if code & 0xFF == 1 and str(current).startswith(_SQLITE_SCHEMA_MISSING):
                return True
    return False


_SQLITE_BUSY_CODES = frozenset({5, 6})  # SQLITE_BUSY, SQLITE_LOCKED


def is_sqlite_busy(error: BaseException) -> bool:
    """Return whether `error` is SQLite's "database is locked" after the busy timeout."""
    orig = getattr(error, "orig", None) or error
    code = getattr(orig, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF in _SQLITE_BUSY_CODES


def first_line(error: BaseException) -> str:
    """The driver's message, first line only (a SQLAlchemy error's goes on with the SQL)."""
    orig = getattr(error, "orig", None) or error
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__


def database_error(error: BaseException, entity: str) -> SessionDBError:
    """Our error for a database fault met while working on `entity`, classified once.

    A busy SQLite file becomes `DatabaseBusyError`, any other transient fault
    `DatabaseUnavailableError` (retry the whole unit of work), the rest `DatabaseError`.
    (The CRUD layer names the field of a refused row first: `crud.translate_database_error`.)
    """
    if is_sqlite_busy(error):
        return DatabaseBusyError(
            f"the database is busy while working on {entity}: another process held the "
            "SQLite write lock past the busy timeout (SESSION_DB_SQLITE_BUSY_TIMEOUT_MS); "
            "try again"
        )
    if is_transient(error):
        return DatabaseUnavailableError(
            f"database unavailable while working on {entity}: {first_line(error)}"
        )
    return DatabaseError(f"database error on {entity}: {first_line(error)}")


# Why a database could not be opened, for the one line a person reads: the driver's
# SQLSTATE for a missing database or role, the socket's errno for a server that is not
# there, SQLite's primary result codes for a file that cannot be opened or written.
_MISSING_DATABASE = "3D000"
_MISSING_ROLE = "28000"
_BAD_PASSWORD = "28P01"
_MISSING_TABLE = "42P01"
_SQLITE_READONLY, _SQLITE_CANTOPEN = 8, 14
_REFUSED = ("connect call failed", "connection refused")


def _chain(error: BaseException) -> list[BaseException]:
    """`error`, the driver's exception behind it, and what it was raised from, in order."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [error]
    while pending:
        current = pending.pop(0)
        if any(current is other for other in seen):
            continue
        seen.append(current)
        for nested in (getattr(current, "orig", None), current.__cause__, current.__context__):
            if isinstance(nested, BaseException):
                pending.append(nested)
    return seen


def _server(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}"


def _setting(url: URL) -> str:
    return f"SESSION_DB_URL={url.render_as_string(hide_password=True)}"


def _quoted_name(message: str, fallback: str | None) -> str:
    match = re.search(r'"([^"]*)"', message)
    return match.group(1) if match else (fallback or "")


def _createdb_command(url: URL, tool: str, name: str) -> str:
    words = [tool]
    if url.host:
        words += ["-h", url.host]
    if url.port and url.port != 5432:
        words += ["-p", str(url.port)]
    if url.username and tool == "createdb":
        words += ["-U", url.username]
    return " ".join([*words, name])


def explain_open_failure(error: BaseException, url: URL) -> SessionDBError | None:
    """One line for why the database at `url` could not be opened, and what to do.

    Recognises a missing PostgreSQL database or role, a wrong password, a refused, unknown
    or silent server, a SQLite file or folder that cannot be opened or written, and a
    database that was never migrated. The line names the database with its password
    hidden. Returns None for any other error (it is not about opening the database).
    The verdict on retrying is unchanged: `is_transient` decides that, and the error
    returned is a `DatabaseUnavailableError` exactly when `error` is transient.
    """
    if url.get_backend_name() == "sqlite":
        message = _explain_sqlite(error, url)
    else:
        message = _explain_postgresql(error, url)
    if message is None:
        return None
    return DatabaseUnavailableError(message) if is_transient(error) else DatabaseError(message)


def _explain_postgresql(error: BaseException, url: URL) -> str | None:
    import socket  # only when explaining: errors.py is imported on fast paths

    where, setting = _server(url), _setting(url)
    for current in _chain(error):
        sqlstate = getattr(current, "sqlstate", None)
        text = str(current).strip().splitlines()[0] if str(current).strip() else ""
        if sqlstate == _MISSING_DATABASE:
            name = _quoted_name(text, url.database)
            return (
                f'database "{name}" does not exist on {where} ({setting}): create it with '
                f"`{_createdb_command(url, 'createdb', name)}` or fix SESSION_DB_URL"
            )
        if sqlstate == _MISSING_ROLE and "does not exist" in text:
            name = _quoted_name(text, url.username)
            return (
                f'role "{name}" does not exist on {where} ({setting}): create it with '
                f"`{_createdb_command(url, 'createuser', name)}` or fix the user in "
                "SESSION_DB_URL"
            )
        if sqlstate in (_MISSING_ROLE, _BAD_PASSWORD):
            return (
                f"{where} refused the login ({setting}): {text}; fix the user or password "
                "in SESSION_DB_URL (or the server's pg_hba.conf)"
            )
        if sqlstate == _MISSING_TABLE:
            return _not_migrated(text, url)
        if isinstance(current, socket.gaierror):
            return (
                f"cannot connect to PostgreSQL: the host {url.host!r} is not known "
                f"({setting}): fix the host in SESSION_DB_URL"
            )
        if isinstance(current, ConnectionRefusedError) or (
            isinstance(current, OSError)
            and (current.errno == errno.ECONNREFUSED or any(r in text.lower() for r in _REFUSED))
        ):
            return (
                f"cannot connect to PostgreSQL on {where}: connection refused ({setting}): "
                "start the server, or fix the host and port in SESSION_DB_URL"
            )
        if isinstance(current, TimeoutError):
            return (
                f"cannot connect to PostgreSQL on {where}: no answer in time ({setting}): "
                "check the host and port in SESSION_DB_URL, or raise "
                "SESSION_DB_CONNECT_TIMEOUT"
            )
    return None


def _explain_sqlite(error: BaseException, url: URL) -> str | None:
    path = url.database or ":memory:"
    fix = "or set SESSION_DB_DATA_DIR (or SESSION_DB_URL) to a writable place"
    for current in _chain(error):
        code = getattr(current, "sqlite_errorcode", None)
        text = str(current).strip().splitlines()[0] if str(current).strip() else ""
        if isinstance(code, int) and code & 0xFF == _SQLITE_CANTOPEN:
            return f"cannot open the SQLite database {path}: {_why_cantopen(path)}, {fix}"
        if isinstance(code, int) and code & 0xFF == _SQLITE_READONLY:
            return (
                f"the SQLite database {path} is read-only ({text}): make the file and its "
                f"folder writable, {fix}"
            )
        if text.startswith("no such table"):
            return _not_migrated(text, url)
    return None


def _why_cantopen(database: str) -> str:
    """What stands in the way of a SQLite file that cannot be opened, as far as it shows."""
    import os

    folder = os.path.dirname(os.path.abspath(database))
    if os.path.isdir(database):
        return f"{database} is a folder; remove it"
    if os.path.isdir(folder):
        return f"its folder {folder} cannot be written; make it writable"
    ancestor = folder
    while ancestor != os.path.dirname(ancestor) and not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if os.path.exists(ancestor) and not os.path.isdir(ancestor):
        return f"its folder {folder} cannot be made: {ancestor} is a file; move it"
    return f"its folder {folder} does not exist and cannot be made"


def _not_migrated(text: str, url: URL) -> str:
    return (
        f"{url.render_as_string(hide_password=True)} is not migrated ({text}): "
        "run `session-db db upgrade`"
    )


# Constraint names follow the naming convention in session_db.models.base.
_SQLITE_CHECK = re.compile(r"CHECK constraint failed: (?P<name>\w+)")
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?P<columns>[\w., ]+)")


def _driver_error(error: BaseException) -> BaseException:
    """The driver's own exception behind SQLAlchemy's wrapper (asyncpg's carries names)."""
    orig = getattr(error, "orig", None) or error
    return getattr(orig, "__cause__", None) or orig


def describe_integrity_error(error: BaseException) -> tuple[str, str | None, str | None]:
    """Classify a database integrity error.

    Returns:
        (kind, constraint name, columns) where kind is "unique", "check", "foreign_key",
        "not_null" or "other"; names are None where the engine does not report them.
    """
    driver = _driver_error(error)
    constraint = getattr(driver, "constraint_name", None)
    sqlstate = getattr(driver, "sqlstate", None)
    message = str(getattr(error, "orig", error))
    if sqlstate == "23505" or message.startswith("UNIQUE constraint failed"):
        match = _SQLITE_UNIQUE.search(message)
        columns = match.group("columns") if match else None
        return "unique", constraint, columns
    if sqlstate == "23514" or "CHECK constraint failed" in message:
        match = _SQLITE_CHECK.search(message)
        return "check", constraint or (match.group("name") if match else None), None
    if sqlstate == "23503" or "FOREIGN KEY constraint failed" in message:
        return "foreign_key", constraint, None
    if sqlstate == "23502" or "NOT NULL constraint failed" in message:
        column = getattr(driver, "column_name", None) or message.rsplit(".", 1)[-1]
        return "not_null", None, column
    return "other", constraint, None


def check_rule(constraint: str | None, table: str) -> str | None:
    """Return the rule a CHECK constraint's name carries.

    `ck_sessions_priority_range` gives `priority_range`.
    """
    if constraint is None:
        return None
    return constraint.removeprefix(f"ck_{table}_")
