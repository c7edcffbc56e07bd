"""Usage records shaped as the importers write them, for the usage report tests.

The figures are real ones: token counts and ids in the forms of the Claude Code
transcript in tests/fixtures/claude-code/spotter (one response's `message.usage`:
3 input, 15,005 cache-creation and 11,442 cache-read tokens), Bedrock's and Vertex's
ids of the same model, and the `source_app`s the importers set.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from session_db import crud

OPUS = "claude-opus-4-6"
SONNET = "claude-sonnet-4-5-20250929"
SONNET_BEDROCK = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_VERTEX = "claude-sonnet-4-5@20250929"
GPT = "gpt-5-codex"

# One Claude Code response's usage, as the spotter transcript's first assistant line has it.
RESPONSE = {
    "input_tokens": 3,
    "output_tokens": 9,
    "cache_creation_tokens": 15_005,
    "cache_read_tokens": 11_442,
}
RESPONSE_TOTAL = sum(RESPONSE.values())

_serial = itertools.count(1)


async def a_session(
    db: AsyncSession,
    slug: str,
    *,
    app: str | None = "claude-code",
    project_id: uuid.UUID | None = None,
    title: str | None = None,
    parent_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """A session as an importer makes it (slug, `source_app`, project, title)."""
    values: dict[str, Any] = {"source_app": app, "project_id": project_id, "title": title}
    if parent_id is not None:
        values["parent_session_id"] = parent_id
    return await crud.ensure_session(db, slug, **values)


async def responses(
    db: AsyncSession,
    session_id: uuid.UUID,
    times: list[datetime],
    *,
    model: str = OPUS,
    cost: str = "0.1",
    source: str = "computed",
    **tokens: int,
) -> None:
    """One usage record per time, each a response of `model` with RESPONSE's tokens."""
    figures = {**RESPONSE, **tokens}
    rows = []
    for at in times:
        serial = next(_serial)
        rows.append(
            {
                "session_id": session_id,
                "message_id": f"msg_01PdWvcjJ6E9Bg{serial:010d}",
                "request_id": f"req_011CY4{serial:012d}",
                "model": model,
                **figures,
                "cost": Decimal(cost),
                "cost_source": source,
                "cost_is_estimate": source != "reported",
                "occurred_at": at,
            }
        )
    await crud.add_usage_records(db, rows, return_ids=False)
