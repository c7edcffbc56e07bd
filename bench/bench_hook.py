"""`session-db hook` wall time against `python -c pass`, the cost of starting Python at all.

The hook runs as Claude Code runs it, `python -m session_db hook` with a realistic
PreToolUse payload on stdin (an Edit, ~1.5 KB), writing to a fresh spool folder, with
auto-delivery on (`SESSION_DB_AUTO_DELIVER=1`) and `SESSION_DB_URL` naming a migrated
temp SQLite file: the first hook starts a background deliverer, as in real use, and it
delivers while the rest run. Two figures:

- median wall time, single hooks interleaved with `python -c pass`. Target: within 2.5x.
- p95 wall time in bursts of 50 hooks started at once (each timed from its own start),
  against bursts of 50 `python -c pass`, alternating. Target: within 3x.

At the end the deliverer (its pid is in `deliverer.lock`) is stopped, and the events
the hooks spooled are checked.

    python bench/bench_hook.py [--quick] [--rounds 60] [--bursts 4]
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

from _common import clean_env, fresh_database, parser, percentile, row, scaled, settings

from session_db.claude import spool

ROUNDS = 60
BURSTS = 4
BURST_SIZE = 50
PAYLOAD = {
    "session_id": "4d5611e5-241a-462a-8d15-5122611a9569",
    "transcript_path": "/home/user/.claude/projects/-home-user-app/4d5611e5.jsonl",
    "cwd": "/home/user/app",
    "permission_mode": "default",
    "hook_event_name": "PreToolUse",
    "tool_name": "Edit",
    "tool_input": {
        "file_path": "/home/user/app/src/module.py",
        "old_string": "def f():\n    return 1\n" * 30,
        "new_string": "def f():\n    return 2\n" * 30,
    },
    "tool_use_id": "toolu_01ABCDEFGHIJKLMNOPQRSTUV",
}
HOOK = [sys.executable, "-m", "session_db", "hook"]
PASS = [sys.executable, "-c", "pass"]


def timed(command: list[str], stdin: bytes, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, input=stdin, env=env, check=True)
    return time.perf_counter() - start


def burst(command: list[str], stdin: bytes, env: dict[str, str], size: int) -> list[float]:
    """Start `size` processes at once; return each one's wall time from its own start."""
    started: dict[int, float] = {}
    processes: dict[int, subprocess.Popen[bytes]] = {}
    for _ in range(size):
        start = time.perf_counter()
        process = subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
        assert process.stdin is not None
        if stdin:
            process.stdin.write(stdin)
        process.stdin.close()
        started[process.pid] = start
        processes[process.pid] = process
    times: list[float] = []
    while len(times) < size:  # reap in the order they end, stamping each as it does
        pid, status = os.wait()
        end = time.perf_counter()
        if pid not in processes:
            continue
        processes[pid].returncode = os.waitstatus_to_exitcode(status)
        if processes[pid].returncode != 0:
            raise RuntimeError(f"{command} exited {processes[pid].returncode}")
        times.append(end - started[pid])
    return times


def stop_deliverers(directory: str, timeout: float = 15.0) -> int:
    """Stop every deliverer running on the spool (by the pid in its lock); return how many."""
    stopped = 0
    deadline = time.monotonic() + timeout
    while spool.deliverer_running(directory) and time.monotonic() < deadline:
        pid = spool.deliverer_pid(directory)
        if pid is None:
            time.sleep(0.05)
            continue
        os.kill(pid, signal.SIGTERM if time.monotonic() < deadline - 5 else signal.SIGKILL)
        stopped += 1
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    return stopped


def wait_delivered(directory: str, seconds: float) -> bool:
    from session_db.claude.deliver import pending_events

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not pending_events(directory):
            return True
        time.sleep(0.2)
    return not pending_events(directory)


async def _count(url: str) -> int:
    from sqlalchemy import text

    from session_db.database import create_engine

    engine = create_engine(settings(), url=url)
    try:
        async with engine.connect() as connection:
            return (await connection.execute(text("SELECT count(*) FROM agent_logs"))).scalar()
    finally:
        await engine.dispose()


def measure(rounds: int, bursts: int) -> dict[str, Any]:
    stdin = json.dumps(PAYLOAD).encode()
    with fresh_database(None) as url, tempfile.TemporaryDirectory(prefix="bench-hook-") as tmp:
        spool_dir = os.path.join(tmp, "spool")
        env = clean_env(
            SESSION_DB_SPOOL_DIR=spool_dir,
            SESSION_DB_AUTO_DELIVER="1",
            SESSION_DB_URL=url,
            CLAUDE_PROJECT_DIR="/home/user/app",
        )
        hooks = 0
        try:
            for _ in range(3):  # warm the page cache; the first hook starts the deliverer
                timed(PASS, b"", env)
                timed(HOOK, stdin, env)
                hooks += 1
            single_pass, single_hook = [], []
            for _ in range(rounds):
                single_pass.append(timed(PASS, b"", env))
                single_hook.append(timed(HOOK, stdin, env))
                hooks += 1
            burst_pass, burst_hook = [], []
            for _ in range(bursts):
                burst_pass.extend(burst(PASS, b"", env, BURST_SIZE))
                burst_hook.extend(burst(HOOK, stdin, env, BURST_SIZE))
                hooks += BURST_SIZE
            drained = wait_delivered(spool_dir, 120)
        finally:
            stopped = stop_deliverers(spool_dir)
        if not drained:  # say why, from the spool's own logs
            for name in (spool.DELIVERER_LOG, spool.HOOK_LOG):
                log = os.path.join(spool_dir, name)
                if os.path.exists(log):
                    with open(log, encoding="utf-8", errors="replace") as handle:
                        tail = handle.readlines()[-15:]
                    print(f"--- {name} (last lines)", *tail, sep="", file=sys.stderr)
        delivered = asyncio.run(_count(url))
        rejected = os.path.exists(os.path.join(spool_dir, spool.REJECTED_FILE))
    return {
        "payload_bytes": len(stdin),
        "single_pass": single_pass,
        "single_hook": single_hook,
        "burst_pass": burst_pass,
        "burst_hook": burst_hook,
        "hooks": hooks,
        "delivered": delivered,
        "drained": drained,
        "deliverers_stopped": stopped,
        "rejected": rejected,
    }


def run(
    url: str | None,
    quick: bool,
    *,
    scale: float | None = None,
    rounds: int | None = None,
    bursts: int | None = None,
) -> list[dict[str, Any]]:
    """The hook's figures; `url` is not used (the hook is timed against a temp SQLite)."""
    rounds = rounds or scaled(ROUNDS, quick, None if scale is None else max(scale, 0.3), 20)
    bursts = bursts or (2 if quick or (scale is not None and scale < 1) else BURSTS)
    m = measure(rounds, bursts)
    delivery = (
        f"deliverer delivered {m['delivered']}/{m['hooks']} events"
        + ("" if m["drained"] else " (spool not drained in 120 s)")
        + (", some rejected" if m["rejected"] else "")
        + f", {m['deliverers_stopped']} stopped"
    )
    return [
        row(
            "session-db hook, median wall time",
            statistics.median(m["single_hook"]) * 1000,
            "ms",
            statistics.median(m["single_pass"]) * 1000,
            "≤ 2.5x",
            compared_with="python -c pass",
            note=f"{rounds} rounds, {m['payload_bytes']} B payload; {delivery}",
        ),
        row(
            f"session-db hook, p95 in bursts of {BURST_SIZE} concurrent",
            percentile(m["burst_hook"], 0.95) * 1000,
            "ms",
            percentile(m["burst_pass"], 0.95) * 1000,
            "≤ 3x",
            compared_with=f"python -c pass, bursts of {BURST_SIZE}",
            note=f"{bursts} bursts each, alternating",
        ),
    ]


def main() -> None:
    arguments = parser(__doc__ or "")
    arguments.add_argument("--rounds", type=int, help=f"single-hook rounds (default {ROUNDS})")
    arguments.add_argument("--bursts", type=int, help=f"bursts of each (default {BURSTS})")
    args = arguments.parse_args()
    for result in run(None, args.quick, rounds=args.rounds, bursts=args.bursts):
        print(json.dumps(result))


if __name__ == "__main__":
    main()
