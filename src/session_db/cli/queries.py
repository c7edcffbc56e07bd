"""Read-only commands: sessions, tasks, threads and cost, as tables or `--json`."""

import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from session_db.cli.common import console, exact, money, plural, print_json, print_table, run

sessions_app = typer.Typer(help="List, show and draw sessions.", no_args_is_help=True)
tasks_app = typer.Typer(help="Tasks of a session's plan.", no_args_is_help=True)
threads_app = typer.Typer(help="Conversation threads.", no_args_is_help=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
SessionArgument = Annotated[str, typer.Argument(help="A session's slug or id.")]


def parse_when(text: str | None) -> datetime | None:
    """An ISO date or time, or an age such as 7d, 12h, 30m (naive times are UTC)."""
    if text is None:
        return None
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{text!r} is not a date, a time, or an age like 7d") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def find_session(db: Any, slug_or_id: str) -> Any:
    """The session with this slug or id, or NotFoundError.

    The slug is tried first: a Claude Code session's slug is its session id, a UUID too.
    """
    from session_db import crud
    from session_db.errors import NotFoundError

    try:
        return await crud.get_session_by_slug(db, slug_or_id)
    except NotFoundError:
        try:
            session_id = uuid.UUID(slug_or_id)
        except ValueError:
            raise NotFoundError("session", slug_or_id, field="session_slug") from None
        return await crud.get_session(db, session_id)


def _summary(session: Any) -> dict[str, Any]:
    return {
        "id": str(session.id),
        "slug": session.session_slug,
        "title": session.title,
        "phase": session.phase,
        "status": session.status,
        "type": session.session_type,
        "started_at": session.started_at.isoformat() if session.started_at else None,
        "total_tokens": session.total_tokens,
        "total_cost": exact(session.total_cost),
        "tasks": f"{session.completed_tasks}/{session.total_tasks}",
    }


@sessions_app.command("list")
def list_sessions(
    project: Annotated[str | None, typer.Option(help="A project's root folder or name.")] = None,
    phase: Annotated[str | None, typer.Option(help="spec, plan, build, docs, ...")] = None,
    status: Annotated[str | None, typer.Option(help="active, paused, completed, ...")] = None,
    session_type: Annotated[
        str | None, typer.Option("--type", help="full, quick, research.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="Started since: a date or 7d, 12h.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 50,
    json: JsonOption = False,
) -> None:
    """List sessions, newest first."""
    sessions = run(_list_sessions(project, phase, status, session_type, parse_when(since), limit))
    rows = [_summary(session) for session in sessions]
    if json:
        print_json(rows)
        return
    print_table(
        None,
        ["slug", "phase", "status", "type", "started", "tasks", "tokens", "cost"],
        [
            (
                r["slug"],
                r["phase"],
                r["status"],
                r["type"],
                (r["started_at"] or "")[:16].replace("T", " "),
                r["tasks"],
                r["total_tokens"],
                money(r["total_cost"]),
            )
            for r in rows
        ],
    )


async def _list_sessions(project, phase, status, session_type, since, limit):  # type: ignore[no-untyped-def]
    from session_db import crud
    from session_db.database import get_async_session

    async with get_async_session(read_only=True) as db:
        project_id = (await _find_project(db, project)).id if project else None
        return await crud.list_sessions(
            db,
            project_id=project_id,
            phase=phase,
            status=status,
            session_type=session_type,
            started_after=since,
            limit=limit,
        )


def _absolute(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


async def _find_project(db: Any, name_or_path: str) -> Any:
    from sqlmodel import or_, select

    from session_db.errors import NotFoundError
    from session_db.models import Project

    path = _absolute(name_or_path)
    found = (
        await db.exec(
            select(Project).where(or_(Project.root_path == path, Project.name == name_or_path))
        )
    ).first()
    if found is None:
        raise NotFoundError("project", name_or_path, field="name or root_path")
    return found


@sessions_app.command("show")
def show_session(slug_or_id: SessionArgument, json: JsonOption = False) -> None:
    """Show one session: its fields, agents, and rolled-up cost."""
    session, agents, rollup = run(_show(slug_or_id))
    data = {
        **_summary(session),
        "description": session.description,
        "project_id": str(session.project_id) if session.project_id else None,
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
                "total_cost": exact(a.total_cost),
            }
            for a in agents
        ],
    }
    if json:
        print_json(data)
        return
    print_table(
        f"session {session.session_slug}",
        ["field", "value"],
        [(name, value) for name, value in data.items() if name not in ("agents", "rollup")]
        + [
            (
                "cost with subagents",
                f"{money(rollup.total_cost)} ({plural(rollup.session_count, 'session')})",
            )
        ],
    )
    if agents:
        print_table(
            "agents",
            ["type", "status", "model", "sdk session", "cost"],
            [
                (
                    a["agent_type"],
                    a["status"],
                    a["model"],
                    a["sdk_session_id"],
                    money(a["total_cost"]),
                )
                for a in data["agents"]
            ],
        )


async def _show(slug_or_id: str):  # type: ignore[no-untyped-def]
    from session_db import crud
    from session_db.database import get_async_session

    async with get_async_session(read_only=True) as db:
        session = await find_session(db, slug_or_id)
        agents = await crud.list_agents(db, session_id=session.id)
        rollup = await crud.get_session_rollup(db, session.id)
        return session, agents, rollup


@sessions_app.command("tree")
def session_tree(slug_or_id: SessionArgument, json: JsonOption = False) -> None:
    """Draw a session and every session below it, with cost and tokens rolled up."""
    from rich.tree import Tree

    tree, rollups = run(_tree(slug_or_id))

    def as_json(node: Any) -> dict[str, Any]:
        rollup = rollups[node.session.id]
        return {
            **_summary(node.session),
            "rollup_tokens": rollup.total_tokens,
            "rollup_cost": exact(rollup.total_cost),
            "children": [as_json(child) for child in node.children],
        }

    if json:
        print_json(as_json(tree))
        return

    def label(node: Any) -> str:
        rollup = rollups[node.session.id]
        kind = node.relationship.relationship_type if node.relationship else "root"
        return (
            f"[bold]{node.session.session_slug}[/] {node.session.phase}/{node.session.status}"
            f"  {money(rollup.total_cost)} · {plural(rollup.total_tokens, 'token')}"
            + (f"  [dim]({kind})[/]" if node.relationship else "")
        )

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
        session = await find_session(db, slug_or_id)
        tree = await crud.get_session_tree(db, session.id)
        rollups = {}
        stack = [tree]
        while stack:
            node = stack.pop()
            rollups[node.session.id] = await crud.get_session_rollup(db, node.session.id)
            stack.extend(node.children)
        return tree, rollups


@tasks_app.command("list")
def list_tasks(session: SessionArgument, json: JsonOption = False) -> None:
    """List a session's tasks in plan order, with whether each is ready to start."""
    tasks, ready, groups = run(_tasks(session))
    rows = [
        {
            "plan_ref": t.plan_ref,
            "title": t.title,
            "status": t.status,
            "group": groups.get(t.group_id),
            "ready": t.id in ready,
            "id": str(t.id),
        }
        for t in tasks
    ]
    if json:
        print_json(rows)
        return
    print_table(
        None,
        ["id", "title", "status", "group", "ready"],
        [
            (
                r["plan_ref"] or r["id"][:8],
                r["title"],
                r["status"],
                r["group"],
                "yes" if r["ready"] else "",
            )
            for r in rows
        ],
    )


async def _tasks(slug_or_id: str):  # type: ignore[no-untyped-def]
    from session_db import crud
    from session_db.database import get_async_session

    async with get_async_session(read_only=True) as db:
        session = await find_session(db, slug_or_id)
        tasks = sorted(await crud.list_tasks(db, session.id, limit=1000), key=_plan_order)
        ready = {t.id for t in await crud.list_ready_tasks(db, session.id)}
        groups = {g.id: g.group_name for g in await crud.list_task_groups(db, session.id)}
        return tasks, ready, groups


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
        )


async def _threads(key: str):  # type: ignore[no-untyped-def]
    from session_db import crud
    from session_db.database import get_async_session
    from session_db.errors import NotFoundError

    async with get_async_session(read_only=True) as db:
        try:
            thread = await crud.get_thread(db, uuid.UUID(key))
        except (ValueError, NotFoundError):
            session = await find_session(db, key)
            threads = list(await crud.list_session_threads(db, session.id))
        else:
            threads = [thread]
        return [(t, await crud.list_thread_messages(db, t.id)) for t in threads]
