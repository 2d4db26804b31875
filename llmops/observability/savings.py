"""What `auto` routing saved on one request: the baseline model's price minus what was paid.

The baseline is the priciest enabled profile (the one a client would pick to be safe), the same
reference the dashboard uses (`selectors.routing_savings`), so Grafana and the page agree.
"""

from decimal import Decimal

from routing.models import ModelProfile
from routing.pricing import usage_cost
from routing.router import AUTO
from routing.selectors import profiles_enabled


def baseline_profile(profiles: list[ModelProfile]) -> ModelProfile | None:
    """Return the priciest profile of `profiles` (output price first, then input price)."""
    return max(profiles, default=None,
               key=lambda p: (p.output_price_per_token, p.input_price_per_token))


async def routing_saved_usd(*, requested_model: str, prompt_tokens: int, completion_tokens: int,
                            cost: Decimal) -> float:
    """Return USD saved by routing this request (0 unless the client asked for `auto`)."""
    if requested_model != AUTO or not (prompt_tokens or completion_tokens):
        return 0.0
    baseline = baseline_profile(await profiles_enabled())  # in-process snapshot: no query
    if baseline is None:
        return 0.0
    would_cost = usage_cost(baseline, prompt_tokens=prompt_tokens,
                            completion_tokens=completion_tokens)
    return float(max(would_cost - cost, Decimal(0)))
