"""`session-db hook`, `hook install|uninstall|status`, `ingest` and `import claude`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from session_db.cli.common import console, print_json, print_table, run

if TYPE_CHECKING:
    from session_db.claude.deliver import DeliveryReport
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


RejectedOption = Annotated[
    int,
    typer.Option("--rejected", min=0, help="How many of the latest rejected events to show."),
]


@hook_app.command("status")
def status(
    project: Annotated[
        Path | None,
        typer.Option(
            "--project",
            help="The project whose .claude settings to look in (default: $CLAUDE_PROJECT_DIR "
            "or the current folder).",
            file_okay=False,
        ),
    ] = None,
    rejected: RejectedOption = 5,
    json: JsonOption = False,
) -> None:
    """Show where the hook is installed, the spool, lost and rejected events, the deliverer."""
    from session_db.claude import spool
    from session_db.claude.deliver import rejected_events, spool_status

    directory = spool.spool_dir()
    info: dict[str, Any] = spool_status(directory)
    info["hook"] = _installations(project)
    failures = _append_failures(directory)
    info["append_failures"] = failures
    try:
        count, recent = rejected_events(directory, rejected)
    except OSError as error:  # say so, but show the rest of the status
        count, recent = 0, []
        info["rejected_unreadable"] = f"{type(error).__name__}: {error}"
    info["rejected"] = count
    info["rejected_recent"] = [
        {
            "rejected_at": _iso(item.rejected_at),
            "spool_id": item.spool_id,
            "event": item.event,
            "reason": item.reason,
        }
        for item in recent
    ]
    if json:
        print_json(info)
        return
    _print_status(info, directory)


def _iso(seconds: float | None) -> str | None:
    from datetime import UTC, datetime

    return None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat()


def _installations(project: Path | None) -> dict[str, object]:
    """Where the hook is installed: each settings file Claude Code reads, and its events."""
    from session_db.claude.settings_file import (
        DEFAULT_EVENTS,
        installed_events,
        project_settings_path,
        project_shared_settings_path,
        user_settings_path,
    )
    from session_db.cli.common import plural

    root = project or Path(os.environ.get("CLAUDE_PROJECT_DIR") or os.getcwd())
    root = root.expanduser().resolve()
    files = [
        ("user", user_settings_path(os.environ)),
        ("project", project_shared_settings_path(root)),
        ("local", project_settings_path(root)),
    ]
    rows: list[dict[str, object]] = []
    for scope, path in files:
        row: dict[str, object] = {"scope": scope, "path": str(path), "events": [], "error": None}
        try:
            row["events"] = installed_events(path)
        except (OSError, ValueError) as error:  # unreadable: say why, show the rest
            row["error"] = str(error).splitlines()[0] if str(error) else type(error).__name__
        events = row["events"]
        assert isinstance(events, list)
        row["installed"] = bool(events)
        if not events:
            row["summary"] = (
                "not installed" if row["error"] is None else f"unreadable: {row['error']}"
            )
        elif set(DEFAULT_EVENTS) <= set(events):
            extra = sorted(set(events) - set(DEFAULT_EVENTS))
            row["summary"] = f"every event ({plural(len(events), 'event')})" + (
                f", with {', '.join(extra)}" if extra else ""
            )
        else:
            row["summary"] = f"{plural(len(events), 'event')}: {', '.join(events)}"
        rows.append(row)
    return {
        "installed": any(row["installed"] for row in rows),
        "project": str(root),
        "settings": rows,
    }


def _print_status(info: dict[str, Any], directory: str) -> None:
    from session_db.cli.common import number, plural

    hook = info["hook"]
    installed = "hook installed" if hook["installed"] else "hook not installed"
    print(installed if hook["installed"] else f"{installed} (run `session-db hook install`)")
    print_table(
        None,
        ["settings", "file", "hook"],
        [(row["scope"], row["path"], row["summary"]) for row in hook["settings"]],
    )
    pid = info["deliverer_pid"]
    print(f"spool {directory}")
    print(
        f"  waiting: {plural(info['waiting'], 'event')} "
        f"({plural(info['batch_files'], 'batch file')}); "
        f"deliverer {f'running (pid {pid})' if pid else 'not running'}"
    )
    failures = info["append_failures"]
    if failures.get("unreadable"):
        print(f"  could not be spooled: unknown ({failures['unreadable']})")
    elif failures["count"]:
        reasons = ", ".join(
            f"{number(n)} {reason}{_strerror(reason)}"
            for reason, n in failures["by_reason"].items()
        )
        print(f"  {plural(failures['count'], 'event')} could not be spooled: {reasons}")
        print(
            f"  last failure at {failures['last_at']} ({failures['last_error']}): "
            f"{failures['last_message']}"
        )
    else:
        print("  could not be spooled: none")
    count, recent = info["rejected"], info["rejected_recent"]
    if not count:
        print("  rejected: none")
    else:
        print(
            f"  rejected: {plural(count, 'event')} in {directory}/rejected.jsonl "
            "(`session-db ingest --retry-rejected` re-queues them)"
        )
        print_table(
            None,
            ["rejected at", "event", "spool id", "reason"],
            [(i["rejected_at"], i["event"], i["spool_id"], i["reason"]) for i in recent],
        )
        if count > len(recent):
            print(f"  and {plural(count - len(recent), 'earlier rejected event')}")
    for line in info["recent_log"]:
        print(line)


def _strerror(reason: str) -> str:
    """`EACCES` → ` (Permission denied)`; nothing for a name that is not an errno."""
    import errno as errnos

    code = getattr(errnos, reason, None)
    return f" ({os.strerror(code)})" if isinstance(code, int) else ""


def _append_failures(directory: str) -> dict[str, object]:
    """The spool's count of events it could not keep, as `hook status` shows it (never raising)."""
    from datetime import UTC, datetime

    from session_db.claude import spool

    try:
        failures = spool.append_failures(directory)
    except OSError as error:  # say so, but show the rest of the status
        return {
            "count": 0,
            "by_reason": {},
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
        "by_reason": failures.by_reason,
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
    retry_rejected: Annotated[
        bool,
        typer.Option(
            "--retry-rejected",
            help="First put the rejected events back in the spool and deliver them again.",
        ),
    ] = False,
    json: JsonOption = False,
) -> None:
    """Deliver the hook events waiting in the spool to the database."""
    from session_db.claude import spool

    directory = spool.spool_dir()
    if lock_fd is not None and not follow:
        raise typer.BadParameter("--lock-fd goes with --follow")
    if retry_rejected and (follow or background):
        raise typer.BadParameter("--retry-rejected does not go with --follow")
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
    requeued, retried, report = run(_ingest_once(directory, retry_rejected))
    summary: dict[str, object] = {
        "delivered": report.delivered,
        "duplicates": report.duplicates,
        "rejected": report.rejected,
        "transcripts_imported": sorted(report.transcripts | retried.transcripts),
    }
    if retry_rejected:
        summary["retried"] = {
            "requeued": requeued,
            "delivered": retried.delivered,
            "duplicates": retried.duplicates,
            "rejected": retried.rejected,
        }
    if json:
        print_json(summary)
        return
    if retry_rejected:
        _print_retried(requeued, retried, directory)
    print(
        f"delivered {report.delivered} events"
        + (f", {report.duplicates} already delivered" if report.duplicates else "")
        + (
            f", {report.rejected} rejected (see {directory}/rejected.jsonl)"
            if report.rejected
            else ""
        )
    )


def _print_retried(requeued: int, retried: DeliveryReport, directory: str) -> None:
    from session_db.cli.common import plural

    if not requeued:
        print("no rejected events to retry")
        return
    parts = [f"{retried.delivered} delivered"]
    if retried.duplicates:
        parts.append(f"{retried.duplicates} already delivered")
    if retried.rejected:
        parts.append(f"{retried.rejected} rejected again (see {directory}/rejected.jsonl)")
    print(f"re-queued {plural(requeued, 'rejected event')}: {', '.join(parts)}")


async def _ingest_once(
    directory: str, retry_rejected: bool = False
) -> tuple[int, DeliveryReport, DeliveryReport]:
    from session_db.claude import deliver
    from session_db.database import get_engine, init_db

    await init_db()
    requeued, retried = 0, deliver.DeliveryReport()
    if retry_rejected:
        requeued, retried = await deliver.retry_rejected(get_engine(), directory)
    return requeued, retried, await deliver.deliver_pending(get_engine(), directory)


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
    from session_db.claude.deliver import follow
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
