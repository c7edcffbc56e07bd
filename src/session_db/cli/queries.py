"""Read-only commands: sessions, tasks, threads and cost, as tables or `--json`."""

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

import typer

from session_db.cli.common import (
    Col,
    console,
    exact,
    money,
    number,
    plural,
    print_json,
    print_table,
    run,
    share,
    shorten,
    shorten_middle,
    when,
)

sessions_app = typer.Typer(help="List, show and draw sessions.", no_args_is_help=True)
tasks_app = typer.Typer(help="Tasks of a session's plan.", no_args_is_help=True)
threads_app = typer.Typer(help="Conversation threads.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SessionArgument = Annotated[str, typer.Argument(help="A session's slug or id.")]


# The values the models accept (tests/cli/test_sessions_commands.py keeps them equal to
# the enums), spelled out so the command line starts without importing the models.
Phase = Literal["created", "spec", "plan", "build", "docs", "complete", "failed"]
Status = Literal["active", "paused", "completed", "failed", "timeout", "cancelled", "archived"]
Kind = Literal["full", "quick", "research"]


def parse_when(text: str | None) -> datetime | None:
    """An ISO date or time, or an age such as 7d, 12h, 30m (naive times are UTC)."""
    if text is None:
        return None
    if isinstance(text, datetime):  # already parsed (a default)
        return text
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date, a time, or an age like 7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_span(since: datetime | None, until: datetime | None) -> None:
    """Refuse `--until` before `--since` as a usage error naming `--until`."""
    if since is not None and until is not None and until <= since:
        raise typer.BadParameter(
            f"{until.isoformat()} is not after --since ({since.isoformat()})",
            param_hint="'--until'",
        )


SinceOption = Annotated[
    datetime | None,
    typer.Option(parser=parse_when, metavar="WHEN", help="Started since: a date or 7d, 12h."),
]
UntilOption = Annotated[
    datetime | None,
    typer.Option(parser=parse_when, metavar="WHEN", help="Started before: a date or 7d, 12h."),
]
LimitOption = Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")]


def _summary(session: Any, project: Any = None) -> dict[str, Any]:
    return {
        "id": str(session.id),
        "slug": session.session_slug,
        "title": session.title,
        "project": project.name if project is not None else None,
        "project_path": project.root_path if project is not None else None,
        "phase": session.phase,
        "status": session.status,
        "type": session.session_type,
        "started_at": session.started_at.isoformat() if session.started_at else None,
        "total_tokens": session.total_tokens,
        "total_cost": exact(session.total_cost),
        "tasks": f"{session.completed_tasks}/{session.total_tasks}",
    }


# The session list fits the terminal: its optional columns are left out, last first,
# until slug, title and project have room enough; those three share what is left.
_GAP = 2  # between two columns of a compact table
_SLUG, _TITLE, _PROJECT = 16, 12, 8  # the least room each flexible column gets
_ROOMY = 50  # what the three need before an optional column is worth showing


@sessions_app.command("list")
def list_sessions(
    project: Annotated[str | None, typer.Option(help="A project's root folder or name.")] = None,
    phase: Annotated[Phase | None, typer.Option(help="Only sessions in this phase.")] = None,
    status: Annotated[Status | None, typer.Option(help="Only sessions with this status.")] = None,
    session_type: Annotated[
        Kind | None, typer.Option("--type", help="The kind of session.")
    ] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    limit: LimitOption = 50,
    json: JsonOption = False,
) -> None:
    """List sessions, the latest started first."""
    check_span(since, until)
    sessions, projects = run(
        _list_sessions(project, phase, status, session_type, since, until, limit)
    )
    rows = [_summary(s, projects.get(s.project_id)) for s in sessions]
    if json:
        print_json(rows)
        return
    _print_sessions(rows)


def _print_sessions(rows: list[dict[str, Any]]) -> None:
    """The session table, fitted to the terminal: nothing wraps, long text ends in "…"."""
    fixed: list[tuple[Col, list[str], bool]] = [
        (Col("Phase", no_wrap=True), [r["phase"] or "" for r in rows], False),
        (Col("Cost", justify="right", no_wrap=True), [money(r["total_cost"]) for r in rows], False),
        (
            Col("Tokens", justify="right", no_wrap=True),
            [number(r["total_tokens"]) for r in rows],
            True,
        ),
        (Col("Status", no_wrap=True), [r["status"] or "" for r in rows], True),
        (Col("Tasks", justify="right", no_wrap=True), [r["tasks"] for r in rows], True),
    ]
    started = (
        Col("Started (UTC)", no_wrap=True),
        [r["started_at"] and when(datetime.fromisoformat(r["started_at"])) for r in rows],
    )

    def width(header: str, cells: list[str]) -> int:
        return max([len(header), *(len(c or "") for c in cells)])

    room = console().width
    while True:  # leave optional columns out until the rest fits
        shown = [started, *((c, cells) for c, cells, _ in fixed)]
        used = sum(width(c.header, cells) for c, cells in shown)
        gaps = _GAP * (len(shown) + 3 - 1)
        if used + gaps + _ROOMY <= room or not any(o for *_, o in fixed):
            break
        last = max(i for i, (*_, optional) in enumerate(fixed) if optional)
        del fixed[last]
    # The title has the first claim on spare room, then the slug, then the project.
    title, slug, project = share(
        max(room - used - gaps, 0),
        [
            (_TITLE, width("Title", [r["title"] or "" for r in rows])),
            (_SLUG, width("Slug", [r["slug"] for r in rows])),
            (_PROJECT, width("Project", [r["project"] or "" for r in rows])),
        ],
    )
    flexible = [
        (
            Col("Slug", no_wrap=True, max_width=slug),
            [shorten_middle(r["slug"], slug) for r in rows],
        ),
        (Col("Title", no_wrap=True, max_width=title), [shorten(r["title"], title) for r in rows]),
        (
            Col("Project", no_wrap=True, max_width=project),
            [shorten(r["project"], project) for r in rows],
        ),
    ]
    columns = [started[0], *(c for c, _ in flexible), *(c for c, _, _ in fixed)]
    cells = [started[1], *(cells for _, cells in flexible), *(cells for _, cells, _ in fixed)]
    print_table(
        None,
        columns,
        list(zip(*cells, strict=True)),
        empty="No sessions match these filters.",
        compact=True,
    )


async def _list_sessions(project, phase, status, session_type, since, until, limit):  # type: ignore[no-untyped-def]
    from session_db import crud
    from session_db.database import get_async_session

    async with get_async_session(read_only=True) as db:
        project_id = (await _find_project(db, project)).id if project else None
        sessions = await crud.list_sessions(
            db,
            project_id=project_id,
            phase=phase,
            status=status,
            session_type=session_type,
            started_after=since,
            started_before=until,
            order_by="started_at",
            limit=limit,
        )
        ids = {s.project_id for s in sessions if s.project_id is not None}
        projects = {p.id: p for p in await crud.list_projects(db, ids=ids)} if ids else {}
        return sessions, projects


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


async def _find_project(db: Any, name_or_path: str) -> Any:
    from session_db import crud

    return await crud.get_project_by_path_or_name(db, _absolute(name_or_path), name_or_path)


@sessions_app.command("show")
def show_session(slug_or_id: SessionArgument, json: JsonOption = False) -> None:
    """Show one session: its project, fields, agents, and rolled-up cost."""
    session, project, agents, rollup = run(_show(slug_or_id))
    data = {
        **_summary(session, project),
        "description": session.description,
        "project_id": str(session.project_id) if session.project_id else None,
        "ended_at": session.ended_at.isoformat() if session.ended_at else None,
        "checkpoints": f"{session.checkpoints_completed}/{session.checkpoints_total}",
        "progress_percentage": session.progress_percentage,
        "rollup": {
            "sessions": rollup.session_count,
            "total_tokens": rollup.total_tokens,
            "total_cost": exact(rollup.total_cost),
        },
        "agents": [
            {
                "agent_type": a.agent_type,
                "status": a.status,
                "model": a.model,
                "sdk_session_id": a.sdk_session_id,
                "total_tokens": a.input_tokens
                + a.output_tokens
                + a.cache_creation_tokens
                + a.cache_read_tokens,
                "total_cost": exact(a.total_cost),
            }
            for a in agents
        ],
    }
    if json:
        print_json(data)
        return
    project_text = f"{project.name} ({project.root_path})" if project is not None else "none"
    fields = [
        ("slug", session.session_slug),
        ("title", session.title),
        ("project", project_text),
        ("description", session.description),
        ("phase", session.phase),
        ("status", session.status),
        ("type", session.session_type),
        ("started", when(session.started_at) + (" UTC" if session.started_at else "")),
        ("ended", when(session.ended_at) + (" UTC" if session.ended_at else "")),
        ("tasks", f"{session.completed_tasks} of {plural(session.total_tasks or 0, 'task')} done"),
        (
            "checkpoints",
            f"{session.checkpoints_completed} of "
            f"{plural(session.checkpoints_total or 0, 'checkpoint')} done",
        ),
        ("tokens", number(session.total_tokens)),
        ("cost", money(session.total_cost)),
        (
            "with subagents",
            f"{money(rollup.total_cost)}, {plural(rollup.total_tokens or 0, 'token')} "
            f"over {plural(rollup.session_count, 'session')}",
        ),
        ("id", str(session.id)),
    ]
    print_table(
        f"session {session.session_slug}",
        ["field", "value"],
        [(name, value) for name, value in fields if value not in (None, "")],
    )
    print_table(
        plural(len(agents), "agent"),
        [
            Col("Type", no_wrap=True, shrink=False),
            Col("Status", no_wrap=True, shrink=False),
            Col("Model", no_wrap=True, min_width=10),
            Col("SDK session", no_wrap=True, min_width=8),
            Col("Tokens", justify="right", no_wrap=True, shrink=False),
            Col("Cost", justify="right", no_wrap=True, shrink=False),
        ],
        [
            (
                a["agent_type"],
                a["status"],
                a["model"],
                a["sdk_session_id"],
                number(a["total_tokens"]),
                money(a["total_cost"]),
            )
            for a in data["agents"]
        ],
        empty="No agents recorded.",
        compact=True,
    )


async def _show(slug_or_id: str):  # type: ignore[no-untyped-def]
    from session_db import crud
    from session_db.database import get_async_session

    async with get_async_session(read_only=True) as db:
        session = await crud.get_session_by_slug_or_id(db, slug_or_id)
        project = await crud.get_project(db, session.project_id) if session.project_id else None
        agents = await crud.list_agents(db, session_id=session.id)
        rollup = await crud.get_session_rollup(db, session.id)
        return session, project, agents, rollup


@sessions_app.command("tree")
def session_tree(slug_or_id: SessionArgument, json: JsonOption = False) -> None:
    """Draw a session and every session below it, with cost and tokens rolled up."""
    from rich.text import Text
    from rich.tree import Tree

    tree = run(_tree(slug_or_id))

    def as_json(node: Any) -> dict[str, Any]:
        return {
            "id": str(node.session_id),
            "slug": node.session_slug,
            "title": node.title,
            "phase": node.phase,
            "status": node.status,
            "type": node.session_type,
            "relationship_type": node.relationship_type,
            "started_at": node.started_at.isoformat() if node.started_at else None,
            "total_tokens": node.total_tokens,
            "total_cost": exact(node.total_cost),
            "tasks": f"{node.completed_tasks}/{node.total_tasks}",
            "rollup_sessions": node.rollup_sessions,
            "rollup_tokens": node.rollup_tokens,
            "rollup_cost": exact(node.rollup_cost),
            "children": [as_json(child) for child in node.children],
        }

    if json:
        print_json(as_json(tree))
        return

    def label(node: Any) -> Text:
        # One line a node, the figures before the phase: a label too wide for the terminal
        # ends in an ellipsis, so a number is never wrapped apart or cut without showing it.
        figures = f"{money(node.rollup_cost)} · {plural(node.rollup_tokens, 'token')}"
        if node.rollup_sessions > 1:
            figures += f" · {plural(node.rollup_sessions, 'session')}"
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(node.session_slug, style="bold")
        text.append(f"  {figures}  ")
        text.append(f"{node.phase}/{node.status}", style="dim")
        return text

    def grow(branch: Tree, node: Any) -> None:
        for child in node.children:
            grow(branch.add(label(child)), child)

    root = Tree(label(tree))
    grow(root, tree)
    console().print(root)


async def _tree(slug_or_id: str):  # type: ignore[no-untyped-def]
    from session_db import crud
    from session_db.database import get_async_session

    async with get_async_session(read_only=True) as db:
        session = await crud.get_session_by_slug_or_id(db, slug_or_id)
        # One statement for the whole tree, every node's totals included.
        return await crud.get_session_tree(db, session.id)


_DONE = ("completed", "skipped")


@tasks_app.command("list")
def list_tasks(session: SessionArgument, json: JsonOption = False) -> None:
    """List a session's tasks in plan order: which are ready, and what the others wait for."""
    tasks, ready, groups, edges = run(_tasks(session))
    by_id = {t.id: t for t in tasks}
    waits: dict[Any, list[Any]] = {}
    for task_id, depends_on in edges:
        prerequisite = by_id.get(depends_on)
        if prerequisite is not None and str(prerequisite.status) not in _DONE:
            waits.setdefault(task_id, []).append(prerequisite)
    rows = []
    for t in tasks:
        status = str(t.status)
        readiness = (
            "done"
            if status in _DONE
            else "ready"
            if t.id in ready
            else "blocked"
            if waits.get(t.id) or status == "blocked"
            else status.replace("_", " ")
        )
        rows.append(
            {
                "plan_ref": t.plan_ref,
                "title": t.title,
                "status": status,
                "group": groups.get(t.group_id),
                "ready": t.id in ready,
                "readiness": readiness,
                "waits_for": [
                    {"id": str(p.id), "plan_ref": p.plan_ref, "title": p.title, "status": p.status}
                    for p in sorted(waits.get(t.id, []), key=_plan_order)
                ],
                "id": str(t.id),
            }
        )
    if json:
        print_json(rows)
        return
    print_table(
        None,
        [
            Col("ID", no_wrap=True, shrink=False),
            Col("Title", no_wrap=True, min_width=12),
            Col("Status", no_wrap=True, shrink=False),
            Col("Ready", no_wrap=True, shrink=False),
            Col("Waits for", no_wrap=True, min_width=16),
            Col("Group", no_wrap=True, min_width=5),
        ],
        [
            (
                r["plan_ref"] or r["id"][:8],
                r["title"],
                r["status"].replace("_", " "),
                r["readiness"],
                ", ".join(w["plan_ref"] or w["title"] for w in r["waits_for"]),
                r["group"],
            )
            for r in rows
        ],
        empty="This session has no tasks.",
        compact=True,
    )
    if rows:
        counts: dict[str, int] = {}
        for r in rows:
            counts[r["readiness"]] = counts.get(r["readiness"], 0) + 1
        order = ["done", "ready", "in progress", "blocked"]
        kinds = sorted(counts, key=lambda k: (order.index(k) if k in order else len(order), k))
        print(f"{plural(len(rows), 'task')}: " + ", ".join(f"{counts[k]} {k}" for k in kinds))


async def _tasks(slug_or_id: str):  # type: ignore[no-untyped-def]
    from session_db import crud
    from session_db.database import get_async_session

    async with get_async_session(read_only=True) as db:
        session = await crud.get_session_by_slug_or_id(db, slug_or_id)
        tasks = sorted(await crud.list_tasks(db, session.id, limit=1000), key=_plan_order)
        ready = {t.id for t in await crud.list_ready_tasks(db, session.id)}
        groups = {g.id: g.group_name for g in await crud.list_task_groups(db, session.id)}
        edges = await crud.list_session_task_dependencies(db, session.id)
        return tasks, ready, groups, edges


def _plan_order(task: Any) -> tuple[int, tuple[int, ...], str]:
    """Plan ids in numeric order ("1.2" before "1.10"); tasks without one last."""
    if task.plan_ref is None:
        return (1, (), task.title)
    parts = tuple(int(p) if p.isdigit() else 0 for p in task.plan_ref.split("."))
    return (0, parts, task.plan_ref)


@threads_app.command("show")
def show_threads(
    session_or_thread: Annotated[
        str, typer.Argument(help="A session's slug or id, or a thread id.")
    ],
    json: JsonOption = False,
) -> None:
    """Show a thread's messages, or every thread of a session with its messages."""
    threads = run(_threads(session_or_thread))
    data = [
        {
            "id": str(t.id),
            "name": t.name,
            "messages": [
                {
                    "idx": m.idx,
                    "role": m.role,
                    "content": m.content,
                    "created_at": m.created_at.isoformat(),
                }
                for m in messages
            ],
        }
        for t, messages in threads
    ]
    if json:
        print_json(data)
        return
    for thread in data:
        print_table(
            f"thread {thread['name']} ({thread['id']})",
            ["#", "role", "content"],
            [(m["idx"], m["role"], m["content"]) for m in thread["messages"]],
            empty=f"thread {thread['name']} ({thread['id']}): no messages",
        )
    if not data:
        print("This session has no threads.")


async def _threads(key: str):  # type: ignore[no-untyped-def]
    from session_db import crud
    from session_db.database import get_async_session
    from session_db.errors import NotFoundError

    async with get_async_session(read_only=True) as db:
        try:
            thread = await crud.get_thread(db, uuid.UUID(key))
        except (ValueError, NotFoundError):
            session = await crud.get_session_by_slug_or_id(db, key)
            threads = list(await crud.list_session_threads(db, session.id))
        else:
            threads = [thread]
        return [(t, await crud.list_thread_messages(db, t.id)) for t in threads]
