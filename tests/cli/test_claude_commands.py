"""The Claude Code commands: hook install/uninstall/status, ingest, import claude."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy.engine import URL
from support import SPOTTER, cli

from session_db.claude import spool
from session_db.claude.settings_file import is_our_command

FIXTURE = SPOTTER


@pytest.fixture
def cli_env(cli_db: URL, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The test database and a private spool no deliverer is started for; returns the spool."""
    monkeypatch.setenv("SESSION_DB_SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setenv("SESSION_DB_AUTO_DELIVER", "0")
    return tmp_path / "spool"


def test_hook_install_and_uninstall_a_project(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    project = tmp_path / "app"
    settings = project / ".claude" / "settings.local.json"
    settings.parent.mkdir(parents=True)
    before = {
        "permissions": {"allow": ["Bash(ls)"]},
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}]},
    }
    settings.write_text(json.dumps(before))
    code, out, err = cli(capsys, "hook", "install", "--project", str(project), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["changed"] and result["backup"] and "PreToolUse" in result["added"]
    assert json.loads(Path(result["backup"]).read_text()) == before
    written = json.loads(settings.read_text())
    assert written["permissions"] == before["permissions"]
    commands = [
        hook["command"]
        for groups in written["hooks"].values()
        for group in groups
        for hook in group["hooks"]
    ]
    assert "notify-send done" in commands
    ours = [command for command in commands if is_our_command(command)]
    assert len(ours) == len(result["added"]) and ours[0].endswith(" hook")
    code, out, _ = cli(capsys, "hook", "install", "--project", str(project))
    assert code == 0 and "already installed" in out
    code, out, _ = cli(capsys, "hook", "uninstall", "--project", str(project))
    assert code == 0 and "hooks removed" in out
    assert json.loads(settings.read_text()) == before
    code, _, err = cli(capsys, "hook", "install", "--project", str(project), "--user")
    assert code == 2 and "not both" in err


def test_ingest_and_status(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for index in range(3):
        payload = {"session_id": "s-1", "hook_event_name": "PreToolUse", "tool_use_id": f"t{index}"}
        line = spool.spool_line(
            json.dumps(payload).encode(), spool.new_spool_id(index), index, None
        )
        spool.append_line(str(cli_env), line)
    spool.append_line(str(cli_env), b"garbage\n")
    code, out, err = cli(capsys, "hook", "status", "--json")
    assert code == 0, err
    status = json.loads(out)
    assert (status["waiting"], status["rejected"], status["deliverer_pid"]) == (4, 0, None)
    code, out, err = cli(capsys, "ingest", "--json")
    assert code == 0, err
    assert json.loads(out) == {
        "delivered": 3,
        "duplicates": 0,
        "rejected": 1,
        "transcripts_imported": [],
    }
    code, out, _ = cli(capsys, "ingest")
    assert code == 0 and out.strip() == "delivered 0 events"
    status = json.loads(cli(capsys, "hook", "status", "--json")[1])
    assert (status["waiting"], status["rejected"]) == (0, 1)
    code, out, _ = cli(capsys, "sessions", "show", "s-1", "--json")
    assert code == 0 and json.loads(out)["slug"] == "s-1"


def test_import_claude(
    cli_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "claude-config"
    shutil.copytree(FIXTURE, config / "projects" / "-home-USER-spotter")
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(config))
    code, out, err = cli(capsys, "import", "claude", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert (result["files"], result["lines"], result["responses"]) == (3, 1661, 152)
    code, out, _ = cli(capsys, "import", "claude")
    assert code == 0 and "3 transcript files (3 unchanged): 0 new lines" in out
    code, out, _ = cli(capsys, "cost", "--by", "model", "--json")
    costs = {line["key"]: line["total_cost"] for line in json.loads(out)}
    assert costs == {"claude-opus-4-6": "9.663036000", "claude-sonnet-4-5": "0.527264550"}
    code, _, err = cli(capsys, "import", "claude", str(tmp_path / "nowhere"))
    assert code == 2 and "no such file or folder" in err
