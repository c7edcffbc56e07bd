"""The hook spool: events appended to a private local file, delivered to the database later.

Standard library only, and not even `json`: the hook imports this on Claude Code's
critical path, where `import json` (which imports `re`) alone costs as much as starting
Python. So a spooled line is our own header, a TAB, and the payload's bytes as received:

    {"spool_id":"…","received_at_ns":…,"project_dir":"…"}<TAB>{…the hook payload…}

A TAB or line break cannot occur inside a JSON string, only as whitespace between
tokens, so the hook turns the payload's line breaks into spaces and the first TAB of a
line always ends the header. The deliverer parses the payload; one that is not valid
JSON goes to `rejected.jsonl` with its spool id, and is logged.

Paths are plain strings here: `pathlib` imports `re` too.

Writers append under an exclusive `flock`, after checking that the file they opened is
still the live one; the deliverer renames the live file to a batch, then takes and drops
the same lock, so a writer either finished before the rename or writes the next file.
"""

from __future__ import annotations

import os
import sys
import time

try:  # POSIX only; on other systems the hook records nothing but never fails
    import fcntl
except ImportError:  # pragma: no cover - exercised only on Windows
    fcntl = None  # type: ignore[assignment]

LIVE_FILE = "events.jsonl"
BATCH_PREFIX = "batch-"
BATCH_SUFFIX = ".jsonl"
REJECTED_FILE = "rejected.jsonl"
HOOK_LOG = "hook.log"
DELIVERER_LOG = "deliverer.log"
# Held for the whole life of a following deliverer: "is one running?" is a try-lock.
DELIVERER_LOCK = "deliverer.lock"
# Held during one delivery pass, so a pass and `session-db ingest` never overlap.
PASS_LOCK = "pass.lock"
HEADER_END = b"\t"
LOG_LIMIT_BYTES = 1_000_000
_OPEN_RETRIES = 20


def _home() -> str:
    home = os.environ.get("HOME", "")
    if os.path.isabs(home):
        return os.path.expanduser("~")
    import pwd  # HOME unset, empty or relative: the account's home, as platformdirs does

    return pwd.getpwuid(os.getuid()).pw_dir


def default_data_dir(environ: dict[str, str] | None = None) -> str:
    """Return the per-user data dir `platformdirs` gives session-db, without importing it."""
    env = os.environ if environ is None else environ
    home = _home()
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Application Support", "session-db")
    if sys.platform == "win32":  # pragma: no cover
        return os.path.join(env.get("LOCALAPPDATA", home), "session-db")
    xdg = env.get("XDG_DATA_HOME", "")
    base = xdg if xdg and os.path.isabs(xdg) else os.path.join(home, ".local", "share")
    return os.path.join(base, "session-db")


def spool_dir(environ: dict[str, str] | None = None) -> str:
    """Return the spool folder, absolute: SESSION_DB_SPOOL_DIR, else `<data dir>/spool`.

    A relative setting is taken from the working directory (the deliverer later changes
    into the spool folder, so the path must not depend on it again).
    """
    env = os.environ if environ is None else environ
    explicit = env.get("SESSION_DB_SPOOL_DIR", "").strip()
    if explicit:
        return os.path.abspath(os.path.expanduser(explicit))
    data_dir = env.get("SESSION_DB_DATA_DIR", "").strip()
    base = os.path.expanduser(data_dir) if data_dir else default_data_dir(env)
    return os.path.abspath(os.path.join(base, "spool"))


def new_spool_id(now_ns: int) -> str:
    """Return a unique id that sorts by time: 16 hex digits of nanoseconds, 16 random."""
    return f"{now_ns:016x}{os.urandom(8).hex()}"


def json_string(text: str | None) -> bytes:
    """Encode `text` as a JSON string literal (or `null`) without the json module."""
    if text is None:
        return b"null"
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    if any(ord(char) < 0x20 for char in escaped):
        escaped = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 else c for c in escaped)
    # Undecodable bytes of a path (surrogate escapes) become \udcXX escapes, which the
    # deliverer turns into U+FFFD like any unpaired surrogate.
    return b'"' + escaped.encode("utf-8", "backslashreplace") + b'"'


def spool_line(
    payload: bytes, spool_id: str, received_at_ns: int, project_dir: str | None
) -> bytes:
    """Return one spool line for a raw hook payload."""
    header = (
        b'{"spool_id":"'
        + spool_id.encode("ascii")
        + b'","received_at_ns":'
        + str(received_at_ns).encode("ascii")
        + b',"project_dir":'
        + json_string(project_dir)
        + b"}"
    )
    body = payload.strip().replace(b"\r", b" ").replace(b"\n", b" ")
    return header + HEADER_END + body + b"\n"


def _ensure_dir(directory: str) -> None:
    # 0700: the events hold prompts and tool inputs; they are the user's alone.
    os.makedirs(directory, mode=0o700, exist_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def append_line(directory: str, line: bytes, name: str = LIVE_FILE) -> None:
    """Append `line` to the spool file `name` durably (flock, write, fsync).

    Raises:
        OSError: The spool cannot be written (the caller logs it; the hook never fails).
    """
    _ensure_dir(directory)
    path = os.path.join(directory, name)
    for _ in range(_OPEN_RETRIES):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            opened = os.fstat(fd)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                continue  # rotated away between open and lock: open the new live file
            if (opened.st_dev, opened.st_ino) != (current.st_dev, current.st_ino):
                continue
            _write_all(fd, line)
            os.fsync(fd)
            if opened.st_size == 0:
                _fsync_dir(directory)  # a new file: make its directory entry durable too
            return
        finally:
            os.close(fd)
    raise OSError(f"the spool file {path} was rotated {_OPEN_RETRIES} times while appending")


def _fsync_dir(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def log_line(directory: str, name: str, message: str) -> None:
    """Append a timestamped line to a small log file in the spool folder, rotating at 1 MB."""
    _ensure_dir(directory)
    path = os.path.join(directory, name)
    try:
        if os.stat(path).st_size > LOG_LIMIT_BYTES:
            os.replace(path, path + ".1")
    except FileNotFoundError:
        pass
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    data = f"{stamp} pid={os.getpid()} {message}\n".encode("utf-8", "replace")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def deliverer_pid(directory: str) -> int | None:
    """Return the process id a running deliverer wrote in its lock file, if one runs."""
    if not deliverer_running(directory):
        return None
    try:
        with open(os.path.join(directory, DELIVERER_LOCK), "rb") as handle:
            return int(handle.read().strip() or b"0") or None
    except (OSError, ValueError):
        return None


def deliverer_running(directory: str) -> bool:
    """Return whether a following deliverer holds the deliverer lock right now."""
    if fcntl is None:
        return True  # no locks here: never start one from the hook
    probe = FileLock(directory, DELIVERER_LOCK)
    if not probe.acquire(blocking=False):
        return True
    probe.release()
    return False


class FileLock:
    """An exclusive `flock` on a file in the spool folder, blocking or not."""

    def __init__(self, directory: str, name: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, name)
        self._fd: int | None = None

    def acquire(self, *, blocking: bool = True) -> bool:
        """Take the lock; return False if `blocking` is off and someone else holds it."""
        _ensure_dir(self.directory)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def write_pid(self) -> None:
        """Record this process's id in the lock file (for `hook status` and operators)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        """Drop the lock (closing the file releases it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def rotate(directory: str) -> str | None:
    """Turn the live spool file into a batch file, once no writer is mid-append.

    Returns:
        The new batch file, or None when the live file is missing or empty.
    """
    live = os.path.join(directory, LIVE_FILE)
    try:
        if os.stat(live).st_size == 0:
            return None
    except FileNotFoundError:
        return None
    name = f"{BATCH_PREFIX}{time.time_ns():020d}-{os.urandom(4).hex()}{BATCH_SUFFIX}"
    batch = os.path.join(directory, name)
    os.replace(live, batch)
    _fsync_dir(directory)
    # A writer that locked the old file before the rename finishes before we get the lock.
    with open(batch, "rb") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    return batch


def batch_files(directory: str) -> list[str]:
    """Return the batch files waiting for delivery, oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    batches = [n for n in names if n.startswith(BATCH_PREFIX) and n.endswith(BATCH_SUFFIX)]
    return [os.path.join(directory, name) for name in sorted(batches)]


def split_line(line: bytes) -> tuple[bytes, bytes]:
    """Split a spool line into its header and payload bytes.

    Raises:
        ValueError: The line has no header separator (a torn or foreign line).
    """
    header, separator, payload = line.rstrip(b"\r\n").partition(HEADER_END)
    if not separator:
        raise ValueError("no header separator")
    return header, payload
