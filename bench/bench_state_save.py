"""StateManager.save() latency with a SyncPool attached, against no callback at all.

Three variants run interleaved in rounds (so machine noise hits them alike):
  baseline   - no on_save_callback
  pool-up    - SyncPool.submit as the callback, database reachable
  pool-down  - SyncPool.submit as the callback, database unreachable (retrying)
Prints the median latency of each and its ratio to the baseline. Target: within 1.2x.
`--quick` runs 5 rounds instead of 15.

    python bench/bench_state_save.py [--url postgresql+asyncpg://...] [--quick]
"""

import socket
import time
from pathlib import Path

from _common import (
    dialect_name,
    fresh_database,
    median_ms,
    parser,
    row,
    scaled,
    settings,
    workdir,
)

from session_db.sync import StateManager, SyncPool

ROUNDS = 15
SAVES_PER_ROUND = 20


def unreachable(url: str, folder: Path) -> str:
    if url.startswith("sqlite"):
        blocker = folder / "not-a-folder"
        blocker.write_text("x")
        return f"sqlite+aiosqlite:///{blocker}/db.sqlite"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from sqlalchemy.engine import make_url

    return make_url(url).set(host="127.0.0.1", port=port).render_as_string(hide_password=False)


def measure(url: str, rounds: int) -> tuple[dict[str, list[float]], dict, dict]:
    """Save latencies of each variant on a migrated database at `url`."""
    with workdir() as tmp:
        root = Path(tmp)
        up = SyncPool(settings=settings(), url=url)
        down = SyncPool(settings=settings(), url=unreachable(url, root), max_attempts=1000)
        sessions = root / "project" / "agents" / "sessions"
        variants = {
            "baseline": StateManager.create(sessions / "baseline", topic="B"),
            "pool-up": StateManager.create(sessions / "up", topic="U", on_save_callback=up.submit),
            "pool-down": StateManager.create(
                sessions / "down", topic="D", on_save_callback=down.submit
            ),
        }
        samples: dict[str, list[float]] = {name: [] for name in variants}
        for round_number in range(rounds):
            for name, manager in variants.items():
                for n in range(SAVES_PER_ROUND):
                    manager.set_git(branch=f"feature/{round_number}-{n}")
                    started = time.perf_counter()
                    manager.save()
                    samples[name].append(time.perf_counter() - started)
        up_stats, down_stats = up.stats(), down.stats()
        up.close(timeout=30)
        down.close(timeout=1)
    return samples, up_stats, down_stats


def run(url: str | None, quick: bool, *, scale: float | None = None) -> list[dict]:
    """StateManager.save() latency with a pool (database up, then down) against none."""
    rounds = scaled(ROUNDS, quick, scale, minimum=3)
    with fresh_database(url) as fresh:
        samples, up_stats, _ = measure(fresh, rounds)
    baseline = median_ms(samples["baseline"])
    saves = rounds * SAVES_PER_ROUND
    return [
        row(
            f"StateManager.save() with a SyncPool, database {state} ({dialect_name(url)})",
            median_ms(samples[name]),
            "ms",
            baseline,
            "≤ 1.2x",
            compared_with="save() with no callback",
            note=f"median of {saves} saves" + (f"; pool: {up_stats}" if name == "pool-up" else ""),
        )
        for name, state in (("pool-up", "up"), ("pool-down", "down"))
    ]


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    rounds = scaled(ROUNDS, args.quick, minimum=3)
    with fresh_database(args.url) as url:
        samples, up_stats, down_stats = measure(url, rounds)
    baseline = median_ms(samples["baseline"])
    print(f"database: {url.split('://')[0]}; {rounds * SAVES_PER_ROUND} saves per variant")
    print(f"{'variant':<10} {'median ms':>10} {'ratio':>7}")
    for name, values in samples.items():
        print(f"{name:<10} {median_ms(values):>10.3f} {median_ms(values) / baseline:>7.2f}")
    print(f"pool-up:   {up_stats}")
    print(f"pool-down: {down_stats}")


if __name__ == "__main__":
    main()
