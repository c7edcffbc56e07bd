"""Claude Code settings: hook entries installed and removed, the rest of the file kept."""

import json
import os
import re
import shlex
import stat
from pathlib import Path
from typing import Any

import pytest
from support import run_python

from session_db.claude.settings_file import (
    DEFAULT_EVENTS,
    HOOK_EVENTS,
    TOOL_EVENTS,
    SettingsChange,
    hook_command,
    install_hooks,
    is_our_command,
    project_settings_path,
    uninstall_hooks,
    user_settings_path,
)
from session_db.errors import InvalidInputError

COMMAND = "/opt/venv/bin/session-db hook"
OLD_COMMAND = "/home/me/old-venv/bin/session-db hook"
BACKUP_NAME = re.compile(r"settings\.json\.bak-\d{8}T\d{6}Z(-\d+)?")

# Someone's own settings: other keys, other hooks, and empty lists and groups of theirs.
EXISTING: dict[str, Any] = {
    "model": "opus",
    "permissions": {"allow": ["Bash(git status)"], "deny": []},
    "hooks": {
        "PreToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "other-tool hook"}]}
        ],
        "Stop": [{"hooks": []}],
        "EventNewerThanUs": [],
    },
    "env": {"GREETING": "grüß dich"},
}


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=4), encoding="utf-8")


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def our_handlers(data: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [
        handler
        for group in data.get("hooks", {}).get(event, [])
        for handler in group.get("hooks", [])
        if is_our_command(handler.get("command", ""))
    ]


def backups(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if BACKUP_NAME.fullmatch(p.name))


def test_install_into_a_missing_file_creates_folder_and_file(tmp_path: Path) -> None:
    path = tmp_path / "home" / ".claude" / "settings.json"

    change = install_hooks(path, COMMAND)

    assert change == SettingsChange(path, None, list(DEFAULT_EVENTS), [], changed=True)
    data = read_json(path)
    assert list(data) == ["hooks"]
    assert list(data["hooks"]) == list(DEFAULT_EVENTS)
    for event in DEFAULT_EVENTS:
        expected_group: dict[str, Any] = {"matcher": "*"} if event in TOOL_EVENTS else {}
        expected_group["hooks"] = [{"type": "command", "command": COMMAND, "timeout": 10}]
        assert data["hooks"][event] == [expected_group]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text.startswith('{\n  "hooks": {\n    "PreToolUse"')
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"]


def test_install_keeps_other_settings_hooks_and_key_order(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    write_json(path, EXISTING)

    change = install_hooks(path, COMMAND, timeout_s=7)

    data = read_json(path)
    assert change.added == list(DEFAULT_EVENTS)
    assert list(data) == ["model", "permissions", "hooks", "env"]
    assert {k: v for k, v in data.items() if k != "hooks"} == {
        k: v for k, v in EXISTING.items() if k != "hooks"
    }
    # Their events first, in their order, then ours as they are added.
    new_events = [e for e in DEFAULT_EVENTS if e not in EXISTING["hooks"]]
    assert list(data["hooks"]) == ["PreToolUse", "Stop", "EventNewerThanUs", *new_events]
    assert data["hooks"]["PreToolUse"] == [
        *EXISTING["hooks"]["PreToolUse"],
        {"matcher": "*", "hooks": [{"type": "command", "command": COMMAND, "timeout": 7}]},
    ]
    assert data["hooks"]["Stop"] == [
        {"hooks": []},
        {"hooks": [{"type": "command", "command": COMMAND, "timeout": 7}]},
    ]
    assert data["hooks"]["EventNewerThanUs"] == []
    assert "grüß dich" in path.read_text(encoding="utf-8")


def test_second_install_adds_nothing_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    write_json(path, EXISTING)
    install_hooks(path, COMMAND)
    before = path.read_bytes()
    mtime = path.stat().st_mtime_ns
    backups_before = backups(tmp_path)

    change = install_hooks(path, COMMAND)

    assert change == SettingsChange(path, None, [], [], changed=False)
    assert path.read_bytes() == before
    assert path.stat().st_mtime_ns == mtime
    assert backups(tmp_path) == backups_before
    data = read_json(path)
    for event in DEFAULT_EVENTS:
        assert [h["command"] for h in our_handlers(data, event)] == [COMMAND]


def test_install_replaces_an_older_command_of_ours_in_place(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    write_json(
        path,
        {
            "hooks": {
                "Stop": [
                    {
                        "hooks": [
                            {"type": "command", "command": "say done"},
                            {"type": "command", "command": OLD_COMMAND, "timeout": 30},
                        ]
                    }
                ]
            }
        },
    )

    change = install_hooks(path, COMMAND, ["Stop", "SessionStart"])

    assert change.added == ["SessionStart"]
    assert change.updated == ["Stop"]
    assert change.changed is True
    data = read_json(path)
    # Same group, same position, same timeout: only the command text changed.
    assert data["hooks"]["Stop"] == [
        {
            "hooks": [
                {"type": "command", "command": "say done"},
                {"type": "command", "command": COMMAND, "timeout": 30},
            ]
        }
    ]
    assert list(data["hooks"]) == ["Stop", "SessionStart"]


def test_install_keeps_one_entry_of_ours_when_several_exist(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    python_command = "/usr/bin/python3 -m session_db hook"
    write_json(
        path,
        {
            "hooks": {
                "Stop": [
                    {"hooks": [{"type": "command", "command": python_command}]},
                    {"hooks": [{"type": "command", "command": COMMAND}]},
                ]
            }
        },
    )

    change = install_hooks(path, COMMAND, ["Stop"])

    assert change.updated == ["Stop"]
    assert read_json(path) == {
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": COMMAND}]}]}
    }


def test_install_then_uninstall_gives_back_the_same_settings(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    write_json(path, EXISTING)

    install_hooks(path, COMMAND)
    change = uninstall_hooks(path)

    # In the file's order: their PreToolUse and Stop lists come first.
    assert sorted(change.removed) == sorted(DEFAULT_EVENTS)
    assert change.removed[:2] == ["PreToolUse", "Stop"]
    assert change.added == []
    assert change.changed is True
    data = read_json(path)
    assert data == EXISTING
    assert list(data) == list(EXISTING)
    assert list(data["hooks"]) == list(EXISTING["hooks"])


def test_uninstall_of_a_file_with_only_our_hooks_removes_the_hooks_key(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    write_json(path, {"model": "opus"})
    install_hooks(path, COMMAND)

    uninstall_hooks(path)

    assert read_json(path) == {"model": "opus"}


def test_uninstall_removes_entries_of_any_install_and_leaves_others(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    other = {"type": "command", "command": "other-tool hook"}
    write_json(
        path,
        {
            "hooks": {
                "PreToolUse": [
                    {
                        "matcher": "*",
                        "hooks": [
                            {"type": "command", "command": "'/my venv/bin/session-db' hook"},
                            other,
                        ],
                    },
                    {"matcher": "Edit", "hooks": [{"type": "command", "command": OLD_COMMAND}]},
                ],
                "Stop": [{"hooks": [{"type": "command", "command": "session-db hook"}]}],
                "Notification": [
                    {
                        "hooks": [
                            {"type": "command", "command": "/usr/bin/python3 -m session_db hook"}
                        ]
                    }
                ],
                "SessionEnd": [],
            }
        },
    )

    change = uninstall_hooks(path)

    assert change.removed == ["PreToolUse", "Stop", "Notification"]
    assert read_json(path) == {
        "hooks": {"PreToolUse": [{"matcher": "*", "hooks": [other]}], "SessionEnd": []}
    }


def test_uninstall_without_our_entries_or_file_changes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "missing" / "settings.json"
    assert uninstall_hooks(missing) == SettingsChange(missing, None, [], [], changed=False)
    assert not missing.parent.exists()

    path = tmp_path / "settings.json"
    path.write_text('{"hooks": {"Stop": [{"hooks": [{"command": "other-tool hook"}]}]}}')
    before = path.read_bytes()
    assert uninstall_hooks(path) == SettingsChange(path, None, [], [], changed=False)
    assert path.read_bytes() == before
    assert backups(tmp_path) == []


def test_backup_holds_the_previous_content_and_mode(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    write_json(path, EXISTING)
    path.chmod(0o640)
    original = path.read_bytes()

    installed = install_hooks(path, COMMAND)

    assert installed.backup is not None
    assert installed.backup.parent == tmp_path
    assert BACKUP_NAME.fullmatch(installed.backup.name)
    assert installed.backup.read_bytes() == original
    assert stat.S_IMODE(installed.backup.stat().st_mode) == 0o640
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    after_install = path.read_bytes()

    removed = uninstall_hooks(path)

    # A second change within the same second gets its own backup.
    assert removed.backup is not None
    assert removed.backup != installed.backup
    assert removed.backup.read_bytes() == after_install
    assert installed.backup.read_bytes() == original
    assert backups(tmp_path) == sorted([installed.backup, removed.backup])
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_install_writes_through_a_symlink(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "settings.json"
    write_json(real, {"model": "opus"})
    link = tmp_path / ".claude" / "settings.json"
    link.parent.mkdir()
    link.symlink_to(real)

    install_hooks(link, COMMAND, ["Stop"])

    assert link.is_symlink()
    assert our_handlers(read_json(real), "Stop")[0]["command"] == COMMAND


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"hooks": {\n  "Stop": [,]\n}}', r"invalid JSON at line 2, column 12"),
        ("[]", r"top level is an array, not an object"),
        ('"settings"', r"top level is a string, not an object"),
        ('{"hooks": []}', r'"hooks" is an array, not an object'),
        ('{"hooks": null}', r'"hooks" is null, not an object'),
        ('{"hooks": {"Stop": {"hooks": []}}}', r'"hooks.Stop" is an object, not an array'),
        ('{"hooks": {"ConfigChange": "x"}}', r'"hooks.ConfigChange" is a string, not an array'),
    ],
)
@pytest.mark.parametrize("action", ["install", "uninstall"])
def test_refuses_a_file_it_cannot_read_and_leaves_it_untouched(
    tmp_path: Path, content: str, expected: str, action: str
) -> None:
    path = tmp_path / "settings.json"
    path.write_text(content, encoding="utf-8")
    mtime = path.stat().st_mtime_ns

    with pytest.raises(InvalidInputError, match=expected) as caught:
        if action == "install":
            install_hooks(path, COMMAND)
        else:
            uninstall_hooks(path)

    assert str(path) in str(caught.value)
    assert caught.value.entity == "claude_settings"
    assert path.read_text(encoding="utf-8") == content
    assert path.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["settings.json"]


def test_install_refuses_a_command_uninstall_would_not_recognise(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    with pytest.raises(InvalidInputError, match="not a session-db hook command"):
        install_hooks(path, "other-tool hook")
    with pytest.raises(InvalidInputError, match="positive integer"):
        install_hooks(path, COMMAND, timeout_s=0)
    assert not path.exists()


def test_install_into_an_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.touch()

    change = install_hooks(path, COMMAND, ["Stop"])

    assert change.backup is not None
    assert change.backup.read_bytes() == b""
    assert read_json(path) == {
        "hooks": {"Stop": [{"hooks": [{"type": "command", "command": COMMAND, "timeout": 10}]}]}
    }


def test_user_settings_path_honours_claude_config_dir(tmp_path: Path) -> None:
    assert user_settings_path({"CLAUDE_CONFIG_DIR": str(tmp_path / "cfg")}) == (
        tmp_path / "cfg" / "settings.json"
    )
    home = Path("~").expanduser()
    assert user_settings_path({"CLAUDE_CONFIG_DIR": "~/claude-work"}) == (
        home / "claude-work" / "settings.json"
    )
    assert user_settings_path({"HOME": str(tmp_path)}) == tmp_path / ".claude" / "settings.json"


def test_user_settings_path_reads_the_process_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "from-env"))
    assert user_settings_path() == tmp_path / "from-env" / "settings.json"
    monkeypatch.delenv("CLAUDE_CONFIG_DIR")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert user_settings_path() == tmp_path / ".claude" / "settings.json"


def test_project_settings_path_is_the_local_file(tmp_path: Path) -> None:
    assert project_settings_path(tmp_path) == tmp_path / ".claude" / "settings.local.json"


def test_hook_command_quotes_the_executable() -> None:
    command = hook_command("/opt/my tools/session-db")
    assert command == "'/opt/my tools/session-db' hook"
    assert shlex.split(command) == ["/opt/my tools/session-db", "hook"]
    assert is_our_command(command)


def test_default_hook_command_is_an_absolute_path_we_recognise() -> None:
    command = hook_command()
    words = shlex.split(command)
    assert words[-1] == "hook"
    assert os.path.isabs(words[0])
    assert os.access(words[0], os.X_OK)
    assert is_our_command(command)


@pytest.mark.parametrize(
    ("command", "ours"),
    [
        ("/opt/venv/bin/session-db hook", True),
        ("session-db hook", True),
        ("'/my venv/bin/session-db' hook", True),
        ("/usr/bin/python3 -m session_db hook", True),
        ("'/my venv/bin/python' -m session_db hook", True),
        ("other-tool hook", False),
        ("/opt/venv/bin/session-db sync", False),
        ("/opt/venv/bin/session-db hook --verbose", False),
        ("session-db", False),
        ("hook", False),
        ("/opt/not-session-db hook", False),
        ("python -m other_tool hook", False),
        ("python -m session_db sync hook", False),
        ("echo session-db hook", False),
        ("'unbalanced session-db hook", False),
        ("", False),
    ],
)
def test_is_our_command(command: str, ours: bool) -> None:
    assert is_our_command(command) is ours


def test_importing_the_module_loads_no_database_code(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "import session_db.claude.settings_file\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'sqlalchemy', 'pydantic', 'sqlmodel', 'asyncpg', 'alembic'} "
        "or m.startswith('session_db.models'))\n"
        "print(heavy)\n"
    )
    result = run_python("-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_importing_the_package_imports_nothing(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import session_db.claude\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    result = run_python("-c", code, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['session_db', 'session_db.claude']"


# The 34 hook events of Claude Code 2.1.33x, as its hooks reference lists them.
CLAUDE_CODE_EVENTS = [
    "PreToolUse",
    "PostToolUse",
    "PostToolUseFailure",
    "PostToolBatch",
    "PermissionRequest",
    "PermissionDenied",
    "UserPromptSubmit",
    "UserPromptExpansion",
    "PreSkillShellCommand",
    "SessionStart",
    "SessionEnd",
    "Setup",
    "Stop",
    "StopFailure",
    "SubagentStart",
    "SubagentStop",
    "PreCompact",
    "PostCompact",
    "PreModelSwitch",
    "PostModelSwitch",
    "Notification",
    "TeammateIdle",
    "TaskCreated",
    "TaskCompleted",
    "Elicitation",
    "ElicitationResult",
    "ConfigChange",
    "InstructionsLoaded",
    "WorktreeCreate",
    "WorktreeRemove",
    "CwdChanged",
    "FileChanged",
    "DirectoryAdded",
    "MessageDisplay",
]


def test_hook_events_name_every_event_of_claude_code_once() -> None:
    assert len(CLAUDE_CODE_EVENTS) == 34
    assert sorted(HOOK_EVENTS) == sorted(CLAUDE_CODE_EVENTS)


def test_install_registers_every_event_but_worktree_create_which_replaces_claude_code(
    tmp_path: Path,
) -> None:
    path = tmp_path / "settings.json"

    install_hooks(path, COMMAND)

    installed = set(read_json(path)["hooks"])
    assert installed == set(CLAUDE_CODE_EVENTS) - {"WorktreeCreate"}


def test_install_registers_worktree_create_when_asked_by_name(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"

    change = install_hooks(path, COMMAND, ["WorktreeCreate"])

    assert change.added == ["WorktreeCreate"]
    assert our_handlers(read_json(path), "WorktreeCreate")[0]["command"] == COMMAND
