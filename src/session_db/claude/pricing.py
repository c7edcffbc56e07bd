"""Price Claude usage: the cost a client reported, else list price from genai-prices.

Pure: no database code. genai-prices is imported on first use, not at import time
(it takes a noticeable fraction of a second to load its price tables).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

__all__ = ["Cost", "normalize_model", "price_usage"]

# Bedrock: "us.anthropic.", "eu.anthropic.", "apac.anthropic.", "global.anthropic.", "anthropic."
_BEDROCK_PREFIX = re.compile(r"^(?:[a-z]{2,6}(?:-[a-z]+)?\.)?anthropic\.")
# Bedrock version suffix: "-v1", "-v2:0"
_BEDROCK_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")

# Normalised models genai-prices does not know, so a long import does not search for them
# once per line. Only lookup misses are kept: genai-prices caches its own hits.
_UNKNOWN_MODELS: set[str] = set()


@lru_cache(maxsize=256)
def normalize_model(raw: str) -> str:
    """Map a Bedrock, Vertex or router id of a Claude model to Anthropic's own id."""
    model = raw.strip()
    # Router / ARN forms: "anthropic/claude-...", "bedrock/us.anthropic.claude-...",
    # "arn:aws:bedrock:...:inference-profile/us.anthropic.claude-...".
    if "/" in model:
        tail = model.rsplit("/", 1)[1]
        if tail.startswith("claude") or _BEDROCK_PREFIX.match(tail):
            model = tail
    bedrock = _BEDROCK_PREFIX.match(model)
    if bedrock:
        model = model[bedrock.end() :]
    # Vertex: "claude-opus-4-6@20260101".
    if model.startswith("claude") and "@" in model:
        model = model.split("@", 1)[0]
    if model.startswith("claude"):
        stripped = _BEDROCK_SUFFIX.sub("", model)
        # Keep legacy ids like "claude-v2" whole: stripping would leave bare "claude".
        if stripped != "claude":
            model = stripped
    return model


@dataclass(frozen=True)
class Cost:
    """The cost of some usage in USD, where it came from, and whether it is an estimate."""

    amount: Decimal | None  # USD; None when unpriced
    source: str  # "reported" | "computed" | "unpriced"
    estimate: bool  # False only for a cost the client reported


def _reported(value: float | str | Decimal | None) -> Decimal | None:
    """The reported cost as a Decimal, or None if absent or not a finite, non-negative number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None
    if not amount.is_finite() or amount < 0:
        return None
    return amount


def price_usage(
    model: str,
    usage: Mapping[str, Any],
    reported_usd: float | str | Decimal | None = None,
    *,
    at: datetime | None = None,
) -> Cost:
    """Price one API response's usage: the reported cost if any, else genai-prices' list price.

    `usage` is Anthropic's usage dict (input_tokens, output_tokens, cache_creation_input_tokens,
    cache_read_input_tokens, cache_creation{ephemeral_5m/1h_input_tokens}). `at` is when the
    request was made, for prices that changed over time (None: today's price).
    """
    reported = _reported(reported_usd)
    if reported is not None:
        return Cost(reported, "reported", estimate=False)

    name = normalize_model(model) if isinstance(model, str) else ""
    if not name or name in _UNKNOWN_MODELS or not isinstance(usage, Mapping):
        return Cost(None, "unpriced", estimate=True)

    import genai_prices  # deferred: slow to import

    try:
        extracted = genai_prices.extract_usage(
            {"model": name, "usage": dict(usage)}, provider_id="anthropic"
        )
        total = extracted.calc_price(genai_request_timestamp=at).total_price
    except LookupError:
        _UNKNOWN_MODELS.add(name)
        return Cost(None, "unpriced", estimate=True)
    except (ValueError, TypeError, ArithmeticError):
        # A usage genai-prices cannot read: missing or None counts, negative numbers, ...
        return Cost(None, "unpriced", estimate=True)
    return Cost(Decimal(total), "computed", estimate=True)
