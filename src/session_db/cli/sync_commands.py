"""`session-db sync` (the project-open batch) and `session-db watch` (live, via the pool)."""

from pathlib import Path
from typing import Annotated

import typer

from session_db.cli.common import console, print_json, print_table, run

ProjectArgument = Annotated[
    Path, typer.Argument(help="The project's root folder (it holds agents/sessions/).")
]


def sync(
    project_root: ProjectArgument,
    force: Annotated[bool, typer.Option("--force", help="Re-read every folder.")] = False,
    json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Mirror every session folder of a project into the database."""
    report = run(_sync(project_root, force, show_progress=not json and console().is_terminal))
    problems = [
        {"session_dir": str(r.session_dir), "outcome": r.outcome.value, "message": r.message}
        for r in report.problems
    ]
    if json:
        print_json(
            {
                "project_root": str(report.project_root),
                "counts": report.counts,
                "problems": problems,
            }
        )
        return
    counts = ", ".join(f"{n} {outcome}" for outcome, n in report.counts.items() if n)
    print(f"{report.project_root}: {len(report.results)} folders: {counts or 'none'}")
    if problems:
        print_table(
            "Problems",
            ["folder", "outcome", "reason"],
            [(Path(p["session_dir"]).name, p["outcome"], p["message"]) for p in problems],
        )


async def _sync(project_root: Path, force: bool, *, show_progress: bool):  # type: ignore[no-untyped-def]
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

        def advance(result, done: int, total: int) -> None:  # type: ignore[no-untyped-def]
            progress.update(task, completed=done, total=total, description=result.session_dir.name)

        return await sync_project(project_root, force=force, on_progress=advance)


def watch(
    project_root: ProjectArgument,
    delay: Annotated[
        float, typer.Option(help="Seconds a folder waits after a change before its sync.")
    ] = 0.25,
) -> None:
    """Sync the project, then sync each session folder that changes, until Ctrl-C."""
    import watchfiles

    from session_db.sync import SyncPool
    from session_db.sync.folders import resolve_project_root, sessions_dir

    root = resolve_project_root(project_root)
    base = sessions_dir(root)
    base.mkdir(parents=True, exist_ok=True)
    pool = SyncPool(project_root=root, delay=delay)
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
                print(
                    f"watching {base} ({len(report.results)} folders synced); Ctrl-C stops",
                    flush=True,
                )
            for folder in {_session_folder(base, Path(path)) for _, path in changes} - {None}:
                pool.submit(folder)
    except KeyboardInterrupt:
        pass
    finally:
        drained = pool.close()
        stats = pool.stats()
    print(
        f"stopped: {stats.synced} syncs, {stats.failed} failed"
        + ("" if drained else ", some folders left for the next sync"),
        flush=True,
    )


def _session_folder(base: Path, path: Path) -> Path | None:
    """The session folder a changed path belongs to (hidden and temporary files ignored)."""
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        return None
    if not parts or parts[0].startswith("."):
        return None
    return base / parts[0]
