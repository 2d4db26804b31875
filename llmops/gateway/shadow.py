"""Shadow mode: the cache and routing decide but do not act; the request is served as sent.

A team in shadow mode (Team.shadow_mode, else LLMOPS_SHADOW_MODE) has every request looked up in
the cache and routed as usual, but served as its client sent it: a hit is withheld (the request
goes upstream, as a miss) and the model is the one the client named (for `auto` and aliases, the
team's reference model). Its ledger row records what the cache and routing would have done, and
what that would have saved (docs/savings.md). Nothing here changes the answer or the charge.
"""

import dataclasses
from dataclasses import dataclass
from typing import Any

from budgets.services import UsageEntry
from llmops.gateway.context import RequestContext
from routing.errors import RoutingError
from routing.models import ModelProfile
from routing.pricing import usage_cost
from routing.reference import names_a_model
from routing.router import AUTO, RouteDecision, route


@dataclass
class ShadowFindings:
    """What the cache and routing would have done for one request in shadow mode."""

    hit: Any = None                      # the semcache.gateway.CacheHit it would have served
    model: ModelProfile | None = None    # the model routing would have chosen


def findings(ctx: RequestContext) -> ShadowFindings | None:
    """Return the request's shadow findings (made on first use), or None outside shadow mode."""
    if not ctx.savings.shadow:
        return None
    if ctx.shadow is None:
        ctx.shadow = ShadowFindings()
    return ctx.shadow


def withhold_hit(ctx: RequestContext, hit):
    """Return what the pipeline serves from the cache in shadow mode: nothing. The hit is kept
    in the findings; the request goes on as a miss, and its answer is not stored again (the
    cache already holds one, and acting it would not have stored this one)."""
    shadow = findings(ctx)
    if shadow is None or hit is None:
        return hit
    shadow.hit = hit
    ctx.cache_status, ctx.cache_similarity = "miss", None
    ctx.cache_control = dataclasses.replace(ctx.cache_control, no_store=True)
    return None


async def route_as_sent(ctx: RequestContext, reference: ModelProfile | None) -> RouteDecision:
    """Return the decision that serves the request as sent, keeping the one routing would have
    made: a named model is served itself (routing would have treated it as `auto`); `auto` or an
    alias goes to `reference`. Without a usable reference there is no model "as sent", so
    routing acts (and would-route is what it chose)."""
    shadow = findings(ctx)
    if await names_a_model(ctx.requested_model):
        shadow.model = await _would_route(dataclasses.replace(ctx, requested_model=AUTO))
        return await route(ctx)
    if reference is None:
        decision = await route(ctx)
        shadow.model = decision.profile
        return decision
    shadow.model = await _would_route(ctx)
    return await route(dataclasses.replace(ctx, requested_model=reference.name))


async def _would_route(ctx: RequestContext) -> ModelProfile | None:
    try:
        return (await route(ctx)).profile
    except RoutingError:  # routing would have refused it: no would-route model
        return None


def shadow_finish(ctx: RequestContext, entry: UsageEntry) -> None:
    """Record the findings in the request's ledger entry, with what they would have avoided: a
    would-hit all of this request's cost; otherwise the would-route model's cost at the same
    token counts, less this request's (negative when it is dearer)."""
    shadow = ctx.shadow
    if shadow is None:
        return
    entry.shadow = True
    hit = shadow.hit
    if hit is not None:
        entry.shadow_cache_status = f"hit_{hit.kind}"
        entry.shadow_cache_entry = str(hit.entry_id)[:64]
        entry.shadow_cache_similarity = 1.0 if hit.similarity is None else hit.similarity
        entry.shadow_cache_saved = entry.cost
    if shadow.model is not None:
        entry.shadow_model = shadow.model.name
        if hit is None and entry.served_model:
            entry.shadow_routing_saved = entry.cost - usage_cost(
                shadow.model, prompt_tokens=entry.prompt_tokens,
                completion_tokens=entry.completion_tokens, cached_tokens=entry.cached_tokens,
                reasoning_tokens=entry.reasoning_tokens)
