"""The embeddings pipeline: model → cache → reserve → embed → settle → store.

The money path is chat's: admission (llmops/gateway/admission.py) reserves an upper bound of the
inputs the provider is sent (output 0: an embedding model bills input only), the call runs along
the same retries and fallbacks (upstream.embed_with_fallbacks), and `settle` writes the one
ledger row. Inputs the exact cache holds (semcache/embeddings.py) are not sent upstream; a
request answered wholly from the cache is a `hit_exact` row that cost nothing and saved what its
inputs would have cost.
"""

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from llmops.gateway import upstream
from llmops.gateway.admission import Prepared, admit
from llmops.gateway.context import RequestContext
from llmops.gateway.pipeline import call_upstream, response_headers
from llmops.gateway.settlement import DISCONNECTED, Outcome, settle
from llmops.gateway.usage import ABSURD_FACTOR, UNDER_REPORT_FACTOR, usage_problem
from llmops.providers.base import Embeddings, Usage
from routing.embedding_route import EmbeddingRoute, embedding_route, input_tokens
from routing.models import ModelProfile
from routing.pricing import usage_cost
from semcache.embeddings import EmbeddingLookup, embeddings_lookup, embeddings_store_behind


@dataclass
class EmbeddingsResult:
    """The vectors in input order, the model that made them, the request's tokens and cost."""

    model: str
    vectors: list[np.ndarray]
    prompt_tokens: int
    cost: Decimal
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class _CachedModel:
    """What settlement reads of a cache hit: the model that made the vectors."""

    model: str


async def embeddings_create(ctx: RequestContext, *, inputs: list,
                            dimensions: int | None) -> EmbeddingsResult:
    """Return the embeddings of `inputs` (strings or token-id lists) on `ctx.requested_model`."""
    route = await embedding_route(requested_model=ctx.requested_model, inputs=inputs,
                                  dimensions=dimensions)
    profile = route.profile
    lookup = await embeddings_lookup(team_id=ctx.principal.team_id, model=profile.name,
                                     dimensions=dimensions, inputs=inputs,
                                     cache_control=ctx.cache_control)
    ctx.cache_status = lookup.status
    misses = lookup.misses
    hits = [i for i in range(len(inputs)) if i not in set(misses)]
    hit_tokens = sum(input_tokens(inputs[i]) for i in hits)
    saved = usage_cost(profile, prompt_tokens=hit_tokens, completion_tokens=0)
    if not misses:
        ctx.cache_similarity = 1.0
        outcome = Outcome.of(ctx, reason="cache:exact")
        entry = await settle(ctx, None, outcome, cost_saved=saved,
                             hit=_CachedModel(profile.name))
        return EmbeddingsResult(model=profile.name, vectors=list(lookup.vectors),
                                prompt_tokens=hit_tokens, cost=entry.cost,
                                headers=response_headers(ctx, model=profile.name, entry=entry))

    sent = [inputs[i] for i in misses]
    ctx.params = {"input": sent, "dimensions": dimensions, "user": ctx.params.get("user")}
    ctx.prompt_bounds = route.prompt_bounds(misses)
    ctx.estimated_prompt_tokens = max(ctx.prompt_bounds.values())
    prepared = Prepared(ctx=ctx, chain=route.chain, admission=await admit(ctx, route.chain),
                        reason="explicit")
    outcome = Outcome.of(ctx, reason=prepared.reason)
    detached = _Detached(route, lookup, misses, sent, saved)
    embeddings = await call_upstream(ctx, prepared, outcome, upstream.embed_with_fallbacks,
                                      client_gone=detached.finish)
    entry = await detached.settle(ctx, prepared, outcome, embeddings)
    vectors = list(lookup.vectors)
    for position, vector in zip(misses, embeddings.vectors, strict=True):
        vectors[position] = vector
    return EmbeddingsResult(model=outcome.profile.name, vectors=vectors,
                            prompt_tokens=outcome.usage.prompt_tokens + hit_tokens,
                            cost=entry.cost,
                            headers=response_headers(ctx, model=outcome.profile.name, entry=entry))


@dataclass
class _Detached:
    """How a finished upstream call is settled and cached, whether the client waited or not."""

    route: EmbeddingRoute
    lookup: EmbeddingLookup
    misses: list[int]
    sent: list
    saved: Decimal

    async def settle(self, ctx: RequestContext, prepared: Prepared, outcome: Outcome,
                     embeddings: Embeddings):
        """Settle at the usage to bill, and cache the new vectors; return the ledger entry."""
        outcome.usage = billed_embedding_usage(ctx, outcome.profile, embeddings.usage,
                                               self.sent)
        entry = await settle(ctx, prepared.admission, outcome, cost_saved=self.saved)
        if outcome.profile.name == self.route.profile.name:
            # A same-model fallback makes the same vectors, but the key names the profile.
            embeddings_store_behind(self.lookup, dict(zip(self.misses, embeddings.vectors,
                                                          strict=True)))
        return entry

    async def finish(self, ctx: RequestContext, prepared: Prepared, outcome: Outcome,
                     calling) -> None:
        """The client left: let the call finish (the provider bills it either way) and settle
        at what it reports."""
        try:
            embeddings = await calling
        except BaseException as exc:
            kind = getattr(exc, "code", None) or outcome.entry.error_kind or "internal"
            outcome.fail(DISCONNECTED[0], str(kind)[:40], DISCONNECTED[2])
            await settle(ctx, prepared.admission, outcome)
            return
        outcome.fail(*DISCONNECTED)
        await self.settle(ctx, prepared, outcome, embeddings)


def billed_embedding_usage(ctx: RequestContext, profile: ModelProfile, reported: Usage | None,
                           sent: list) -> Usage:
    """Return the usage to charge for the inputs `sent` to `profile`: the provider's count when
    it passes chat's checks (llmops/gateway/usage.py), else the reservation's bound."""
    from llmops import metrics

    bound = ctx.prompt_bounds.get(profile.name, ctx.estimated_prompt_tokens)
    problem = usage_problem(reported, prompt_ceiling=ABSURD_FACTOR * max(
        bound, (profile.context_window or 0) * len(sent)), completion_ceiling=0)
    if problem is None and reported.prompt_tokens < UNDER_REPORT_FACTOR * sum(
            input_tokens(item) for item in sent):
        problem = "under_reported"
    if problem is None:
        return Usage(prompt_tokens=reported.prompt_tokens)
    metrics.observe_usage_rejected(model=profile.name, reason=problem)
    return Usage(prompt_tokens=bound)
