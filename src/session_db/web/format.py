"""How the pages write numbers, money, times and durations (the CLI's forms where it has one)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from session_db.cli.common import money as _money
from session_db.cli.common import number as _number


def money(value: Any) -> str:
    """`$1,234.5678`, the precision of every cost the command line prints."""
    return _money(value if value is not None else Decimal(0))


def number(value: Any) -> str:
    """`1,234,567`."""
    return _number(value)


def when(value: datetime | None) -> str:
    """A UTC time to the second (`2026-02-14 10:12:03`), or an empty string."""
    return "" if value is None else value.strftime("%Y-%m-%d %H:%M:%S")


def short(text: Any, length: int = 80) -> str:
    """`text` cut to `length` characters, with an ellipsis where it was cut."""
    value = "" if text is None else str(text)
    return value if len(value) <= length else value[: length - 1] + "…"
