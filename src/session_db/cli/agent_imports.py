"""`session-db import amp|codex|gemini`: other agents' local histories, beside `import claude`.

Registered on `claude_commands.import_app` when this module is imported (by `cli.app`).
Annotations are evaluated here (no `from __future__ import annotations`): each command's
argument help is its agent's own.
"""

import importlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from session_db.cli.claude_commands import JsonOption, import_app
from session_db.cli.common import console, print_json, run

# (command, what its files are called, where they are by default, what the command does)
AGENTS = (
    (
        "amp",
        "thread files",
        "Thread files or folders (default: $AMP_DATA_DIR/threads, else "
        "~/.local/share/amp/threads).",
        "Import Amp threads: a session per thread, its messages, tokens and credits (incremental).",
    ),
    (
        "codex",
        "rollout files",
        "Rollout files or folders (default: $CODEX_HOME/sessions, else ~/.codex/sessions).",
        "Import Codex CLI rollouts: a session per Codex session, its conversation and tokens "
        "(incremental).",
    ),
    (
        "gemini",
        "chat files",
        "Chat files or folders (default: $GEMINI_DATA_DIR, else ~/.gemini/tmp).",
        "Import Gemini CLI chats (JSON and JSONL): a session per chat, its messages and "
        "tokens (incremental).",
    ),
)


def _register(agent: str, what: str, paths_help: str, summary: str) -> None:
    """Add `import <agent>` to the import group."""

    def command(
        paths: Annotated[
            list[Path] | None, typer.Argument(help=paths_help, show_default=False)
        ] = None,
        json: JsonOption = False,
    ) -> None:
        # The importer is loaded when the command runs: `session-db --help` stays light.
        source = importlib.import_module(f"session_db.{agent}.importer").SOURCE
        _import(what, paths, source, json)

    command.__doc__ = summary
    command.__name__ = f"import_{agent}"
    import_app.command(agent)(command)


def _import(what: str, paths: list[Path] | None, source: Any, json: bool) -> None:
    """Check the paths, import, and print the report as `import claude` does."""
    targets = list(paths) if paths else [source.default_dir()]
    missing = [str(path) for path in targets if not path.exists()]
    if missing:
        raise typer.BadParameter(f"no such file or folder: {', '.join(missing)}")
    report = run(_run(source, targets))
    if json:
        print_json(report.as_json())
        return
    bad = f", {report.bad_lines} unreadable lines skipped" if report.bad_lines else ""
    print(
        f"{report.files} {what} ({report.unchanged} unchanged): {report.messages} new "
        f"messages, {report.responses} model responses, {len(report.sessions)} sessions{bad}"
    )
    for path, error in report.errors:
        # Escaped: a path or a reason may hold brackets rich would take for markup.
        console().print(f"[yellow]skipped[/] {escape(path)}: {escape(error)}", highlight=False)


async def _run(source: Any, targets: list[Path]) -> Any:
    from session_db.database import get_engine, init_db

    await init_db()
    return await source.import_paths(get_engine(), targets)


for _agent in AGENTS:
    _register(*_agent)
