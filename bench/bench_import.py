"""Transcript import throughput (lines/s) against plain `json.loads` of the same lines.

The data is built here: the real Claude Code session under tests/fixtures/claude-code/
(a parent transcript, an Explore subagent and a compaction run, 1,661 lines) copied
three times per round (once with --quick) under fresh session ids, with message and
request ids made unique per copy, so every copy is new usage and not a replay. One copy
is imported first to warm up (genai-prices' tables, SQLAlchemy's statement cache); then
each round imports a fresh set of copies into the same database, alternating with
`json.loads` of the same lines. Each timed pass starts from a collected heap, so a full
garbage collection that earlier work made due does not land in one side's timing. The
figure is import lines/s against json.loads lines/s, each from its best round (the one
least disturbed by anything else running). Target: at least 0.5.

A second figure is many small sessions, as a Claude Code folder mostly holds: the first
30 lines of each fixture file, under 200 session ids (40 with --quick), imported once
into the same database, against `json.loads` of the same lines. Its note counts the
statements the import sent, which a per-session cost would multiply.

    python bench/bench_import.py [--url URL] [--quick]

`--url` names an empty or migrated database, which is migrated and filled (default: a new
SQLite file), e.g. `postgresql+asyncpg://postgres@127.0.0.1/bench_import` after
`createdb -h 127.0.0.1 -U postgres bench_import`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db.claude.importer import import_transcripts
from session_db.config import Settings
from session_db.database import create_engine
from session_db.migrate import upgrade

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "claude-code" / "spotter"
SESSION = "4d5611e5-241a-462a-8d15-5122611a9569"
TARGET = 0.5
COPIES, ROUNDS = 3, 5
SMALL_SESSIONS, SMALL_LINES = 200, 30


def fixture_files() -> dict[Path, bytes]:
    """The fixture's transcripts by path relative to the fixture folder."""
    return {
        path.relative_to(FIXTURE): path.read_bytes() for path in sorted(FIXTURE.rglob("*.jsonl"))
    }


def write_copies(target: Path, copies: int, tag: str) -> list[bytes]:
    """Write `copies` copies of the fixture under fresh session ids; return all their lines."""
    lines: list[bytes] = []
    project = target / "-home-USER-projects-spotter"
    sessions = [str(uuid.uuid4()) for _ in range(copies)]  # one per copy, for all its files
    for relative, content in fixture_files().items():
        for index, session in enumerate(sessions):
            lines += _write_copy(project, relative, content, session, f"{tag}{index}_")
    return lines


def _write_copy(
    project: Path, relative: Path, content: bytes, session: str, marker: str
) -> list[bytes]:
    """Write one fixture file as session `session`'s; return its lines."""
    data = (
        content.replace(SESSION.encode(), session.encode())
        # Unique per copy, so a copy is new usage and not a replay of another.
        .replace(b'"id":"msg_', b'"id":"msg_' + marker.encode())
        .replace(b'"requestId":"req_', b'"requestId":"req_' + marker.encode())
    )
    path = project / str(relative).replace(SESSION, session)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data.splitlines()


def write_small_sessions(target: Path, count: int, tag: str) -> list[bytes]:
    """Write `count` small sessions (each fixture file cut to its first lines); return
    all their lines."""
    lines: list[bytes] = []
    project = target / "-home-USER-projects-spotter"
    for index in range(count):
        session = str(uuid.uuid4())
        for relative, content in fixture_files().items():
            head = b"".join(content.splitlines(keepends=True)[:SMALL_LINES])
            lines += _write_copy(project, relative, head, session, f"{tag}{index}_")
    return lines


def json_seconds(lines: list[bytes], repeats: int = 5) -> float:
    """The best time of `repeats` runs of `json.loads` over `lines`."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        for line in lines:
            json.loads(line)
        best = min(best, time.perf_counter() - start)
    return best


async def _measure(
    url: str, workdir: Path, copies: int, rounds: int, small: int
) -> list[dict[str, Any]]:
    engine: AsyncEngine = create_engine(Settings(_env_file=None), url=url)  # type: ignore[call-arg]
    try:
        await upgrade(engine, "head")
        warm = workdir / "warm"
        write_copies(warm, 1, "warm")
        await import_transcripts(engine, [warm])
        imports, parses = [], []
        for round_number in range(rounds):
            folder = workdir / f"round{round_number}"
            lines = write_copies(folder, copies, f"r{round_number}x{uuid.uuid4().hex[:6]}")
            # Alternating, in the same rounds, so a busy machine slows both alike.
            parses.append(json_seconds(lines))
            gc.collect()
            start = time.perf_counter()
            report = await import_transcripts(engine, [folder])
            imports.append(time.perf_counter() - start)
            if report.errors or report.lines != len(lines):
                raise RuntimeError(f"the import went wrong: {report.errors or report.lines}")
        small_lines = write_small_sessions(workdir / "small", small, uuid.uuid4().hex[:6])
        small_parse = json_seconds(small_lines)
        statements = _count_statements(engine)
        gc.collect()
        start = time.perf_counter()
        report = await import_transcripts(engine, [workdir / "small"])
        small_import = time.perf_counter() - start
        sa.event.remove(engine.sync_engine, "before_cursor_execute", statements.add)
        if report.errors or report.lines != len(small_lines):
            raise RuntimeError(f"the import went wrong: {report.errors or report.lines}")
        dialect = engine.dialect.name
    finally:
        await engine.dispose()
    # The best round of each: the one least disturbed by anything else on the machine.
    lines_per_s = len(lines) / min(imports)
    baseline = len(lines) / min(parses)
    return [
        {
            "figure": f"transcript import ({dialect}, {len(lines)} lines)",
            "value": round(lines_per_s),
            "unit": "lines/s",
            "baseline": round(baseline),
            "ratio": round(lines_per_s / baseline, 3),
            "target": TARGET,
            "compared_with": "json.loads of the same lines",
            "note": f"best of {rounds} rounds; median ratio "
            f"{statistics.median(p / i for p, i in zip(parses, imports, strict=True)):.3f}",
        },
        {
            "figure": f"transcript import, {small} small sessions ({dialect}, "
            f"{len(small_lines)} lines)",
            "value": round(len(small_lines) / small_import),
            "unit": "lines/s",
            "baseline": round(len(small_lines) / small_parse),
            "ratio": round(small_parse / small_import, 3),
            "target": TARGET,
            "compared_with": "json.loads of the same lines",
            "note": f"{small * len(fixture_files())} files, one import; "
            f"{statements.count:,} statements",
        },
    ]


class _Statements:
    """Counts the statements an engine sends."""

    def __init__(self) -> None:
        self.count = 0

    def add(self, *args: Any) -> None:
        self.count += 1


def _count_statements(engine: AsyncEngine) -> _Statements:
    counter = _Statements()
    sa.event.listen(engine.sync_engine, "before_cursor_execute", counter.add)
    return counter


def run(url: str | None = None, quick: bool = False) -> list[dict[str, Any]]:
    """Measure import lines/s against json.loads lines/s; one row per figure.

    Args:
        url: An empty or migrated database (it is migrated and filled); None makes a
            new SQLite file.
        quick: One copy of the fixture per round and fewer rounds.

    Returns:
        Rows of {"figure", "value", "unit", "baseline", "ratio", "target",
        "compared_with", "note"}: value and baseline in lines/s, ratio = value / baseline
        (higher is better), target the least ratio wanted.
    """
    copies, rounds = (1, 3) if quick else (COPIES, ROUNDS)
    small = SMALL_SESSIONS // 5 if quick else SMALL_SESSIONS
    with tempfile.TemporaryDirectory(prefix="session-db-bench-import-") as folder:
        workdir = Path(folder)
        database = url or f"sqlite+aiosqlite:///{workdir / 'bench.sqlite'}"
        return asyncio.run(_measure(database, workdir, copies, rounds, small))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--url", help="an empty or migrated database (default: a new SQLite file)")
    parser.add_argument("--quick", action="store_true", help="one fixture copy per round")
    args = parser.parse_args()
    rows = run(args.url, args.quick)
    print(f"{'figure':<64} {'lines/s':>9} {'json.loads':>11} {'ratio':>7} {'target':>7}")
    for row in rows:
        verdict = "ok" if row["ratio"] >= row["target"] else "BELOW TARGET"
        print(
            f"{row['figure']:<64} {row['value']:>9} {row['baseline']:>11} "
            f"{row['ratio']:>7.3f} {row['target']:>7}  {verdict}  ({row['note']})"
        )


if __name__ == "__main__":
    main()
