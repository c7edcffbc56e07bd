"""What the Amp, Codex and Gemini import tests share: reading back what an import stored."""

from __future__ import annotations

from typing import Any

import genai_prices
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from session_db import crud
from session_db.database import get_async_session
from session_db.models import metadata

# Every table an import writes, compared whole by `snapshot`.
WRITTEN = (
    "projects",
    "sessions",
    "agents",
    "threads",
    "thread_messages",
    "usage_records",
    "session_relationships",
    "transcript_imports",
)


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table an import writes, every column, in key order."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as connection:
        for name in WRITTEN:
            table = metadata.tables[name]
            result = await connection.execute(sa.select(table).order_by(*table.primary_key))
            rows[name] = [tuple(row) for row in result.all()]
    return rows


async def stored(engine: AsyncEngine, slug: str) -> dict[str, Any]:
    """A session by slug, with its thread's messages, usage records, agents and links."""
    async with get_async_session(engine) as db:
        session = await crud.get_session_by_slug(db, slug)
        threads = await crud.list_session_threads(db, session.id)
        messages = [
            message
            for thread in threads
            for message in await crud.list_thread_messages(db, thread.id)
        ]
        usage = await crud.list_usage_records(db, session_id=session.id)
        agents = await crud.list_agents(db, session_id=session.id)
        links = await crud.list_relationships(db, parent_session_id=session.id)
    return {
        "session": session,
        "threads": threads,
        "messages": messages,
        "usage": usage,
        "agents": agents,
        "links": links,
    }


def kinds(record: Any) -> tuple[int, int, int, int]:
    """(input, output, cache write, cache read) of a usage record or agent."""
    return (
        record.input_tokens,
        record.output_tokens,
        record.cache_creation_tokens,
        record.cache_read_tokens,
    )


def list_price(model: str, provider: str, inputs: int, cached: int, output: int) -> Any:
    """genai-prices' price of one response (its input count includes the cached tokens)."""
    usage = genai_prices.Usage(input_tokens=inputs, cache_read_tokens=cached, output_tokens=output)
    return genai_prices.calc_price(usage, model, provider_id=provider).total_price
