"""Shared setup of the benchmark scripts: a migrated database for a URL or a temp file."""

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.config import Settings
from session_db.database import create_engine
from session_db.migrate import upgrade


def settings() -> Settings:
    """Settings that ignore the developer's `.env` and environment."""
    return Settings(_env_file=None)  # type: ignore[call-arg]


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the `--url` every benchmark takes."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url",
        help="database URL (an empty or migrated database); default: a new SQLite file",
    )
    return parser


def database_url(url: str | None, workdir: Path) -> str:
    return url or f"sqlite+aiosqlite:///{workdir / 'bench.sqlite'}"


async def migrated_engine(url: str) -> AsyncEngine:
    engine = create_engine(settings(), url=url)
    await upgrade(engine, "head")
    return engine


def workdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="session-db-bench-")


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def run(coroutine) -> object:  # type: ignore[no-untyped-def]
    return asyncio.run(coroutine)
