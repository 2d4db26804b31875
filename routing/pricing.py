"""Cost arithmetic: USD for a given token usage at a profile's prices, in exact decimals."""

from decimal import Decimal

from routing.models import ModelProfile

USD = Decimal("0.000000000001")  # ledger precision: 1e-12 USD


def usage_cost(
    profile: ModelProfile,
    *,
    prompt_tokens: int,
    completion_tokens: int,
    cached_tokens: int = 0,
    reasoning_tokens: int = 0,
) -> Decimal:
    """Return the USD cost of one call.

    `cached_tokens` are part of `prompt_tokens` (OpenAI's convention) and are charged at the
    cached price instead of the input price, never both. `reasoning_tokens` are part of
    `completion_tokens` and are charged at the reasoning price when the profile has one.
    """
    cached = min(max(cached_tokens, 0), prompt_tokens)
    reasoning = min(max(reasoning_tokens, 0), completion_tokens)
    input_price = profile.input_price_per_token
    cached_price = profile.cached_input_price_per_token
    if cached_price is None:
        cached_price = input_price
    output_price = profile.output_price_per_token
    reasoning_price = profile.reasoning_price_per_token
    if reasoning_price is None:
        reasoning_price = output_price
    cost = (
        (prompt_tokens - cached) * input_price
        + cached * cached_price
        + (completion_tokens - reasoning) * output_price
        + reasoning * reasoning_price
    )
    return Decimal(cost).quantize(USD)


def max_cost(profile: ModelProfile, *, prompt_tokens: int, max_output_tokens: int) -> Decimal:
    """Return the most a call can cost: every prompt token uncached, every output token at the
    dearest output price. Used to reserve budget before the call."""
    output_price = max(profile.output_price_per_token,
                       profile.reasoning_price_per_token or Decimal(0))
    cost = prompt_tokens * max(profile.input_price_per_token,
                               profile.cached_input_price_per_token or Decimal(0))
    return Decimal(cost + max_output_tokens * output_price).quantize(USD)
