"""`session-db hook`: record one Claude Code hook event from stdin, fast, and never fail.

Claude Code runs the hook synchronously (a PreToolUse hook delays the tool call), so
this path imports only the standard library and the spool: it appends the payload,
stamped with a spool id and the time received, to the durable spool, starts a detached
deliverer if none is running, and exits 0 having printed nothing, whatever happens:
Claude Code shows a hook's output to the user, and a hook has nothing to say. An event
it could not spool (a full disk, a read-only or missing spool folder, no permission) is
counted with its reason in `spool-failures`, or, when the spool folder cannot hold even
that, in the fallback folder's counter for this spool (`spool.fallback_dir`); `hook
status` shows both. It is also logged to `hook.log` when that can still be written.
Input that cannot be an event is kept in `rejected.jsonl` (private to the user) and
logged, never half-recorded.
"""

from __future__ import annotations

import os
import sys
import time

from session_db.claude import spool

# Set to 0 where something else runs `session-db ingest` (cron, a service, tests).
AUTO_DELIVER_ENV = "SESSION_DB_AUTO_DELIVER"
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024
# The descriptor the deliverer finds the deliverer lock on, locked by the hook for it.
LOCK_FD = 3


def run() -> int:
    """Record the event on stdin; always return 0."""
    try:
        directory: str | None = None
        try:
            directory = spool.spool_dir()
            raw = sys.stdin.buffer.read(MAX_PAYLOAD_BYTES + 1)
            received_at_ns = time.time_ns()
            _record(directory, raw, received_at_ns)
        except BaseException as error:  # the agent must never see a failure, not even ^C
            _record_failure(directory, error)
            return 0
        if os.environ.get(AUTO_DELIVER_ENV, "1").strip() not in ("0", "false", "no", "off"):
            try:
                _start_deliverer(directory)
            except BaseException as error:
                _log(directory, f"starting a deliverer failed: {_describe(error)}")
    except BaseException:  # a second ^C while the first was handled: still 0, silently
        pass
    return 0


def _record(directory: str, raw: bytes, received_at_ns: int) -> None:
    """Spool the event; raise if it could not be kept (what was logged is a bonus)."""
    spool_id = spool.new_spool_id(received_at_ns)
    body = raw.strip()
    project_dir = os.environ.get("CLAUDE_PROJECT_DIR") or None
    if not body:
        _log(directory, "empty input: nothing recorded")
        return
    if len(raw) > MAX_PAYLOAD_BYTES or not (body.startswith(b"{") and body.endswith(b"}")):
        reason = "too large" if len(raw) > MAX_PAYLOAD_BYTES else "not a JSON object"
        line = spool.spool_line(body, spool_id, received_at_ns, project_dir)
        spool.append_line(directory, line, spool.REJECTED_FILE)
        _log(directory, f"rejected {spool_id}: {reason} ({len(raw)} bytes)")
        return
    spool.append_line(directory, spool.spool_line(body, spool_id, received_at_ns, project_dir))


def _start_deliverer(directory: str) -> None:
    """Start a detached deliverer unless one runs, handing it the deliverer lock.

    The hook takes the lock itself, without waiting, so of a burst of hooks only the one
    that got it starts a deliverer. The child gets the locked file as fd 3 (`--lock-fd`);
    a `flock` belongs to the open file, so the child holds the lock once we close ours.
    """
    if spool.fcntl is None or not hasattr(os, "posix_spawn"):
        return  # no locks here: never start one from the hook
    lock = spool.FileLock(directory, spool.DELIVERER_LOCK)  # opened close-on-exec
    if not lock.acquire(blocking=False):
        return  # a deliverer runs, or another hook is starting one
    spare: int | None = None
    try:
        fd = lock.fileno()
        assert fd is not None
        if fd == LOCK_FD:  # dup2(3, 3) would leave it close-on-exec with some libcs
            fd = spare = os.dup(fd)
        # posix_spawn, not subprocess: importing subprocess would cost the hook more than
        # this whole module. setsid detaches the deliverer from Claude Code's process
        # group. The dup2 comes first, in case the lock landed on a closed 0, 1 or 2.
        actions = [
            (os.POSIX_SPAWN_DUP2, fd, LOCK_FD),
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
            (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0),
        ]
        argv = [sys.executable, "-m", "session_db", "ingest", "--follow", "--background"]
        argv += ["--lock-fd", str(LOCK_FD)]
        os.posix_spawn(sys.executable, argv, dict(os.environ), file_actions=actions, setsid=True)
    finally:  # the child has its own copy; without a child, this frees the lock
        if spare is not None:
            os.close(spare)
        lock.release()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _record_failure(directory: str | None, error: BaseException) -> None:
    """Count the lost event (in the spool, else in the fallback folder) and log it."""
    spool.record_lost_event(directory, error)
    _log(directory, f"hook failed: {_describe(error)}")


def _log(directory: str | None, message: str) -> None:
    """Log to hook.log if it can be written; never to stdout or stderr."""
    try:  # noqa: SIM105 - contextlib would be one more import on the fast path
        spool.log_line(directory or spool.spool_dir(), spool.HOOK_LOG, message)
    except BaseException:  # counted already where it matters (an event lost)
        pass
