"""The `session-db` application: its subcommands, global options and error handling.

Every error a user can cause ends as one line on stderr and exit code 1; `--verbose`
adds the traceback. Commands open the configured database (`SESSION_DB_URL`, or the
embedded SQLite file) only when they need it.
"""

import logging
import os
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Annotated

import typer

import session_db.cli.agent_imports  # noqa: F401  (registers import amp, codex, gemini)
from session_db.cli import claude_commands, demo, events, queries, sync_commands, usage
from session_db.cli import db as db_commands
from session_db.cli import serve as serve_command
from session_db.cli.common import state

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

app = typer.Typer(
    name="session-db",
    help="Record what AI coding agents do: sessions, events, plans, tokens and cost.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(db_commands.app, name="db")
app.add_typer(queries.sessions_app, name="sessions")
app.add_typer(queries.tasks_app, name="tasks")
app.add_typer(queries.threads_app, name="threads")
app.command("events")(events.events)
app.command("tools")(events.tools)
app.command("cost")(usage.cost)
app.add_typer(usage.usage_app, name="usage")
app.command("sync")(sync_commands.sync)
app.command("watch")(sync_commands.watch)
app.command("demo")(demo.demo)
app.add_typer(claude_commands.hook_app, name="hook")
app.command("ingest")(claude_commands.ingest)
app.add_typer(claude_commands.import_app, name="import")
app.command("serve")(serve_command.serve)


@app.callback(invoke_without_command=True)
def main_callback(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show details and tracebacks of errors.")
    ] = False,
) -> None:
    """Without a command: create or upgrade the database and say where it is."""
    state.verbose = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="session-db: %(levelname)s: %(message)s",
    )
    if not verbose:  # the commands report sync problems themselves
        logging.getLogger("session_db.sync.mirror").setLevel(logging.ERROR)
    if ctx.invoked_subcommand is None:
        db_commands.upgrade(revision="head", sql=False, backup=False)


def main(argv: list[str] | None = None) -> int:
    """The console script: run the app; every failure becomes one line and an exit code."""
    from session_db.errors import SessionDBError

    _quiet_aiosqlite_after_failed_connect()
    try:
        app(args=argv, prog_name="session-db")
    except SystemExit as done:  # typer exits itself: 0, or 2 for a usage error
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except KeyboardInterrupt:
        print("session-db: interrupted", file=sys.stderr)
        return 130
    except (SessionDBError, OSError, ValueError) as error:
        return _report(_translated(error) or error)
    except Exception as error:
        database_error = _translated(error)
        if database_error is None:
            raise  # a bug of ours: the traceback is the report
        return _report(database_error)
    return 0


def _quiet_aiosqlite_after_failed_connect() -> None:
    """Keep aiosqlite's worker thread from printing a traceback after our one line.

    When SQLite cannot open its file, aiosqlite's thread hands its shutdown result to an
    event loop that `asyncio.run` has closed by then, and the thread's RuntimeError
    would print 20 lines after the command's own report. Only that error, from that
    thread's code, is silenced.
    """
    previous = threading.excepthook
    if getattr(previous, "session_db_quiet", False):
        return

    def hook(args: threading.ExceptHookArgs) -> None:
        frames = traceback.extract_tb(args.exc_traceback) if args.exc_traceback else []
        in_aiosqlite = any(
            os.path.normpath(frame.filename).split(os.sep)[-2:] == ["aiosqlite", "core.py"]
            for frame in frames
        )
        closed = args.exc_type is RuntimeError and "Event loop is closed" in str(args.exc_value)
        if not (in_aiosqlite and closed):
            previous(args)

    hook.session_db_quiet = True  # type: ignore[attr-defined]
    threading.excepthook = hook


def _report(error: BaseException) -> int:
    if state.verbose:
        traceback.print_exc()
    print(f"session-db: error: {_one_line(error)}", file=sys.stderr)
    return 1


def _translated(error: Exception) -> Exception | None:
    """Our error for a database error that reached the top, else None.

    A failure to open the configured database (missing, refused, no such role, a file
    that cannot be written) is said in the words of `errors.explain_open_failure`, which
    name the database and the fix; another driver error is classified as any other.
    """
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import DBAPIError

    from session_db.errors import database_error, explain_open_failure

    url = _configured_url()
    if url is not None:
        explained = explain_open_failure(error, url)
        if explained is not None:
            return explained
    if not isinstance(error, DBAPIError):
        return None
    return database_error(error, "the command")


def _configured_url() -> "URL | None":
    """The database URL the commands use, or None if the settings cannot give one."""
    from session_db.config import get_settings
    from session_db.errors import SessionDBError

    try:
        return get_settings().database_url()
    except (SessionDBError, ValueError):
        return None


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
