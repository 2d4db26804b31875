"""The reference model: what a request would have been sent to without llmops.

Savings are measured against it (docs/savings.md), so it must be a model that could really have
served the request: an enabled profile the gateway can call (its key is set), with the request's
capabilities and within its context window. A request that names a model is its own reference;
`auto` and aliases use the team's configured reference (else LLMOPS_REFERENCE_MODEL).
"""

import dataclasses

from routing import policy
from routing.models import ModelProfile
from routing.router import RouteDecision, RouteRequest, request_needs
from routing.selectors import profile_get_enabled


async def names_a_model(requested_model: str) -> bool:
    """Return whether `requested_model` is an enabled profile (not `auto`, not an alias)."""
    return await profile_get_enabled(name=requested_model) is not None


async def reference_profile(*, requested_model: str, configured: str) -> ModelProfile | None:
    """Return the request's reference model when the gateway can call it, else None: the
    requested profile itself, or `configured` for `auto` and aliases (in-process snapshot: no
    query)."""
    profile = await profile_get_enabled(name=requested_model)
    if profile is None and configured:
        profile = await profile_get_enabled(name=configured)
    if profile is None or not profile.is_available():
        return None
    return profile


def reference_fits(profile: ModelProfile, ctx: RouteRequest, decision: RouteDecision) -> bool:
    """Return whether `profile` could have served the request `decision` routed: it has the
    capabilities the request uses, and the prompt fits its context window (counted once, with
    the decision's own estimate)."""
    needs = request_needs(ctx)
    if decision.prompt_estimate is not None:
        needs = dataclasses.replace(needs, estimate=decision.prompt_estimate)
    return (policy.missing_capability(profile, needs) is None
            and policy.context_problem(profile, needs) is None)

