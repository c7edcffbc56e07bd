"""Project open: sync_project over 1,000 session folders, first time and again unchanged.

Prints both durations and their ratio. Target: the second run at least 10x faster
(unchanged / first at most 0.1x). `--quick` syncs 100 folders.

    python bench/bench_project_open.py [--url postgresql+asyncpg://...] [--folders N] [--quick]
"""

import asyncio
import json
import time
from pathlib import Path

from _common import dialect_name, fresh_database, migrated_engine, parser, row, scaled, workdir

from session_db.sync import sync_project
from session_db.sync.formats import STATE_V2_SCHEMA

FOLDERS = 1000


def plan(n: int) -> dict:
    return {
        "session_id": f"s{n}",
        "checkpoints": [
            {
                "id": c,
                "title": f"Checkpoint {c}",
                "task_groups": [
                    {
                        "id": f"{c}.1",
                        "title": "Group",
                        "tasks": [
                            {
                                "id": f"{c}.1.{t}",
                                "title": f"Task {t}",
                                "depends_on": [f"{c}.1.{t - 1}"] if t > 1 else [],
                            }
                            for t in range(1, 4)
                        ],
                    }
                ],
            }
            for c in range(1, 3)
        ],
    }


def make_project(root: Path, count: int) -> None:
    sessions = root / "agents" / "sessions"
    for n in range(count):
        folder = sessions / f"2026-02-{n % 28 + 1:02}_session-{n:04}"
        folder.mkdir(parents=True)
        state = {
            "$schema": STATE_V2_SCHEMA,
            "session_id": folder.name,
            "topic": f"Session {n}",
            "session_type": "full",
            "created_at": "2026-02-16T10:00:00Z",
            "updated_at": "2026-02-16T12:00:00+00:00",
            "current_phase": ("spec", "plan", "build", "docs", "complete")[n % 5],
            "status": "complete" if n % 5 == 4 else "active",
            "build_progress": {"checkpoints_total": 2, "checkpoints_completed": [1]},
        }
        (folder / "state.json").write_text(json.dumps(state))
        if n % 2 == 0:
            (folder / "plan.json").write_text(json.dumps(plan(n)))


async def measure(url: str, root: Path) -> tuple[float, float, dict, dict]:
    engine = await migrated_engine(url)
    try:
        started = time.perf_counter()
        first = await sync_project(root, engine=engine)
        first_seconds = time.perf_counter() - started
        started = time.perf_counter()
        second = await sync_project(root, engine=engine)
        second_seconds = time.perf_counter() - started
    finally:
        await engine.dispose()
    return first_seconds, second_seconds, first.counts, second.counts


def run(
    url: str | None, quick: bool, *, scale: float | None = None, folders: int | None = None
) -> list[dict]:
    """The unchanged sync's time against the first one's, on a fresh database."""
    count = folders or scaled(FOLDERS, quick, scale, minimum=10)
    with workdir() as tmp, fresh_database(url) as fresh:
        root = Path(tmp) / "project"
        make_project(root, count)
        first, second, first_counts, _ = asyncio.run(measure(fresh, root))
    return [
        row(
            f"project open, unchanged sync of {count:,} session folders ({dialect_name(url)})",
            second,
            "s",
            first,
            "≤ 0.1x",
            compared_with="the first sync",
            note=f"first sync: {first_counts}",
        )
    ]


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--folders", type=int, default=FOLDERS, help="session folders")
    args = arguments.parse_args()
    count = args.folders
    with workdir() as tmp, fresh_database(args.url) as url:
        root = Path(tmp) / "project"
        make_project(root, count)
        first, second, first_counts, second_counts = asyncio.run(measure(url, root))
    print(f"database: {url.split('://')[0]}; {count} session folders")
    print(f"first sync:     {first:8.3f} s  {first_counts}")
    print(f"unchanged sync: {second:8.3f} s  {second_counts}")
    print(f"ratio first/unchanged: {first / second:.1f}x (target >= 10x)")


if __name__ == "__main__":
    main()
