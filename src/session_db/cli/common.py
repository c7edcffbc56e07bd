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


def print_table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    empty: str | None = None,
) -> None:
    """Print a table for people, or the line `empty` when there are no rows.

    Args:
        title: Shown above the table.
        columns: The header of each column.
        rows: The cells, row by row; None prints as an empty cell.
        empty: What to say instead of a header-only table (default: "No rows.").
    """
    table = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Escaped: cell text is data (a markdown link, `[tool_use]`), not rich markup.
        table.add_row(*("" if value is None else escape(str(value)) for value in row))
    if not table.row_count:
        console().print(escape(empty or "No rows."))
        return
    console().print(table)


def money(value: Any) -> str:
    """A cost for people, the one precision every command uses: `$1,234.5678`."""
    amount = Decimal(value if value is not None else 0)
    sign = "-" if amount < 0 else ""
    return f"{sign}${abs(amount):,.4f}"


def number(value: Any) -> str:
    """A count for people, with thousands separators: `1,234,567`."""
    return f"{int(value or 0):,}"


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """`1 session`, `2 sessions`, `1,024 entries`: a count and what it counts."""
    word = singular if count == 1 else (plural_form or f"{singular}s")
    return f"{number(count)} {word}"


def exact(value: Any) -> str:
    """A cost for scripts: every digit, no exponent."""
    return format(Decimal(value), "f")
