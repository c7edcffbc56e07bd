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

An append is all or nothing: one that fails (a full disk, an I/O error, a signal) cuts
the file back to its size before it, so the file is exactly as it was, and the failure is
counted in `spool-failures`, a small file of fixed size written in place (which needs no
new disk space), so `hook status` shows it even when the disk is full. A line torn by
something we cannot catch (SIGKILL, a power loss, an older version) is ended by the next
append, which then starts on a line of its own.
"""

from __future__ import annotations

import errno
import os
import stat
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
# The count of failed appends, the last error and when: FAILURES_SIZE bytes, overwritten.
FAILURES_FILE = "spool-failures"
FAILURES_SIZE = 256
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
    """Append `line` to the spool file `name` durably (flock, write, fsync), or not at all.

    A failed write or fsync cuts the file back to its size before the append, so a full
    disk never leaves a torn line. If the file does not end in a line break (a line torn
    by a power loss or an older version), the line goes after one, to stay a line.

    Raises:
        OSError: The spool cannot be written (the caller logs it; the hook never fails).
    """
    _ensure_dir(directory)
    path = os.path.join(directory, name)
    for _ in range(_OPEN_RETRIES):
        # O_RDWR, not O_WRONLY: to read the last byte (and a FIFO does not block here).
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
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
            if not stat.S_ISREG(opened.st_mode):
                raise OSError(errno.EINVAL, "not a regular file", path)
            _append_or_nothing(fd, line, opened.st_size, directory)
            return
        finally:
            os.close(fd)
    raise OSError(f"the spool file {path} was rotated {_OPEN_RETRIES} times while appending")


def _append_or_nothing(fd: int, line: bytes, size: int, directory: str) -> None:
    """Write `line` at the end (`size`, under the lock) and fsync it, or undo the write."""
    if size and os.pread(fd, 1, size - 1) != b"\n":
        line = b"\n" + line
    try:
        _write_all(fd, line)
        os.fsync(fd)
        if size == 0:
            _fsync_dir(directory)  # a new file: make its directory entry durable too
    except BaseException:
        try:  # shrinking needs no free space; the file is as it was before
            os.ftruncate(fd, size)
            os.fsync(fd)
        except OSError:
            pass  # then the next append finds the torn line and starts after it
        raise
    if size == 0:
        try:  # noqa: SIM105 - reserve the counter's space while there is some (no contextlib)
            _create_failures_file(directory)
        except OSError:
            pass


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
    """Return whether a following deliverer holds the deliverer lock right now.

    Only looks: a missing lock file means none runs, and nothing is created, so this
    works on a read-only spool too.
    """
    if fcntl is None:
        return True  # no locks here: never start one from the hook
    try:
        fd = os.open(os.path.join(directory, DELIVERER_LOCK), os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's lock
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

    @classmethod
    def adopt(cls, directory: str, name: str, fd: int) -> FileLock:
        """Take over `fd`, an open file of the lock `name` locked by our parent for us.

        A `flock` belongs to the open file, so it passes with the descriptor: the hook
        locks the deliverer lock, starts the deliverer with the file as fd 3, and exits.
        The descriptor is made non-inheritable, so our own children do not keep the lock.

        Raises:
            OSError: `fd` is not open, or is not this lock file.
            BlockingIOError: Someone else holds the lock (`fd` was not locked for us).
        """
        lock = cls(directory, name)
        opened = os.fstat(fd)
        current = os.stat(lock.path)
        if (opened.st_dev, opened.st_ino) != (current.st_dev, current.st_ino):
            raise OSError(errno.EBADF, f"descriptor {fd} is not the lock file", lock.path)
        if fcntl is not None:  # a no-op when the lock is ours already, as it should be
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.set_inheritable(fd, False)
        lock._fd = fd
        return lock

    def fileno(self) -> int | None:
        """Return the descriptor holding the lock, or None while not held."""
        return self._fd

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


class AppendFailures:
    """What `spool-failures` says: how many appends failed, the last error, and when."""

    __slots__ = ("by_reason", "count", "last_at_ns", "last_error", "last_message")

    def __init__(
        self,
        count: int = 0,
        last_at_ns: int | None = None,
        last_error: str | None = None,
        last_message: str | None = None,
        by_reason: dict[str, int] | None = None,
    ) -> None:
        self.count = count
        self.last_at_ns = last_at_ns
        self.last_error = last_error  # an errno name (ENOSPC) or an exception's class
        self.last_message = last_message
        # How many failed for each reason (an errno name or a class), most frequent first.
        self.by_reason = by_reason if by_reason is not None else {}

    def __repr__(self) -> str:
        return (
            f"AppendFailures(count={self.count}, last_at_ns={self.last_at_ns}, "
            f"last_error={self.last_error!r}, last_message={self.last_message!r}, "
            f"by_reason={self.by_reason!r})"
        )

    def merged(self, other: AppendFailures) -> AppendFailures:
        """Both counts together, the later of the two last errors."""
        later = other if (other.last_at_ns or 0) > (self.last_at_ns or 0) else self
        reasons = dict(self.by_reason)
        for reason, count in other.by_reason.items():
            reasons[reason] = reasons.get(reason, 0) + count
        return AppendFailures(
            self.count + other.count,
            later.last_at_ns,
            later.last_error,
            later.last_message,
            _ranked(reasons),
        )


def _ranked(reasons: dict[str, int]) -> dict[str, int]:
    return dict(sorted(reasons.items(), key=lambda item: (-item[1], item[0])))


# The per-reason counts ride in the record as one field, `by=ENOSPC:3,EACCES:1`, between
# the last error and its message (a record without it, from an older version, still reads).
_BY_REASON = "by="


def _failures_record(failures: AppendFailures) -> bytes:
    """The counter file's content: one line, padded with spaces to FAILURES_SIZE bytes."""
    head = f"{failures.count} {failures.last_at_ns or 0} {failures.last_error or '-'} "
    reasons = ",".join(f"{r}:{n}" for r, n in _ranked(failures.by_reason).items())
    if reasons:
        if len(reasons) > 120:  # the commonest kinds fit; the rarest are dropped
            reasons = reasons[:120].rsplit(",", 1)[0]
        head += f"{_BY_REASON}{reasons} "
    message = " ".join((failures.last_message or "").split())
    data = (head + message).encode("ascii", "backslashreplace")[: FAILURES_SIZE - 1]
    return data.ljust(FAILURES_SIZE - 1) + b"\n"


def _parse_failures(data: bytes) -> AppendFailures:
    fields = data.decode("ascii", "replace").split(None, 3)
    if len(fields) < 3 or not fields[0].isdigit() or not fields[1].isdigit():
        return AppendFailures()  # missing, empty or not ours: nothing counted
    at_ns = int(fields[1]) or None
    error = None if fields[2] == "-" else fields[2]
    message = fields[3].strip() if len(fields) > 3 else ""
    reasons: dict[str, int] = {}
    if message.startswith(_BY_REASON):
        counts, _, message = message.partition(" ")
        for item in counts[len(_BY_REASON) :].split(","):
            reason, _, number = item.rpartition(":")
            if reason and number.isdigit():
                reasons[reason] = int(number)
        message = message.strip()
    elif error is not None and int(fields[0]):
        reasons[error] = int(fields[0])  # an older record: every failure under the last
    return AppendFailures(int(fields[0]), at_ns, error, message or None, reasons)


def _open_failures(directory: str, flags: int, name: str = FAILURES_FILE) -> int:
    """Open and lock the counter file; never through a symlink, never blocking on a FIFO."""
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | flags, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", path)
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create_failures_file(directory: str) -> None:
    """Create the counter file with its full size, unless it exists (one failed open)."""
    try:
        fd = _open_failures(directory, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return
    try:
        if os.fstat(fd).st_size == 0:  # a failure may have been counted since our open
            os.pwrite(fd, _failures_record(AppendFailures()), 0)
    finally:
        os.close(fd)


def record_append_failure(directory: str, error: BaseException) -> None:
    """Count one failed append in `spool-failures`, in place (so even on a full disk).

    Raises:
        OSError: The counter cannot be written either (the disk was full before the
            file was first made, or the spool folder is unusable).
    """
    _ensure_dir(directory)
    _count_failure(directory, FAILURES_FILE, error)


def failure_reason(error: BaseException) -> str:
    """The name a failure is counted under: its errno's (ENOSPC, EACCES) or its class."""
    if isinstance(error, OSError) and error.errno is not None:
        return errno.errorcode.get(error.errno, f"errno{error.errno}")
    return type(error).__name__


def _count_failure(directory: str, name: str, error: BaseException) -> None:
    fd = _open_failures(directory, os.O_RDWR | os.O_CREAT, name)
    try:
        before = _parse_failures(os.pread(fd, FAILURES_SIZE, 0))
        reason = failure_reason(error)
        reasons = dict(before.by_reason)
        reasons[reason] = reasons.get(reason, 0) + 1
        message = f"{type(error).__name__}: {error}"
        after = AppendFailures(before.count + 1, time.time_ns(), reason, message, reasons)
        os.pwrite(fd, _failures_record(after), 0)
        try:  # noqa: SIM105 - without it the count is still in the page cache for status
            os.fsync(fd)
        except OSError:
            pass
    finally:
        os.close(fd)


def record_lost_event(directory: str | None, error: BaseException) -> bool:
    """Count an event that could not be spooled, wherever a count can still be kept.

    First in the spool's own counter; if the spool folder cannot hold it (read-only,
    under a file, not ours), in a counter for this spool in the fallback folder (see
    `fallback_dir`). Never raises.

    Returns:
        Whether the failure was counted somewhere `hook status` reads.
    """
    if directory is not None:
        try:
            record_append_failure(directory, error)
            return True
        except BaseException:
            pass
    try:
        spool = directory if directory is not None else spool_dir()
        fallback = fallback_dir()
        if fallback is None:
            return False
        _count_failure(fallback, fallback_failures_name(spool), error)
        return True
    except BaseException:
        return False


def fallback_dir(environ: dict[str, str] | None = None, *, create: bool = True) -> str | None:
    """The folder that counts failures of spools that cannot count them themselves.

    `$XDG_RUNTIME_DIR/session-db` (a per-user folder by definition), else
    `$TMPDIR/session-db-<uid>` (or under /tmp). Made 0700; a folder that exists but is
    not a real folder, not ours, or open to others is not used (None); so is a missing
    one unless `create`.
    """
    env = os.environ if environ is None else environ
    runtime = env.get("XDG_RUNTIME_DIR", "")
    if runtime and os.path.isabs(runtime):
        folder = os.path.join(runtime, "session-db")
    else:
        temp = env.get("TMPDIR", "")
        base = temp if temp and os.path.isabs(temp) else "/tmp"
        folder = os.path.join(base, f"session-db-{os.getuid()}")
    try:
        if create:
            os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        return None
    return folder


def fallback_failures_name(directory: str) -> str:
    """The name of the fallback counter of the spool at `directory` (one per spool)."""
    # FNV-1a of the path: hashlib would cost the hook an OpenSSL import.
    digest = 0xCBF29CE484222325
    for byte in os.fsencode(os.path.abspath(directory)):
        digest = ((digest ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{FAILURES_FILE}-{digest:016x}"


def append_failures(directory: str) -> AppendFailures:
    """Return how many events could not be spooled, why, and the last error.

    Counts the spool's own counter and its counter in the fallback folder (kept when the
    spool folder itself could not be written), for `hook status`.
    """
    failures = AppendFailures()
    try:
        fd = _open_failures(directory, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        pass
    else:
        try:
            failures = _parse_failures(os.pread(fd, FAILURES_SIZE, 0))
        finally:
            os.close(fd)
    fallback = fallback_dir(create=False)
    if fallback is None:
        return failures
    try:
        fd = _open_failures(fallback, os.O_RDONLY, fallback_failures_name(directory))
    except FileNotFoundError:
        return failures
    try:
        return failures.merged(_parse_failures(os.pread(fd, FAILURES_SIZE, 0)))
    finally:
        os.close(fd)


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
    except (FileNotFoundError, NotADirectoryError):
        return []
    batches = [n for n in names if n.startswith(BATCH_PREFIX) and n.endswith(BATCH_SUFFIX)]
    return [os.path.join(directory, name) for name in sorted(batches)]


def split_line(line: bytes) -> tuple[bytes, bytes]:
    """Split a spool line into its header and payload bytes.

    Raises:
        ValueError: The line has no header separator (a torn or foreign line).
    """
    end = line.find(HEADER_END)
    if end < 0:
        raise ValueError("no header separator")
    # Sliced rather than split: a spool line is copied once, not twice, on the hot path.
    return line[:end], line[end + 1 :].rstrip(b"\r\n")
