"""What a request saved, by source, against what its team would have paid without llmops.

Routing is asked through `route_request`, which also settles the request's reference model
(routing/reference.py); settlement fills the savings into the ledger entry (`savings_finish`):
a cache hit saves what the call that stored its answer cost; routing saves the reference model's
cost at the request's real token counts minus what was charged (negative when the model served
was dearer), and only against a reference that could really have served. docs/savings.md says
how each number is computed.
"""

from decimal import Decimal

from budgets.services import UsageEntry
from llmops.gateway.context import RequestContext
from llmops.gateway.shadow import findings, route_as_sent, shadow_finish
from routing.pricing import usage_cost
from routing.reference import reference_fits, reference_profile
from routing.router import RouteDecision, route


async def route_request(ctx: RequestContext) -> RouteDecision:
    """Return the routing decision that serves `ctx` (as sent, in shadow mode), and set
    `ctx.reference`: the model it would have gone to without llmops, if that could serve it."""
    reference = await reference_profile(requested_model=ctx.requested_model,
                                        configured=ctx.savings.reference_model)
    if findings(ctx) is None:
        decision = await route(ctx)
    else:
        decision = await route_as_sent(ctx, reference)
    if (reference is not None and reference.name != decision.profile.name
            and not reference_fits(reference, ctx, decision)):
        reference = None  # it could not have served this request: no saving against it
    ctx.reference = reference
    return decision


def savings_finish(ctx: RequestContext, entry: UsageEntry, *, hit, cache_saved: Decimal) -> None:
    """Fill the entry's savings: `cache_saved` for a hit, routing's against the reference for
    a call, their total in `cost_saved`, and shadow mode's estimates."""
    if hit is not None:
        entry.cache_saved = cache_saved
    elif ctx.reference is not None and entry.served_model:
        reference = ctx.reference
        entry.reference_model = reference.name
        entry.routing_saved = usage_cost(
            reference, prompt_tokens=entry.prompt_tokens,
            completion_tokens=entry.completion_tokens, cached_tokens=entry.cached_tokens,
            reasoning_tokens=entry.reasoning_tokens) - entry.cost
    entry.cost_saved = entry.cache_saved + entry.routing_saved
    shadow_finish(ctx, entry)
