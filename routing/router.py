"""Pick the model profile that serves a request, and the fallbacks to try if it fails."""

from dataclasses import dataclass, field

from llmops.errors import ModelNotFound
from llmops.gateway.context import RequestContext
from routing.models import ModelProfile
from routing.selectors import profile_get_enabled, profiles_enabled

AUTO = "auto"


@dataclass
class RouteDecision:
    """The chosen profile, why it was chosen, and the ordered fallbacks."""

    profile: ModelProfile
    reason: str
    fallbacks: list[ModelProfile] = field(default_factory=list)
    predicted_quality: float | None = None


async def route(ctx: RequestContext) -> RouteDecision:
    """Return the routing decision for `ctx`; raise ModelNotFound for an unknown model."""
    if ctx.requested_model != AUTO:
        profile = await profile_get_enabled(name=ctx.requested_model)
        if profile is None:
            raise ModelNotFound(
                f"The model '{ctx.requested_model}' does not exist or is not enabled.",
                param="model",
            )
        return RouteDecision(profile=profile, reason="explicit")
    candidates = [p for p in await profiles_enabled() if p.is_available()]
    if not candidates:
        raise ModelNotFound("No enabled model is available for 'auto'.", param="model")
    cheapest = min(candidates, key=lambda p: (p.input_price_per_token + p.output_price_per_token,
                                              p.name))
    return RouteDecision(profile=cheapest, reason="auto:cheapest")
