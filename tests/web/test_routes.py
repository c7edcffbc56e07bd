"""The dashboard's routes through httpx's ASGI transport, on both engines."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from web_support import CHILD, OTHER, PARENT, Seeded, add_hook_event, seed

from session_db import crud
from session_db.database import get_async_session
from session_db.web import create_app

PAGES = ["/", "/sessions", f"/sessions/{PARENT}", f"/sessions/{CHILD}", "/usage"]


@pytest.fixture
async def seeded(engine: AsyncEngine) -> Seeded:
    return await seed(engine)


@pytest.fixture
async def client(engine: AsyncEngine, seeded: Seeded) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
        yield client


def rows(html: str, table_id: str) -> list[str]:
    """The text of each body row of the table with this id."""
    match = re.search(rf'<table[^>]*id="{table_id}".*?<tbody>(.*?)</tbody>', html, re.S)
    assert match, f"no table #{table_id}"
    return [re.sub(r"<[^>]+>", " ", row) for row in re.findall(r"<tr.*?</tr>", match[1], re.S)]


def slugs_in_order(html: str) -> list[str]:
    return re.findall(r'<td class="slug">([^<]+)</td>', html)


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_answers_200_with_html_and_only_its_own_assets(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in response.headers["content-security-policy"]
    sources = re.findall(r'(?:src|href)="([^"]+)"', response.text)
    assert sources and all(not re.match(r"(https?:)?//", source) for source in sources), sources


@pytest.mark.parametrize("path", ["/static/app.css", "/static/app.js", "/static/favicon.svg"])
async def test_the_static_assets_are_served_from_the_package(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.status_code == 200
    text = response.text.replace("http://www.w3.org/2000/svg", "")  # a namespace, not a fetch
    assert "http://" not in text and "https://" not in text


@pytest.mark.parametrize("path", [*PAGES, "/api/events/stream", "/healthz"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_no_route_accepts_a_write_method(
    client: httpx.AsyncClient, path: str, method: str
) -> None:
    response = await client.request(method, path)
    assert response.status_code == 405


async def test_overview_draws_charts_by_model_and_project_and_lists_active_and_costly(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get("/")).text
    assert html.count('<svg class="chart"') == 4
    # Canonical model names: the dated sonnet id is charted as claude-sonnet-4-5.
    assert "claude-sonnet-4-5" in html and "claude-sonnet-4-5-20250929" not in html
    assert "search-app" in html and "auth-service" in html
    assert "gpt-4o" in html
    active = rows(html, "active")
    assert len(active) == 1 and "Full-text search" in active[0]
    costly = rows(html, "costly")
    assert ["Full-text search" in costly[0], "Harden authentication" in costly[1]] == [True, True]
    # The window's total: every agent run of the seed.
    assert "$5.5000" in html


async def test_search_matches_title_slug_and_project_name(client: httpx.AsyncClient) -> None:
    by_title = (await client.get("/sessions", params={"q": "ranking"})).text
    assert slugs_in_order(by_title) == [CHILD]
    by_slug = (await client.get("/sessions", params={"q": "a1b2c3"})).text
    assert slugs_in_order(by_slug) == [OTHER]
    by_project = (await client.get("/sessions", params={"q": "SEARCH-APP"})).text
    assert sorted(slugs_in_order(by_project)) == sorted([PARENT, CHILD])
    nothing = (await client.get("/sessions", params={"q": "100%_"})).text
    assert slugs_in_order(nothing) == [] and "No sessions match." in nothing


async def test_filters_by_agent_phase_and_status(client: httpx.AsyncClient) -> None:
    amp = (await client.get("/sessions", params={"agent": "amp"})).text
    assert slugs_in_order(amp) == [OTHER]
    assert '<option value="amp" selected>' in amp
    building = (await client.get("/sessions", params={"phase": "build"})).text
    assert slugs_in_order(building) == [PARENT]
    done = await client.get("/sessions", params={"status": "completed", "agent": "claude-code"})
    assert slugs_in_order(done.text) == [CHILD]


async def test_columns_sort_on_the_server_both_ways(client: httpx.AsyncClient) -> None:
    cheap_first = (await client.get("/sessions", params={"sort": "cost", "dir": "asc"})).text
    assert slugs_in_order(cheap_first) == [CHILD, OTHER, PARENT]
    dear_first = (await client.get("/sessions", params={"sort": "cost", "dir": "desc"})).text
    assert slugs_in_order(dear_first) == [PARENT, OTHER, CHILD]
    # The sorted column's link flips the direction.
    assert 'href="?sort=cost&amp;dir=asc"' in dear_first
    by_title = (await client.get("/sessions", params={"sort": "title", "dir": "asc"})).text
    assert slugs_in_order(by_title) == [CHILD, PARENT, OTHER]


async def test_an_unknown_sort_or_phase_is_a_400_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/sessions", params={"sort": "bogus"})
    assert response.status_code == 400 and "sort" in response.text
    response = await client.get("/sessions", params={"phase": "bogus"})
    assert response.status_code == 400 and "phase" in response.text


async def test_pages_of_fifty(engine: AsyncEngine, client: httpx.AsyncClient) -> None:
    async with get_async_session(engine) as db:
        await crud.ensure_sessions(db, [{"session_slug": f"bulk-{n:03}"} for n in range(60)])
    first = (await client.get("/sessions", params={"sort": "slug", "dir": "asc"})).text
    assert len(slugs_in_order(first)) == 50 and "63 sessions, page 1 of 2" in first
    assert 'href="?sort=slug&amp;dir=asc&amp;page=2" rel="next"' in first
    second = (await client.get("/sessions", params={"sort": "slug", "dir": "asc", "page": 2})).text
    assert len(slugs_in_order(second)) == 13 and 'rel="prev"' in second


async def test_a_session_page_shows_tree_timeline_tasks_threads_tokens_and_events(
    client: httpx.AsyncClient,
) -> None:
    html = (await client.get(f"/sessions/{PARENT}")).text
    tree = rows(html, "tree")
    assert len(tree) == 2
    assert "$3.2500" in tree[0] and "$3.7500" in tree[0]  # own, and with the subagent
    assert "Compare ranking functions" in tree[1]
    # One lane per tool and one per subagent; a bar per call.
    timeline = re.search(r'<svg class="timeline".*?</svg>', html, re.S)
    assert timeline
    assert timeline[0].count("<rect") == 4
    assert "Bash: failed, 20,000 ms — exit code 1" in timeline[0]
    models = rows(html, "models")
    assert [re.split(r"\s+", row.strip())[0] for row in models] == [
        "claude-sonnet-4-5",
        "claude-opus-4-1",
        "claude-haiku-4-5",
    ]
    assert "210,000" in models[0]  # input of the dated and undated sonnet runs together
    tasks = rows(html, "tasks")
    assert [re.split(r"\s+", row.strip())[0] for row in tasks] == ["1.1", "1.2", "1.10"]
    assert "done" in tasks[0] and "ready" in tasks[1] and "waiting  for 1.2" in tasks[2]
    assert "planning" in rows(html, "threads")[0] and " 2 " in rows(html, "threads")[0]
    events = rows(html, "events")
    assert [re.split(r"\s+", row.strip())[2] for row in events] == [
        "PostToolUse",
        "PreToolUse",
        "SessionStart",
    ]
    assert 'data-stream="/api/events/stream?session=' in html


async def test_a_session_is_found_by_id_too(client: httpx.AsyncClient, seeded: Seeded) -> None:
    response = await client.get(f"/sessions/{seeded.other_id}")
    assert response.status_code == 200 and "Harden authentication" in response.text


async def test_an_unknown_session_or_page_is_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/sessions/no-such-session")
    assert response.status_code == 404 and "no-such-session" in response.text
    assert (await client.get("/nowhere")).status_code == 404


async def test_an_empty_database_shows_empty_pages(engine: AsyncEngine) -> None:
    transport = httpx.ASGITransport(app=create_app(engine))
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
        overview = await client.get("/")
        listing = await client.get("/sessions")
    assert overview.status_code == listing.status_code == 200
    assert "No usage recorded yet." in overview.text and "No session is active." in overview.text
    assert "No sessions match." in listing.text


async def test_a_bad_stream_cursor_or_no_session_is_a_400(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/api/events/stream", params={"session": PARENT, "after": "yesterday"}
    )
    assert response.status_code == 400 and "after" in response.text
    response = await client.get("/api/events/stream")
    assert response.status_code == 400 and "session" in response.text
    response = await client.get("/api/events/stream", params={"session": "nope"})
    assert response.status_code == 404


async def test_the_footer_names_the_database(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    html = (await client.get("/")).text
    assert engine.url.render_as_string(hide_password=True) in html


class StatementCounter:
    """Counts the statements an engine runs."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: object) -> None:
        self.count += 1


@pytest.mark.parametrize("path", ["/", "/sessions", f"/sessions/{PARENT}"])
async def test_a_page_runs_as_many_statements_at_ten_times_the_rows(
    engine: AsyncEngine, client: httpx.AsyncClient, seeded: Seeded, path: str
) -> None:
    counter = StatementCounter(engine)
    await client.get(path)
    before, counter.count = counter.count, 0
    assert before > 0
    async with get_async_session(engine) as db:
        children = await crud.ensure_sessions(
            db, [{"session_slug": f"more-{n}", "source_app": f"agent-{n}"} for n in range(10)]
        )
        await crud.link_new_children(
            db,
            [
                {"parent_session_id": seeded.parent_id, "child_session_id": child_id}
                for child_id, _ in children.values()
            ],
        )
        for child_id, _ in children.values():
            await crud.create_agent(
                db, {"session_id": child_id, "agent_type": "x", "model": f"model-{child_id}"}
            )
    for n in range(30):
        await add_hook_event(engine, seeded.parent_id, f"more {n}")
    counter.count = 0
    await client.get(path)
    assert counter.count == before


async def test_the_tree_rolls_cost_up_through_every_level(
    engine: AsyncEngine, client: httpx.AsyncClient, seeded: Seeded
) -> None:
    async with get_async_session(engine) as db:
        grandchild = await crud.create_session(
            db, {"session_slug": "grandchild", "total_cost": "0.25", "total_tokens": 1_000}
        )
        await crud.link_sessions(
            db, {"parent_session_id": seeded.child_id, "child_session_id": grandchild.id}
        )
    tree = rows((await client.get(f"/sessions/{PARENT}")).text, "tree")
    assert len(tree) == 3
    assert "$3.2500" in tree[0] and "$4.0000" in tree[0]  # 3.25 + 0.50 + 0.25
    assert "$0.7500" in tree[1] and "grandchild" in tree[2]
    assert 'class="depth-2"' in (await client.get(f"/sessions/{PARENT}")).text


async def test_usage_page_shows_the_cli_report_with_totals_and_cost_sources(
    client: httpx.AsyncClient,
) -> None:
    daily = (await client.get("/usage", params={"timezone": "UTC"})).text
    days = rows(daily, "usage")
    # The seed's agent runs, dated by their start: 2026-02-10 (gpt-4o) and 2026-02-14.
    assert [row.split()[0] for row in days] == ["2026-02-10", "2026-02-14"]
    assert "$1.7500" in days[0] and "$3.7500" in days[1]  # 1.60 + 1.10 + 0.55 + 0.50
    assert "$5.5000" in daily  # the total row
    assert "Costs: 5 reported, 0 computed, 0 unpriced; times in UTC." in daily
    by_model = (await client.get("/usage", params={"breakdown": "1"})).text
    assert "└ claude-sonnet-4-5" in by_model and "claude-sonnet-4-5-20250929" not in by_model
    sessions = rows((await client.get("/usage", params={"period": "session"})).text, "usage")
    assert len(sessions) == 3


async def test_usage_page_filters_by_agent_project_and_dates(client: httpx.AsyncClient) -> None:
    none = (await client.get("/usage", params={"agent": "codex"})).text
    assert "No usage recorded for these filters." in none and 'id="usage"' not in none
    ranged = (
        await client.get("/usage", params={"since": "2026-02-14", "until": "2026-02-14"})
    ).text
    assert [row.split()[0] for row in rows(ranged, "usage")] == ["2026-02-14"]


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"period": "hourly"}, "period"),
        ({"agent": "cursor"}, "agent"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-02-14", "until": "2026-02-10"}, "until"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
async def test_a_bad_usage_filter_is_a_400_naming_it(
    client: httpx.AsyncClient, params: dict[str, str], named: str
) -> None:
    response = await client.get("/usage", params=params)
    assert response.status_code == 400 and named in response.text
