"""StateManager.save() latency with a SyncPool attached, against no callback at all.

Three variants run interleaved in rounds (so machine noise hits them alike):
  baseline   - no on_save_callback
  pool-up    - SyncPool.submit as the callback, database reachable
  pool-down  - SyncPool.submit as the callback, database unreachable (retrying)
Prints the median latency of each and its ratio to the baseline. Target: within 1.2x.

    python tests/benchmarks/bench_state_save.py [--url postgresql+asyncpg://...]
"""

import socket
import time
from pathlib import Path

from _common import database_url, median_ms, migrated_engine, parser, run, settings, workdir

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


def main() -> None:
    args = parser(__doc__ or "").parse_args()
    with workdir() as tmp:
        root = Path(tmp)
        url = database_url(args.url, root)
        engine = run(migrated_engine(url))
        run(engine.dispose())
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
        for round_number in range(ROUNDS):
            for name, manager in variants.items():
                for n in range(SAVES_PER_ROUND):
                    manager.set_git(branch=f"feature/{round_number}-{n}")
                    started = time.perf_counter()
                    manager.save()
                    samples[name].append(time.perf_counter() - started)
        up_stats, down_stats = up.stats(), down.stats()
        up.close(timeout=30)
        down.close(timeout=1)
    baseline = median_ms(samples["baseline"])
    print(f"database: {url.split('://')[0]}; {ROUNDS * SAVES_PER_ROUND} saves per variant")
    print(f"{'variant':<10} {'median ms':>10} {'ratio':>7}")
    for name, values in samples.items():
        print(f"{name:<10} {median_ms(values):>10.3f} {median_ms(values) / baseline:>7.2f}")
    print(f"pool-up:   {up_stats}")
    print(f"pool-down: {down_stats}")


if __name__ == "__main__":
    main()
