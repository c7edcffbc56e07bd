"""Usage reports: tokens and cost by day, ISO week, month, session or 5-hour block.

The data is `usage_records` (one row per model response), plus the agents' own token
counters for agent runs that have no usage records (rows synced from session folders
carry only those), dated by when the run started.

One grouped statement per source does the work: the rows are grouped in SQL by session
(`session`) or by UTC hour (the rest), model and cost source, then rolled up in Python
into periods of the requested time zone. An hour of UTC lies inside one local day in
every zone whose offset is a whole number of hours, DST or not; for a zone with a
30- or 45-minute offset the SQL buckets are quarter hours instead. Blocks follow
ccusage: a block starts at its first activity floored to the UTC hour and lasts five
hours; activity five hours or more after the block's start, or more than five hours
after the activity before it, starts a new block. Hour buckets with their first and
last activity are enough for that: a block's edges are whole hours.
"""

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel.ext.asyncio.session import AsyncSession

from session_db.crud._base import translating_errors
from session_db.errors import InvalidInputError, NotFoundError
from session_db.model_names import canonical_model_name
from session_db.models import Agent, Project, Session, UsageRecord
from session_db.models.base import MONEY_SCALE, to_money, utcnow
from session_db.models.reports import COST_SOURCES, UsageQuery, UsageReport, UsageRow
from session_db.models.sdk_store import SdkStoreSession

__all__ = ["list_usage_report", "sdk_session_ids"]

ENTITY = "usage report"
BLOCK = timedelta(hours=5)
UNKNOWN_MODEL = "(unknown)"
_NANO = 10**MONEY_SCALE
_APPS = {"claude-code": "claude-code", "amp": "amp", "codex": "codex", "gemini": "gemini"}


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInputError(ENTITY, "timezone", f"{name!r} is not a known time zone") from None


def _aware(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=zone) if moment.tzinfo is None else moment


def _whole_hours(zone: ZoneInfo) -> bool:
    """Whether every offset of `zone` (sampled twice a year, 1970-2050) is whole hours."""
    for year in range(1970, 2051):
        for month in (1, 7):
            offset = datetime(year, month, 1, 12, tzinfo=zone).utcoffset()
            if offset is not None and offset.total_seconds() % 3600:
                return False
    return True


def sdk_session_ids() -> sa.Select[Any]:
    """The ids of sessions the Claude Agent SDK ran: held by its session store or recorded
    by `RunRecorder` (an agent with an `sdk_result`), and their subagents' sessions."""
    recorded = sa.select(Agent.session_id).where(
        Agent.agent_metadata["sdk_result"].as_string().is_not(None)
    )
    stored = sa.select(Session.id).where(
        Session.session_slug.in_(sa.select(SdkStoreSession.session_id))
    )
    roots = sa.union(recorded, stored).subquery()
    child = aliased(Session)
    return sa.select(child.id).where(
        sa.or_(
            child.id.in_(sa.select(roots.c[0])),
            child.parent_session_id.in_(sa.select(roots.c[0])),
        )
    )


def _sessions_matching(project_id: Any, agent: str | None) -> sa.Select[Any] | None:
    """The ids of the sessions of the project and agent asked for, or None for all."""
    conditions: list[Any] = []
    if project_id is not None:
        conditions.append(Session.project_id == project_id)
    if agent == "sdk":
        conditions.append(Session.id.in_(sdk_session_ids()))
    elif agent is not None:
        conditions.append(Session.source_app == _APPS[agent])
        if agent == "claude-code":
            conditions.append(Session.id.not_in(sdk_session_ids()))
    if not conditions:
        return None
    return sa.select(Session.id).where(*conditions)


def _bucket(dialect: str, moment: Any, quarter: bool) -> Any:
    """The UTC hour (or quarter hour) of `moment`, in SQL, as each engine does it fastest."""
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text
        hour = sa.func.substr(moment, 1, 13, type_=sa.String)
        if not quarter:
            return hour
        minute = sa.cast(sa.func.substr(moment, 15, 2), sa.Integer)
        return hour.concat(":").concat(sa.cast(minute // 15, sa.String))
    utc = sa.func.timezone("UTC", moment)
    if not quarter:
        return sa.func.date_trunc("hour", utc)
    origin = sa.text("timestamp '2000-01-01'")
    return sa.func.date_bin(sa.text("interval '15 minutes'"), utc, origin)


def _bucket_start(value: Any) -> datetime:
    """A bucket as `_bucket` computed it, as an aware UTC time."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC)
    text = str(value)
    start = datetime.strptime(text[:13], "%Y-%m-%d %H").replace(tzinfo=UTC)
    if len(text) > 13:
        start += timedelta(minutes=15 * int(text[14:]))
    return start


def _cost_sum(dialect: str, cost: Any) -> Any:
    """The exact sum of a money column: SQLite holds floats, so sum whole nano-dollars."""
    if dialect == "sqlite":
        return sa.func.coalesce(sa.func.sum(sa.cast(sa.func.round(cost * _NANO), sa.BigInteger)), 0)
    return sa.func.coalesce(sa.func.sum(cost), 0)


def _money(dialect: str, value: Any) -> Decimal:
    if dialect == "sqlite":
        return to_money(Decimal(int(value)) / _NANO)
    return to_money(value)


@dataclass
class _Fact:
    """One group of the SQL: a bucket (a UTC time or a session), a model, a cost source."""

    bucket: Any
    model: str
    source: str
    tokens: list[int]
    cost: Decimal
    count: int
    first_at: datetime | None
    last_at: datetime | None


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _facts(
    db: AsyncSession,
    query: UsageQuery,
    since: datetime | None,
    until: datetime | None,
    sessions: sa.Select[Any] | None,
    quarter: bool,
) -> list[_Fact]:
    """The records' and the record-less agents' sums, grouped by bucket, model, source."""
    connection = await db.connection()
    dialect = connection.dialect.name
    records = UsageRecord.__table__.c  # type: ignore[attr-defined]
    agents = Agent.__table__.c  # type: ignore[attr-defined]
    record_time = sa.func.coalesce(records.occurred_at, records.created_at)
    agent_time = sa.func.coalesce(agents.started_at, agents.completed_at, agents.created_at)
    has_records = sa.exists().where(records.agent_id == agents.id)
    sources: list[tuple[Any, Any, Any, list[Any], Any, Any, list[Any]]] = [
        (
            records,
            record_time,
            records.model,
            [
                records.input_tokens,
                records.output_tokens,
                records.cache_creation_tokens,
                records.cache_read_tokens,
            ],
            records.cost,
            records.cost_source,
            [],
        ),
        (
            agents,
            agent_time,
            sa.func.coalesce(agents.model, UNKNOWN_MODEL),
            [
                agents.input_tokens,
                agents.output_tokens,
                agents.cache_creation_tokens,
                agents.cache_read_tokens,
            ],
            agents.total_cost,
            # An agent's own total is what its client (or session folder) reported.
            sa.case((agents.total_cost > 0, "reported"), else_="unpriced"),
            [
                ~has_records,
                (
                    agents.input_tokens
                    + agents.output_tokens
                    + agents.cache_creation_tokens
                    + agents.cache_read_tokens
                    > 0
                )
                | (agents.total_cost > 0),
            ],
        ),
    ]
    facts: list[_Fact] = []
    for table, moment, model, tokens, cost, source, extra in sources:
        bucket = (
            table.session_id if query.period == "session" else _bucket(dialect, moment, quarter)
        )
        statement = sa.select(
            bucket,
            model,
            source,
            *(sa.func.coalesce(sa.func.sum(column), 0) for column in tokens),
            _cost_sum(dialect, cost),
            sa.func.count(),
            sa.func.min(moment),
            sa.func.max(moment),
        ).where(*extra)
        if since is not None:
            statement = statement.where(moment >= since)
        if until is not None:
            statement = statement.where(moment < until)
        if sessions is not None:
            statement = statement.where(table.session_id.in_(sessions))
        # By position: PostgreSQL would not see `date_trunc($1, ...)` in the select list
        # and `date_trunc($4, ...)` in GROUP BY as one expression.
        statement = statement.group_by(sa.text("1, 2, 3"))
        for row in (await connection.execute(statement)).all():
            key, name, kind, *sums, amount, count, first, last = row
            facts.append(
                _Fact(
                    bucket=key,
                    model=name,
                    source=str(kind),
                    tokens=[int(value) for value in sums],
                    cost=_money(dialect, amount),
                    count=int(count),
                    first_at=_utc(first),
                    last_at=_utc(last),
                )
            )
    return facts


@dataclass
class _Sum:
    """A row being added up."""

    tokens: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    cost: Decimal = Decimal(0)
    sources: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COST_SOURCES, 0))
    first_at: datetime | None = None
    last_at: datetime | None = None
    models: dict[str, "_Sum"] = field(default_factory=dict)

    def add(self, fact: _Fact, *, by_model: bool = True) -> None:
        self.tokens = [a + b for a, b in zip(self.tokens, fact.tokens, strict=True)]
        self.cost += fact.cost
        self.sources[fact.source] = self.sources.get(fact.source, 0) + fact.count
        if fact.first_at is not None:
            self.first_at = min(filter(None, (self.first_at, fact.first_at)))
        if fact.last_at is not None:
            self.last_at = max(filter(None, (self.last_at, fact.last_at)))
        if by_model:
            name = fact.model if fact.model == UNKNOWN_MODEL else canonical_model_name(fact.model)
            self.models.setdefault(name, _Sum()).add(fact, by_model=False)

    def row(self, key: str, label: str, breakdown: bool, **extra: Any) -> UsageRow:
        models = sorted(self.models, key=lambda name: (-self.models[name].cost, name))
        values: dict[str, Any] = dict(
            key=key,
            label=label,
            input_tokens=self.tokens[0],
            output_tokens=self.tokens[1],
            cache_write_tokens=self.tokens[2],
            cache_read_tokens=self.tokens[3],
            total_tokens=sum(self.tokens),
            cost=to_money(self.cost),
            models=models,
            cost_sources=dict(self.sources),
            first_at=self.first_at,
            last_at=self.last_at,
            breakdown=(
                [self.models[name].row(name, name, False, models=[name]) for name in models]
                if breakdown
                else []
            ),
        )
        values.update(extra)
        return UsageRow(**values)


def _period(start: datetime, period: str, zone: ZoneInfo) -> tuple[str, str, date, date]:
    """The key, label, first day and the day after of the period holding `start`."""
    day = start.astimezone(zone).date()
    if period == "daily":
        return day.isoformat(), day.isoformat(), day, day + timedelta(days=1)
    if period == "weekly":
        year, week, weekday = day.isocalendar()
        monday = day - timedelta(days=weekday - 1)
        key = f"{year}-W{week:02d}"
        return key, f"{key} ({monday})", monday, monday + timedelta(7)
    first = day.replace(day=1)
    after = (first + timedelta(days=32)).replace(day=1)
    return f"{first:%Y-%m}", f"{first:%Y-%m}", first, after


def _midnight(day: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(), tzinfo=zone)


def _by_period(facts: Iterable[_Fact], query: UsageQuery, zone: ZoneInfo) -> list[UsageRow]:
    sums: dict[tuple[str, str, date, date], _Sum] = {}
    for fact in facts:
        key = _period(_bucket_start(fact.bucket), query.period, zone)
        sums.setdefault(key, _Sum()).add(fact)
    return [
        total.row(
            key,
            label,
            query.breakdown,
            start=_midnight(first, zone),
            end=_midnight(after, zone),
        )
        for (key, label, first, after), total in sorted(sums.items(), key=lambda kv: kv[0][2])
    ]


def _by_block(facts: Iterable[_Fact], query: UsageQuery, zone: ZoneInfo) -> list[UsageRow]:
    hours: dict[datetime, list[_Fact]] = {}
    for fact in facts:
        start = _bucket_start(fact.bucket)
        hours.setdefault(start.replace(minute=0), []).append(fact)
    blocks: list[tuple[datetime, _Sum]] = []
    for _hour, group in sorted(hours.items()):
        first = min(f.first_at for f in group if f.first_at is not None)
        current = blocks[-1] if blocks else None
        if (
            current is None
            or first >= current[0] + BLOCK
            or current[1].last_at is None
            or first - current[1].last_at > BLOCK
        ):
            current = (first.astimezone(UTC).replace(minute=0, second=0, microsecond=0), _Sum())
            blocks.append(current)
        for fact in group:
            current[1].add(fact)
    now = _aware(query.now, zone) or utcnow()
    rows = []
    for start, total in blocks:
        end = start + BLOCK
        active = total.last_at is not None and now - total.last_at < BLOCK and start <= now < end
        local = start.astimezone(zone)
        rows.append(
            total.row(
                start.isoformat(),
                f"{local:%Y-%m-%d %H:%M}" + (" (active)" if active else ""),
                query.breakdown,
                start=start,
                end=end,
                active=active,
            )
        )
    return rows


async def _by_session(
    db: AsyncSession, facts: Iterable[_Fact], query: UsageQuery
) -> list[UsageRow]:
    sums: dict[Any, _Sum] = {}
    for fact in facts:
        sums.setdefault(fact.bucket, _Sum()).add(fact)
    if not sums:
        return []
    names: dict[Any, tuple[str, str | None]] = {}
    ids = list(sums)
    for page in range(0, len(ids), 1000):  # bounded: one statement per 1,000 sessions
        rows = await db.exec(
            sa.select(Session.id, Session.session_slug, Session.title).where(  # type: ignore[call-overload]
                Session.id.in_(ids[page : page + 1000])
            )
        )
        names.update({sid: (slug, title) for sid, slug, title in rows.all()})
    ordered = sorted(
        sums.items(),
        key=lambda kv: (kv[1].last_at or datetime.min.replace(tzinfo=UTC), names[kv[0]][0]),
    )
    return [
        total.row(
            names[sid][0],
            names[sid][1] or names[sid][0],
            query.breakdown,
            start=total.first_at,
            end=total.last_at,
        )
        for sid, total in ordered
    ]


def _as_path(name_or_path: str) -> str:
    return os.path.abspath(os.path.expanduser(name_or_path))


async def _project_id(db: AsyncSession, name_or_path: str) -> Any:
    path = _as_path(name_or_path)
    found = (
        await db.exec(
            sa.select(Project.id).where(  # type: ignore[call-overload]
                sa.or_(Project.name == name_or_path, Project.root_path == path)
            )
        )
    ).first()
    if found is None:
        raise NotFoundError("project", name_or_path, field="name or root_path")
    return found[0]


@translating_errors(ENTITY)
async def list_usage_report(db: AsyncSession, query: UsageQuery) -> UsageReport:
    """Tokens and cost per day, ISO week, month, session or 5-hour block, oldest first.

    Each row has the four token kinds, their total, the cost (the records' own costs,
    exact), its models by canonical name and how many of its costs were reported,
    computed or unpriced; with `breakdown`, a row per model under it. Agent runs with
    no usage records count with their own counters, dated by their start.

    Raises:
        InvalidInputError: an unknown time zone, or `until` not after `since`.
        NotFoundError: no project has the name or root path `query.project`.
    """
    zone = _zone(query.timezone)
    since, until = _aware(query.since, zone), _aware(query.until, zone)
    if since is not None and until is not None and until <= since:
        raise InvalidInputError(ENTITY, "until", "must be after since")
    project_id = await _project_id(db, query.project) if query.project else None
    sessions = _sessions_matching(project_id, query.agent)
    quarter = query.period not in ("session", "blocks") and not _whole_hours(zone)
    facts = await _facts(db, query, since, until, sessions, quarter)
    if query.period == "session":
        rows = await _by_session(db, facts, query)
    elif query.period == "blocks":
        rows = _by_block(facts, query, zone)
    else:
        rows = _by_period(facts, query, zone)
    total = _Sum()
    for fact in facts:
        total.add(fact)
    totals = total.row("total", "Total", query.breakdown)
    return UsageReport(rows=rows, totals=totals, cost_sources=dict(totals.cost_sources))
