"""What every command shares: the global state, running coroutines, printing results."""

import asyncio
import json
from collections.abc import Coroutine, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
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
    columns: Sequence["str | Col"],
    rows: Iterable[Sequence[Any]],
    *,
    empty: str | None = None,
    compact: bool = False,
) -> None:
    """Print a table for people, or the line `empty` when there are no rows.

    Args:
        title: Shown above the table.
        columns: The header of each column, or a `Col` with its header and layout.
        rows: The cells, row by row; None prints as an empty cell.
        empty: What to say instead of a header-only table (default: "No rows.").
        compact: No side borders, a rule under the header: more room for the cells.
    """
    from rich import box

    options: dict[str, Any] = {}
    if compact:
        # One space of padding and the separator: two characters between columns.
        options = {
            "box": box.SIMPLE_HEAD,
            "show_edge": False,
            "pad_edge": False,
            "padding": (0, 1, 0, 0),
        }
    table = Table(title=title, title_justify="left", header_style="bold", **options)
    cells = [["" if value is None else str(value) for value in row] for row in rows]
    widths = _fitted(columns, cells, compact) if cells else {}
    for index, column in enumerate(columns):
        if isinstance(column, str):
            table.add_column(column, overflow="fold")
            continue
        table.add_column(
            column.header,
            justify=column.justify,  # type: ignore[arg-type]
            no_wrap=column.no_wrap,
            overflow="ellipsis" if column.no_wrap else "fold",
            max_width=column.max_width,
            min_width=column.min_width,
            width=widths.get(index),
        )
        if index in widths:
            for row in cells:
                row[index] = shorten(row[index], widths[index])
    for row in cells:
        # Escaped: cell text is data (a markdown link, `[tool_use]`), not rich markup.
        table.add_row(*(escape(value) for value in row))
    if not table.row_count:
        console().print(escape(empty or "No rows."))
        return
    console().print(table)


def _fitted(
    columns: Sequence["str | Col"], cells: list[list[str]], compact: bool
) -> dict[int, int]:
    """The width of each one-line column (`no_wrap`), so that the table fits the terminal.

    Columns that must not shrink keep their widest cell; the others share the room left,
    the first listed first (rich would cut every column alike, and the fixed ones too).
    """
    lines = [i for i, c in enumerate(columns) if isinstance(c, Col) and c.no_wrap]
    if not lines:
        return {}

    def natural(i: int) -> int:
        column = columns[i]
        header = column if isinstance(column, str) else column.header
        wide = max([len(header), *(len(row[i]) for row in cells)])
        if isinstance(column, Col) and column.max_width is not None:
            wide = min(wide, column.max_width)
        return wide

    wanted = {i: natural(i) for i in range(len(columns))}
    overhead = 2 * (len(columns) - 1) if compact else 3 * len(columns) + 1
    shrinking = [i for i in lines if columns[i].shrink]  # type: ignore[union-attr]
    room = console().width - overhead - sum(w for i, w in wanted.items() if i not in shrinking)
    least = [min(columns[i].min_width or 1, wanted[i]) for i in shrinking]  # type: ignore[union-attr]
    shares = share(max(room, 0), list(zip(least, (wanted[i] for i in shrinking), strict=True)))
    widths = {i: wanted[i] for i in lines}
    widths.update(zip(shrinking, shares, strict=True))
    return widths


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


@dataclass(frozen=True)
class Col:
    """A column of `print_table` with its layout: `Col("Cost", justify="right")`.

    Cells of a `no_wrap` column stay on one line, cut with "…" past `max_width` or where
    the terminal ends; a column that must not `shrink` keeps its widest cell whole, and
    the others give way.
    """

    header: str
    justify: str = "left"
    no_wrap: bool = False
    max_width: int | None = None
    min_width: int | None = None
    shrink: bool = True


def shorten(text: str | None, width: int) -> str:
    """`text` cut to `width` characters, ending in "…" when cut."""
    text = text or ""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…" if width > 0 else ""


def shorten_middle(text: str | None, width: int) -> str:
    """`text` cut to `width` characters keeping its start and end: `2026-02-14_sea…k2m9qx`."""
    text = text or ""
    if len(text) <= width:
        return text
    if width < 5:
        return shorten(text, width)
    tail = (width - 1) // 3
    return text[: width - 1 - tail] + "…" + text[len(text) - tail :]


def when(moment: datetime | None) -> str:
    """A time for people, in UTC to the minute: `2026-02-14 09:30`."""
    if moment is None:
        return ""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%d %H:%M")


def duration(milliseconds: int | None) -> str:
    """A duration for people: `840 ms`, `12.3 s`, `4 min 05 s`, `2 h 10 min`."""
    if milliseconds is None:
        return ""
    if milliseconds < 1000:
        return f"{milliseconds} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, second = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {second:02d} s"
    hours, minute = divmod(minutes, 60)
    return f"{hours} h {minute:02d} min"


def share(room: int, wants: Sequence[tuple[int, int]]) -> list[int]:
    """Split `room` characters among columns that each want (least, most) of them.

    Each gets its least (the widest give way first when `room` is short), then what is
    left goes to the columns in the order given, each up to its most.
    """
    widths = [min(least, most) for least, most in wants]
    while sum(widths) > room and any(widths):
        widest = widths.index(max(widths))
        widths[widest] -= 1
    spare = room - sum(widths)
    for i, (_, most) in enumerate(wants):
        grow = min(spare, most - widths[i])
        if grow > 0:
            widths[i] += grow
            spare -= grow
    return widths
