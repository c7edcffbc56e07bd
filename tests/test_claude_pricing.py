"""Pricing Claude usage: model id normalisation, reported cost, genai-prices list price."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from session_db.claude.pricing import Cost, normalize_model, price_usage

# One real claude-opus-4-6 response at list price: $5/M input, $25/M output, $6.25/M cache
# write (5 minutes), $0.50/M cache read: 0.00009 + 0.064425 + 0.09225 + 0.0849085 = 0.2416735.
OPUS_USAGE = {
    "input_tokens": 18,
    "output_tokens": 2577,
    "cache_creation_input_tokens": 14760,
    "cache_read_input_tokens": 169817,
}
OPUS_COST = Decimal("0.2416735")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("claude-opus-4-6", "claude-opus-4-6"),
        ("  claude-sonnet-4-5-20250929\n", "claude-sonnet-4-5-20250929"),
        ("us.anthropic.claude-opus-4-6-v1", "claude-opus-4-6"),
        ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", "claude-sonnet-4-5-20250929"),
        ("apac.anthropic.claude-3-7-sonnet-20250219-v1:0", "claude-3-7-sonnet-20250219"),
        ("global.anthropic.claude-haiku-4-5-20251001-v1:0", "claude-haiku-4-5-20251001"),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", "claude-3-5-sonnet-20241022"),
        ("claude-opus-4-6@20260101", "claude-opus-4-6"),
        ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet"),
        ("anthropic/claude-opus-4-6", "claude-opus-4-6"),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/"
            "us.anthropic.claude-opus-4-6-v1",
            "claude-opus-4-6",
        ),
        ("<synthetic>", "<synthetic>"),
        ("gpt-4o", "gpt-4o"),
        ("", ""),
    ],
)
def test_normalize_model(raw: str, expected: str) -> None:
    assert normalize_model(raw) == expected


@pytest.mark.parametrize(
    "model",
    [
        "claude-opus-4-6",
        "us.anthropic.claude-opus-4-6-v1",
        "claude-opus-4-6@20260101",
        "anthropic/claude-opus-4-6",
    ],
)
def test_computed_price_of_a_real_opus_response(model: str) -> None:
    assert price_usage(model, OPUS_USAGE) == Cost(OPUS_COST, "computed", estimate=True)


def test_computed_price_accepts_a_request_time() -> None:
    at = datetime(2026, 2, 12, 16, 2, 48, tzinfo=UTC)
    assert price_usage("claude-opus-4-6", OPUS_USAGE, at=at).amount == OPUS_COST


def test_one_hour_cache_writes_cost_more_than_five_minute_ones() -> None:
    million = 1_000_000
    base = {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": million}
    five_min = {"ephemeral_5m_input_tokens": million, "ephemeral_1h_input_tokens": 0}
    one_hour = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": million}
    assert price_usage("claude-opus-4-6", {**base, "cache_creation": five_min}).amount == Decimal(
        "6.25"
    )
    assert price_usage("claude-opus-4-6", {**base, "cache_creation": one_hour}).amount == Decimal(
        "10"
    )


@pytest.mark.parametrize(
    ("reported", "amount"),
    [
        (0.0123, Decimal("0.0123")),
        ("1.5", Decimal("1.5")),
        (Decimal("0.2"), Decimal("0.2")),
        (0, Decimal("0")),
    ],
)
def test_a_reported_cost_wins(reported: float | str | Decimal, amount: Decimal) -> None:
    cost = price_usage("claude-opus-4-6", OPUS_USAGE, reported)
    assert cost == Cost(amount, "reported", estimate=False)
    # Even for a model genai-prices does not know.
    assert price_usage("no-such-model", {}, reported) == Cost(amount, "reported", estimate=False)


@pytest.mark.parametrize("reported", ["not a number", float("nan"), -1, True])
def test_an_unusable_reported_cost_falls_back_to_list_price(reported: object) -> None:
    cost = price_usage("claude-opus-4-6", OPUS_USAGE, reported)
    assert cost == Cost(OPUS_COST, "computed", estimate=True)


@pytest.mark.parametrize("model", ["claude-imaginary-9", "<synthetic>", "", "  "])
def test_an_unknown_model_is_unpriced(model: str) -> None:
    assert price_usage(model, OPUS_USAGE) == Cost(None, "unpriced", estimate=True)


@pytest.mark.parametrize(
    "usage",
    [
        {},
        {"input_tokens": None, "output_tokens": 5},
        {"input_tokens": -3, "output_tokens": 5},
        {"input_tokens": "12", "output_tokens": 5},
    ],
)
def test_a_usage_genai_prices_cannot_read_is_unpriced(usage: dict) -> None:
    assert price_usage("claude-opus-4-6", usage) == Cost(None, "unpriced", estimate=True)


def test_an_unknown_model_is_looked_up_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import genai_prices

    calls: list[str] = []
    real = genai_prices.extract_usage

    def counting(data, **kwargs):
        calls.append(data["model"])
        return real(data, **kwargs)

    monkeypatch.setattr(genai_prices, "extract_usage", counting)
    for _ in range(3):
        assert price_usage("claude-lookup-once-1", OPUS_USAGE).source == "unpriced"
    for _ in range(2):
        assert price_usage("claude-opus-4-6", OPUS_USAGE).amount == OPUS_COST
    assert calls == ["claude-lookup-once-1", "claude-opus-4-6", "claude-opus-4-6"]


def test_importing_the_module_does_not_import_genai_prices() -> None:
    code = (
        "import sys, session_db.claude.pricing, session_db.claude.transcript; "
        "print('genai_prices' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"
