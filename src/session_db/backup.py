"""Backups before migrations: SQLite's online backup API, or pg_dump for PostgreSQL."""

import asyncio
import os
import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.config import get_settings
from session_db.errors import SessionDBError
from session_db.files import create_private_file


class BackupError(SessionDBError):
    """A backup could not be taken (no pg_dump, a dump that failed)."""


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


async def backup_database(engine: AsyncEngine) -> Path:
    """Copy the database behind `engine` to a new file and return its path.

    SQLite: a consistent copy beside the database file, taken with the online backup API
    while other connections may be writing. PostgreSQL: `pg_dump --format=custom` into
    the data directory's `backups/` folder, the password passed through the environment.

    Raises:
        BackupError: pg_dump is not installed or failed, or the database is in memory.
    """
    url = engine.url
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise BackupError("an in-memory SQLite database cannot be backed up")
        source = Path(url.database)
        target = source.with_name(f"{source.stem}.backup-{_stamp()}{source.suffix}")
        create_private_file(target)  # private before the first byte of the copy lands
        await asyncio.to_thread(_sqlite_backup, source, target)
        return target
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BackupError(
            "refusing --backup: pg_dump is not on PATH (install the PostgreSQL client "
            "tools, or back up another way and run without --backup)"
        )
    folder = get_settings().resolved_data_dir() / "backups"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / f"{url.database}-{_stamp()}.dump"
    create_private_file(target)  # pg_dump truncates and writes it, keeping the mode
    environment = {**os.environ, "PGPASSWORD": url.password or ""} if url.password else None
    process = await asyncio.create_subprocess_exec(
        pg_dump,
        "--format=custom",
        f"--file={target}",
        f"--host={url.host or 'localhost'}",
        f"--port={url.port or 5432}",
        f"--username={url.username or 'postgres'}",
        f"--dbname={url.database}",
        "--no-password",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    _, errors = await process.communicate()
    if process.returncode != 0:
        target.unlink(missing_ok=True)
        reason = errors.decode(errors="replace").strip().splitlines()
        raise BackupError(f"pg_dump failed: {reason[-1] if reason else process.returncode}")
    return target


def _sqlite_backup(source: Path, target: Path) -> None:
    with sqlite3.connect(source) as origin, sqlite3.connect(target) as copy:
        origin.backup(copy)
