"""`session-db usage ...` and `cost --by`, end to end through the entry point, on both engines."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool
from support import SPOTTER, cli, isolated_settings
from usage_support import OPUS, SONNET, SONNET_BEDROCK, a_session, responses

from session_db import crud
from session_db.claude.importer import import_transcripts
from session_db.database import create_engine, get_async_session

KEYS = {
    "input_tokens",
    "output_tokens",
    "cache_write_tokens",
    "cache_read_tokens",
    "total_tokens",
    "cost",
    "models",
    "cost_sources",
}


def seed(url: URL) -> None:
    """Three responses on 2026-02-12 (two models, one of them by its Bedrock id) and one
    on the 13th, in a Claude Code session of the project `webshop`, plus an Amp session."""

    async def write() -> None:
        engine = create_engine(isolated_settings(), url=url, poolclass=NullPool)
        async with get_async_session(engine) as db:
            shop = await crud.create_project(db, {"name": "webshop", "root_path": "/srv/webshop"})
            claude = await a_session(db, "c1", project_id=shop.id, title="Fix checkout")
            amp = await a_session(db, "amp:T-1", app="amp")
            at = datetime(2026, 2, 12, 16, 5, tzinfo=UTC)
            await responses(db, claude, [at], model=OPUS, cost="1.25")
            await responses(db, claude, [at], model=SONNET, cost="0.5", source="reported")
            await responses(db, claude, [at], model=SONNET_BEDROCK, cost="0.25")
            await responses(db, amp, [datetime(2026, 2, 13, 9, 0, tzinfo=UTC)], cost="0")
        await engine.dispose()

    asyncio.run(write())


def json_of(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


def test_daily_table_has_the_token_kinds_a_total_and_the_cost_sources(
    cli_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(cli_db)
    code, out, err = cli(capsys, "usage", "daily", "--timezone", "UTC")
    assert code == 0, err
    header = " ".join(out.split())
    for heading in ("Date", "Input", "Output", "Cache", "write", "read", "Total", "Cost"):
        assert heading in header
    assert "2026-02-12" in out and "2026-02-13" in out
    assert "$2.0000" in out  # the total: 1.25 + 0.5 + 0.25 + 0
    assert "Costs: 1 reported, 3 computed, 0 unpriced; times in UTC" in out
    assert max(len(line) for line in out.splitlines()) <= 80


def test_breakdown_rows_name_canonical_models(
    cli_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(cli_db)
    code, out, _ = cli(capsys, "usage", "daily", "--breakdown", "-z", "UTC")
    assert code == 0
    # Each model on one line of its own, never wrapped mid-name, within 80 columns.
    assert "└ claude-opus-4-6 " in out and "└ claude-sonnet-4-5 " in out
    assert max(len(line) for line in out.splitlines()) <= 80
    data = json_of(capsys, "usage", "daily", "--breakdown", "-z", "UTC")
    first = data["rows"][0]
    assert first["date"] == "2026-02-12"
    assert [(line["model"], line["cost"]) for line in first["breakdown"]] == [
        ("claude-opus-4-6", "1.250000000"),
        ("claude-sonnet-4-5", "0.750000000"),  # the dated and the Bedrock id together
    ]
    assert set(first["breakdown"][1]) >= KEYS


def test_json_rows_have_the_keys_of_each_period(
    cli_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(cli_db)
    daily = json_of(capsys, "usage", "daily", "-z", "UTC")
    assert set(daily) == {"period", "timezone", "rows", "totals", "cost_sources"}
    assert KEYS | {"date"} == set(daily["rows"][0])
    assert daily["totals"]["cost"] == "2.000000000"
    assert daily["cost_sources"] == {"reported": 1, "computed": 3, "unpriced": 0}
    assert daily["rows"][0]["models"] == ["claude-opus-4-6", "claude-sonnet-4-5"]
    weekly = json_of(capsys, "usage", "weekly", "-z", "UTC")
    assert weekly["rows"][0]["week"] == "2026-W07"
    assert weekly["rows"][0]["week_start"] == "2026-02-09"
    assert json_of(capsys, "usage", "monthly", "-z", "UTC")["rows"][0]["month"] == "2026-02"
    sessions = json_of(capsys, "usage", "session")["rows"]
    assert [(r["session"], r["title"]) for r in sessions] == [
        ("c1", "Fix checkout"),
        ("amp:T-1", None),
    ]
    blocks = json_of(capsys, "usage", "blocks", "-z", "UTC")["rows"]
    assert [(b["block_start"], b["block_end"], b["active"]) for b in blocks] == [
        ("2026-02-12T16:00:00+00:00", "2026-02-12T21:00:00+00:00", False),
        ("2026-02-13T09:00:00+00:00", "2026-02-13T14:00:00+00:00", False),
    ]
    code, out, _ = cli(capsys, "usage", "blocks", "-z", "UTC")
    assert code == 0 and "(12h00m" in out and "gap)" in out


def test_filters_narrow_the_report(cli_db: URL, capsys: pytest.CaptureFixture[str]) -> None:
    seed(cli_db)

    def responses_of(*args: str) -> int:
        return sum(json_of(capsys, "usage", "daily", "-z", "UTC", *args)["cost_sources"].values())

    assert responses_of("--agent", "amp") == 1
    assert responses_of("--agent", "claude-code") == 3
    assert responses_of("--project", "webshop") == 3
    assert responses_of("--project", "/srv/webshop") == 3
    assert responses_of("--since", "2026-02-13") == 1
    assert responses_of("--until", "2026-02-12") == 3  # a date includes its whole day
    assert responses_of("--since", "2026-02-12T16:10") == 1
    # A date is a day of the zone asked for: in Tokyo 09:00Z on the 13th is 18:00 there.
    tokyo = json_of(capsys, "usage", "daily", "-z", "Asia/Tokyo", "--since", "2026-02-13")
    assert [row["date"] for row in tokyo["rows"]] == ["2026-02-13"]
    assert tokyo["timezone"] == "Asia/Tokyo"


def test_no_usage_says_so(cli_db: URL, capsys: pytest.CaptureFixture[str]) -> None:
    seed(cli_db)
    code, out, _ = cli(capsys, "usage", "daily", "--since", "2030-01-01")
    assert (code, out) == (0, "No usage recorded for these filters.\n")
    assert json_of(capsys, "usage", "session", "--since", "2030-01-01")["rows"] == []


@pytest.mark.parametrize(
    ("args", "flag"),
    [
        (["usage", "daily", "--timezone", "Mars/Olympus_Mons"], "'--timezone'"),
        (["usage", "weekly", "--since", "2026-02-12", "--until", "2026-02-01"], "'--until'"),
        (["usage", "daily", "--since", "last tuesday"], "'--since'"),
        (["usage", "blocks", "--agent", "cursor"], "'--agent'"),
        (["cost", "--by", "colour"], "'--by'"),
        (["cost", "--since", "soon"], "'--since'"),
    ],
)
def test_bad_flags_exit_2_naming_the_flag(
    cli_db: URL, capsys: pytest.CaptureFixture[str], args: list[str], flag: str
) -> None:
    code, out, err = cli(capsys, *args)
    assert code == 2 and out == ""
    assert flag in err and "Traceback" not in err


def test_an_unknown_project_is_one_line_and_exit_1(
    cli_db: URL, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "usage", "daily", "--project", "nowhere")
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and "nowhere" in err


def test_cost_by_model_shows_the_token_kinds_of_a_real_import(
    cli_db: URL, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    projects = tmp_path / "projects" / "-home-USER-projects-spotter"
    shutil.copytree(SPOTTER, projects, ignore=shutil.ignore_patterns("LICENSE"))

    async def load() -> None:
        engine = create_engine(isolated_settings(), url=cli_db, poolclass=NullPool)
        await import_transcripts(engine, [tmp_path / "projects"])
        await engine.dispose()

    asyncio.run(load())
    lines = json.loads(cli(capsys, "cost", "--by", "model", "--json")[1])
    assert [(line["key"], line["output_tokens"]) for line in lines] == [
        ("claude-opus-4-6", 28_763),
        ("claude-sonnet-4-5", 136 - 1 + 5_108),
    ]
    assert lines[0]["cache_read_tokens"] == 11_783_397
    by_project = json.loads(cli(capsys, "cost", "--json")[1])
    assert by_project[0]["cache_write_tokens"] == 488_218 + 71_257
    code, out, err = cli(capsys, "cost", "--by", "model")
    assert code == 0, err
    assert "Cache" in out and "11,783,397" in out and "$9.6630" in out
    # The usage report of the same data adds up to the same cost.
    daily = json_of(capsys, "usage", "daily")
    assert Decimal(daily["totals"]["cost"]) == Decimal("9.663036000") + Decimal("0.527264550")


def test_long_session_slugs_keep_their_ends_so_two_subagents_stay_apart(
    cli_db: URL, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Claude Code names a subagent's transcript after its parent's session id: only the
    # end tells two of them apart.
    parent = "4d5611e5-241a-462a-8d3c-2f3c8a1b9e7d"
    slugs = [f"{parent}-agent-a2898e3", f"{parent}-agent-b11a9569"]

    async def write() -> None:
        engine = create_engine(isolated_settings(), url=cli_db, poolclass=NullPool)
        async with get_async_session(engine) as db:
            for slug in slugs:
                session = await a_session(db, slug)
                at = datetime(2026, 2, 12, 16, 5, tzinfo=UTC)
                await responses(db, session, [at], model=OPUS, cost="1.5")
        await engine.dispose()

    asyncio.run(write())
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli(capsys, "usage", "session", "-z", "UTC")
    assert code == 0, err
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 80
    labels = [line.split()[0] for line in lines if line.startswith(parent[:8])]
    assert len(labels) == 2 and labels[0] != labels[1]
    assert labels[0].endswith("a2898e3") and labels[1].endswith("b11a9569")
    assert all("…" in label for label in labels)
