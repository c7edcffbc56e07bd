"""`session-db hook`: record one Claude Code hook event from stdin, fast, and never fail.

Claude Code runs the hook synchronously (a PreToolUse hook delays the tool call), so
this path imports only the standard library and the spool: it appends the payload,
stamped with a spool id and the time received, to the durable spool, starts a detached
deliverer if none is running, and exits 0 having printed nothing. Its own failures go to
`hook.log` in the spool folder. Input that cannot be an event is kept in
`rejected.jsonl` (private to the user) and logged, never half-recorded.
"""

from __future__ import annotations

import os
import sys
import time

from session_db.claude import spool

# Set to 0 where something else runs `session-db ingest` (cron, a service, tests).
AUTO_DELIVER_ENV = "SESSION_DB_AUTO_DELIVER"
MAX_PAYLOAD_BYTES = 64 * 1024 * 1024


def run() -> int:
    """Record the event on stdin; always return 0."""
    directory: str | None = None
    try:
        directory = spool.spool_dir()
        raw = sys.stdin.buffer.read(MAX_PAYLOAD_BYTES + 1)
        received_at_ns = time.time_ns()
        _record(directory, raw, received_at_ns)
        if os.environ.get(AUTO_DELIVER_ENV, "1").strip() not in ("0", "false", "no", "off"):
            _ensure_deliverer(directory)
    except BaseException as error:  # the agent must never see a failure, not even ^C
        _log_failure(directory, f"hook failed: {type(error).__name__}: {error}")
    return 0


def _record(directory: str, raw: bytes, received_at_ns: int) -> None:
    spool_id = spool.new_spool_id(received_at_ns)
    body = raw.strip()
    project_dir = os.environ.get("CLAUDE_PROJECT_DIR") or None
    if not body:
        spool.log_line(directory, spool.HOOK_LOG, "empty input: nothing recorded")
        return
    if len(raw) > MAX_PAYLOAD_BYTES or not (body.startswith(b"{") and body.endswith(b"}")):
        reason = "too large" if len(raw) > MAX_PAYLOAD_BYTES else "not a JSON object"
        line = spool.spool_line(body, spool_id, received_at_ns, project_dir)
        spool.append_line(directory, line, spool.REJECTED_FILE)
        spool.log_line(
            directory, spool.HOOK_LOG, f"rejected {spool_id}: {reason} ({len(raw)} bytes)"
        )
        return
    spool.append_line(directory, spool.spool_line(body, spool_id, received_at_ns, project_dir))


def _ensure_deliverer(directory: str) -> None:
    if spool.deliverer_running(directory):
        return
    # posix_spawn, not subprocess: importing subprocess would cost the hook more than
    # this whole module. setsid detaches the deliverer from Claude Code's process group.
    devnull_in = (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)
    devnull_out = (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)
    devnull_err = (os.POSIX_SPAWN_OPEN, 2, os.devnull, os.O_WRONLY, 0)
    argv = [sys.executable, "-m", "session_db", "ingest", "--follow", "--background"]
    os.posix_spawn(
        sys.executable,
        argv,
        dict(os.environ),
        file_actions=[devnull_in, devnull_out, devnull_err],
        setsid=True,
    )


def _log_failure(directory: str | None, message: str) -> None:
    try:
        spool.log_line(directory or spool.spool_dir(), spool.HOOK_LOG, message)
    except BaseException:  # nowhere left to record it but stderr, which Claude Code ignores
        try:  # noqa: SIM105 - contextlib would be one more import on the fast path
            sys.stderr.write(f"session-db hook: {message}\n")
        except BaseException:
            pass
