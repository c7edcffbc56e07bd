"""Take the README's dashboard screenshots: the demo project, served, in Chromium.

    python docs/screenshots/take.py        # writes docs/screenshots/*.png

Runs `session-db demo` into a fresh SQLite file in a temp folder. The demo has no hook
events or tool calls, so this records a few for its parent session through the CRUD
layer (as hook delivery does) to give the timeline and the events table something to show.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
PARENT = "2026-02-14_search-feature_k2m9qx"
TOOLS = [
    ("Read", "succeeded", 2),
    ("Grep", "succeeded", 1),
    ("Read", "succeeded", 3),
    ("Edit", "succeeded", 4),
    ("Bash", "failed", 38),
    ("Edit", "succeeded", 3),
    ("Bash", "succeeded", 41),
    ("Write", "succeeded", 2),
    ("Bash", "succeeded", 12),
]


async def add_activity(url: str) -> None:
    from session_db import crud
    from session_db.database import create_engine, get_async_session

    engine = create_engine(url=url)
    async with get_async_session(engine) as db:
        session = await crud.get_session_by_slug(db, PARENT)
        start = session.started_at
        calls, events, at = [], [], start + timedelta(minutes=1)
        for n, (tool, status, seconds) in enumerate(TOOLS):
            end = at + timedelta(seconds=seconds)
            calls.append(
                {
                    "id": uuid.uuid4(),
                    "session_id": session.id,
                    "tool_use_id": f"toolu_demo_{n}",
                    "tool_name": tool,
                    "status": status,
                    "started_at": at,
                    "ended_at": end,
                    "duration_ms": seconds * 1000,
                    "error": "2 tests failed" if status == "failed" else None,
                }
            )
            for event_type, moment in (("PreToolUse", at), ("PostToolUse", end)):
                events.append(
                    {
                        "session_id": session.id,
                        "event_type": event_type,
                        "tool_name": tool,
                        "agent_type": "build",
                        "summary": f"{tool} {'started' if event_type == 'PreToolUse' else status}",
                        "occurred_at": moment,
                        "payload": {"hook_event_name": event_type},
                    }
                )
            at = end + timedelta(seconds=20)
        await crud.save_tool_calls(db, calls)
        await crud.add_agent_logs(db, events)
    await engine.dispose()


def main() -> None:
    import uvicorn
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / 'demo.sqlite'}"
        env = {**os.environ, "SESSION_DB_URL": url}
        subprocess.run(
            [sys.executable, "-m", "session_db", "demo", "--path", str(Path(folder) / "demo")],
            env=env,
            check=True,
            capture_output=True,
        )
        asyncio.run(add_activity(url))
        os.environ["SESSION_DB_URL"] = url
        from session_db.web import create_app

        server = uvicorn.Server(uvicorn.Config(create_app(), port=8399, log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        while not server.started:
            time.sleep(0.05)
        pages = {
            "overview": "/",
            "sessions": "/sessions?sort=cost&dir=desc",
            "session": f"/sessions/{PARENT}",
            "usage": "/usage?breakdown=1",
        }
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path="/usr/bin/chromium", args=["--no-sandbox"]
            )
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name, path in pages.items():
                page.goto(f"http://127.0.0.1:8399{path}")
                page.wait_for_timeout(400)
                page.screenshot(path=HERE / f"{name}.png", full_page=True)
            browser.close()
        server.should_exit = True


if __name__ == "__main__":
    main()
