"""`session-db sync` (the project-open batch) and `session-db watch` (live, via the pool).

Both list every folder still in error with its reason, and every warning, on every run:
a problem stays visible until the files are fixed. `sync` exits with `PROBLEMS_EXIT`
while any folder is in error or not recognised.
"""

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from session_db.cli.common import console, plural, print_json, run

if TYPE_CHECKING:
    from session_db.sync.mirror import ProjectSyncReport, SyncResult

# 0: every folder synced; 1: the sync itself failed (see app.py); 2: a usage error.
PROBLEMS_EXIT = 3

ProjectArgument = Annotated[
    Path, typer.Argument(help="The project's root folder (it holds agents/sessions/).")
]


def sync(
    project_root: ProjectArgument,
    force: Annotated[bool, typer.Option("--force", help="Re-read every folder.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Mirror every session folder of a project into the database.

    Exits with 3 while any folder is in error or not recognised (each is listed with its
    reason, on every run, until it is fixed).
    """
    report = run(_sync(project_root, force, show_progress=not json and console().is_terminal))
    if json:
        print_json(_report_json(report))
    else:
        counts = ", ".join(f"{n} {outcome}" for outcome, n in report.counts.items() if n)
        print(f"{report.project_root}: {plural(len(report.results), 'folder')}: {counts or 'none'}")
        # One line per problem, then per warning, as `watch` prints them: whole reasons
        # (a table would fold them), easy to grep.
        for result in [*report.problems, *report.warnings]:
            for line in _result_lines(result):
                print(f"  {line}")
    if report.problems:
        print(
            f"session-db: {plural(len(report.problems), 'folder')} not synced: "
            + ", ".join(r.session_dir.name for r in report.problems),
            file=sys.stderr,
        )
        raise typer.Exit(PROBLEMS_EXIT)


def _report_json(report: "ProjectSyncReport") -> dict[str, Any]:
    return {
        "project_root": str(report.project_root),
        "counts": report.counts,
        "problems": [
            {"session_dir": str(r.session_dir), "outcome": r.outcome.value, "message": r.message}
            for r in report.problems
        ],
        "warnings": [
            {"session_dir": str(r.session_dir), "warnings": list(r.warnings)}
            for r in report.warnings
        ],
    }


_PROBLEMS = ("error", "unrecognised")


def _result_lines(result: "SyncResult") -> list[str]:
    """What to say about one folder's sync: its problem, or its warnings."""
    name = result.session_dir.name
    lines = [f"{name}: warning: {_flat(warning)}" for warning in result.warnings]
    if result.outcome.value in _PROBLEMS:
        lines.insert(0, f"{name}: {result.outcome.value}: {_flat(result.message)}")
    return lines


def _flat(text: str | None) -> str:
    """A message on one line: a reason quoting a file's lines must not break the list."""
    return " ".join((text or "").split())


async def _sync(project_root: Path, force: bool, *, show_progress: bool) -> "ProjectSyncReport":
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from session_db.database import init_db
    from session_db.sync import sync_project

    await init_db()
    if not show_progress:
        return await sync_project(project_root, force=force)
    with Progress(
        TextColumn("syncing"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.description}"),
        console=console(),
        transient=True,
    ) as progress:
        task = progress.add_task("", total=None)

        def advance(result: "SyncResult", done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, description=result.session_dir.name)

        return await sync_project(project_root, force=force, on_progress=advance)


def watch(
    project_root: ProjectArgument,
    delay: Annotated[
        float, typer.Option(help="Seconds a folder waits after a change before its sync.")
    ] = 0.25,
) -> None:
    """Sync the project, then sync each session folder that changes, until Ctrl-C.

    Each sync says what the session is now and what changed ("synced fix-login: phase
    plan → build, 3 of 5 tasks done"). Every folder in error is listed with its reason
    after the first sync and after each sync of it; a folder that is fixed is said to be.
    """
    import queue

    import watchfiles

    from session_db.sync import SyncPool
    from session_db.sync.folders import resolve_project_root, sessions_dir

    root = resolve_project_root(project_root)
    base = sessions_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    broken: set[Path] = set()  # written by the first sync, then by the pool's thread only
    synced: queue.Queue[SyncResult] = queue.Queue()  # described by the main thread
    known: dict[Any, Snapshot] = {}

    def tell(result: "SyncResult") -> None:
        lines = _result_lines(result)
        if result.outcome.value in _PROBLEMS:
            broken.add(result.session_dir)
        elif result.session_dir in broken:
            broken.discard(result.session_dir)
            lines.insert(0, f"{result.session_dir.name}: fixed ({result.outcome.value})")
        for line in lines:
            print(line, flush=True)

    def tell_later(result: "SyncResult") -> None:
        tell(result)
        if result.outcome.value == "synchronized" and result.session_id is not None:
            synced.put(result)

    def describe_synced() -> None:
        done: dict[Any, SyncResult] = {}
        while not synced.empty():
            result = synced.get_nowait()
            done[result.session_id] = result
        if not done:
            return
        try:
            now = run(_snapshots(list(done)))
        except Exception as error:  # the sync worked; only its description failed
            print(f"session-db: could not read what was synced: {_one_line(error)}", flush=True)
            return
        for session_id, result in done.items():
            if session_id in now:
                print(_synced_line(result, known.get(session_id), now[session_id]), flush=True)
        known.update(now)

    pool = SyncPool(project_root=root, delay=delay, on_result=tell_later)
    watching = False
    try:
        # The first (empty) batch arrives once the watcher is live; the full sync runs
        # then, so no change between the two can slip through.
        for changes in watchfiles.watch(
            base, raise_interrupt=True, yield_on_timeout=True, rust_timeout=500
        ):
            if not watching:
                watching = True
                report = run(_sync(root, False, show_progress=False))
                problems = f", {len(report.problems)} in error" if report.problems else ""
                print(
                    f"watching {base} ({plural(len(report.results), 'folder')} synced"
                    f"{problems}); Ctrl-C stops",
                    flush=True,
                )
                for result in report.results:
                    tell(result)
                known.update(run(_project_snapshots(root)))
            for folder in {_session_folder(base, Path(path)) for _, path in changes} - {None}:
                pool.submit(folder)
            describe_synced()
    except KeyboardInterrupt:
        pass
    finally:
        drained = pool.close()
        stats = pool.stats()
    describe_synced()
    print(
        f"stopped: {plural(stats.synced, 'sync')}, {stats.failed} failed"
        + ("" if drained else ", some folders left for the next sync"),
        flush=True,
    )


@dataclass(frozen=True)
class Snapshot:
    """What `watch` says about a session: its slug, phase, status and tasks."""

    slug: str
    phase: str
    status: str
    completed_tasks: int
    total_tasks: int


def _snapshot(session: Any) -> Snapshot:
    return Snapshot(
        slug=session.session_slug,
        phase=str(session.phase),
        status=str(session.status),
        completed_tasks=session.completed_tasks or 0,
        total_tasks=session.total_tasks or 0,
    )


async def _project_snapshots(root: Path) -> dict[Any, Snapshot]:
    """Every session of the project rooted at `root`, now, a page of them per statement."""
    from session_db import crud
    from session_db.database import get_async_session
    from session_db.errors import NotFoundError

    found: dict[Any, Snapshot] = {}
    async with get_async_session(read_only=True) as db:
        try:
            project = await crud.get_project_by_path(db, str(root))
        except NotFoundError:  # no folder synced yet
            return found
        while True:
            page = await crud.list_sessions(
                db, project_id=project.id, order_by="created_at", limit=1000, offset=len(found)
            )
            found.update((s.id, _snapshot(s)) for s in page)
            if len(page) < 1000:
                return found


async def _snapshots(ids: list[Any]) -> dict[Any, Snapshot]:
    """The sessions with these ids (the folders of one burst of changes: a few), now."""
    from session_db import crud
    from session_db.database import get_async_session
    from session_db.errors import NotFoundError

    found: dict[Any, Snapshot] = {}
    async with get_async_session(read_only=True) as db:
        for session_id in ids:
            try:
                found[session_id] = _snapshot(await crud.get_session(db, session_id))
            except NotFoundError:
                continue
    return found


def _synced_line(result: "SyncResult", before: Snapshot | None, now: Snapshot) -> str:
    """`synced fix-login: phase plan → build, 3 of 5 tasks done`: the state and its changes."""

    def change(name: str, old: Any, new: Any) -> str:
        return f"{name} {old} → {new}" if before is not None and old != new else f"{name} {new}"

    parts = [change("phase", before and before.phase, now.phase)]
    if (before is not None and before.status != now.status) or now.status != "active":
        parts.append(change("status", before and before.status, now.status))
    tasks = f"{now.completed_tasks} of {plural(now.total_tasks, 'task')} done"
    if before is not None and (before.completed_tasks, before.total_tasks) != (
        now.completed_tasks,
        now.total_tasks,
    ):
        tasks += f" (was {before.completed_tasks} of {before.total_tasks})"
    if now.total_tasks or (before is not None and before.total_tasks):
        parts.append(tasks)
    name = result.session_dir.name
    label = name if name == now.slug else f"{name} ({now.slug})"
    return f"synced {label}: " + ", ".join(parts)


def _one_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def _session_folder(base: Path, path: Path) -> Path | None:
    """The session folder a changed path belongs to (hidden and temporary files ignored)."""
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        return None
    if not parts or parts[0].startswith("."):
        return None
    return base / parts[0]
