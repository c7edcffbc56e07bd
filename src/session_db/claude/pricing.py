"""Price Claude usage: the cost a client reported, else list price from genai-prices.

Pure: no database code. genai-prices is imported on first use, not at import time
(it takes a noticeable fraction of a second to load its price tables).

genai-prices finds the model, picks the price of the request's date and checks that
price's units on every call, which made it most of an import's time. Here all that is
done once per (model, provider, price period) and kept as a `_PricePlan`; a response is
then priced from its token counts by the same arithmetic genai-prices does (the same
Decimal operations in the same order, so the same result to the last digit, tiers
included). Anything the plan does not cover (float or Decimal counts, an extractor or a
price it does not recognise, a genai-prices whose internals moved) goes through
genai-prices itself, and `tests/test_claude_pricing.py` checks the two agree.

Fast mode (`usage.speed == "fast"`) is billed at a premium that genai-prices' usage
extraction does not apply: it never reads `speed`. Where genai-prices' data carries a
`speed: fast` price variant for the model (Opus 4.8, Opus 5, Opus 5.5, Fable 5.2 and
Mythos 5.2 in genai-prices 0.2.3), that price is used, selected with genai-prices' own
`price_context`. Its data has no fast price for the two older models that had fast mode,
Opus 4.6 and Opus 4.7; for those the list price is multiplied by Anthropic's documented
multiplier (`FAST_MULTIPLIERS`). Fast usage of any other model is left unpriced rather
than priced at the standard rate.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from numbers import Integral
from typing import Any

__all__ = [
    "FAST_MULTIPLIERS",
    "Cost",
    "clear_price_cache",
    "normalize_model",
    "price_usage",
]

# Bedrock: "us.anthropic.", "eu.anthropic.", "apac.anthropic.", "global.anthropic.", "anthropic."
_BEDROCK_PREFIX = re.compile(r"^(?:[a-z]{2,6}(?:-[a-z]+)?\.)?anthropic\.")
# Bedrock version suffix: "-v1", "-v2:0"
_BEDROCK_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")

# The provider whose price list a Claude model is looked up in: Anthropic's own prices,
# whichever cloud served the request (the model id is normalised to Anthropic's first).
PROVIDER = "anthropic"

# Fast mode's premium over the standard price, for the models genai-prices has no fast
# price for (keyed by genai-prices' model id). Source: Anthropic's fast mode
# documentation, https://platform.claude.com/docs/en/build-with-claude/fast-mode#pricing
# (February 2026): "Fast mode is priced at 6x standard Opus rates", $30 / $150 per million
# input / output tokens for Opus 4.6 (6x $5 / $25; 6x the long-context tier's $10 / $37.50
# above 200k input tokens), and "fast mode pricing stacks with other pricing modifiers",
# so the prompt-caching multipliers apply on top: the whole price is multiplied. Opus 4.7
# was offered at the same 6x rates until its fast mode was removed on 2026-07-24
# (https://code.claude.com/docs/en/fast-mode). Models whose fast price genai-prices
# carries are priced by genai-prices and need no entry here.
FAST_MULTIPLIERS: dict[str, Decimal] = {
    "claude-opus-4-6": Decimal(6),
    "claude-opus-4-7": Decimal(6),
}
FAST = "fast"
_FAST_CONTEXT = {"speed": FAST}


class _NoFastPrice(ValueError):
    """Fast mode usage of a model whose fast price is not known: left unpriced.

    A ValueError (this usage cannot be priced), not a LookupError: the model itself is
    known, and its standard usage stays priced. Private: price_usage turns it into an
    unpriced cost, and genai_list_price documents it as a ValueError.
    """


# Normalised models genai-prices does not know, so a long import does not search for them
# once per line.
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
    cache_read_input_tokens, cache_creation{ephemeral_5m/1h_input_tokens}, speed). `at` is
    when the request was made, for prices that changed over time (None: today's price).
    `speed: "fast"` is priced at fast mode's premium (see the module docstring), or left
    unpriced for a model whose fast price is not known.
    """
    reported = _reported(reported_usd)
    if reported is not None:
        return Cost(reported, "reported", estimate=False)

    name = normalize_model(model) if isinstance(model, str) else ""
    if not name or name in _UNKNOWN_MODELS or not isinstance(usage, Mapping):
        return Cost(None, "unpriced", estimate=True)
    fast = usage.get("speed") == FAST
    try:
        total = _list_price(name, usage, at, fast=fast)
    except LookupError:
        _UNKNOWN_MODELS.add(name)
        return Cost(None, "unpriced", estimate=True)
    except (ValueError, TypeError, ArithmeticError):
        # A usage genai-prices cannot read: missing or None counts, negative numbers, ...
        return Cost(None, "unpriced", estimate=True)
    return Cost(Decimal(total), "computed", estimate=True)


def clear_price_cache() -> None:
    """Forget every cached model price and unknown model (after new price data, in tests)."""
    with _LOCK:
        _MODELS.clear()
        _UNKNOWN_MODELS.clear()


def genai_list_price(
    name: str, usage: Mapping[str, Any], at: datetime | None, *, fast: bool = False
) -> Decimal:
    """The list price of one response as genai-prices computes it, with no cache of ours.

    With `fast`, genai-prices' `speed: fast` price variant of the model, where it has one
    in force at `at`, else the standard price times `FAST_MULTIPLIERS`.

    Raises:
        LookupError: genai-prices does not know the model.
        ValueError: The usage cannot be priced (a missing, negative or non-number count;
            or `fast`, and no fast price of the model is known).
    """
    import genai_prices  # deferred: slow to import

    extracted = genai_prices.extract_usage(
        {"model": name, "usage": dict(usage)}, provider_id=PROVIDER
    )
    if not fast:
        return extracted.calc_price(genai_request_timestamp=at).total_price
    when = at or datetime.now(tz=UTC)
    if _fast_variants(extracted.model, when):
        return extracted.calc_price(
            genai_request_timestamp=when, price_context=_FAST_CONTEXT
        ).total_price
    multiplier = FAST_MULTIPLIERS.get(extracted.model.id)
    if multiplier is None:
        raise _NoFastPrice(f"no fast mode price known for {name}")
    return extracted.calc_price(genai_request_timestamp=when).total_price * multiplier


def _fast_variants(model: Any, at: datetime) -> tuple[Any, ...]:
    """The model's `speed: fast` price variants in force at `at`, as genai-prices picks them."""
    return tuple(
        variant
        for variant in getattr(model, "price_variants", None) or ()
        if (variant.constraint is None or variant.constraint.active(at))
        and all(_FAST_CONTEXT.get(key) == value for key, value in variant.when.items())
    )


def _list_price(
    name: str, usage: Mapping[str, Any], at: datetime | None, *, fast: bool = False
) -> Decimal:
    """The list price of one response: from the model's cached plan, else from genai-prices."""
    from genai_prices import data_snapshot  # deferred: slow to import

    snapshot = data_snapshot.get_snapshot()
    key = (name, PROVIDER)
    entry = _MODELS.get(key)
    if entry is None or entry.snapshot is not snapshot:
        with _LOCK:
            entry = _ModelPrices(snapshot, name, PROVIDER)  # LookupError for an unknown model
            _MODELS[key] = entry
    if entry.extraction is None:
        return genai_list_price(name, usage, at, fast=fast)
    counts = entry.extract(usage)
    if counts is None:  # counts that are not plain ints: genai-prices' own arithmetic
        return genai_list_price(name, usage, at, fast=fast)
    found = entry.plan(at or datetime.now(tz=UTC), fast=fast)
    if found is None:
        return genai_list_price(name, usage, at, fast=fast)
    plan, multiplier = found
    total = plan.total(counts)
    return total if multiplier is None else total * multiplier


# --- The cache --------------------------------------------------------------------------------

# (normalised model, provider) -> what was resolved for it. Guarded by _LOCK for writers
# (an import's file reads run in threads); readers take a dict lookup, which is atomic.
_MODELS: dict[tuple[str, str], _ModelPrices] = {}
_LOCK = threading.Lock()

# One extractor mapping as the plan reads it: path steps, destination usage key, required.
_Mapping = tuple[tuple[str, ...], str, bool]


class _Unsupported(Exception):
    """Something the plan does not model: that model is priced by genai-prices itself."""


class _ModelPrices:
    """A model of a provider as genai-prices resolved it: its extractor and price plans."""

    def __init__(self, snapshot: Any, name: str, provider_id: str) -> None:
        self.snapshot = snapshot
        provider = snapshot.find_provider(None, provider_id, None)
        # What genai-prices' extract_usage would find; raises LookupError if unknown.
        _, self.model = snapshot.find_provider_model(name, provider, None, None)
        self.provider = provider
        self._plans: dict[
            tuple[int, tuple[int, ...]], tuple[Any, tuple[Any, ...], _PricePlan | None]
        ] = {}
        try:
            self.extraction: tuple[_Mapping, ...] | None = _extraction(provider, name)
        except (_Unsupported, AttributeError, ImportError, TypeError, StopIteration):
            self.extraction = None

    def extract(self, usage: Mapping[str, Any]) -> dict[str, int] | None:
        """Usage counts per usage key, as the provider's extractor reads `usage`.

        Returns None where a count is a float or Decimal (genai-prices sums those in
        its own Decimal context). Raises ValueError where genai-prices would.
        """
        assert self.extraction is not None
        values: dict[str, int] = {}
        for path, dest, required in self.extraction:
            # genai-prices treats a step that is missing, None or not a mapping alike.
            value: Any = usage
            for step in path:
                mapping = type(value) is dict or isinstance(value, Mapping)
                value = value.get(step) if mapping else None
            kind = type(value)
            if kind is int:
                if value < 0:
                    raise ValueError(f"invalid usage count {dest}: {value}")
                values[dest] = values.get(dest, 0) + value
            elif kind is bool:
                raise ValueError(f"invalid usage count {dest}: {value}")
            elif isinstance(value, Integral | float | Decimal):
                return None  # not a plain int: genai-prices' own arithmetic
            elif required:
                raise ValueError(f"no usable {dest} in the usage")
        if self.extraction and not values:
            raise ValueError("no usage information found")
        return values

    def plan(self, at: datetime, *, fast: bool = False) -> tuple[_PricePlan, Decimal | None] | None:
        """The plan of the price in force at `at` and a multiplier to apply to its total.

        Built the first time it is needed. None where the plan does not model the price
        (genai-prices prices it then). With `fast`, the plan of the model's fast price
        variant, or of its standard price with `FAST_MULTIPLIERS`' multiplier.

        Raises:
            ValueError: `fast`, and no fast price of this model is known.
        """
        # No price context: genai-prices returns one of the model's own ModelPrice
        # objects, the same object for every request of one price period.
        price = self.model.get_prices(at)
        multiplier: Decimal | None = None
        variants: tuple[Any, ...] = ()
        if fast:
            variants = _fast_variants(self.model, at)
            if not variants:
                multiplier = FAST_MULTIPLIERS.get(self.model.id)
                if multiplier is None:
                    raise _NoFastPrice(f"no fast mode price known for {self.model.id}")
        # A price with a context is a new copy per call: keyed by what it is made of.
        key = (id(price), tuple(id(variant) for variant in variants))
        found = self._plans.get(key)
        if found is not None and found[0] is price and found[1] == variants:
            plan = found[2]
        else:
            resolved = self.model.get_prices(at, _FAST_CONTEXT) if variants else price
            try:
                plan = _PricePlan(resolved)
            except (_Unsupported, AttributeError, ImportError, TypeError, KeyError):
                plan = None
            with _LOCK:  # holding `price` and the variants keeps their ids unique
                self._plans[key] = (price, variants, plan)
        return None if plan is None else (plan, multiplier)


def _extraction(provider: Any, name: str) -> tuple[_Mapping, ...]:
    """The provider's default extractor as (path, destination, required) triples."""
    from genai_prices.units import _get_registry

    reported = _get_registry()._reported_usage_keys
    extractor = next(e for e in provider.extractors if e.api_flavor == "default")
    # extract_usage is called with {"model": name, "usage": usage}: the plan reads the
    # usage mapping directly, so it holds only for an extractor rooted at "usage" that
    # takes the model from "model".
    if extractor.root not in ("usage", ["usage"]) or extractor.model_path not in (
        "model",
        ["model"],
    ):
        raise _Unsupported(extractor.root)
    mappings = []
    for mapping in extractor.mappings:
        if mapping.dest not in reported:
            continue  # genai-prices skips a destination it does not know
        path = (mapping.path,) if isinstance(mapping.path, str) else tuple(mapping.path)
        if not path or not all(isinstance(step, str) for step in path):
            raise _Unsupported(mapping.path)  # an ArrayMatch step
        mappings.append((path, mapping.dest, bool(mapping.required)))
    return tuple(mappings)


class _PricePlan:
    """One ModelPrice with everything that does not depend on the usage worked out.

    Mirrors genai-prices' `ModelPrice.calc_price`: the priced units in its order, the
    order in which leaf counts are taken (most specific unit first) with each unit's
    more specific priced units, and whether any price is tiered (then the tier is chosen
    by the request's total input tokens).
    """

    def __init__(self, price: Any) -> None:
        from genai_prices.decompose import is_descendant_or_self
        from genai_prices.types import TieredPrices, _collect_resolved_model_prices
        from genai_prices.units import _get_registry
        from genai_prices.validation import validate_priced_units

        registry = _get_registry()
        self.error: Exception | None = None
        resolved = _collect_resolved_model_prices(price, registry)
        try:
            validate_priced_units(tuple(unit for unit, _ in resolved), registry)
        except ValueError as error:
            self.error = error  # every usage of this price fails the same way
        # (usage key, base price, tiers highest first, per) in genai-prices' summing order.
        terms = []
        for unit, value in resolved:
            if isinstance(value, TieredPrices):
                tiers = tuple((tier.start, tier.price) for tier in reversed(value.tiers))
                terms.append((unit.usage_key, value.base, tiers, unit.per))
            elif isinstance(value, Decimal):
                terms.append((unit.usage_key, value, (), unit.per))
            else:
                raise _Unsupported(value)
        self.terms: tuple[tuple[str, Decimal, tuple[tuple[int, Decimal], ...], int], ...] = tuple(
            terms
        )
        # genai-prices reads the input tokens (and may fail inferring them) whenever a
        # price is tiered, even one without tiers.
        self.tiered = any(isinstance(value, TieredPrices) for _, value in resolved)
        units = {unit.usage_key: unit for unit, _ in resolved if unit.usage_key != "requests"}
        ordered = sorted(units.values(), key=lambda unit: (-len(unit.dimensions), unit.usage_key))
        leaves = []
        for position, unit in enumerate(ordered):
            below = [
                other
                for other in ordered
                if other is not unit and is_descendant_or_self(unit, other)
            ]
            if any(ordered.index(other) > position for other in below):
                raise _Unsupported(unit.usage_key)  # genai-prices would not find their leaves
            leaves.append((unit.usage_key, tuple(other.usage_key for other in below)))
        self.leaves: tuple[tuple[str, tuple[str, ...]], ...] = tuple(leaves)
        self._inferred: dict[tuple[str, frozenset[str]], int | Exception] = {}

    def total(self, counts: dict[str, int]) -> Decimal:
        """The total price of a response with these usage counts (genai-prices' result).

        Raises:
            ValueError: genai-prices refuses this usage or this price.
        """
        if self.error is not None:
            raise ValueError(str(self.error))
        leaf: dict[str, int] = {}
        for key, below in self.leaves:
            value = counts[key] if key in counts else self._infer(key, counts)
            for other in below:
                value -= leaf[other]
            if value < 0:
                raise ValueError(f"Invalid usage data: more-specific usage exceeds {key}")
            leaf[key] = value
        leaf["requests"] = 1
        total_input = 0
        if self.tiered:  # the tier is chosen by the request's input tokens
            total_input = counts.get("input_tokens")
            if total_input is None:
                total_input = self._infer("input_tokens", counts)
        total = Decimal(0)
        for key, price, tiers, per in self.terms:
            for start, tier_price in tiers:  # highest tier first, as genai-prices looks
                if total_input > start:
                    price = tier_price
                    break
            total += price * Decimal(leaf[key]) / per
        return total

    def _infer(self, key: str, counts: dict[str, int]) -> int:
        """A count the usage does not report, as genai-prices' Usage infers it (0, or fail).

        The inference depends only on which keys are reported above zero, so it is
        asked of genai-prices once per such set.
        """
        positive = frozenset(name for name, value in counts.items() if value > 0)
        found = self._inferred.get((key, positive))
        if found is None:
            from genai_prices import Usage

            try:
                found = int(getattr(Usage(**dict.fromkeys(positive, 1)), key))
            except ValueError as error:
                found = error
            self._inferred[(key, positive)] = found
        if isinstance(found, Exception):
            raise ValueError(str(found))
        return found
