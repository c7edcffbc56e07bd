"""What every command shares: the global state, running coroutines, printing results."""

import asyncio
import json
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from rich.console import Console
from rich.markup import escape
from rich.table import Table

T = TypeVar("T")


@dataclass
class State:
    """Options given before the command (`session-db --verbose ...`)."""

    verbose: bool = False


state = State()


def console() -> Console:
    """The console results go to (stdout)."""
    return Console(soft_wrap=True)


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine, closing the default engine's connections afterwards."""
    from session_db.database import dispose_engine

    async def with_cleanup() -> T:
        try:
            return await coroutine
        finally:
            await dispose_engine()

    return asyncio.run(with_cleanup())


def print_json(data: Any) -> None:
    """Print `data` as JSON for scripts (UUIDs, dates and decimals as strings)."""
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a table for people."""
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Escaped: cell text is data (a markdown link, `[tool_use]`), not rich markup.
        table.add_row(*("" if value is None else escape(str(value)) for value in row))
    console().print(table)


def money(value: Any) -> str:
    """A cost for people: dollars with four decimals."""
    return f"{Decimal(value):.4f}"


def exact(value: Any) -> str:
    """A cost for scripts: every digit, no exponent."""
    return format(Decimal(value), "f")
