"""The `session-db` console script: the hook's fast path, or the full command line.

`session-db hook` (with no further arguments) is what Claude Code runs for every event,
so it must not import typer, SQLAlchemy or pydantic; everything else gets the full app.
"""

import sys


def main() -> int:
    """Run `session-db`."""
    if sys.argv[1:] == ["hook"]:
        from session_db.claude.hook import run

        return run()
    from session_db.cli.app import main as cli_main

    return cli_main()
