"""The `session-db` command line, end to end through its entry point, on both engines."""

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from sqlalchemy.pool import NullPool
from support import cli, isolated_settings

from session_db.database import create_engine, get_async_session
from session_db.migrate import head_revision
from session_db.sync import StateManager

SECRET = "hunter2-cli"


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    code, out, err = cli(capsys, *args, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    sessions = root / "agents" / "sessions"
    parent = StateManager.create(sessions / "parent", topic="Parent")
    parent.transition_to("plan")
    parent.transition_to("build")
    parent.record_agent("build", sdk_session_id="sdk-1", model="claude-sonnet-4-5")
    (sessions / "parent" / "plan.json").write_text(
        json.dumps(
            {
                "checkpoints": [
                    {
                        "id": 1,
                        "title": "One",
                        "task_groups": [
                            {
                                "id": "1.1",
                                "title": "G",
                                "tasks": [
                                    {"id": "1.1.1", "title": "first", "status": "done"},
                                    {"id": "1.1.2", "title": "second", "depends_on": ["1.1.1"]},
                                    {"id": "1.1.10", "title": "tenth", "depends_on": ["1.1.2"]},
                                ],
                            }
                        ],
                    }
                ]
            }
        )
    )
    StateManager.create(sessions / "child", topic="Child", parent_session="parent")
    (sessions / "broken").mkdir()
    (sessions / "broken" / "state.json").write_text("{")
    return root


def test_db_commands(cli_db: URL, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = cli(capsys, "db", "current")
    assert code == 0 and "is at revision" in out
    status = cli_json(capsys, "db", "current")
    assert status["up_to_date"] is True and status["revision"] == status["head"]  # type: ignore[index]
    assert SECRET not in out
    code, out, _ = cli(capsys, "db", "history")
    assert code == 0 and "(head)" in out and "<base> -> 0001" in out
    code, out, err = cli(capsys, "db", "check")
    assert code == 0, err
    code, out, _ = cli(capsys, "db", "downgrade", "0002", "--sql")
    assert code == 0 and "DROP INDEX" in out
    assert cli_json(capsys, "db", "current")["revision"] == status["head"]  # type: ignore[index]  # dry run
    code, out, _ = cli(capsys, "db", "downgrade", "0002")
    assert code == 0 and "at revision 0002" in out
    code, out, err = cli(capsys, "db", "check")
    assert code == 1 and "not up to date" in err and err.count("\n") == 1
    code, out, _ = cli(capsys, "db", "upgrade", "--sql")
    assert code == 0 and "ALTER TABLE" in out
    code, out, err = cli(capsys, "db", "upgrade", "--backup")
    assert f"at revision {head_revision()} (head)" in out
    if cli_db.get_backend_name() == "sqlite":
        backup = Path(out.split("backup written to ")[1].splitlines()[0])
        with sqlite3.connect(backup) as copy:
            assert copy.execute("select version_num from alembic_version").fetchone() == ("0002",)
    elif "backup written to" in out:  # pg_dump is installed here
        assert Path(out.split("backup written to ")[1].splitlines()[0]).stat().st_size > 0
    else:  # a clear refusal, and nothing migrated
        assert code == 1 and "pg_dump is not on PATH" in err


def test_sync_and_queries(cli_db: URL, capsys: pytest.CaptureFixture[str], project: Path) -> None:
    code, out, err = cli(capsys, "sync", str(project))
    assert code == 3, err  # a folder is in error: see test_sync_report.py
    assert "3 folders: 2 synchronized, 1 error" in out and "broken" in out
    code, out, _ = cli(capsys, "sync", str(project), "--json")
    assert code == 3 and json.loads(out)["counts"] == {
        "synchronized": 0,
        "unchanged": 2,
        "error": 1,
        "unrecognised": 0,
        "missing": 0,
    }

    sessions = cli_json(capsys, "sessions", "list")
    assert {s["slug"] for s in sessions} == {"parent", "child"}  # type: ignore[union-attr,index]
    in_build = cli_json(capsys, "sessions", "list", "--phase", "build", "--project", str(project))
    assert [s["slug"] for s in in_build] == ["parent"]  # type: ignore[union-attr,index]
    assert cli_json(capsys, "sessions", "list", "--type", "quick") == []
    assert len(cli_json(capsys, "sessions", "list", "--since", "1d")) == 2  # type: ignore[arg-type]

    shown = cli_json(capsys, "sessions", "show", "parent")
    assert shown["phase"] == "build" and shown["tasks"] == "1/3"  # type: ignore[index]
    assert shown["agents"][0]["sdk_session_id"] == "sdk-1"  # type: ignore[index]
    assert shown["rollup"]["sessions"] == 2  # type: ignore[index]
    assert cli_json(capsys, "sessions", "show", shown["id"])["slug"] == "parent"  # type: ignore[index]

    tree = cli_json(capsys, "sessions", "tree", "parent")
    assert [c["slug"] for c in tree["children"]] == ["child"]  # type: ignore[index]
    code, out, _ = cli(capsys, "sessions", "tree", "parent")
    assert code == 0 and "parent" in out and "└── child" in out

    tasks = cli_json(capsys, "tasks", "list", "parent")
    assert [(t["plan_ref"], t["ready"]) for t in tasks] == [  # type: ignore[union-attr,index]
        ("1.1.1", False),
        ("1.1.2", True),
        ("1.1.10", False),
    ]
    costs = cli_json(capsys, "cost", "--by", "model")
    assert costs == [
        {
            "key": "claude-sonnet-4-5",
            "count": 1,
            "input_tokens": 0,
            "output_tokens": 0,
            "cache_write_tokens": 0,
            "cache_read_tokens": 0,
            "total_tokens": 0,
            "total_cost": "0.000000000",
        }
    ]
    by_project = cli_json(capsys, "cost")
    assert by_project[0]["key"] == "project" and by_project[0]["count"] == 2  # type: ignore[index]


def test_threads_show(cli_db: URL, capsys: pytest.CaptureFixture[str]) -> None:
    from session_db import crud

    async def seed() -> str:
        engine = create_engine(isolated_settings(), url=cli_db, poolclass=NullPool)
        async with get_async_session(engine) as db:
            session = await crud.create_session(db, {"session_slug": "talk"})
            thread = await crud.create_thread(db, {"session_id": session.id, "name": "main"})
            await crud.add_thread_message(db, thread.id, "user", "hello")
            await crud.add_thread_message(db, thread.id, "assistant", "hi")
        await engine.dispose()
        return str(thread.id)

    thread_id = asyncio.run(seed())
    by_session = cli_json(capsys, "threads", "show", "talk")
    by_id = cli_json(capsys, "threads", "show", thread_id)
    assert by_session == by_id
    assert [(m["idx"], m["role"]) for m in by_id[0]["messages"]] == [  # type: ignore[index]
        (0, "user"),
        (1, "assistant"),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["sessions", "show", "nope"], "session with session_slug=nope not found"),
        (["sync", "/no/such/project"], "project root /no/such/project does not exist"),
        (["tasks", "list", "nope"], "not found"),
    ],
)
def test_user_errors_are_one_line_and_exit_1(
    cli_db: URL, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = cli(capsys, *args)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    code, _, err = cli(capsys, "--verbose", *args)
    assert code == 1 and "Traceback" in err


def test_a_bad_url_or_a_server_down_is_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SESSION_DB_URL", f"mysql://root:{SECRET}@h/db")
    code, out, err = cli(capsys, "sessions", "list")
    assert code == 1 and err.count("\n") == 1 and "unsupported driver" in err
    assert SECRET not in out + err
    monkeypatch.setenv("SESSION_DB_URL", f"postgresql://u:{SECRET}@127.0.0.1:1/db")
    monkeypatch.setenv("SESSION_DB_CONNECT_TIMEOUT", "2")
    code, out, err = cli(capsys, "sessions", "list")
    assert code == 1 and err.count("\n") == 1 and "127.0.0.1:1: connection refused" in err
    assert SECRET not in out + err


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).with_name("session-db")
    return subprocess.run(
        [str(script), *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_the_console_script_and_python_m_agree(cli_db: URL, tmp_path: Path, project: Path) -> None:
    env = {"SESSION_DB_URL": cli_db.render_as_string(hide_password=False)}
    synced = run_cli("sync", str(project), "--json", env=env, cwd=tmp_path)
    assert synced.returncode == 3, synced.stderr  # the broken folder
    assert json.loads(synced.stdout)["counts"]["synchronized"] == 2
    listed = subprocess.run(
        [sys.executable, "-m", "session_db", "sessions", "list", "--json"],
        env={**os.environ, **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert listed.returncode == 0, listed.stderr
    assert {s["slug"] for s in json.loads(listed.stdout)} == {"parent", "child"}
    helped = run_cli("--help", env=env, cwd=tmp_path)
    assert helped.returncode == 0 and "sessions" in helped.stdout
    wrong = run_cli("sessions", "explode", env=env, cwd=tmp_path)
    assert wrong.returncode == 2


@pytest.mark.slow
def test_watch_syncs_changes_and_drains_on_ctrl_c(
    cli_db: URL, tmp_path: Path, project: Path
) -> None:
    env = {"SESSION_DB_URL": cli_db.render_as_string(hide_password=False)}
    script = Path(sys.executable).with_name("session-db")
    watcher = subprocess.Popen(
        [str(script), "watch", str(project), "--delay", "0.1"],
        env={**os.environ, **env},
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A test run started in the background inherits SIGINT ignored; Ctrl-C is the
        # behaviour under test, so the child gets the default disposition back.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        assert watcher.stdout is not None
        assert "watching" in watcher.stdout.readline()
        manager = StateManager(project / "agents/sessions/child")
        manager.transition_to("plan")
        StateManager.create(project / "agents/sessions/newcomer", topic="New")

        def phases() -> dict[str, str]:
            listed = run_cli("sessions", "list", "--json", env=env, cwd=tmp_path)
            return {s["slug"]: s["phase"] for s in json.loads(listed.stdout or "[]")}

        deadline = time.monotonic() + 30
        while phases().get("child") != "plan" or "newcomer" not in phases():
            assert time.monotonic() < deadline, "watch did not sync the changes"
            time.sleep(0.2)
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0, err
    assert "stopped:" in out and "failed" in out


def test_demo_builds_a_project_to_explore_and_can_run_again(
    cli_db: URL, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, err = cli(capsys, "demo", "--path", str(tmp_path / "demo"))
    assert code == 0, err
    assert "created an example project" in out and "6 folders synchronized" in out
    sessions = cli_json(capsys, "sessions", "list")
    assert len(sessions) == 6  # type: ignore[arg-type]
    phases = {s["phase"] for s in sessions}  # type: ignore[union-attr,index]
    assert {"spec", "build", "complete"} <= phases
    parent = "2026-02-14_search-feature_k2m9qx"
    tree = cli_json(capsys, "sessions", "tree", parent)
    assert len(tree["children"]) == 2 and tree["rollup_cost"] == "3.385000000"  # type: ignore[index]
    ready = [t["plan_ref"] for t in cli_json(capsys, "tasks", "list", parent) if t["ready"]]  # type: ignore[union-attr,index]
    assert ready == ["2.1.2"]
    assert len(cli_json(capsys, "threads", "show", parent)[0]["messages"]) == 3  # type: ignore[index]
    code, out, _ = cli(capsys, "demo", "--path", str(tmp_path / "demo"))
    assert code == 0 and "refreshed" in out
    assert len(cli_json(capsys, "threads", "show", parent)) == 1  # type: ignore[arg-type]
    assert len(cli_json(capsys, "sessions", "list")) == 6  # type: ignore[arg-type]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    code, _, err = cli(capsys, "demo", "--path", str(tmp_path / "mine"))
    assert code == 1 and "is not an earlier demo" in err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_backup_of_postgresql_without_pg_dump_is_refused_before_migrating(
    cli_db: URL,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    if cli_db.get_backend_name() == "sqlite":
        # SQLite needs no tool: the online backup API is always there.
        code, out, err = cli(capsys, "db", "downgrade", "0002", "--backup")
        assert code == 0 and "backup written to" in out, err
        return
    path = os.environ["PATH"]
    assert cli(capsys, "db", "downgrade", "0002")[0] == 0
    try:
        monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no pg_dump anywhere
        code, out, err = cli(capsys, "db", "upgrade", "--backup")
        assert code == 1 and "pg_dump is not on PATH" in err and err.count("\n") == 1
        assert cli_json(capsys, "db", "current")["revision"] == "0002"  # type: ignore[index]
    finally:
        monkeypatch.setenv("PATH", path)
        assert cli(capsys, "db", "upgrade")[0] == 0  # the run's shared database back at head
