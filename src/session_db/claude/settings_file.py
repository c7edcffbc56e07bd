"""Install and uninstall session_db's hook entries in a Claude Code settings file.

Claude Code reads hooks from `{"hooks": {event: [{"matcher": ..., "hooks": [handler]}]}}`.
We touch only the handlers whose command runs `session-db hook`, keep everything else in
the file as it was, back the file up before each change and replace it atomically.

Only the standard library and `session_db.errors` are imported: the hook installer runs
in the `session-db` command line, which must start fast and without a database.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from session_db.errors import InvalidInputError

# Every hook event of Claude Code 2.1.33x (REFERENCE.md §2), in its documentation's order.
HOOK_EVENTS: tuple[str, ...] = (
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
)
# A WorktreeCreate hook replaces Claude Code's own `git worktree add` and must print the
# new worktree's path; a recorder there would break `claude --worktree`. It is installed
# only when asked for by name.
REPLACING_EVENTS: frozenset[str] = frozenset({"WorktreeCreate"})
DEFAULT_EVENTS: tuple[str, ...] = tuple(e for e in HOOK_EVENTS if e not in REPLACING_EVENTS)
# Events whose matcher is a tool name: ours matches every tool.
TOOL_EVENTS: frozenset[str] = frozenset(
    {"PreToolUse", "PostToolUse", "PostToolUseFailure", "PermissionRequest", "PermissionDenied"}
)

_ENTITY = "claude_settings"
_NEW_FILE_MODE = 0o600
_NEW_DIR_MODE = 0o700

JSONObject = dict[str, Any]


@dataclass(frozen=True)
class SettingsChange:
    """What install_hooks or uninstall_hooks did to one settings file."""

    path: Path
    backup: Path | None
    added: list[str]
    removed: list[str]
    changed: bool
    # Events whose existing entry of ours got the new command; not part of added/removed.
    updated: list[str] = field(default_factory=list)


def user_settings_path(environ: Mapping[str, str] | None = None) -> Path:
    """Return the user-wide settings file, honouring CLAUDE_CONFIG_DIR."""
    env = os.environ if environ is None else environ
    config_dir = env.get("CLAUDE_CONFIG_DIR")
    if config_dir:
        return Path(config_dir).expanduser() / "settings.json"
    # Path.home() reads HOME from os.environ, not from the mapping we were given.
    home = env.get("HOME")
    base = Path(home) if home else Path.home()
    return base / ".claude" / "settings.json"


def project_settings_path(project_dir: Path) -> Path:
    """Return the project's personal, git-ignored settings file."""
    # Not settings.json: the command holds this machine's absolute path to session-db.
    return Path(project_dir) / ".claude" / "settings.local.json"


def hook_command(executable: str | None = None) -> str:
    """Return the shell command line that runs `session-db hook`."""
    if executable is not None:
        prefix = shlex.quote(executable)
    else:
        found = shutil.which("session-db")
        if found:
            # Hooks run with Claude Code's PATH, which may not include our virtualenv.
            prefix = shlex.quote(os.path.abspath(found))
        else:
            prefix = f"{shlex.quote(sys.executable)} -m session_db"
    return f"{prefix} hook"


def is_our_command(command: str) -> bool:
    """Tell whether a hook command runs `session-db hook`, from any install."""
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    if len(words) < 2 or words[-1] != "hook":
        return False
    head = words[:-1]
    if len(head) == 1:
        return head[0].rsplit("/", 1)[-1] == "session-db"
    return len(head) == 3 and head[1:] == ["-m", "session_db"]


def project_shared_settings_path(project_dir: Path) -> Path:
    """Return the project's shared settings file, the one committed with it."""
    return Path(project_dir) / ".claude" / "settings.json"


def installed_events(path: Path) -> list[str]:
    """Return the events whose hooks in the settings file run our command (read only).

    Raises:
        InvalidInputError: The file is not a settings object we can read.
        OSError: The file cannot be read (a missing file has no events).
    """
    data, _ = _load(Path(path))
    hooks: JSONObject = data.get("hooks", {})
    return [
        event
        for event, groups in hooks.items()
        if any(_is_ours(handler) for _, handler in _handlers(groups))
    ]


def install_hooks(
    path: Path,
    command: str,
    events: Sequence[str] = DEFAULT_EVENTS,
    *,
    timeout_s: int = 10,
) -> SettingsChange:
    """Add our hook command to each event in the settings file, once."""
    path = Path(path)
    if not is_our_command(command):
        # Uninstall finds entries by their command; one it cannot recognise would stay.
        raise InvalidInputError(_ENTITY, "command", f"not a session-db hook command: {command!r}")
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, int) or timeout_s < 1:
        raise InvalidInputError(_ENTITY, "timeout_s", f"must be a positive integer: {timeout_s!r}")
    data, raw = _load(path)
    hooks: JSONObject = data.get("hooks", {})
    added: list[str] = []
    updated: list[str] = []
    for event in dict.fromkeys(events):
        groups: list[Any] = hooks.get(event, [])
        ours = [handler for _, handler in _handlers(groups) if _is_ours(handler)]
        if not ours:
            group: JSONObject = {"matcher": "*"} if event in TOOL_EVENTS else {}
            group["hooks"] = [{"type": "command", "command": command, "timeout": timeout_s}]
            hooks[event] = [*groups, group]
            added.append(event)
            continue
        keep = next((h for h in ours if h["command"] == command), ours[0])
        touched = keep["command"] != command
        keep["command"] = command
        # A second entry of ours would run the hook twice for each event.
        extra = {id(h) for h in ours if h is not keep}
        if extra:
            hooks[event], _ = _without(groups, lambda handler, extra=extra: id(handler) in extra)
            touched = True
        if touched:
            updated.append(event)
    if not added and not updated:
        return SettingsChange(path, None, [], [], changed=False)
    data["hooks"] = hooks
    backup = _save(path, data, raw)
    return SettingsChange(path, backup, added, [], changed=True, updated=updated)


def uninstall_hooks(path: Path) -> SettingsChange:
    """Remove every hook handler of ours from the settings file."""
    path = Path(path)
    data, raw = _load(path)
    hooks: JSONObject = data.get("hooks", {})
    removed: list[str] = []
    for event, groups in list(hooks.items()):
        remaining, count = _without(groups, _is_ours)
        if not count:
            continue
        removed.append(event)
        if remaining:
            hooks[event] = remaining
        else:
            del hooks[event]
    if not removed:
        return SettingsChange(path, None, [], [], changed=False)
    if not hooks:
        del data["hooks"]
    backup = _save(path, data, raw)
    return SettingsChange(path, backup, [], removed, changed=True)


def _is_ours(handler: Any) -> bool:
    """Tell whether a handler object runs our command."""
    command = handler.get("command") if isinstance(handler, dict) else None
    return isinstance(command, str) and is_our_command(command)


def _handlers(groups: list[Any]) -> list[tuple[JSONObject, Any]]:
    """Return (group, handler) pairs for the well-formed groups of one event."""
    # Malformed groups are someone else's to fix; we neither read nor change them.
    return [
        (group, handler)
        for group in groups
        if isinstance(group, dict) and isinstance(group.get("hooks"), list)
        for handler in group["hooks"]
    ]


def _without(groups: list[Any], drop: Callable[[Any], bool]) -> tuple[list[Any], int]:
    """Return the groups without the dropped handlers, and how many were dropped."""
    kept_groups: list[Any] = []
    dropped = 0
    for group in groups:
        if isinstance(group, dict) and isinstance(group.get("hooks"), list):
            handlers = group["hooks"]
            kept = [handler for handler in handlers if not drop(handler)]
            if len(kept) != len(handlers):
                dropped += len(handlers) - len(kept)
                if not kept:
                    # Emptied by us: gone. A group that was empty before stays.
                    continue
                group["hooks"] = kept
        kept_groups.append(group)
    return kept_groups, dropped


def _refuse(path: Path, field_name: str | None, problem: str) -> InvalidInputError:
    """Build the error for a settings file we will not edit."""
    return InvalidInputError(_ENTITY, field_name, f"{path}: {problem}; the file was not changed")


def _json_type(value: Any) -> str:
    """Name a parsed JSON value's type the way JSON does."""
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "a number"
    return names.get(type(value), type(value).__name__)


def _load(path: Path) -> tuple[JSONObject, bytes | None]:
    """Parse the settings file and check its shape; a missing file is an empty object."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}, None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise _refuse(path, None, f"not UTF-8 text (byte {error.start})") from error
    if not text.strip():
        # A file made with `touch` holds no settings yet; treat it as `{}`.
        return {}, raw
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        problem = f"invalid JSON at line {error.lineno}, column {error.colno}: {error.msg}"
        raise _refuse(path, None, problem) from error
    if not isinstance(data, dict):
        raise _refuse(path, None, f"the top level is {_json_type(data)}, not an object")
    if "hooks" in data:
        hooks = data["hooks"]
        if not isinstance(hooks, dict):
            raise _refuse(path, "hooks", f'"hooks" is {_json_type(hooks)}, not an object')
        for event, groups in hooks.items():
            if not isinstance(groups, list):
                problem = f'"hooks.{event}" is {_json_type(groups)}, not an array'
                raise _refuse(path, f"hooks.{event}", problem)
    return data, raw


def _save(path: Path, data: JSONObject, previous: bytes | None) -> Path | None:
    """Back up the previous content, then replace the file atomically; return the backup."""
    # Write through a symlink (a dotfiles repository, say) rather than replacing the link.
    target = Path(os.path.realpath(path))
    content = (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    if previous is None:
        mode = _NEW_FILE_MODE
        target.parent.mkdir(mode=_NEW_DIR_MODE, parents=True, exist_ok=True)
        backup = None
    else:
        mode = stat.S_IMODE(target.stat().st_mode)
        backup = _write_backup(target, previous, mode)
    fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as temp:
            os.fchmod(temp.fileno(), mode)
            temp.write(content)
            temp.flush()
            os.fsync(temp.fileno())
        os.replace(temp_name, target)
    except BaseException:
        Path(temp_name).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)
    return backup


def _write_backup(target: Path, content: bytes, mode: int) -> Path:
    """Write the previous content to a new timestamped file next to the target."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{target.name}.bak-{stamp}"
    for attempt in range(1000):
        # Two changes within one second must not overwrite the first backup.
        candidate = target.with_name(base if attempt == 0 else f"{base}-{attempt}")
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as backup:
            # The umask may have narrowed the mode given to os.open.
            os.fchmod(backup.fileno(), mode)
            backup.write(content)
            backup.flush()
            os.fsync(backup.fileno())
        return candidate
    raise FileExistsError(f"no free backup name next to {target}")


def _fsync_dir(directory: Path) -> None:
    """Make a rename in the folder durable, where the platform allows it."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
