"""Retrying a whole unit of work after a transient fault, with capped doubling backoff.

The unit of work is a callable that opens its own transaction: a retry runs all of it
again from the start, never the remains of a transaction the fault broke. Which faults
are transient is decided in one place, `session_db.errors.is_transient`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from session_db.errors import is_transient

logger = logging.getLogger(__name__)

T = TypeVar("T")


def backoff_delays(first: float = 0.2, cap: float = 30.0) -> Callable[[int], float]:
    """Return the wait before retry `n` (from 1): `first`, then doubling up to `cap`."""
    return lambda attempt: min(cap, first * 2 ** (attempt - 1))


async def retry_transient(
    work: Callable[[], Awaitable[T]],
    *,
    attempts: int | None = 8,
    first_delay: float = 0.2,
    max_delay: float = 30.0,
    what: str = "database work",
) -> T:
    """Run `work()`, running it again from the start after each transient fault.

    Args:
        work: The unit of work; each call must open (and own) its own transaction.
        attempts: How many times to try in all; None tries until it succeeds.
        first_delay: Seconds before the first retry; each later one waits twice as long.
        max_delay: The longest wait between two tries.
        what: Names the work in the log line of each retry.

    Returns:
        What `work()` returned.

    Raises:
        Exception: A permanent fault at once, or the last transient one once `attempts`
            are used up.
    """
    delay = backoff_delays(first_delay, max_delay)
    attempt = 0
    while True:
        attempt += 1
        try:
            return await work()
        except Exception as error:
            if not is_transient(error) or (attempts is not None and attempt >= attempts):
                raise
            wait = delay(attempt)
            logger.warning(
                "%s failed (%s: %s); retrying in %.1f s",
                what,
                type(error).__name__,
                str(error).splitlines()[0] if str(error) else "",
                wait,
            )
            await asyncio.sleep(wait)
