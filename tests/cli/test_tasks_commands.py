"""`session-db tasks list`: which tasks are ready, and what the others wait for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from support import cli

from session_db.sync import StateManager

TASKS = [
    {"id": "1.1.1", "title": "Schema", "status": "completed"},
    {"id": "1.1.2", "title": "Indexer", "status": "in_progress", "depends_on": ["1.1.1"]},
    {"id": "1.1.3", "title": "Ranking", "status": "pending", "depends_on": ["1.1.1"]},
    {
        "id": "1.1.4",
        "title": "Search endpoint that ranks documents by relevance and paginates results",
        "status": "pending",
        "depends_on": ["1.1.2", "1.1.3"],
    },
    {"id": "1.1.10", "title": "Docs", "status": "pending", "depends_on": ["1.1.4"]},
]


@pytest.fixture
def planned(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    folder = root / "agents" / "sessions" / "search"
    manager = StateManager.create(folder, topic="Search")
    manager.transition_to("plan")
    plan = {
        "checkpoints": [
            {"id": 1, "title": "One", "task_groups": [{"id": "1.1", "title": "G", "tasks": TASKS}]}
        ]
    }
    (folder / "plan.json").write_text(json.dumps(plan))
    return root


def test_each_task_says_whether_it_is_ready_and_what_it_waits_for(
    cli_db: URL, capsys: pytest.CaptureFixture[str], planned: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert cli(capsys, "sync", str(planned))[0] == 0
    monkeypatch.setenv("COLUMNS", "80")
    code, out, err = cli(capsys, "tasks", "list", "search")
    assert code == 0, err
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines), out
    assert lines[0].split() == ["ID", "Title", "Status", "Ready", "Waits", "for", "Group"]
    rows = {line.split()[0]: line for line in lines[2:-1]}
    assert list(rows) == ["1.1.1", "1.1.2", "1.1.3", "1.1.4", "1.1.10"]  # plan order, 1.10 last
    assert "done" in rows["1.1.1"] and "in progress" in rows["1.1.2"]
    assert "ready" in rows["1.1.3"]
    assert "blocked" in rows["1.1.4"] and "1.1.2, 1.1.3" in rows["1.1.4"] and "…" in rows["1.1.4"]
    assert "blocked" in rows["1.1.10"] and rows["1.1.10"].split()[-3] == "1.1.4"
    assert lines[-1] == "5 tasks: 1 done, 1 ready, 1 in progress, 2 blocked"


def test_json_names_the_unfinished_dependencies(
    cli_db: URL, capsys: pytest.CaptureFixture[str], planned: Path
) -> None:
    assert cli(capsys, "sync", str(planned))[0] == 0
    out = cli(capsys, "tasks", "list", "search", "--json")[1]
    tasks = {t["plan_ref"]: t for t in json.loads(out)}
    assert [(w["plan_ref"], w["title"], w["status"]) for w in tasks["1.1.4"]["waits_for"]] == [
        ("1.1.2", "Indexer", "in_progress"),
        ("1.1.3", "Ranking", "pending"),
    ]
    assert tasks["1.1.3"]["waits_for"] == [] and tasks["1.1.3"]["ready"] is True
    assert [t["readiness"] for t in tasks.values()] == [
        "done",
        "in progress",
        "ready",
        "blocked",
        "blocked",
    ]


def test_a_session_without_tasks_says_so(
    cli_db: URL, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    StateManager.create(tmp_path / "p" / "agents" / "sessions" / "empty", topic="Nothing")
    assert cli(capsys, "sync", str(tmp_path / "p"))[0] == 0
    assert cli(capsys, "tasks", "list", "empty") == (0, "This session has no tasks.\n", "")
