"""Usage reports (`usage daily|weekly|monthly|session|blocks`) and `cost --by`, with the
four token kinds: input, output, cache write, cache read."""

import os
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from session_db.cli.common import (
    console,
    exact,
    money,
    number,
    print_json,
    print_table,
    run,
    shorten_middle,
)

usage_app = typer.Typer(
    help="Tokens and cost by day, week, month, session or 5-hour block (as ccusage shows them).",
    no_args_is_help=True,
)


class AgentChoice(StrEnum):
    """The agents `--agent` takes."""

    CLAUDE_CODE = "claude-code"
    SDK = "sdk"
    AMP = "amp"
    CODEX = "codex"
    GEMINI = "gemini"


class CostGroup(StrEnum):
    """What `cost --by` groups by."""

    PROJECT = "project"
    SESSION = "session"
    AGENT_TYPE = "agent_type"
    MODEL = "model"


KINDS = ("Input", "Output", "Cache write", "Cache read", "Total tokens", "Cost")
EMPTY = "No usage recorded for these filters."


def local_zone() -> str:
    """The local time zone's IANA name: $TZ, else /etc/localtime's target, else UTC."""
    from zoneinfo import available_timezones

    named = os.environ.get("TZ", "").removeprefix(":")
    if named and named in available_timezones():
        return named
    try:
        target = str(Path("/etc/localtime").resolve())
    except OSError:
        return "UTC"
    _, marker, name = target.partition("zoneinfo/")
    return name if marker and name in available_timezones() else "UTC"


def _zone(value: str | None) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name = value or local_zone()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(
            f"{name!r} is not an IANA time zone (like Europe/Paris)", param_hint="'--timezone'"
        ) from None
    return name


def _when(text: str | None, zone: str, *, end: bool, flag: str) -> datetime | None:
    """A date (an --until date includes its day), a time (naive: in `zone`), or an age."""
    from zoneinfo import ZoneInfo

    if text is None:
        return None
    units = {"d": "days", "h": "hours", "m": "minutes"}
    if text[-1:] in units and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(**{units[text[-1]]: int(text[:-1])})
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime.combine(day + timedelta(days=1 if end else 0), time(), ZoneInfo(zone))
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a date, a time, or an age like 7d", param_hint=f"'{flag}'"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=ZoneInfo(zone))


SinceOption = Annotated[
    str | None, typer.Option(help="From this date or time (or an age: 7d, 12h).")
]
UntilOption = Annotated[
    str | None,
    typer.Option(help="Up to this date (the whole day) or time, exclusive (or an age)."),
]
ProjectOption = Annotated[str | None, typer.Option(help="A project's name or root folder.")]
AgentOption = Annotated[
    AgentChoice | None,
    typer.Option(
        help="Only this agent's sessions (sdk: the Claude Agent SDK's; claude-code: the rest).",
    ),
]
TimezoneOption = Annotated[
    str | None,
    typer.Option(
        "--timezone",
        "-z",
        help="IANA zone the periods are days of (default: the local zone, from $TZ or "
        "/etc/localtime, else UTC).",
    ),
]
BreakdownOption = Annotated[bool, typer.Option("--breakdown", "-b", help="A row per model.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _row_json(row: Any, period: str, zone: Any) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if period == "daily":
        data["date"] = row.key
    elif period == "weekly":
        data["week"] = row.key
        data["week_start"] = row.start.astimezone(zone).date().isoformat()
    elif period == "monthly":
        data["month"] = row.key
    elif period == "session":
        data["session"] = row.key
        data["title"] = row.label if row.label != row.key else None
    elif period == "blocks":
        data["block_start"] = row.start.isoformat()
        data["block_end"] = row.end.isoformat()
        data["active"] = row.active
    elif period == "model":
        data["model"] = row.key
    data.update(
        input_tokens=row.input_tokens,
        output_tokens=row.output_tokens,
        cache_write_tokens=row.cache_write_tokens,
        cache_read_tokens=row.cache_read_tokens,
        total_tokens=row.total_tokens,
        cost=exact(row.cost),
        models=row.models,
        cost_sources=row.cost_sources,
    )
    if period in ("session", "blocks"):
        data["first_activity"] = row.first_at.isoformat() if row.first_at else None
        data["last_activity"] = row.last_at.isoformat() if row.last_at else None
    if row.breakdown:
        data["breakdown"] = [_row_json(line, "model", zone) for line in row.breakdown]
    return data


def _figures(row: Any) -> list[str]:
    return [
        number(row.input_tokens),
        number(row.output_tokens),
        number(row.cache_write_tokens),
        number(row.cache_read_tokens),
        number(row.total_tokens),
        money(row.cost),
    ]


def _duration(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    return f"{minutes // 60}h{minutes % 60:02d}m"


def _cells(row: Any, period: str, zone: Any, now: datetime) -> list[list[str]]:
    """The table lines of one row: the row, then its models (--breakdown)."""
    if period == "session":
        first = [row.key]
    elif period == "blocks":
        label = row.label.removesuffix(" (active)")
        first = [f"{label} active, {_duration(row.end - now)} left" if row.active else label]
    else:
        first = [row.label]
    lines = [[*first, *_figures(row)]]
    blank = [""] * (len(first) - 1)
    lines.extend([f"└ {line.key}", *blank, *_figures(line)] for line in row.breakdown)
    return lines


HEADINGS = {
    "daily": ["Date"],
    "weekly": ["Week (Monday)"],
    "monthly": ["Month"],
    "session": ["Session"],
    "blocks": ["Block start"],
}


def _report(
    period: str,
    since: str | None,
    until: str | None,
    project: str | None,
    agent: str | None,
    timezone: str | None,
    breakdown: bool,
    json: bool,
) -> None:
    from zoneinfo import ZoneInfo

    from session_db.models.reports import UsageQuery

    zone_name = _zone(timezone)
    start = _when(since, zone_name, end=False, flag="--since")
    stop = _when(until, zone_name, end=True, flag="--until")
    if start is not None and stop is not None and stop <= start:
        raise typer.BadParameter(
            f"{until!r} is not after --since {since!r}", param_hint="'--until'"
        )
    now = datetime.now(UTC)
    query = UsageQuery(
        period=period,  # type: ignore[arg-type]
        since=start,
        until=stop,
        project=project,
        agent=agent,  # type: ignore[arg-type]
        timezone=zone_name,
        breakdown=breakdown,
        now=now,
    )
    report = run(_load(query))
    zone = ZoneInfo(zone_name)
    if json:
        print_json(
            {
                "period": period,
                "timezone": zone_name,
                "rows": [_row_json(row, period, zone) for row in report.rows],
                "totals": _row_json(report.totals, "total", zone),
                "cost_sources": report.cost_sources,
            }
        )
        return
    headings = HEADINGS[period]
    lines: list[list[str]] = []
    previous = None
    for row in report.rows:
        if period == "blocks" and previous is not None and row.start > previous.end:
            lines.append([f"({_duration(row.start - previous.end)} gap)", *[""] * len(KINDS)])
        lines.extend(_cells(row, period, zone, now))
        previous = row
    if report.rows:
        total = [["Total", *[""] * (len(headings) - 1), *_figures(report.totals)]]
        lines.extend(total)
    _print_figures([*headings, *KINDS], lines, len(headings))
    if report.rows:
        sources = report.cost_sources
        console().print(
            f"Costs: {number(sources.get('reported', 0))} reported, "
            f"{number(sources.get('computed', 0))} computed, "
            f"{number(sources.get('unpriced', 0))} unpriced"
            + (f"; times in {zone_name}" if period != "session" else ""),
            highlight=False,
        )


async def _load(query: Any) -> Any:
    from session_db import crud
    from session_db.database import get_async_session

    async with get_async_session(read_only=True) as db:
        return await crud.list_usage_report(db, query)


def _command(period: str, summary: str) -> None:
    def command(
        since: SinceOption = None,
        until: UntilOption = None,
        project: ProjectOption = None,
        agent: AgentOption = None,
        timezone: TimezoneOption = None,
        breakdown: BreakdownOption = False,
        json: JsonOption = False,
    ) -> None:
        chosen = agent.value if agent is not None else None
        _report(period, since, until, project, chosen, timezone, breakdown, json)

    command.__doc__ = summary
    usage_app.command(period)(command)


_command("daily", "Tokens and cost per day, oldest first, with a total.")
_command("weekly", "Tokens and cost per ISO week (Monday to Sunday), with a total.")
_command("monthly", "Tokens and cost per month, with a total.")
_command("session", "Tokens and cost per session, by last activity, with a total.")
_command(
    "blocks",
    "Tokens and cost per 5-hour block: from the first activity's hour, five hours; "
    "the running one is marked active.",
)


def cost(
    by: Annotated[CostGroup, typer.Option(help="What to group by.")] = CostGroup.PROJECT,
    since: Annotated[str | None, typer.Option(help="From: a date or an age like 7d.")] = None,
    until: Annotated[str | None, typer.Option(help="Until (exclusive): a date or age.")] = None,
    json: JsonOption = False,
) -> None:
    """Tokens (the four kinds) and cost grouped by project, session, agent type or model."""
    from session_db.cli.queries import parse_when

    start, stop = _named(parse_when, since, "--since"), _named(parse_when, until, "--until")
    if start is not None and stop is not None and stop <= start:
        raise typer.BadParameter(
            f"{until!r} is not after --since {since!r}", param_hint="'--until'"
        )
    lines = run(_cost(by.value, start, stop))
    if json:
        print_json(
            [
                {**line.model_dump(mode="json"), "total_cost": exact(line.total_cost)}
                for line in lines
            ]
        )
        return
    _print_figures(
        [by.value.replace("_", " ").capitalize(), "Count", *KINDS],
        [
            (
                line.key,
                number(line.count),
                number(line.input_tokens),
                number(line.output_tokens),
                number(line.cache_write_tokens),
                number(line.cache_read_tokens),
                number(line.total_tokens),
                money(line.total_cost),
            )
            for line in lines
        ],
        1,
        empty="No costs recorded for these filters.",
    )


def _print_figures(columns: list[str], rows: list[Any], labels: int, *, empty: str = EMPTY) -> None:
    """A table of figures: numbers right-aligned and never cut, no vertical rules, so a
    day of a hundred million tokens still fits 80 columns."""
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    if not rows:
        print_table(None, columns, [], empty=empty)
        return
    table = Table(
        box=box.SIMPLE_HEAD,
        header_style="bold",
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    figures = [
        max(max(len(part) for part in column.split()), max(len(str(row[index])) for row in rows))
        for index, column in enumerate(columns)
        if index >= labels
    ]
    # What the label columns may take: the terminal less the figures and the two
    # characters between columns.
    room = console().width - sum(figures) - 2 * (len(columns) - 1)
    label_widths = []
    for index, column in enumerate(columns):
        if index < labels:  # one line each: a long label keeps its start and end
            word = max(len(part) for part in column.split())
            widest = max(len(str(row[index])) for row in rows)
            width = max(word, min(widest, room // labels))
            label_widths.append(width)
            table.add_column(column, no_wrap=True, overflow="ellipsis", max_width=width)
        else:  # as wide as its widest number, never cut; the header wraps instead
            width = figures[index - labels]
            table.add_column(column, justify="right", min_width=width, max_width=width)
    for row in rows:
        # Shortened in the middle, so two subagents' sessions or two models stay apart.
        cells = [
            shorten_middle(str(value), label_widths[i]) for i, value in enumerate(row[:labels])
        ]
        table.add_row(*(escape(cell) for cell in [*cells, *map(str, row[labels:])]))
    console().print(table)


def _named(parse: Any, text: str | None, flag: str) -> Any:
    """`parse(text)`, its usage error naming `flag`."""
    try:
        return parse(text)
    except typer.BadParameter as error:
        error.param_hint = f"'{flag}'"
        raise


async def _cost(by: str, since: datetime | None, until: datetime | None):  # type: ignore[no-untyped-def]
    from session_db import crud
    from session_db.database import get_async_session

    async with get_async_session(read_only=True) as db:
        return await crud.list_cost_breakdown(db, by, since=since, until=until)
