"""`session-db hook`, `hook install|uninstall|status`, `ingest` and `import claude`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from session_db.cli.common import console, print_json, print_table, run

if TYPE_CHECKING:
    from session_db.claude.spool import FileLock

hook_app = typer.Typer(
    help="Capture Claude Code hook events (`session-db hook` reads one from stdin).",
    invoke_without_command=True,
    no_args_is_help=False,
)
import_app = typer.Typer(help="Import agent transcripts.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ProjectOption = Annotated[
    Path | None,
    typer.Option(
        "--project",
        help="Write the project's .claude/settings.local.json instead of your user settings.",
        file_okay=False,
    ),
]
UserOption = Annotated[bool, typer.Option("--user", help="Write your user settings (the default).")]


@hook_app.callback()
def hook(ctx: typer.Context) -> None:
    """Without a command: record the hook event on stdin (what Claude Code runs)."""
    if ctx.invoked_subcommand is None:
        from session_db.claude.hook import run as run_hook

        run_hook()


def _settings_path(project: Path | None, user: bool) -> Path:
    from session_db.claude.settings_file import project_settings_path, user_settings_path

    if project is not None and user:
        raise typer.BadParameter("give --project DIR or --user, not both")
    if project is not None:
        return project_settings_path(project.expanduser().resolve())
    return user_settings_path(os.environ)


@hook_app.command("install")
def install(
    project: ProjectOption = None, user: UserOption = False, json: JsonOption = False
) -> None:
    """Add session-db's hook to Claude Code's settings (backing the file up first)."""
    from session_db.claude.settings_file import hook_command, install_hooks

    path = _settings_path(project, user)
    change = install_hooks(path, hook_command())
    database = run(_prepare_database())
    if json:
        print_json(
            {
                "settings": str(path),
                "backup": str(change.backup) if change.backup else None,
                "added": change.added,
                "updated": change.updated,
                "changed": change.changed,
                "database": database,
            }
        )
        return
    if change.changed:
        print(f"hooks installed in {path} for {len(change.added) + len(change.updated)} events")
        if change.backup:
            print(f"previous settings saved as {change.backup}")
    else:
        print(f"hooks already installed in {path}")
    print(f"events go to {database}")


async def _prepare_database() -> str:
    from session_db.database import describe_url, init_db

    await init_db()  # so the first events are delivered, not kept waiting for a migration
    return describe_url()


@hook_app.command("uninstall")
def uninstall(
    project: ProjectOption = None, user: UserOption = False, json: JsonOption = False
) -> None:
    """Remove exactly the hook entries `hook install` added (backing the file up first)."""
    from session_db.claude.settings_file import uninstall_hooks

    path = _settings_path(project, user)
    change = uninstall_hooks(path)
    if json:
        print_json(
            {
                "settings": str(path),
                "backup": str(change.backup) if change.backup else None,
                "removed": change.removed,
                "changed": change.changed,
            }
        )
        return
    if change.changed:
        print(f"hooks removed from {path} ({len(change.removed)} events)")
    else:
        print(f"no session-db hooks in {path}")


@hook_app.command("status")
def status(json: JsonOption = False) -> None:
    """Show the spool: events waiting, rejected ones, failed appends, and the deliverer."""
    from session_db.claude import spool
    from session_db.claude.deliver import spool_status

    directory = spool.spool_dir()
    info = spool_status(directory)
    failures = _append_failures(directory)
    info["append_failures"] = failures
    if json:
        print_json(info)
        return
    failed = f"{failures['count']}"
    if failures["count"]:
        failed += f" (last {failures['last_error']} at {failures['last_at']})"
    elif failures.get("unreadable"):
        failed = f"unknown ({failures['unreadable']})"
    print_table(
        f"Spool {directory}",
        ["waiting events", "batch files", "rejected", "failed appends", "deliverer"],
        [
            (
                info["waiting"],
                info["batch_files"],
                info["rejected"],
                failed,
                f"running (pid {info['deliverer_pid']})"
                if info["deliverer_pid"]
                else "not running",
            )
        ],
    )
    if failures["count"]:
        print(f"last failed append: {failures['last_message']}")
    for line in info["recent_log"]:
        print(line)


def _append_failures(directory: str) -> dict[str, object]:
    """The spool's failed-append counter, as `hook status` shows it (never raising)."""
    from datetime import UTC, datetime

    from session_db.claude import spool

    try:
        failures = spool.append_failures(directory)
    except OSError as error:  # say so, but show the rest of the status
        return {
            "count": 0,
            "last_error": None,
            "last_at": None,
            "last_message": None,
            "unreadable": f"{type(error).__name__}: {error}",
        }
    last_at = None
    if failures.last_at_ns:
        last_at = datetime.fromtimestamp(failures.last_at_ns / 1e9, UTC).isoformat()
    return {
        "count": failures.count,
        "last_error": failures.last_error,
        "last_at": last_at,
        "last_message": failures.last_message,
    }


def ingest(
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep delivering as events arrive (Ctrl-C stops).")
    ] = False,
    linger: Annotated[
        float | None,
        typer.Option("--linger", help="With --follow: stop after this many idle seconds."),
    ] = None,
    background: Annotated[
        bool, typer.Option("--background", hidden=True, help="Run as the hook's deliverer.")
    ] = False,
    lock_fd: Annotated[
        int | None,
        typer.Option(
            "--lock-fd", hidden=True, help="With --follow: the deliverer lock, held for us."
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Deliver the hook events waiting in the spool to the database."""
    from session_db.claude import spool

    directory = spool.spool_dir()
    if lock_fd is not None and not follow:
        raise typer.BadParameter("--lock-fd goes with --follow")
    if background:
        _become_background_deliverer(directory)
        logger = logging.getLogger(__name__)
        lock = _adopt_lock(directory, lock_fd)
        how = "with the lock the hook handed over" if lock else "taking the lock itself"
        logger.info("deliverer started, %s", how)
        try:
            asyncio.run(
                _follow(directory, 60.0 if linger is None else linger, quiet=True, lock=lock)
            )
        except Exception:  # nobody sees our stderr: the log is the only witness
            logger.exception("the deliverer stopped")
            raise
        return
    if follow:
        asyncio.run(_follow(directory, linger, quiet=json, lock=_adopt_lock(directory, lock_fd)))
        return
    report = run(_ingest_once(directory))
    summary = {
        "delivered": report.delivered,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "transcripts_imported": sorted(report.transcripts),
    }
    if json:
        print_json(summary)
        return
    print(
        f"delivered {report.delivered} events"
        + (f", {report.duplicates} already delivered" if report.duplicates else "")
        + (
            f", {report.rejected} rejected (see {directory}/rejected.jsonl)"
            if report.rejected
            else ""
        )
    )


async def _ingest_once(directory: str):  # type: ignore[no-untyped-def]
    from session_db.claude.deliver import deliver_pending
    from session_db.database import get_engine, init_db

    await init_db()
    return await deliver_pending(get_engine(), directory)


def _adopt_lock(directory: str, fd: int | None) -> FileLock | None:
    """The deliverer lock our parent locked for us on `fd`, or None (then we take it)."""
    from session_db.claude import spool

    if fd is None:
        return None
    try:
        return spool.FileLock.adopt(directory, spool.DELIVERER_LOCK, fd)
    except OSError as error:  # not it, or not held: fall back to the try-lock
        logging.getLogger(__name__).warning("--lock-fd %d is not the deliverer lock: %s", fd, error)
        return None


def _become_background_deliverer(directory: str) -> None:
    """Log to the spool folder and leave the project's folder (and its `.env`) behind."""
    from session_db.claude import spool
    from session_db.files import PrivateRotatingFileHandler

    os.makedirs(directory, mode=0o700, exist_ok=True)
    os.chdir(directory)
    handler = PrivateRotatingFileHandler(
        os.path.join(directory, spool.DELIVERER_LOG), maxBytes=1_000_000, backupCount=2
    )
    handler.setFormatter(logging.Formatter("%(asctime)s pid=%(process)d %(levelname)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


async def _follow(
    directory: str,
    linger: float | None,
    *,
    quiet: bool,
    lock: FileLock | None = None,
) -> None:
    from session_db.claude.deliver import DeliveryReport, follow
    from session_db.database import dispose_engine, get_engine

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    def report(result: DeliveryReport) -> None:
        logging.getLogger(__name__).info(
            "delivered %d events (%d duplicates, %d rejected)",
            result.delivered,
            result.duplicates,
            result.rejected,
        )
        if not quiet:
            print(f"delivered {result.delivered} events", flush=True)

    try:
        started = await follow(
            get_engine(), directory, linger=linger, stop=stop, on_report=report, lock=lock
        )
    finally:
        await dispose_engine()
    if not started:
        logging.getLogger(__name__).info("another deliverer is already running: leaving")
        if not quiet:
            print("another deliverer is already running")


@import_app.command("claude")
def import_claude(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            help="Transcript folders or files (default: ~/.claude/projects, or "
            "$CLAUDE_CONFIG_DIR/projects)."
        ),
    ] = None,
    json: JsonOption = False,
) -> None:
    """Import Claude Code transcripts: sessions, subagents, tokens and cost (incremental)."""
    from session_db.claude.transcript import default_projects_dir

    targets = list(paths) if paths else [default_projects_dir()]
    missing = [str(path) for path in targets if not path.exists()]
    if missing:
        raise typer.BadParameter(f"no such file or folder: {', '.join(missing)}")
    report = run(_import(targets))
    if json:
        print_json(
            {
                "files": report.files,
                "unchanged": report.unchanged,
                "lines": report.lines,
                "bad_lines": report.bad_lines,
                "responses": report.responses,
                "sessions": sorted(report.sessions),
                "errors": [{"path": p, "error": e} for p, e in report.errors],
            }
        )
        return
    print(
        f"{report.files} transcript files ({report.unchanged} unchanged): {report.lines} new "
        f"lines, {report.responses} model responses, {len(report.sessions)} sessions"
    )
    for path, error in report.errors:
        console().print(f"[yellow]skipped[/] {path}: {error}")


async def _import(targets: list[Path]):  # type: ignore[no-untyped-def]
    from session_db.claude.importer import import_transcripts
    from session_db.database import get_engine, init_db

    await init_db()
    return await import_transcripts(get_engine(), targets)
