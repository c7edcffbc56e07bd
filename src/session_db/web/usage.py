"""The usage page: the command line's `usage` reports (ccusage's columns) in the browser."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from starlette.requests import Request
from starlette.responses import Response

from session_db import crud
from session_db.errors import InvalidInputError
from session_db.models.reports import UsageQuery
from session_db.web.pages import reading, render

PERIODS = ("daily", "weekly", "monthly", "session", "blocks")
AGENTS = ("claude-code", "sdk", "amp", "codex", "gemini")
HEADINGS = {
    "daily": "Date",
    "weekly": "Week",
    "monthly": "Month",
    "session": "Session",
    "blocks": "Block start",
}


def _choice(params: Any, name: str, allowed: tuple[str, ...], default: str | None) -> Any:
    value = params.get(name) or default
    if value is not None and value not in allowed:
        raise InvalidInputError("usage", name, f"must be one of {', '.join(allowed)}")
    return value


def _day(params: Any, name: str) -> date | None:
    text = (params.get(name) or "").strip()
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError("usage", name, "must be a date, YYYY-MM-DD") from None


def _zone(params: Any) -> str:
    name = (params.get("timezone") or "UTC").strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError("usage", "timezone", f"unknown time zone {name!r}") from None
    return name


async def usage(request: Request) -> Response:
    """Tokens and cost by day, ISO week, month, session or 5-hour block, with filters."""
    params = request.query_params
    period = _choice(params, "period", PERIODS, "daily")
    agent = _choice(params, "agent", AGENTS, None)
    since, until = _day(params, "since"), _day(params, "until")
    if since and until and until < since:
        raise InvalidInputError("usage", "until", "is before since")
    zone = _zone(params)
    project = (params.get("project") or "").strip() or None
    breakdown = params.get("breakdown") == "1"
    query = UsageQuery(
        period=period,
        # Whole days of the chosen zone, the `until` day included, as the CLI reads dates.
        since=datetime.combine(since, datetime.min.time()) if since else None,
        until=datetime.combine(until + timedelta(days=1), datetime.min.time()) if until else None,
        project=project,
        agent=agent,
        timezone=zone,
        breakdown=breakdown,
    )
    async with reading(request) as db:
        report = await crud.list_usage_report(db, query)
    kept = {
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "project": project,
        "agent": agent,
        "timezone": zone if zone != "UTC" else None,
        "breakdown": "1" if breakdown else None,
    }

    def period_link(name: str) -> str:
        merged = {**kept, "period": name}
        return "?" + urlencode({k: v for k, v in merged.items() if v})

    return render(
        request,
        "usage.html",
        {
            "title": "Usage",
            "report": report,
            "period": period,
            "heading": HEADINGS[period],
            "periods": PERIODS,
            "agents": AGENTS,
            "period_link": period_link,
            "since": kept["since"] or "",
            "until": kept["until"] or "",
            "project": project or "",
            "agent": agent,
            "timezone": zone,
            "breakdown": breakdown,
        },
    )
