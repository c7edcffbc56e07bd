"""Hook-event delivery end to end: spool file -> agent_logs and paired tool_calls.

Spools of generated events (bench/events.py, ~1 KB each, mostly PreToolUse/PostToolUse
pairs) are written with `spool.spool_line`, then a child process delivers each with
`deliver_pending` into a fresh migrated database and reports its time; the parent reads
the child's peak RSS from `os.wait4`. Figures:

- delivery rate of 100,000 events against writing the same rows directly: asyncpg
  `copy_records_to_table` (PostgreSQL) or a sqlite3 `executemany`, one transaction per
  1,000 rows (SQLite), into the same tables of a fresh database; only the writes are
  timed (once before and once after the delivery; their mean is the baseline).
  Target: at least 0.5x.
- peak RSS delivering 1,000,000 events against 100,000. Target: at most 1.3x.
- how cost grows: the delivery rate at 10,000, 100,000 and 1,000,000 events.

`--quick` divides every size by 10; `--scale F` multiplies them by F instead.

    python bench/bench_delivery.py [--url postgresql+asyncpg://...] [--quick] [--scale F]
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import events
from _common import (
    asyncpg_params,
    clean_env,
    dialect_name,
    fresh_database,
    is_sqlite,
    parser,
    row,
    scaled,
    settings,
)

DELIVERY_EVENTS = 100_000
GROWTH = (10_000, 100_000, 1_000_000)
SQLITE_ROWS_PER_TRANSACTION = 1000


# --- the child: deliver one spool folder and report ----------------------------------------


async def _child(url: str, directory: str) -> dict[str, Any]:
    from sqlalchemy import text

    from session_db.claude.deliver import deliver_pending
    from session_db.database import create_engine

    engine = create_engine(settings(), url=url)
    try:
        async with engine.connect() as connection:  # connect before the clock starts
            await connection.execute(text("SELECT 1"))
        wanted = {"import_transcripts": False, "check_schema": False}
        accepted = inspect.signature(deliver_pending).parameters
        kwargs = {key: value for key, value in wanted.items() if key in accepted}
        started = time.perf_counter()
        report = await deliver_pending(engine, directory, **kwargs)
        seconds = time.perf_counter() - started
        async with engine.connect() as connection:
            logs = (await connection.execute(text("SELECT count(*) FROM agent_logs"))).scalar()
            calls = (await connection.execute(text("SELECT count(*) FROM tool_calls"))).scalar()
            paired = (
                await connection.execute(
                    text("SELECT count(*) FROM tool_calls WHERE ended_at IS NOT NULL")
                )
            ).scalar()
    finally:
        await engine.dispose()
    return {
        "seconds": seconds,
        "peak_rss_own": _own_peak_rss(),
        "delivered": report.delivered,
        "rejected": report.rejected,
        "agent_logs": logs,
        "tool_calls": calls,
        "tool_calls_ended": paired,
    }


def _own_peak_rss() -> int | None:
    """This process's peak RSS in bytes, from its own address space (Linux's VmHWM).

    `wait4`'s `ru_maxrss` is not used where this exists: Linux carries the high-water
    mark across exec, so a child spawned by a large parent reports the parent's size.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def child_main(url: str, directory: str, out: str) -> None:
    result = asyncio.run(_child(url, directory))
    Path(out).write_text(json.dumps(result))


def deliver_in_child(url: str, directory: str) -> dict[str, Any]:
    """Deliver the spool in a child process; return its report and peak RSS (bytes)."""
    with (
        tempfile.NamedTemporaryFile(prefix="bench-deliver-", suffix=".json") as out,
        tempfile.TemporaryFile() as errors,
    ):
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", url, directory, out.name],
            env=clean_env(),
            stderr=errors,
        )
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        stderr = errors.read().decode("utf-8", "replace").splitlines()
        if process.returncode != 0:
            sys.stderr.write("\n".join(stderr[-30:]) + "\n")
            raise RuntimeError(f"the delivery child failed (exit {process.returncode})")
        result = json.loads(Path(out.name).read_text())
    # What the library logged (warnings of refused chunks, say): a count and the last line.
    result["log_lines"] = len(stderr)
    result["last_log_line"] = stderr[-1] if stderr else ""
    # ru_maxrss: kilobytes on Linux, bytes on macOS
    result["peak_rss"] = result.pop("peak_rss_own") or usage.ru_maxrss * (
        1 if sys.platform == "darwin" else 1024
    )
    return result


# --- the baselines: the same rows written directly -------------------------------------------


def _sqlite_path(url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(url).database)


def _sqlite_values(rows: list[tuple]) -> list[tuple]:
    """Rows in SQLite's stored forms: UUIDs as 32 hex digits, UTC times as naive text."""
    import uuid
    from datetime import datetime

    def convert(value: Any) -> Any:
        if isinstance(value, uuid.UUID):
            return value.hex
        if isinstance(value, datetime):
            return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        return value

    return [tuple(convert(value) for value in one) for one in rows]


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


def baseline_sqlite(url: str, rows: events.BaselineRows) -> float:
    """executemany of the rows, 1,000 per transaction; return the seconds of the writes."""
    sessions = _sqlite_values(rows.sessions)
    logs = _sqlite_values(rows.agent_logs)
    calls = _sqlite_values(rows.tool_calls)
    connection = sqlite3.connect(_sqlite_path(url), isolation_level=None)
    try:
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(_insert_sql("sessions", events.SESSION_COLUMNS), sessions)
        connection.execute("COMMIT")
        started = time.perf_counter()
        for table, columns, values in (
            ("agent_logs", events.AGENT_LOG_COLUMNS, logs),
            ("tool_calls", events.TOOL_CALL_COLUMNS, calls),
        ):
            statement = _insert_sql(table, columns)
            for start in range(0, len(values), SQLITE_ROWS_PER_TRANSACTION):
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(
                    statement, values[start : start + SQLITE_ROWS_PER_TRANSACTION]
                )
                connection.execute("COMMIT")
        return time.perf_counter() - started
    finally:
        connection.close()


async def baseline_postgres(url: str, rows: events.BaselineRows) -> float:
    """asyncpg COPY of the rows; return the seconds of the writes."""
    import asyncpg

    connection = await asyncpg.connect(**asyncpg_params(url))
    try:
        await connection.copy_records_to_table(
            "sessions", records=rows.sessions, columns=list(events.SESSION_COLUMNS)
        )
        started = time.perf_counter()
        await connection.copy_records_to_table(
            "agent_logs", records=rows.agent_logs, columns=list(events.AGENT_LOG_COLUMNS)
        )
        await connection.copy_records_to_table(
            "tool_calls", records=rows.tool_calls, columns=list(events.TOOL_CALL_COLUMNS)
        )
        return time.perf_counter() - started
    finally:
        await connection.close()


def baseline_seconds(url: str | None, rows: events.BaselineRows) -> float:
    with fresh_database(url) as fresh:
        if is_sqlite(fresh):
            return baseline_sqlite(fresh, rows)
        return asyncio.run(baseline_postgres(fresh, rows))


# --- the figures -------------------------------------------------------------------------------


def deliver_fresh(url: str | None, spool_dir: str, count: int) -> dict[str, Any]:
    with fresh_database(url) as fresh:
        result = deliver_in_child(fresh, spool_dir)
    result["rate"] = count / result["seconds"]
    result["error"] = ""
    if result["agent_logs"] != count:  # a rate of events not delivered is no rate
        result["rate"] = None
        result["error"] = (
            f"only {result['agent_logs']:,} of {count:,} events delivered "
            f"({result['rejected']:,} rejected; {result['log_lines']} lines logged, the last: "
            f"{result['last_log_line'][:200]!r})"
        )
        print(f"delivery of {count:,} events: {result['error']}", file=sys.stderr)
    return result


def run(url: str | None, quick: bool, *, scale: float | None = None) -> list[dict[str, Any]]:
    """Measure delivery; see the module docstring."""
    name = dialect_name(url)
    main_size = scaled(DELIVERY_EVENTS, quick, scale, minimum=100)
    growth = sorted({scaled(size, quick, scale, minimum=10) for size in GROWTH} | {main_size})
    results: dict[int, dict[str, Any]] = {}
    rows_out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="session-db-bench-spool-") as folder:
        for size in growth:
            spool_dir = os.path.join(folder, f"spool-{size}")
            path, spool_bytes = events.write_spool(spool_dir, size)
            if size != main_size:
                results[size] = deliver_fresh(url, spool_dir, size)
                results[size]["spool_bytes"] = spool_bytes
                shutil.rmtree(spool_dir)
                continue
            rows = events.baseline_rows(path)
            before = baseline_seconds(url, rows)
            results[size] = deliver_fresh(url, spool_dir, size)
            results[size]["spool_bytes"] = spool_bytes
            after = baseline_seconds(url, rows)
            base_rate = size / ((before + after) / 2)
            calls = len(rows.tool_calls)
            del rows
            shutil.rmtree(spool_dir)
    main = results[main_size]
    how = "asyncpg COPY" if name == "postgresql" else "sqlite3 executemany, 1,000 rows/txn"
    rows_out.append(
        row(
            f"delivery of {main_size:,} hook events end to end ({name})",
            main["rate"],
            "events/s",
            base_rate,
            "≥ 0.5x",
            compared_with=how + " of the same rows",
            note=main["error"]
            or f"{main['tool_calls']:,} tool_calls ({main['tool_calls_ended']:,} ended; "
            f"baseline {calls:,}); spool {main['spool_bytes'] / 1e6:.0f} MB",
        )
    )
    largest, middle = growth[-1], main_size
    if largest != middle:
        rows_out.append(
            row(
                f"peak RSS delivering {largest:,} events ({name})",
                results[largest]["peak_rss"] / 2**20,
                "MiB",
                results[middle]["peak_rss"] / 2**20,
                "≤ 1.3x",
                compared_with=f"the same for {middle:,}",
                note=f"spool {results[largest]['spool_bytes'] / 1e6:.0f} MB"
                + "".join(
                    f"; {results[n]['error']}" for n in (middle, largest) if results[n]["error"]
                ),
            )
        )
    smallest = growth[0]
    for size in growth:
        rows_out.append(
            row(
                f"how cost grows: delivery rate at {size:,} events ({name})",
                results[size]["rate"],
                "events/s",
                results[smallest]["rate"],
                "",
                compared_with=f"the rate at {smallest:,}",
                note=results[size]["error"]
                or f"{results[size]['seconds']:.1f} s; peak RSS "
                f"{results[size]['peak_rss'] / 2**20:.0f} MiB",
            )
        )
    return rows_out


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--scale", type=float, help="multiply every size by this")
    args = arguments.parse_args()
    for result in run(args.url, args.quick, scale=args.scale):
        print(json.dumps(result))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child_main(*sys.argv[2:5])
    else:
        main()
