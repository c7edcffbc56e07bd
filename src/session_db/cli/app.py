"""The `session-db` application: its subcommands, global options and error handling.

Every error a user can cause ends as one line on stderr and exit code 1; `--verbose`
adds the traceback. Commands open the configured database (`SESSION_DB_URL`, or the
embedded SQLite file) only when they need it.
"""

import logging
import sys
import traceback
from typing import Annotated

import typer

import session_db.cli.agent_imports  # noqa: F401  (registers import amp, codex, gemini)
from session_db.cli import claude_commands, demo, queries, sync_commands, usage
from session_db.cli import db as db_commands
from session_db.cli.common import state

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
app.command("cost")(usage.cost)
app.add_typer(usage.usage_app, name="usage")
app.command("sync")(sync_commands.sync)
app.command("watch")(sync_commands.watch)
app.command("demo")(demo.demo)
app.add_typer(claude_commands.hook_app, name="hook")
app.command("ingest")(claude_commands.ingest)
app.add_typer(claude_commands.import_app, name="import")


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

    try:
        app(args=argv, prog_name="session-db")
    except SystemExit as done:  # typer exits itself: 0, or 2 for a usage error
        return done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except KeyboardInterrupt:
        print("session-db: interrupted", file=sys.stderr)
        return 130
    except (SessionDBError, OSError, ValueError) as error:
        return _report(error)
    except Exception as error:
        database_error = _translated(error)
        if database_error is None:
            raise  # a bug of ours: the traceback is the report
        return _report(database_error)
    return 0


def _report(error: BaseException) -> int:
    if state.verbose:
        traceback.print_exc()
    print(f"session-db: error: {_one_line(error)}", file=sys.stderr)
    return 1


def _translated(error: Exception) -> Exception | None:
    """Our error for a database error that reached the top untranslated, else None."""
    if "sqlalchemy" not in sys.modules:
        return None
    from sqlalchemy.exc import DBAPIError

    from session_db.errors import database_error

    if not isinstance(error, DBAPIError):
        return None
    return database_error(error, "the command")


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
