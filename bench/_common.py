"""Shared setup of the benchmarks: fresh migrated databases, sizes, and result rows.

Every benchmark module exposes `run(url, quick) -> list[dict]`; a row is
`{"figure", "value", "unit", "baseline", "ratio", "target"}` (plus `compared_with`, what
the baseline is, and `note`). `ratio` is always value / baseline and `target` a text
such as "≥ 0.5x" or "≤ 1.3x" (or "" for a figure shown for information).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.config import Settings
from session_db.database import create_engine
from session_db.migrate import upgrade

BENCH_DIR = Path(__file__).resolve().parent
QUICK_FACTOR = 0.1  # --quick: every size divided by 10


def settings() -> Settings:
    """Settings that ignore the developer's `.env` and environment."""
    return Settings(_env_file=None)  # type: ignore[call-arg]


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the `--url` and `--quick` every benchmark takes."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url",
        help="database server URL (a fresh database is made on it); default: a new SQLite file",
    )
    parser.add_argument("--quick", action="store_true", help="every size divided by 10")
    return parser


def scaled(size: int, quick: bool, scale: float | None = None, minimum: int = 1) -> int:
    """Return `size` times the scale (`scale`, else 0.1 with --quick, else 1)."""
    factor = scale if scale is not None else (QUICK_FACTOR if quick else 1.0)
    return max(minimum, round(size * factor))


def is_sqlite(url: str | None) -> bool:
    return url is None or make_url(url).get_backend_name() == "sqlite"


def dialect_name(url: str | None) -> str:
    return "sqlite" if is_sqlite(url) else make_url(url).get_backend_name()  # type: ignore[arg-type]


def database_url(url: str | None, workdir: Path) -> str:
    return url or f"sqlite+aiosqlite:///{workdir / 'bench.sqlite'}"


def asyncpg_params(url: str) -> dict[str, Any]:
    """asyncpg.connect() arguments for a PostgreSQL SQLAlchemy URL."""
    parsed = make_url(url)
    params: dict[str, Any] = {
        "host": parsed.host or "127.0.0.1",
        "port": parsed.port or 5432,
        "user": parsed.username or "postgres",
        "database": parsed.database or "postgres",
    }
    if parsed.password:
        params["password"] = parsed.password
    return params


async def _create_pg(url: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(**asyncpg_params(url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()


async def _drop_pg(url: str, name: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(**asyncpg_params(url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


@contextlib.contextmanager
def fresh_database(url: str | None, *, migrate: bool = True) -> Iterator[str]:
    """Yield the URL of a new database (migrated to head), removed afterwards.

    SQLite (no `url`, or a SQLite one): a file in a new temp folder. PostgreSQL: a
    database `session_db_bench_<random>` made on the server of `url`, dropped at the end.
    """
    if is_sqlite(url):
        with tempfile.TemporaryDirectory(prefix="session-db-bench-db-") as folder:
            fresh = f"sqlite+aiosqlite:///{Path(folder) / 'bench.sqlite'}"
            if migrate:
                asyncio.run(_migrate(fresh))
            yield fresh
        return
    assert url is not None
    name = f"session_db_bench_{uuid.uuid4().hex[:12]}"
    asyncio.run(_create_pg(url, name))
    try:
        fresh = make_url(url).set(database=name).render_as_string(hide_password=False)
        if migrate:
            asyncio.run(_migrate(fresh))
        yield fresh
    finally:
        asyncio.run(_drop_pg(url, name))


async def _migrate(url: str) -> None:
    engine = await migrated_engine(url)
    await engine.dispose()


async def migrated_engine(url: str) -> AsyncEngine:
    engine = create_engine(settings(), url=url)
    await upgrade(engine, "head")
    return engine


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="session-db-bench-")


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def percentile(samples: list[float], fraction: float) -> float:
    """The `fraction` quantile of `samples` (nearest rank)."""
    ordered = sorted(samples)
    rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[rank]


def row(
    figure: str,
    value: float | None,
    unit: str,
    baseline: float | None,
    target: str,
    *,
    compared_with: str = "",
    note: str = "",
) -> dict[str, Any]:
    """A result row; ratio = value / baseline (None when either is missing)."""
    return {
        "figure": figure,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": value / baseline if value is not None and baseline else None,
        "target": target,
        "compared_with": compared_with,
        "note": note,
    }


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any SESSION_DB_ setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSION_DB_")}
    env.update(extra)
    return env


def run(coroutine) -> object:  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)
