"""`session-db hook` wall time against `python -c pass`, the cost of starting Python at all.

Each round runs, in turn: `python -c pass`, and `session-db hook` with a realistic
PreToolUse payload on stdin (an Edit of a ~2 KB file) writing to a fresh spool. A
deliverer is "running" throughout (this script holds its lock), which is the steady
state: the hook checks for one and does not start another. Prints both medians and the
ratio. Target: within 2.5x.

    python tests/benchmarks/bench_hook.py [--rounds 60]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from session_db.claude import spool

PAYLOAD = {
    "session_id": "4d5611e5-241a-462a-8d15-5122611a9569",
    "transcript_path": "/home/user/.claude/projects/-home-user-app/4d5611e5.jsonl",
    "cwd": "/home/user/app",
    "permission_mode": "default",
    "hook_event_name": "PreToolUse",
    "tool_name": "Edit",
    "tool_input": {
        "file_path": "/home/user/app/src/module.py",
        "old_string": "def f():\n    return 1\n" * 40,
        "new_string": "def f():\n    return 2\n" * 40,
    },
    "tool_use_id": "toolu_01ABCDEFGHIJKLMNOPQRSTUV",
}


def hook_command() -> list[str]:
    """The installed console script next to this interpreter, as Claude Code would run it."""
    script = Path(sys.executable).with_name("session-db")
    if not script.exists():
        found = shutil.which("session-db")
        if found is None:
            sys.exit("session-db is not installed in this environment (pip install -e .)")
        script = Path(found)
    return [str(script), "hook"]


def timed(command: list[str], stdin: bytes, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, input=stdin, env=env, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=60)
    args = parser.parse_args()
    payload = json.dumps(PAYLOAD).encode()
    with tempfile.TemporaryDirectory(prefix="session-db-bench-") as folder:
        spool_folder = os.path.join(folder, "spool")
        env = {**os.environ, "SESSION_DB_SPOOL_DIR": spool_folder}
        env.pop("SESSION_DB_AUTO_DELIVER", None)
        running = spool.FileLock(spool_folder, spool.DELIVERER_LOCK)
        running.acquire()
        baseline, hook = [], []
        command = hook_command()
        for _ in range(3):  # warm the page cache for both
            timed([sys.executable, "-c", "pass"], b"", env)
            timed(command, payload, env)
        for _ in range(args.rounds):
            baseline.append(timed([sys.executable, "-c", "pass"], b"", env))
            hook.append(timed(command, payload, env))
        running.release()
        with open(os.path.join(spool_folder, spool.LIVE_FILE), "rb") as handle:
            spooled = sum(1 for _ in handle)
    if spooled != args.rounds + 3:
        sys.exit(f"expected {args.rounds + 3} spooled events, found {spooled}")
    base_ms = statistics.median(baseline) * 1000
    hook_ms = statistics.median(hook) * 1000
    print(f"rounds: {args.rounds}; payload {len(payload)} bytes; events spooled: {spooled}")
    print(f"python -c pass   median {base_ms:7.2f} ms")
    print(f"session-db hook  median {hook_ms:7.2f} ms")
    print(f"ratio            {hook_ms / base_ms:7.2f}x   (target <= 2.5x)")


if __name__ == "__main__":
    main()
