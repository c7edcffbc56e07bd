"""`session-db watch` says what each sync did, as it happens."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import URL

from session_db.sync import StateManager

SCRIPT = str(Path(sys.executable).with_name("session-db"))
PLAN = {
    "checkpoints": [
        {
            "id": 1,
            "title": "One",
            "task_groups": [
                {
                    "id": "1.1",
                    "title": "G",
                    "tasks": [
                        {"id": "1.1.1", "title": "first", "status": "completed"},
                        {"id": "1.1.2", "title": "second", "depends_on": ["1.1.1"]},
                    ],
                }
            ],
        }
    ]
}


@pytest.mark.slow
def test_watch_prints_one_line_per_sync_with_what_changed(cli_db: URL, tmp_path: Path) -> None:
    sessions = tmp_path / "project" / "agents" / "sessions"
    StateManager.create(sessions / "fix-login", topic="Fix login")
    env = {**os.environ, "SESSION_DB_URL": cli_db.render_as_string(hide_password=False)}
    watcher = subprocess.Popen(
        [SCRIPT, "watch", str(tmp_path / "project"), "--delay", "0.1"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background inherits SIGINT ignored.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in watcher.stdout],  # type: ignore[union-attr]
        daemon=True,
    ).start()

    def next_line() -> str:
        try:
            return lines.get(timeout=30).rstrip("\n")
        except queue.Empty:
            raise AssertionError("watch said nothing for 30 s") from None

    try:
        assert "(1 folder synced)" in next_line()
        manager = StateManager(sessions / "fix-login")
        manager.transition_to("plan")
        assert next_line() == "synced fix-login: phase spec → plan"
        (sessions / "fix-login" / "plan.json").write_text(json.dumps(PLAN))
        assert next_line() == "synced fix-login: phase plan, 1 of 2 tasks done (was 0 of 0)"
        (sessions / "fix-login" / "state.json").write_text('{"session_id": \n')
        said = next_line()
        assert said.startswith("fix-login: error: state.json is not valid JSON")
        watcher.send_signal(signal.SIGINT)
        watcher.wait(timeout=30)
        time.sleep(0.5)  # the reader thread takes the last lines
        rest = [lines.get_nowait() for _ in range(lines.qsize())]
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0
    assert rest and rest[-1].startswith("stopped: 3 syncs, 0 failed")
