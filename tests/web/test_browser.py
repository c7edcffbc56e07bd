"""The dashboard in a real browser: Debian's Chromium driven by Playwright, on both engines.

The server is uvicorn in a thread on a free port, reading the test database through an
engine of its own; the test writes through another, as a hook delivery would.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool
from support import isolated_settings
from web_support import CHILD, OTHER, PARENT, PASSWORD, Seeded, add_hook_event, live_server, seed

from session_db.database import create_engine

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless Chromium: the system's, never a downloaded one."""
    assert Path(CHROMIUM).exists(), "Chromium is not installed (apt-get install chromium)"
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        await browser.close()


async def write(url: URL, action) -> object:  # type: ignore[no-untyped-def]
    """Run `action(engine)` on an engine of its own, as another process would."""
    engine = create_engine(isolated_settings(), url=url, poolclass=NullPool)
    try:
        return await action(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def seeded(cli_db: URL) -> Seeded:
    return await write(cli_db, seed)  # type: ignore[return-value]


@pytest.fixture
def server(cli_db: URL, seeded: Seeded) -> Iterator[str]:
    with live_server(cli_db) as base:
        yield base


class Watched:
    """A page and the console errors and uncaught exceptions it has shown."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


@pytest.fixture
async def watched(browser: Browser) -> AsyncIterator[Watched]:
    context = await browser.new_context()
    try:
        yield Watched(await context.new_page())
    finally:
        await context.close()


async def body_rows(page: Page, table: str) -> list[str]:
    return await page.locator(f"#{table} tbody tr").all_inner_texts()


async def test_every_page_loads_without_console_errors_or_the_password(
    server: str, watched: Watched
) -> None:
    for path in [
        "/",
        "/sessions",
        f"/sessions/{PARENT}",
        f"/sessions/{CHILD}",
        "/usage?breakdown=1",
        "/nowhere",
    ]:
        response = await watched.page.goto(server + path)
        assert response is not None
        assert response.status == (404 if path == "/nowhere" else 200), path
        await watched.page.wait_for_timeout(500)  # scripts run, the stream connects
        assert PASSWORD not in await watched.page.content(), path
        footer = await watched.page.locator("footer").inner_text()
        assert "Read-only view of" in footer and ("127.0.0.1" in footer or "sqlite" in footer)
    # The 404 itself is the only error the browser reports.
    assert len(watched.errors) == 1 and "404" in watched.errors[0], watched.errors


async def test_search_filters_the_sessions_table(server: str, watched: Watched) -> None:
    page = watched.page
    await page.goto(server + "/sessions")
    assert len(await body_rows(page, "sessions")) == 3
    await page.get_by_label("Search").fill("ranking")
    await page.get_by_label("Search").press("Enter")
    await page.wait_for_url("**/sessions?q=ranking*")
    rows = await body_rows(page, "sessions")
    assert len(rows) == 1 and CHILD in rows[0]
    await page.get_by_label("Agent").select_option("amp")
    await page.get_by_label("Search").fill("")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**agent=amp*")
    rows = await body_rows(page, "sessions")
    assert len(rows) == 1 and OTHER in rows[0]
    assert watched.errors == []


async def test_clicking_a_column_sorts_by_it_and_again_reverses(
    server: str, watched: Watched
) -> None:
    page = watched.page
    await page.goto(server + "/sessions")
    await page.locator("#sessions th a[data-sort=cost]").click()
    await page.wait_for_url("**sort=cost&dir=desc*")
    assert [PARENT in r for r in await body_rows(page, "sessions")] == [True, False, False]
    await page.locator("#sessions th a[data-sort=cost]").click()
    await page.wait_for_url("**sort=cost&dir=asc*")
    rows = await body_rows(page, "sessions")
    assert CHILD in rows[0] and PARENT in rows[-1]
    # The session page's tables sort in the page itself.
    await page.goto(server + f"/sessions/{PARENT}")
    await page.locator("#models th", has_text="Input").click()
    first = (await body_rows(page, "models"))[0]
    assert first.startswith("claude-sonnet-4-5")
    await page.locator("#models th", has_text="Input").click()
    assert (await body_rows(page, "models"))[0].startswith("claude-opus-4-1")
    assert watched.errors == []


async def test_a_hook_event_appears_on_the_session_page_within_seconds(
    cli_db: URL, seeded: Seeded, server: str, watched: Watched
) -> None:
    page = watched.page
    await page.goto(server + f"/sessions/{PARENT}")
    await page.wait_for_selector("#live-state.on", timeout=5000)
    before = len(await body_rows(page, "events"))
    started = time.monotonic()
    await write(cli_db, lambda engine: add_hook_event(engine, seeded.parent_id, "live probe 4711"))
    await page.locator("#events tbody tr", has_text="live probe 4711").wait_for(timeout=5000)
    assert time.monotonic() - started < 5
    rows = await body_rows(page, "events")
    assert len(rows) == before + 1 and "live probe 4711" in rows[0] and "PreToolUse" in rows[0]
    assert await page.locator("#event-count").inner_text() == "4"
    # Another session's event does not appear here.
    await write(cli_db, lambda engine: add_hook_event(engine, seeded.other_id, "not this one"))
    await page.wait_for_timeout(1000)
    rows = await body_rows(page, "events")
    assert all("not this one" not in row for row in rows)
    # Looked at again and again since (each look starts a little back): sent once.
    assert sum("live probe 4711" in row for row in rows) == 1
    assert watched.errors == []


async def test_the_stream_endpoint_answers_text_event_stream_with_hook_events(
    cli_db: URL, seeded: Seeded, server: str
) -> None:
    async with (
        httpx.AsyncClient(timeout=10) as client,
        client.stream("GET", server + "/api/events/stream", params={"session": PARENT}) as reply,
    ):
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        await write(cli_db, lambda engine: add_hook_event(engine, seeded.parent_id, "streamed"))
        lines: list[str] = []
        async for line in reply.aiter_lines():
            lines.append(line)
            if line.startswith("data:"):
                break
    assert "event: hook" in lines
    assert '"summary": "streamed"' in lines[-1] and '"event_type": "PreToolUse"' in lines[-1]
    assert any(line.startswith("id: ") and "|" in line for line in lines)
