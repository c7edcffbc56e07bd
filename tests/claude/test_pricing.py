"""Pricing Claude usage: model id normalisation, reported cost, genai-prices list price."""

from __future__ import annotations

import random
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from session_db.claude import pricing
from session_db.claude.pricing import Cost, clear_price_cache, normalize_model, price_usage

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
    from genai_prices.data_snapshot import DataSnapshot

    clear_price_cache()
    calls: list[str] = []
    real = DataSnapshot.find_provider_model

    def counting(self, model_ref, *args):  # type: ignore[no-untyped-def]
        calls.append(model_ref)
        return real(self, model_ref, *args)

    monkeypatch.setattr(DataSnapshot, "find_provider_model", counting)
    for _ in range(3):
        assert price_usage("claude-lookup-once-1", OPUS_USAGE).source == "unpriced"
    for _ in range(3):
        assert price_usage("claude-opus-4-6", OPUS_USAGE).amount == OPUS_COST
    assert calls == ["claude-lookup-once-1", "claude-opus-4-6"]


def test_a_price_is_resolved_once_per_model_and_price_period(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_price_cache()
    built: list[object] = []
    real = pricing._PricePlan.__init__

    def counting(self, price):  # type: ignore[no-untyped-def]
        built.append(price)
        real(self, price)

    monkeypatch.setattr(pricing._PricePlan, "__init__", counting)
    # claude-opus-4-6 had long-context tiers until 2026-03-13, one flat price since.
    before, after = datetime(2026, 2, 12, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)
    for _ in range(3):
        for at in (before, after):
            assert price_usage("claude-opus-4-6", OPUS_USAGE, at=at).amount == OPUS_COST
            assert price_usage("us.anthropic.claude-opus-4-6-v1", OPUS_USAGE, at=at).source == (
                "computed"
            )
    assert len(built) == 2 and built[0] is not built[1]


@pytest.mark.parametrize(
    ("usage", "amount"),
    [
        # Above 200k input tokens (cache reads and writes included) every token of the
        # request costs the long-context price, $10/M input and $1/M cache read.
        ({"input_tokens": 200_000, "output_tokens": 0}, Decimal("1")),
        ({"input_tokens": 200_001, "output_tokens": 0}, Decimal("2.00001")),
        (
            {"input_tokens": 1, "output_tokens": 0, "cache_read_input_tokens": 200_000},
            Decimal("0.20001"),
        ),
        (
            {"input_tokens": 0, "output_tokens": 1_000, "cache_read_input_tokens": 199_999},
            Decimal("0.1249995"),
        ),
    ],
)
def test_tiered_prices_stay_exact(usage: dict, amount: Decimal) -> None:
    at = datetime(2026, 2, 12, tzinfo=UTC)  # the tiered period of claude-opus-4-6
    cost = price_usage("claude-opus-4-6", usage, at=at)
    assert cost.amount == amount == pricing.genai_list_price("claude-opus-4-6", usage, at)


# An unknown model with an unreadable usage fails on the usage in genai-prices and on the
# model here: unpriced either way, which is what price_usage makes of both.
def _genai_or_error(name: str, usage: dict, at: datetime | None) -> object:
    try:
        return pricing.genai_list_price(name, usage, at)
    except (LookupError, ValueError, TypeError, ArithmeticError):
        return "unpriced"


def _cached_or_error(name: str, usage: dict, at: datetime | None) -> object:
    try:
        return pricing._list_price(name, usage, at)
    except (LookupError, ValueError, TypeError, ArithmeticError):
        return "unpriced"


def _random_usage(rnd: random.Random) -> dict:
    odd = [None, -1, "5", True, 2.5, Decimal("3"), 199_999, 200_000, 200_001]

    def count() -> object:
        return rnd.choice(odd) if rnd.random() < 0.15 else rnd.choice([0, rnd.randint(0, 300_000)])

    usage: dict = {}
    for key in (
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    ):
        if rnd.random() < 0.9:
            usage[key] = count()
    if rnd.random() < 0.5:
        usage["cache_creation"] = rnd.choice(
            [
                {"ephemeral_5m_input_tokens": count(), "ephemeral_1h_input_tokens": count()},
                {"ephemeral_1h_input_tokens": count()},
                None,
                "n/a",
            ]
        )
    if rnd.random() < 0.2:
        usage["server_tool_use"] = {"web_search_requests": rnd.choice([0, 1, 3, None])}
    if rnd.random() < 0.2:
        usage["output_tokens_details"] = {"thinking_tokens": rnd.randint(0, 5_000)}
    return usage


def test_cached_prices_equal_genai_prices_to_the_last_digit() -> None:
    from genai_prices.data_snapshot import get_snapshot

    clear_price_cache()
    provider = get_snapshot().find_provider(None, pricing.PROVIDER, None)
    models = [model.id for model in provider.models] + [
        "claude-sonnet-4-5-20250929",
        "claude-haiku-4-5-20251001",
        "claude-3-5-sonnet-20241022",
        "claude-imaginary-9",
    ]
    times = [
        None,
        datetime(2024, 6, 1, tzinfo=UTC),
        datetime(2026, 2, 12, 16, 2, 48, tzinfo=UTC),
        datetime(2026, 3, 12, 23, 59, 59, tzinfo=UTC),
        datetime(2026, 3, 13, tzinfo=UTC),
        datetime(2026, 10, 14, tzinfo=UTC),
    ]
    rnd = random.Random(20260213)
    outcomes: set[str] = set()
    for _ in range(1_500):
        usage, name, at = _random_usage(rnd), rnd.choice(models), rnd.choice(times)
        expected = _genai_or_error(name, usage, at)
        got = _cached_or_error(name, usage, at)
        assert got == expected, (name, at, usage)
        if isinstance(expected, Decimal):
            assert got.as_tuple() == expected.as_tuple(), (name, at, usage)  # type: ignore[union-attr]
        outcomes.add(type(expected).__name__ if isinstance(expected, Decimal) else expected)
    # The grid reached every kind of outcome, and the cache was used, not bypassed.
    assert outcomes == {"Decimal", "unpriced"}
    assert any(entry.extraction is not None for entry in pricing._MODELS.values())


def test_counts_that_are_not_ints_are_priced_by_genai_prices_itself() -> None:
    usage = {"input_tokens": 10.5, "output_tokens": Decimal("5"), "cache_read_input_tokens": 7}
    at = datetime(2026, 2, 12, tzinfo=UTC)
    expected = pricing.genai_list_price("claude-opus-4-6", usage, at)
    assert price_usage("claude-opus-4-6", usage, at=at) == Cost(expected, "computed", True)


def test_importing_the_module_does_not_import_genai_prices() -> None:
    code = (
        "import sys, session_db.claude.pricing, session_db.claude.transcript; "
        "print('genai_prices' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "False"


# --- Fast mode ----------------------------------------------------------------------------------


def _fast(usage: dict) -> dict:
    return {**usage, "speed": "fast"}


@pytest.mark.parametrize("model", ["claude-opus-4-6", "claude-opus-4-7"])
def test_fast_mode_is_six_times_the_standard_price_of_opus_4_6_and_4_7(model: str) -> None:
    at = datetime(2026, 4, 1, tzinfo=UTC)
    standard = price_usage(model, OPUS_USAGE, at=at)
    fast = price_usage(model, _fast(OPUS_USAGE), at=at)
    assert standard.amount == OPUS_COST
    assert fast == Cost(6 * OPUS_COST, "computed", estimate=True)
    assert price_usage(model, {**OPUS_USAGE, "speed": "standard"}, at=at) == standard


def test_fast_mode_of_opus_4_6_above_200k_input_is_six_times_its_long_context_price() -> None:
    # Anthropic's table for February 2026: $60 / MTok input above 200k input tokens.
    at = datetime(2026, 2, 12, tzinfo=UTC)
    usage = _fast({"input_tokens": 200_001, "output_tokens": 0})
    assert price_usage("claude-opus-4-6", usage, at=at).amount == Decimal("12.00006")
    assert pricing.genai_list_price("claude-opus-4-6", usage, at, fast=True) == Decimal("12.00006")


def test_fast_mode_uses_genai_prices_own_fast_price_where_it_has_one() -> None:
    import genai_prices

    at = datetime(2026, 11, 1, tzinfo=UTC)
    extracted = genai_prices.extract_usage(
        {"model": "claude-opus-4-8", "usage": OPUS_USAGE}, provider_id="anthropic"
    )
    theirs = extracted.calc_price(
        genai_request_timestamp=at, price_context={"speed": "fast"}
    ).total_price
    assert theirs == 2 * OPUS_COST  # $10 / $50 and the cache multipliers on top
    assert price_usage("claude-opus-4-8", _fast(OPUS_USAGE), at=at).amount == theirs


def test_fast_usage_without_a_known_fast_price_is_unpriced_and_the_model_stays_priced() -> None:
    clear_price_cache()
    model = "claude-sonnet-4-5-20250929"
    assert price_usage(model, _fast(OPUS_USAGE)) == Cost(None, "unpriced", estimate=True)
    assert price_usage(model, OPUS_USAGE).source == "computed"  # not taken for unknown
    with pytest.raises(ValueError, match="no fast mode price known"):
        pricing.genai_list_price(model, OPUS_USAGE, None, fast=True)


def test_cached_fast_prices_equal_the_uncached_ones_to_the_last_digit() -> None:
    from genai_prices.data_snapshot import get_snapshot

    clear_price_cache()
    provider = get_snapshot().find_provider(None, pricing.PROVIDER, None)
    models = [model.id for model in provider.models if model.id.startswith("claude")]
    times = [None, datetime(2026, 2, 12, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC)]
    rnd = random.Random(20261202)
    priced: set[str] = set()
    for _ in range(600):
        usage, name, at = _random_usage(rnd), rnd.choice(models), rnd.choice(times)
        try:
            expected: object = pricing.genai_list_price(name, usage, at, fast=True)
        except (LookupError, ValueError, TypeError, ArithmeticError):
            expected = "unpriced"
        try:
            got: object = pricing._list_price(name, usage, at, fast=True)
        except (LookupError, ValueError, TypeError, ArithmeticError):
            got = "unpriced"
        assert got == expected, (name, at, usage)
        if isinstance(expected, Decimal):
            priced.add(name)
    # Both kinds were reached: a multiplied standard price and genai-prices' own fast price.
    assert {"claude-opus-4-6", "claude-opus-4-8"} <= priced
