"""`session-db demo`: its times agree with its slugs, and git ignores its folder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from support import cli

PARENT = "2026-02-14_search-feature_k2m9qx"


def test_every_session_starts_on_its_slugs_date(
    cli_db: URL, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = cli(capsys, "demo", "--path", str(tmp_path / "demo"))
    assert code == 0, err
    sessions = json.loads(cli(capsys, "sessions", "list", "--json")[1])
    assert len(sessions) == 6
    for session in sessions:
        assert session["started_at"][:10] == session["slug"][:10], session
    # Newest first: the order of the dates in the slugs.
    dates = [s["slug"][:10] for s in sessions]
    assert dates == sorted(dates, reverse=True)
    shown = json.loads(cli(capsys, "sessions", "show", PARENT, "--json")[1])
    assert shown["ended_at"] is None or shown["ended_at"][:10] == PARENT[:10]
    [thread] = json.loads(cli(capsys, "threads", "show", PARENT, "--json")[1])
    assert {m["created_at"][:10] for m in thread["messages"]} == {PARENT[:10]}
    state = json.loads((tmp_path / "demo/agents/sessions" / PARENT / "state.json").read_text())
    stamps = [v for k, v in state["phase_history"].items() if v]
    assert stamps == sorted(stamps) and all(v.startswith("2026-02-14T") for v in stamps)


def test_git_ignores_the_demo_folder(
    cli_db: URL, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    code, _, err = cli(capsys, "demo", "--path", str(repo / "session-db-demo"))
    assert code == 0, err
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    assert status.stdout == ""
    assert (repo / "session-db-demo" / ".gitignore").read_text().splitlines()[-1] == "*"
