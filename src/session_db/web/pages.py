"""The dashboard's pages: overview, sessions, one session, usage.

Every read goes through `session_db.crud`, in one read-only session per request, with a
fixed number of statements per page whatever the size of the database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.ext.asyncio.session import AsyncSession
from starlette.requests import Request
from starlette.responses import Response

from session_db import crud
from session_db.database import describe_url, get_async_session, get_engine
from session_db.errors import NotFoundError
from session_db.models import SessionPhase, SessionStatus, SessionTreeNode
from session_db.web import charts

PAGE_SIZE = 50
CHART_DAYS = 30
EVENTS_SHOWN = 100
TOOL_CALLS_SHOWN = 500
EVENTS_COUNTED = 10_000  # beyond this the page says "10,000+" instead of counting on


def engine_of(request: Request) -> AsyncEngine:
    """The engine the application was built with, or the default one."""
    return request.app.state.engine or get_engine()


@asynccontextmanager
async def reading(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's one read-only database session."""
    async with get_async_session(engine_of(request), read_only=True) as db:
        yield db


def render(request: Request, template: str, context: dict[str, Any], status: int = 200) -> Response:
    """A page: the template with what every page shows (the database, without its password)."""
    return request.app.state.templates.TemplateResponse(
        request,
        template,
        {"database": describe_url(engine_of(request)), "nav": template, **context},
        status_code=status,
    )


async def not_found(request: Request, error: Exception) -> Response:
    """404: the session (or page) asked for does not exist."""
    message = str(error) if isinstance(error, NotFoundError) else "No such page."
    return render(request, "error.html", {"title": "Not found", "message": message}, 404)


async def bad_request(request: Request, error: Exception) -> Response:
    """400: a filter or sort value the page does not know."""
    return render(request, "error.html", {"title": "Bad request", "message": str(error)}, 400)


# Overview -------------------------------------------------------------------------------


def _day_charts(lines: list[crud.DailyCost], by: str) -> dict[str, Any]:
    """Cost and token charts of one grouping."""
    cost_days, cost_series = charts.stack_by_day(
        [(line.day, line.key, float(line.total_cost)) for line in lines], days=CHART_DAYS
    )
    token_days, token_series = charts.stack_by_day(
        [(line.day, line.key, float(line.total_tokens)) for line in lines], days=CHART_DAYS
    )
    return {
        "cost": charts.stacked_bars(
            cost_days,
            cost_series,
            label=f"Cost per day by {by}",
            formatter=lambda value: f"${value:,.2f}",
        ),
        "tokens": charts.stacked_bars(
            token_days,
            token_series,
            label=f"Tokens per day by {by}",
            formatter=_compact,
        ),
    }


def _compact(value: float) -> str:
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.0f}"


async def overview(request: Request) -> Response:
    """Cost and tokens per day, sessions active now, the most expensive sessions."""
    async with reading(request) as db:
        latest = await crud.get_latest_usage_at(db)
        by_model: list[crud.DailyCost] = []
        by_project: list[crud.DailyCost] = []
        if latest is not None:
            day = latest.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            since = day - timedelta(days=CHART_DAYS - 1)
            by_model = await crud.list_daily_cost(db, "model", since=since)
            by_project = await crud.list_daily_cost(db, "project", since=since)
        active = await crud.search_sessions(db, status="active", sort="activity", limit=10)
        costly = await crud.search_sessions(db, sort="cost", limit=10)
    window_cost = sum((line.total_cost for line in by_model), Decimal(0))
    window_tokens = sum(line.total_tokens for line in by_model)
    return render(
        request,
        "overview.html",
        {
            "title": "Overview",
            "by_model": _day_charts(by_model, "model"),
            "by_project": _day_charts(by_project, "project"),
            "window_cost": window_cost,
            "window_tokens": window_tokens,
            "days": CHART_DAYS,
            "active": active,
            "costly": costly,
        },
    )


# Sessions -------------------------------------------------------------------------------


def _page_number(text: str | None) -> int:
    try:
        return max(1, int(text or 1))
    except ValueError:
        return 1


async def sessions(request: Request) -> Response:
    """Search, filter, sort and page through sessions."""
    params = request.query_params
    query = (params.get("q") or "").strip()
    agent = params.get("agent") or None
    phase = params.get("phase") or None
    status = params.get("status") or None
    sort = params.get("sort") or "started"
    descending = params.get("dir", "desc") != "asc"
    page = _page_number(params.get("page"))
    async with reading(request) as db:
        found = await crud.search_sessions(
            db,
            query=query or None,
            source_app=agent,
            phase=phase,
            status=status,
            sort=sort,
            descending=descending,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        agents = await crud.list_source_apps(db)
    kept = {
        key: value
        for key, value in {
            "q": query,
            "agent": agent,
            "phase": phase,
            "status": status,
            "sort": sort,
            "dir": "desc" if descending else "asc",
        }.items()
        if value
    }

    def link(**changes: Any) -> str:
        merged = {**kept, **changes}
        return "?" + urlencode({k: v for k, v in merged.items() if v not in (None, "")})

    def sort_link(key: str) -> str:
        flip = "asc" if key == sort and descending else "desc"
        return link(sort=key, dir=flip, page=None)

    pages = max(1, -(-found.total // PAGE_SIZE))
    return render(
        request,
        "sessions.html",
        {
            "title": "Sessions",
            "found": found,
            "query": query,
            "agent": agent,
            "phase": phase,
            "status": status,
            "sort": sort,
            "descending": descending,
            "agents": agents,
            "phases": [value.value for value in SessionPhase],
            "statuses": [value.value for value in SessionStatus],
            "page": page,
            "pages": pages,
            "sort_link": sort_link,
            "previous_link": link(page=page - 1) if page > 1 else None,
            "next_link": link(page=page + 1) if page < pages else None,
        },
    )


# One session ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TreeRow:
    """One node of the subagent tree, flattened for a table, with its subtree's totals."""

    depth: int
    slug: str
    title: str | None
    phase: str
    status: str
    started_at: datetime | None
    ended_at: datetime | None
    own_cost: Decimal
    own_tokens: int
    rolled_cost: Decimal
    rolled_tokens: int
    session_id: uuid.UUID


def tree_rows(tree: SessionTreeNode) -> list[TreeRow]:
    """Flatten `crud.get_session_tree`'s nested nodes for a table, root first.

    The subtree totals are the ones the tree query computed (each session counted once,
    even where two paths reach it).
    """
    rows: list[TreeRow] = []

    def walk(node: SessionTreeNode) -> None:
        rows.append(
            TreeRow(
                depth=node.depth,
                slug=node.session_slug,
                title=node.title,
                phase=node.phase,
                status=node.status,
                started_at=node.started_at,
                ended_at=node.ended_at,
                own_cost=Decimal(node.total_cost or 0),
                own_tokens=int(node.total_tokens or 0),
                rolled_cost=Decimal(node.rollup_cost or 0),
                rolled_tokens=int(node.rollup_tokens or 0),
                session_id=node.session_id,
            )
        )
        for child in node.children:
            walk(child)

    walk(tree)
    return rows


def _timeline(calls: list[Any], tree: list[TreeRow], now: datetime) -> Any:
    bars = [
        charts.Bar(
            lane=call.tool_name or "(tool)",
            start=call.started_at,
            end=call.ended_at,
            title=(
                f"{call.tool_name}: {call.status}"
                + (f", {call.duration_ms:,} ms" if call.duration_ms is not None else "")
                + (f" — {call.error[:120]}" if call.error else "")
            ),
            kind=str(call.status),
        )
        for call in calls
        if call.started_at is not None
    ]
    bars += [
        charts.Bar(
            lane=f"↳ {row.title or row.slug}",
            start=row.started_at,
            end=row.ended_at,
            title=f"subagent {row.slug}: {row.status}",
            kind="subagent",
        )
        for row in tree[1:]
        if row.started_at is not None
    ]
    return charts.timeline(bars, now=now)


def _task_rows(
    tasks: list[Any], edges: list[tuple[uuid.UUID, uuid.UUID]], ready: set[uuid.UUID]
) -> list[dict[str, Any]]:
    """Each task in plan order, with its prerequisites, the unfinished ones, its readiness."""
    by_id = {task.id: task for task in tasks}
    waits: dict[uuid.UUID, list[Any]] = {}
    for task_id, prerequisite in edges:
        if prerequisite in by_id:
            waits.setdefault(task_id, []).append(by_id[prerequisite])
    done = {"completed", "skipped"}
    rows = []
    for task in sorted(tasks, key=_plan_order):
        prerequisites = waits.get(task.id, [])
        open_ones = [p for p in prerequisites if str(p.status) not in done]
        if str(task.status) in done:
            readiness = "done"
        elif task.id in ready:
            readiness = "ready"
        elif str(task.status) != "pending":
            readiness = str(task.status).replace("_", " ")
        else:
            readiness = "waiting"
        rows.append(
            {
                "task": task,
                "prerequisites": prerequisites,
                "open": open_ones,
                "readiness": readiness,
            }
        )
    return rows


def _plan_order(task: Any) -> tuple[Any, ...]:
    """Plan order: by the plan's id ("1.2.10" after "1.2.9"), then by hierarchy."""
    parts = (task.plan_ref or "").split(".")
    return (
        tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts),
        task.hierarchy_path or "",
    )


def event_json(log: Any) -> dict[str, Any]:
    """What a page shows of one event (never its whole payload)."""
    return {
        "id": str(log.id),
        "occurred_at": log.occurred_at.isoformat() if log.occurred_at else None,
        "time": log.occurred_at.strftime("%Y-%m-%d %H:%M:%S") if log.occurred_at else "",
        "event_type": log.event_type,
        "tool_name": log.tool_name,
        "agent_type": log.agent_type,
        "summary": (log.summary or "")[:200],
    }


async def session(request: Request) -> Response:
    """One session: its tree, timeline, live events, tasks, threads and tokens."""
    slug = request.path_params["slug"]
    async with reading(request) as db:
        found = await crud.get_session_by_slug_or_id(db, slug)
        tree = tree_rows(await crud.get_session_tree(db, found.id))
        rollup = await crud.get_session_rollup(db, found.id)
        calls = await crud.list_tool_call_spans(db, found.id, limit=TOOL_CALLS_SHOWN)
        events = await crud.list_event_summaries(db, found.id, limit=EVENTS_SHOWN)
        event_count = await crud.count_agent_logs_up_to(db, found.id, EVENTS_COUNTED)
        cursor = await crud.get_latest_log_cursor(db, session_id=found.id)
        tasks = await crud.list_tasks(db, found.id, limit=1000)
        edges = await crud.list_session_task_dependencies(db, found.id) if tasks else []
        ready = {task.id for task in await crud.list_ready_tasks(db, found.id)} if tasks else set()
        threads = await crud.list_session_threads(db, found.id)
        models = await crud.list_model_usage(db, [row.session_id for row in tree])
        project = await crud.get_project(db, found.project_id) if found.project_id else None
    after = f"{cursor.created_at.isoformat()}|{cursor.id}" if cursor else ""
    stream = "/api/events/stream?" + urlencode({"session": str(found.id), "after": after})
    return render(
        request,
        "session.html",
        {
            "title": found.title or found.session_slug,
            "s": found,
            "project": project,
            "tree": tree,
            "rollup": rollup,
            "timeline": _timeline(calls, tree, datetime.now(UTC)),
            "call_count": len(calls),
            "calls_capped": len(calls) == TOOL_CALLS_SHOWN,
            "events": [event_json(log) for log in events],
            "event_count": min(event_count, EVENTS_COUNTED),
            "events_capped": event_count > EVENTS_COUNTED,
            "stream": stream,
            "tasks": _task_rows(tasks, edges, ready),
            "threads": threads,
            "models": models,
            "model_total": _model_total(models),
        },
    )


def _model_total(models: list[crud.ModelUsage]) -> dict[str, Any]:
    return {
        "runs": sum(m.runs for m in models),
        "input_tokens": sum(m.input_tokens for m in models),
        "output_tokens": sum(m.output_tokens for m in models),
        "cache_write_tokens": sum(m.cache_write_tokens for m in models),
        "cache_read_tokens": sum(m.cache_read_tokens for m in models),
        "total_tokens": sum(m.total_tokens for m in models),
        "total_cost": sum((m.total_cost for m in models), Decimal(0)),
    }
