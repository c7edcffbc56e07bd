"""`session-db sessions list` and `sessions show`: what a person sees, on both engines."""

from __future__ import annotations

import asyncio
import json
import typing
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool
from support import cli, isolated_settings

from session_db import crud
from session_db.cli import queries
from session_db.database import create_engine, get_async_session
from session_db.models import SessionPhase, SessionStatus, SessionType

LONG_TITLE = "Rework the authentication middleware so refresh tokens rotate on every request"
LONG_SLUG = "2026-03-01_authentication-middleware-refresh-rotation_q8w7e6"


def seed(url: URL) -> None:
    """Three sessions in two projects, created in another order than they started."""

    async def write() -> None:
        engine = create_engine(isolated_settings(), url=url, poolclass=NullPool)
        async with get_async_session(engine) as db:
            shop = await crud.create_project(db, {"name": "webshop", "root_path": "/srv/webshop"})
            docs = await crud.create_project(db, {"name": "handbook", "root_path": "/srv/handbook"})
            for slug, title, project, started, tokens, cost in (
                ("middle", "Fix login", shop, datetime(2026, 3, 2, 9, tzinfo=UTC), 0, "0"),
                (
                    LONG_SLUG,
                    LONG_TITLE,
                    shop,
                    datetime(2026, 3, 3, 9, tzinfo=UTC),
                    1_234_567,
                    "12.5",
                ),
                ("oldest", "Write docs", docs, datetime(2026, 3, 1, 9, tzinfo=UTC), 42, "0.0042"),
            ):
                await crud.create_session(
                    db,
                    {
                        "session_slug": slug,
                        "title": title,
                        "project_id": project.id,
                        "started_at": started,
                        "total_tokens": tokens,
                        "total_cost": Decimal(cost),
                        "phase": "build" if slug == "middle" else "spec",
                    },
                )
        await engine.dispose()

    asyncio.run(write())


def test_the_list_is_newest_started_first_with_title_and_project(
    cli_db: URL, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(cli_db)
    monkeypatch.setenv("COLUMNS", "220")
    code, out, err = cli(capsys, "sessions", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "Started",
        "(UTC)",
        "Slug",
        "Title",
        "Project",
        "Phase",
        "Cost",
        "Tokens",
        "Status",
        "Tasks",
    ]
    rows = lines[2:]
    assert [row.split()[2] for row in rows] == [LONG_SLUG, "middle", "oldest"]
    assert "webshop" in rows[0] and "handbook" in rows[2] and LONG_TITLE in rows[0]
    assert rows[0].startswith("2026-03-03 09:00")
    assert "$12.5000" in rows[0] and "1,234,567" in rows[0] and "$0.0042" in rows[2]


def test_the_list_fits_80_columns_and_cuts_text_with_an_ellipsis(
    cli_db: URL, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(cli_db)
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli(capsys, "sessions", "list")
    assert code == 0, err
    lines = out.splitlines()
    assert len(lines) == 2 + 3  # a header, its rule, one line per session: nothing wraps
    assert all(len(line) <= 80 for line in lines), out
    top = lines[2]
    # The title is a prefix of itself and "…", cut where the column ends, not mid-line.
    [title] = [cell for cell in top.split("  ") if cell.strip().endswith("…") and "Rework" in cell]
    assert LONG_TITLE.startswith(title.strip()[:-1]) and len(title.strip()) > 8
    # The slug keeps its start and its end.
    [slug] = [cell for cell in top.split() if cell.startswith("2026-03-01")]
    head, tail = slug.split("…")
    assert LONG_SLUG.startswith(head) and LONG_SLUG.endswith(tail) and tail
    assert "$12.5000" in top


def test_json_keeps_full_values(cli_db: URL, capsys: pytest.CaptureFixture[str]) -> None:
    seed(cli_db)
    code, out, err = cli(capsys, "sessions", "list", "--json", "--limit", "1")
    assert code == 0, err
    [first] = json.loads(out)
    assert first["slug"] == LONG_SLUG and first["title"] == LONG_TITLE
    assert (first["project"], first["project_path"]) == ("webshop", "/srv/webshop")
    assert first["total_tokens"] == 1_234_567 and first["total_cost"] == "12.500000000"


def test_filters_by_phase_and_time_span(cli_db: URL, capsys: pytest.CaptureFixture[str]) -> None:
    seed(cli_db)
    code, out, _ = cli(capsys, "sessions", "list", "--json", "--phase", "build")
    assert [s["slug"] for s in json.loads(out)] == ["middle"]
    code, out, _ = cli(
        capsys, "sessions", "list", "--json", "--since", "2026-03-02", "--until", "2026-03-03"
    )
    assert code == 0 and [s["slug"] for s in json.loads(out)] == ["middle"]


def test_no_match_says_so_instead_of_a_header(
    cli_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(cli_db)
    code, out, err = cli(capsys, "sessions", "list", "--phase", "docs")
    assert (code, out, err) == (0, "No sessions match these filters.\n", "")


@pytest.mark.parametrize(
    ("args", "flag", "says"),
    [
        (["--phase", "bogus"], "--phase", "'spec', 'plan', 'build'"),
        (["--status", "sleeping"], "--status", "'paused'"),
        (["--type", "huge"], "--type", "'research'"),
        (["--limit", "0"], "--limit", "1"),
        (["--limit", "5000"], "--limit", "1000"),
        (["--since", "yesterday-ish"], "--since", "not a date"),
        (["--since", "2026-03-02", "--until", "2026-03-01"], "--until", "not after --since"),
    ],
)
def test_bad_option_values_are_usage_errors_naming_the_flag(
    cli_db: URL, capsys: pytest.CaptureFixture[str], args: list[str], flag: str, says: str
) -> None:
    code, out, err = cli(capsys, "sessions", "list", *args)
    flat = " ".join(err.replace("│", " ").split())
    assert code == 2 and out == ""
    assert f"'{flag}'" in flat and says in flat and "query." not in flat


def test_the_choices_are_the_models_values() -> None:
    for choice, enum in (
        (queries.Phase, SessionPhase),
        (queries.Status, SessionStatus),
        (queries.Kind, SessionType),
    ):
        assert list(typing.get_args(choice)) == [member.value for member in enum]


def test_show_names_the_project_and_formats_numbers(
    cli_db: URL, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(cli_db)
    monkeypatch.setenv("COLUMNS", "120")
    code, out, err = cli(capsys, "sessions", "show", LONG_SLUG)
    assert code == 0, err
    assert "webshop (/srv/webshop)" in out
    assert "1,234,567" in out and "$12.5000" in out
    assert "over 1 session" in out and "0 of 0 tasks done" in out
    assert "No agents recorded." in out
    shown = json.loads(cli(capsys, "sessions", "show", "oldest", "--json")[1])
    assert (shown["project"], shown["project_path"]) == ("handbook", "/srv/handbook")
