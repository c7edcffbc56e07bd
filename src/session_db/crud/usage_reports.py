"""Usage reports: tokens and cost by day, ISO week, month, session or 5-hour block.

The data is `usage_records` (one row per model response), plus the agents' own token
counters for agent runs that have no usage records (rows synced from session folders
carry only those), dated by when the run started.

One grouped statement per source does the work: the rows are grouped in SQL by session
(`session`), by UTC hour (blocks, and periods on SQLite) or by local day (periods on
PostgreSQL, which knows the zones), and model, with a count per cost source, then rolled
up in Python into periods of the requested time zone. Whole hours are read from
`usage_hours` (the records summed per session, hour, model and cost source, kept by
`crud.add_usage_records`), the part hours at a range's ends from the records. An hour
of UTC lies inside one local day in every zone whose offset is a whole number of hours,
DST or not; for a zone with a 30- or 45-minute offset the records are read instead (in
quarter hours on SQLite). Blocks follow ccusage: a block starts at its first activity
floored to the UTC hour and lasts five hours; activity five hours or more after the
block's start, or more than five hours after the activity before it, starts a new
block. Hour buckets with their first and last activity are enough for that: a block's
edges are whole hours.
"""

import os
from collections.abc import Iterable
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
from session_db.models import Agent, Project, Session, UsageHour, UsageRecord
from session_db.models.base import MONEY_SCALE, to_money, utcnow
from session_db.models.reports import COST_SOURCES, UsageQuery, UsageReport, UsageRow
from session_db.models.sdk_store import SdkStoreSession

__all__ = ["list_usage_report"]

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
    """A bucket as `_bucket` computed it (or `usage_hours.hour`), as an aware UTC time."""
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = str(value)  # 'YYYY-MM-DD HH', 'YYYY-MM-DD HH:q' or a stored hour
    start = datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]), tzinfo=UTC)
    if 13 < len(text) <= 16:  # a quarter hour: its number after the colon
        start += timedelta(minutes=15 * int(text[14:]))
    return start


def _hour_start(value: Any) -> datetime:
    """The UTC hour a bucket lies in (blocks start on UTC hours)."""
    return _bucket_start(value).replace(minute=0)


def _cost_sum(dialect: str, cost: Any) -> Any:
    """The exact sum of a money column: SQLite holds floats, so sum whole nano-dollars."""
    if dialect == "sqlite":
        return sa.func.coalesce(sa.func.sum(sa.cast(sa.func.round(cost * _NANO), sa.BigInteger)), 0)
    return sa.func.coalesce(sa.func.sum(cost), 0)


# One group of the SQL: (bucket, model, input, output, cache write, cache read, cost,
# (reported, computed, unpriced) responses, first, last); the bucket is a UTC hour or a
# session's id; the cost a Decimal, or whole nano-dollars on SQLite.
_Span = datetime | None
_Fact = tuple[Any, str, int, int, int, int, Decimal | int, tuple[int, int, int], _Span, _Span]


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime) and value.tzinfo is UTC:
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _raw_time(dialect: str, column: Any) -> Any:
    """A time column read as the driver gives it: SQLite's text (`datetime.fromisoformat`
    reads it faster than the type's parser), asyncpg's aware datetime (not converted
    again per value), for the tens of thousands of rows of a year."""
    return sa.type_coerce(column, sa.String if dialect == "sqlite" else sa.DateTime(timezone=True))


def _hour_up(moment: datetime) -> datetime:
    floor = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(hours=1)


def _hour_down(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _ranges(
    since: datetime | None, until: datetime | None, quarter: bool
) -> tuple[tuple[datetime | None, datetime | None] | None, list[tuple[Any, Any]]]:
    """The whole hours `usage_hours` answers for, and the edges only the records can."""
    if quarter:
        return None, [(since, until)]
    low = None if since is None else _hour_up(since)
    high = None if until is None else _hour_down(until)
    if low is not None and high is not None and low >= high:
        return None, [(since, until)]
    edges = []
    if since is not None and low != since:
        edges.append((since, low))
    if until is not None and high != until:
        edges.append((high, until))
    return (low, high), edges


async def _facts(
    db: AsyncSession,
    query: UsageQuery,
    since: datetime | None,
    until: datetime | None,
    sessions: sa.Select[Any] | None,
    quarter: bool,
) -> list[_Fact]:
    """The usage's sums, grouped by bucket (a UTC hour or a session), model and source.

    Whole hours come from `usage_hours`; the part of an hour at either end of the range,
    and every hour in a zone whose offset is not whole hours, from the records; agent
    runs without records from their own counters.
    """
    connection = await db.connection()
    dialect = connection.dialect.name
    records = UsageRecord.__table__.c  # type: ignore[attr-defined]
    hours = UsageHour.__table__.c  # type: ignore[attr-defined]
    agents = Agent.__table__.c  # type: ignore[attr-defined]
    record_time = sa.func.coalesce(records.occurred_at, records.created_at)
    agent_time = sa.func.coalesce(agents.started_at, agents.completed_at, agents.created_at)
    has_records = sa.exists().where(records.agent_id == agents.id)
    tokens = ("input_tokens", "output_tokens", "cache_creation_tokens", "cache_read_tokens")
    by_session = query.period == "session"
    # PostgreSQL knows every IANA zone: it groups periods by local day itself (a year is
    # then a few hundred rows, not thousands of hours). The records, read one by one,
    # are exact in any zone; the hours only in whole-hour ones.
    local_days = dialect == "postgresql" and query.period in ("daily", "weekly", "monthly")

    def day_of(moment: Any) -> Any:
        return sa.func.date(sa.func.timezone(query.timezone, moment))

    whole, edges = _ranges(since, until, quarter)
    # (table, time, bucket, model, source, responses a row holds, tokens, cost, first,
    # last, time spans, other conditions)
    selects: list[tuple[Any, ...]] = []
    if whole is not None:
        selects.append(
            (
                hours,
                hours.hour,
                hours.session_id
                if by_session
                else day_of(hours.hour)
                if local_days
                else _raw_time(dialect, hours.hour),
                hours.model,
                hours.cost_source,
                hours.responses,
                [hours[name] for name in tokens],
                hours.cost,
                sa.func.min(hours.first_at),
                sa.func.max(hours.last_at),
                [whole],
                [],
            )
        )
    if edges:
        selects.append(
            (
                records,
                record_time,
                records.session_id
                if by_session
                else day_of(record_time)
                if local_days
                else _bucket(dialect, record_time, quarter),
                records.model,
                records.cost_source,
                sa.literal(1),
                [records[name] for name in tokens],
                records.cost,
                sa.func.min(record_time),
                sa.func.max(record_time),
                edges,
                [],
            )
        )
    selects.append(
        (
            agents,
            agent_time,
            agents.session_id
            if by_session
            else day_of(agent_time)
            if local_days
            else _bucket(dialect, agent_time, quarter),
            sa.func.coalesce(agents.model, UNKNOWN_MODEL),
            # An agent's own total is what its client (or session folder) reported.
            sa.case((agents.total_cost > 0, "reported"), else_="unpriced"),
            sa.literal(1),
            [agents[name] for name in tokens],
            agents.total_cost,
            sa.func.min(agent_time),
            sa.func.max(agent_time),
            [(since, until)],
            [
                ~has_records,
                (sum((agents[name] for name in tokens), sa.literal(0)) > 0)
                | (agents.total_cost > 0),
            ],
        )
    )
    timed = query.period in ("session", "blocks")
    sqlite = dialect == "sqlite"
    facts: list[_Fact] = []
    for (
        table,
        moment,
        bucket,
        model,
        source,
        weight,
        sums,
        cost,
        first,
        last,
        spans,
        extra,
    ) in selects:
        statement = sa.select(
            bucket,
            model,
            # BIGINT: PostgreSQL's sum of BIGINTs is NUMERIC, slower to read back.
            *(sa.cast(sa.func.coalesce(sa.func.sum(column), 0), sa.BigInteger) for column in sums),
            _cost_sum(dialect, cost),
            # Counted per source in SQL, so a bucket and model make one row.
            *(
                sa.cast(
                    sa.func.coalesce(sa.func.sum(sa.case((source == name, weight), else_=0)), 0),
                    sa.BigInteger,
                )
                for name in COST_SOURCES
            ),
            # Only sessions and blocks show their first and last activity.
            (_raw_time(dialect, first) if timed else sa.null()).label("first_at"),
            (_raw_time(dialect, last) if timed else sa.null()).label("last_at"),
        ).where(*extra)
        limits = []
        for low, high in spans:
            limit = []
            if low is not None:
                limit.append(moment >= low)
            if high is not None:
                limit.append(moment < high)
            limits.append(sa.and_(sa.true(), *limit))
        statement = statement.where(sa.or_(*limits))
        if sessions is not None:
            statement = statement.where(table.session_id.in_(sessions))
        # By position: PostgreSQL would not see `date_trunc($1, ...)` in the select list
        # and `date_trunc($4, ...)` in GROUP BY as one expression.
        statement = statement.group_by(sa.text("1, 2"))
        for key, name, i, o, w, r, amount, reported, computed, unpriced, first, last in (
            await connection.execute(statement)
        ).all():
            facts.append(
                (
                    key,
                    name,
                    int(i),
                    int(o),
                    int(w),
                    int(r),
                    # SQLite's exact sums are whole nano-dollars: kept so until the end.
                    int(amount) if sqlite else Decimal(amount),
                    (int(reported), int(computed), int(unpriced)),
                    _utc(first) if timed else None,
                    _utc(last) if timed else None,
                )
            )
    return facts


class _Sum:
    """Tokens, cost, cost sources and activity span being added up."""

    __slots__ = (
        "cache_read",
        "cache_write",
        "cost",
        "first_at",
        "input",
        "last_at",
        "output",
        "sources",
    )

    def __init__(self) -> None:
        self.input = self.output = self.cache_write = self.cache_read = 0
        self.cost: Decimal | int = 0
        self.first_at: datetime | None = None
        self.last_at: datetime | None = None
        self.sources = [0, 0, 0]  # in COST_SOURCES order

    def add(self, fact: _Fact) -> None:
        _, _, i, o, w, r, cost, (reported, computed, unpriced), first, last = fact
        self.input += i
        self.output += o
        self.cache_write += w
        self.cache_read += r
        self.cost += cost
        sources = self.sources
        sources[0] += reported
        sources[1] += computed
        sources[2] += unpriced
        if first is not None or last is not None:
            self._span(first, last)

    def merge(self, other: "_Sum") -> None:
        self.input += other.input
        self.output += other.output
        self.cache_write += other.cache_write
        self.cache_read += other.cache_read
        self.cost += other.cost
        self.sources = [a + b for a, b in zip(self.sources, other.sources, strict=True)]
        self._span(other.first_at, other.last_at)

    @property
    def money(self) -> Decimal:
        if isinstance(self.cost, int):
            return to_money(Decimal(self.cost).scaleb(-MONEY_SCALE))
        return to_money(self.cost)

    def _span(self, first: datetime | None, last: datetime | None) -> None:
        if first is not None and (self.first_at is None or first < self.first_at):
            self.first_at = first
        if last is not None and (self.last_at is None or last > self.last_at):
            self.last_at = last

    def row(self, key: str, label: str, models: list[str], **extra: Any) -> UsageRow:
        return UsageRow(
            key=key,
            label=label,
            input_tokens=self.input,
            output_tokens=self.output,
            cache_write_tokens=self.cache_write,
            cache_read_tokens=self.cache_read,
            total_tokens=self.input + self.output + self.cache_write + self.cache_read,
            cost=self.money,
            models=models,
            cost_sources=dict(zip(COST_SOURCES, self.sources, strict=True)),
            first_at=self.first_at,
            last_at=self.last_at,
            **extra,
        )


class _Group:
    """A row being added up: per canonical model, then all of them."""

    def __init__(self) -> None:
        self.models: dict[str, _Sum] = {}

    def add(self, model: str, fact: _Fact) -> None:
        found = self.models.get(model)
        if found is None:
            found = self.models[model] = _Sum()
        found.add(fact)

    def merge(self, other: "_Group") -> None:
        for model, figures in other.models.items():
            found = self.models.get(model)
            if found is None:
                found = self.models[model] = _Sum()
            found.merge(figures)

    def row(self, key: str, label: str, breakdown: bool, **extra: Any) -> UsageRow:
        total = _Sum()
        for figures in self.models.values():
            total.merge(figures)
        names = sorted(self.models, key=lambda name: (-self.models[name].cost, name))
        lines = [self.models[name].row(name, name, [name]) for name in names] if breakdown else []
        return total.row(key, label, names, breakdown=lines, **extra)


class _Names(dict[str, str]):
    """Canonical model names, each id worked out once."""

    def __missing__(self, model: str) -> str:
        name = model if model == UNKNOWN_MODEL else canonical_model_name(model)
        self[model] = name
        return name


def _grouped(facts: Iterable[_Fact], key_of: Any) -> dict[Any, _Group]:
    """The facts added up per `key_of(bucket)` (cached per bucket) and canonical model."""
    names = _Names()
    keys: dict[Any, Any] = {}
    groups: dict[Any, _Group] = {}
    for fact in facts:
        bucket = fact[0]
        key = keys.get(bucket)
        if key is None:
            key = keys[bucket] = key_of(bucket)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group()
        group.add(names[fact[1]], fact)
    return groups


def _period(start: datetime | date, period: str, zone: ZoneInfo) -> tuple[str, str, date, date]:
    """The key, label, first day and the day after of the period holding `start`."""
    day = start.astimezone(zone).date() if isinstance(start, datetime) else start
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


def _by_period(groups: dict[Any, _Group], query: UsageQuery, zone: ZoneInfo) -> list[UsageRow]:
    """The rows of periods `groups` is keyed by (see `_period`), in time order."""
    return [
        group.row(
            key,
            label,
            query.breakdown,
            start=_midnight(first, zone),
            end=_midnight(after, zone),
        )
        for (key, label, first, after), group in sorted(groups.items(), key=lambda kv: kv[0][2])
    ]


def _span(group: _Group) -> tuple[datetime | None, datetime | None]:
    firsts = [s.first_at for s in group.models.values() if s.first_at is not None]
    lasts = [s.last_at for s in group.models.values() if s.last_at is not None]
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)


def _block_starts(facts: list[_Fact]) -> dict[Any, datetime]:
    """The start of the block each bucket's hour falls in (ccusage's blocks)."""
    hours: dict[Any, tuple[datetime, datetime | None, datetime | None]] = {}
    for fact in facts:
        bucket, first, last = fact[0], fact[8], fact[9]
        seen = hours.get(bucket)
        if seen is None:
            hours[bucket] = (_hour_start(bucket), first, last)
        else:
            hours[bucket] = (
                seen[0],
                first if seen[1] is None or (first is not None and first < seen[1]) else seen[1],
                last if seen[2] is None or (last is not None and last > seen[2]) else seen[2],
            )
    starts: dict[Any, datetime] = {}
    start: datetime | None = None
    for bucket, (hour, first, _last) in sorted(hours.items(), key=lambda kv: kv[1][0]):
        # A gap of more than five hours always ends past the block, so this one rule
        # also starts the block after a gap.
        if start is None or (first or hour) >= start + BLOCK:
            start = hour
        starts[bucket] = start
    return starts


def _by_block(groups: dict[Any, _Group], query: UsageQuery, zone: ZoneInfo) -> list[UsageRow]:
    """The rows of blocks `groups` is keyed by (their starts), in time order."""
    now = _aware(query.now, zone) or utcnow()
    rows = []
    for start, group in sorted(groups.items()):
        end = start + BLOCK
        last = _span(group)[1]
        active = last is not None and now - last < BLOCK and start <= now < end
        local = start.astimezone(zone)
        rows.append(
            group.row(
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
    db: AsyncSession, groups: dict[Any, _Group], query: UsageQuery
) -> list[UsageRow]:
    if not groups:
        return []
    names: dict[Any, tuple[str, str | None]] = {}
    ids = list(groups)
    for page in range(0, len(ids), 1000):  # bounded: one statement per 1,000 sessions
        rows = await db.exec(
            sa.select(Session.id, Session.session_slug, Session.title).where(  # type: ignore[call-overload]
                Session.id.in_(ids[page : page + 1000])
            )
        )
        names.update({sid: (slug, title) for sid, slug, title in rows.all()})
    spans = {sid: _span(group) for sid, group in groups.items()}
    earliest = datetime.min.replace(tzinfo=UTC)
    ordered = sorted(groups, key=lambda sid: (spans[sid][1] or earliest, names[sid][0]))
    return [
        groups[sid].row(
            names[sid][0],
            names[sid][1] or names[sid][0],
            query.breakdown,
            start=spans[sid][0],
            end=spans[sid][1],
        )
        for sid in ordered
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
        groups = _grouped(facts, lambda bucket: bucket)
        rows = await _by_session(db, groups, query)
    elif query.period == "blocks":
        groups = _grouped(facts, _block_starts(facts).__getitem__)
        rows = _by_block(groups, query, zone)
    else:

        def period_of(bucket: Any) -> tuple[str, str, date, date]:
            local = bucket if type(bucket) is date else _bucket_start(bucket)
            return _period(local, query.period, zone)

        groups = _grouped(facts, period_of)
        rows = _by_period(groups, query, zone)
    total = _Group()
    for group in groups.values():
        total.merge(group)
    totals = total.row("total", "Total", query.breakdown)
    return UsageReport(rows=rows, totals=totals, cost_sources=dict(totals.cost_sources))
