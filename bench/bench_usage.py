"""Usage reports over a year of usage: `crud.list_usage_report` against a bare aggregate.

Data: a year (2025) of 1,000,000 usage records in 5,000 sessions of 200 responses each
(one main agent per session), as the importers store them: Claude Code, Amp, Codex and
Gemini sessions, each on its main model with a fifth of its responses on Haiku, costs
mostly computed, some reported or unpriced, token counts in the ranges real
transcripts show. Sessions and agents are written through the CRUD layer; the records,
which are only the data here, by COPY (PostgreSQL) or sqlite3 executemany, and then
`usage_hours` by `crud.rebuild_usage_hours` (what `add_usage_records` keeps as it goes).

Subject: `list_usage_report(db, UsageQuery(period=..., since=2025-01-01, until=2026-01-01))`
for each period (and daily with `breakdown` in America/New_York, and daily filtered to
Claude Code), in a read-only session. Baseline: `SELECT count(*), sum(...)` of the four
token columns and the cost over the same rows and range, on the same engine. Each is
the median of 3 runs, the two interleaved. Target: at most 1 s each.

    python bench/bench_usage.py [--url postgresql+asyncpg://...] [--quick]
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from _common import (
    asyncpg_params,
    dialect_name,
    fresh_database,
    is_sqlite,
    parser,
    row,
    scaled,
    settings,
)
from sqlalchemy import text
from sqlalchemy.engine import make_url

from session_db import crud
from session_db.database import create_engine, get_async_session
from session_db.models import AgentCreate
from session_db.models.reports import UsageQuery

RECORDS = 1_000_000
PER_SESSION = 200
ROUNDS = 3
LIMIT_S = 1.0
YEAR = datetime(2025, 1, 1, tzinfo=UTC)
NEXT_YEAR = datetime(2026, 1, 1, tzinfo=UTC)
HAIKU = "claude-haiku-4-5-20251001"
APPS = (
    ("claude-code", "claude-opus-4-6", 0.45),
    ("claude-code", "claude-sonnet-4-5-20250929", 0.15),
    ("claude-code", "us.anthropic.claude-sonnet-4-5-20250929-v1:0", 0.1),
    ("amp", "claude-sonnet-4-5-20250929", 0.1),
    ("codex", "gpt-5-codex", 0.1),
    ("gemini", "gemini-2.5-pro", 0.1),
)
COLUMNS = (
    "id",
    "session_id",
    "agent_id",
    "message_id",
    "request_id",
    "model",
    "input_tokens",
    "output_tokens",
    "cache_creation_tokens",
    "cache_read_tokens",
    "cost",
    "cost_source",
    "cost_is_estimate",
    "occurred_at",
    "created_at",
    "updated_at",
)
FIGURES = (
    ("daily", {}),
    ("weekly", {}),
    ("monthly", {}),
    ("session", {}),
    ("blocks", {}),
    ("daily", {"breakdown": True, "timezone": "America/New_York"}),
    ("daily", {"agent": "claude-code"}),
)
BASELINE = text(
    "SELECT count(*), sum(input_tokens), sum(output_tokens), sum(cache_creation_tokens),"
    " sum(cache_read_tokens), sum(cost) FROM usage_records"
    " WHERE coalesce(occurred_at, created_at) >= :since"
    " AND coalesce(occurred_at, created_at) < :until"
)


def plan(records: int, seed: int = 15) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
    """The sessions (values for `ensure_sessions`) and the records (column tuples)."""
    rng = random.Random(seed)
    sessions: list[dict[str, Any]] = []
    rows: list[tuple[Any, ...]] = []
    now = datetime.now(UTC)
    count = max(1, records // PER_SESSION)
    weights = [share for _app, _model, share in APPS]
    for number in range(count):
        app, model, _ = rng.choices(APPS, weights)[0]
        sid = uuid.uuid4()
        agent = uuid.uuid4()
        start = YEAR + timedelta(seconds=rng.randrange(int((NEXT_YEAR - YEAR).total_seconds())))
        sessions.append(
            {
                "id": sid,
                "agent": agent,
                "model": model,
                "session_slug": f"{app}:{number:06d}-{sid.hex[:8]}",
                "source_app": app,
                "started_at": start,
                "session_metadata": {},
            }
        )
        at = start
        for turn in range(PER_SESSION if number < count - 1 else records - len(rows)):
            at += timedelta(seconds=rng.randint(10, 90))
            if at >= NEXT_YEAR:
                at = start  # keep the year's records inside it
            used = HAIKU if rng.random() < 0.2 else model
            source = "computed"
            if app == "gemini" and rng.random() < 0.3:
                source = "unpriced"
            elif rng.random() < 0.02:
                source = "reported"
            cost = 0.0 if source == "unpriced" else round(rng.uniform(0.001, 0.2), 9)
            rows.append(
                (
                    uuid.uuid4(),
                    sid,
                    agent,
                    f"msg_01{sid.hex[:12]}{turn:06d}",
                    f"req_011C{sid.hex[12:24]}{turn:06d}",
                    used,
                    rng.randint(3, 50),
                    rng.randint(50, 2000),
                    rng.randint(0, 20_000),
                    rng.randint(10_000, 150_000),
                    cost,
                    source,
                    source != "reported",
                    at,
                    now,
                    now,
                )
            )
    return sessions, rows


async def seed(url: str, records: int) -> int:
    sessions, rows = plan(records)
    engine = create_engine(settings(), url=url)
    try:
        async with get_async_session(engine) as db:
            ids = await crud.ensure_sessions(
                db,
                [
                    {k: v for k, v in s.items() if k not in ("id", "agent", "model")}
                    for s in sessions
                ],
            )
            real = {s["id"]: ids[s["session_slug"]][0] for s in sessions}
            await crud.ensure_usage_agents(
                db,
                {
                    s["agent"]: AgentCreate(
                        session_id=real[s["id"]], agent_type="main", model=s["model"]
                    )
                    for s in sessions
                },
            )
    finally:
        await engine.dispose()
    rows = [(r[0], real[r[1]], *r[2:]) for r in rows]
    if is_sqlite(url):
        _copy_sqlite(url, rows)
    else:
        await _copy_postgres(url, rows)
    engine = create_engine(settings(), url=url)
    try:
        async with get_async_session(engine) as db:  # what add_usage_records keeps
            await crud.rebuild_usage_hours(db)
        # The planner's statistics, as autovacuum (PostgreSQL) would have them by now.
        async with engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
    finally:
        await engine.dispose()
    return len(rows)


def _copy_sqlite(url: str, rows: list[tuple[Any, ...]]) -> None:
    def stored(value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return value.hex
        if isinstance(value, datetime):
            return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value

    connection = sqlite3.connect(make_url(url).database or "", isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(
            f"INSERT INTO usage_records ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(COLUMNS))})",
            ([stored(value) for value in one] for one in rows),
        )
        connection.execute("COMMIT")
    finally:
        connection.close()


async def _copy_postgres(url: str, rows: list[tuple[Any, ...]]) -> None:
    import asyncpg

    connection = await asyncpg.connect(**asyncpg_params(url))
    try:
        await connection.copy_records_to_table(
            "usage_records",
            records=[(*r[:10], Decimal(repr(r[10])), *r[11:]) for r in rows],
            columns=list(COLUMNS),
        )
    finally:
        await connection.close()


async def measure(url: str) -> list[tuple[str, float, float, int]]:
    """(figure, median seconds of the report, of the baseline, rows in the report)."""
    engine = create_engine(settings(), url=url)
    results = []
    try:
        for period, options in FIGURES:
            query = UsageQuery(period=period, since=YEAR, until=NEXT_YEAR, **options)  # type: ignore[arg-type]
            subject: list[float] = []
            baseline: list[float] = []
            shown = 0
            for _ in range(ROUNDS):
                started = time.perf_counter()
                async with get_async_session(engine, read_only=True) as db:
                    report = await crud.list_usage_report(db, query)
                subject.append(time.perf_counter() - started)
                shown = len(report.rows)
                started = time.perf_counter()
                async with engine.connect() as connection:
                    await connection.execute(
                        BASELINE, {"since": _bind(url, YEAR), "until": _bind(url, NEXT_YEAR)}
                    )
                baseline.append(time.perf_counter() - started)
            extras = " ".join(f"{k}={v}" for k, v in options.items())
            name = f"usage {period}{' ' + extras if extras else ''}"
            results.append((name, statistics.median(subject), statistics.median(baseline), shown))
    finally:
        await engine.dispose()
    return results


def _bind(url: str, moment: datetime) -> Any:
    """A time as the baseline's driver takes it: stored text on SQLite."""
    if is_sqlite(url):
        return moment.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return moment


def run(url: str | None, quick: bool = False, scale: float | None = None) -> list[dict[str, Any]]:
    """Seed a fresh database with a year of usage and time each report against the baseline."""
    records = scaled(RECORDS, quick, scale, minimum=PER_SESSION)
    with fresh_database(url) as fresh:
        seeded = asyncio.run(seed(fresh, records))
        figures = asyncio.run(measure(fresh))
    return [
        {
            **row(
                f"{name} ({dialect_name(url)}, {seeded:,} records)",
                seconds,
                "s",
                baseline,
                f"≤ {LIMIT_S:g} s",
                compared_with="SELECT count(*), sum(...) of the same rows",
                note=f"{shown:,} rows in the report",
            ),
            "limit": LIMIT_S,
        }
        for name, seconds, baseline, shown in figures
    ]


def main() -> None:
    args = parser((__doc__ or "").splitlines()[0]).parse_args()
    for result in run(args.url, args.quick):
        verdict = "ok" if result["value"] <= result["limit"] else "MISSED"
        print(
            f"{result['figure']}: {result['value']:.3f} s, baseline {result['baseline']:.3f} s,"
            f" ratio {result['ratio']:.1f}x, {verdict} ({result['note']})"
        )


if __name__ == "__main__":
    main()
