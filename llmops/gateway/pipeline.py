"""The gateway pipeline, top to bottom: cache → route → reserve → call → settle → store.

Every request that passes admission ends in exactly one settlement (one ledger row), whether it
succeeded, was served from cache, failed upstream, or lost its client mid-stream: admission
(llmops/gateway/admission.py) and settlement (llmops/gateway/settlement.py) keep that true,
and streams are relayed by llmops/gateway/streaming.py.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from budgets.services import UsageEntry
from llmops import metrics
from llmops.background import spawn
from llmops.errors import GatewayError
from llmops.gateway import upstream
from llmops.gateway.admission import Prepared, admit, release_unused
from llmops.gateway.context import RequestContext
from llmops.gateway.responses import completion_body
from llmops.gateway.savings import route_request
from llmops.gateway.settlement import DISCONNECTED, Outcome, settle
from llmops.gateway.shadow import findings, withhold_hit
from llmops.gateway.streaming import Relay, close_opening, replay_stream
from llmops.gateway.usage import billed_usage
from llmops.gateway.verification import shadow_verify_behind, verify_behind
from llmops.observability.judge import judge_sample_maybe_async
from llmops.providers.base import Completion, Usage
from routing.models import ModelProfile
from routing.reference import names_a_model

if TYPE_CHECKING:
    from semcache.gateway import CacheHit

logger = logging.getLogger("llmops.gateway")

@dataclass
class CompletionResult:
    """A finished non-streamed answer with the headers that describe it."""

    body: dict
    headers: dict[str, str]


@dataclass
class StreamResult:
    """A stream that has started upstream: headers now, `chat.completion.chunk` objects as they
    come (llmops/gateway/streaming.py); the front door encodes them in its wire format."""

    headers: dict[str, str]
    events: AsyncIterator[dict]


# --- Steps ------------------------------------------------------------------------------------


async def _lookup_cache(ctx: RequestContext, *, on_semantic=None):
    """Return the cached answer, or None: semcache decides whether to look, and never raises."""
    from semcache.gateway import cache_lookup

    started = time.perf_counter()
    hit = await cache_lookup(ctx, on_semantic=on_semantic)
    if "cache_lookup" in ctx.timings:  # the cache ran (switched off, it is no stage)
        # The embedding is its own stage ("embed", set by semcache); "cache" is the rest.
        ctx.timings["cache"] = time.perf_counter() - started - ctx.timings.get("embed", 0.0)
    return withhold_hit(ctx, hit)  # shadow mode serves no hit, only records it


async def _prepare(ctx: RequestContext) -> Prepared:
    started = time.perf_counter()
    decision = await route_request(ctx)  # with the reference model; as sent in shadow mode
    ctx.route = decision
    chain = [decision.profile, *decision.fallbacks]
    ctx.timings["route"] = time.perf_counter() - started
    metrics.observe_model_selection(model=decision.profile.name, reason=decision.reason)

    # Routing bounded the prompt once per model in the chain (a part that cannot be bounded
    # raised routing.errors.UnboundedInput there: a 400, nothing reserved); reserve for the
    # dearest model the request may end up on, so a fallback never overspends.
    ctx.prompt_bounds = dict(decision.prompt_bounds)
    ctx.estimated_prompt_tokens = max(ctx.prompt_bounds.values())
    started = time.perf_counter()
    admission = await admit(ctx, chain)
    ctx.timings["admission"] = time.perf_counter() - started
    return Prepared(ctx=ctx, chain=chain, admission=admission, reason=decision.reason)


async def _lookup_or_prepare(ctx: RequestContext
                             ) -> tuple["CacheHit | None", Prepared | None]:
    """Return the cached answer, or the request prepared (routed and admitted) for upstream.

    A request that names a model is routed without its prompt's embedding, so while the
    semantic cache embeds the prompt (the longest step of a miss), routing and admission run
    alongside it instead of after it: a miss then waits for the longer of the two, not their
    sum. A hit releases that admission in its own settlement (`_answer_from_cache`). `auto`,
    aliases and shadow mode route from the embedding, so they wait for it.
    """
    early = findings(ctx) is None and await names_a_model(ctx.requested_model)
    if not early:
        hit = await _lookup_cache(ctx)
        return (hit, None) if hit is not None else (None, await _prepare(ctx))
    ctx.embedding_layers_wanted = False  # routing will not predict for a named model
    preparing: asyncio.Task | None = None

    def prepare_alongside() -> None:
        nonlocal preparing
        preparing = spawn(_prepare(ctx))

    try:
        hit = await _lookup_cache(ctx, on_semantic=prepare_alongside)
    except BaseException:
        if preparing is not None:
            _abandon(ctx, preparing)
        raise
    if preparing is None:  # no semantic lookup ran (exact hit, cache off, bypassed)
        return (hit, None) if hit is not None else (None, await _prepare(ctx))
    if hit is None:
        return None, await preparing  # cancelled here, admission releases itself
    try:
        prepared = await preparing
    except Exception:  # noqa: BLE001 - refused, unroutable, database down: a hit needs none
        prepared = None
    ctx.route, ctx.estimated_cost = None, Decimal(0)  # the row and headers of a hit, as ever
    ctx.estimated_prompt_tokens = 0
    return hit, prepared


def _abandon(ctx: RequestContext, preparing: asyncio.Task) -> None:
    """The request ended during its cache lookup: release what the preparation reserved."""
    if not preparing.done():
        preparing.cancel()  # an admission in flight releases itself (admission._admit_once)
    elif not preparing.cancelled() and preparing.exception() is None:
        spawn(release_unused(ctx, preparing.result().admission))


def response_headers(ctx: RequestContext, *, model: str,
                     entry: UsageEntry | None = None) -> dict:
    """Return the headers that say what happened to the request (cache, model, cost, id)."""
    headers = {
        "X-LLMOps-Cache": ctx.cache_status,
        "X-LLMOps-Model": model,
        "X-Request-ID": ctx.request_id,
    }
    if ctx.route is not None:
        headers["X-LLMOps-Route-Reason"] = ctx.route.reason
    if ctx.cache_similarity is not None:
        headers["X-LLMOps-Similarity"] = f"{ctx.cache_similarity:.4f}"
    if entry is not None:
        headers["X-LLMOps-Cost"] = f"{entry.cost:.10f}"
    return headers


async def _after_answer(ctx: RequestContext, completion: Completion, profile: ModelProfile,
                        usage: Usage, cost: Decimal) -> None:
    """Off the request path: store the answer in the cache, maybe sample it for the judge;
    in shadow mode, verify the would-hit against it."""
    _store_in_cache(ctx, completion, profile, usage, cost)
    shadow_verify_behind(ctx, completion.message)
    await judge_sample_maybe_async(request_id=ctx.request_id, team_id=ctx.principal.team_id,
                                   messages=ctx.messages,
                                   answer=str(completion.message.get("content") or ""))


def _store_in_cache(ctx: RequestContext, completion: Completion, profile: ModelProfile,
                    usage: Usage, cost: Decimal) -> None:
    """Hand the answer to semcache, which decides whether it is stored (off the request path)."""
    from semcache.gateway import cache_store_behind

    cache_store_behind(
        ctx, message=completion.message, finish_reason=completion.finish_reason,
        model=profile.name, cost=cost,
        usage={"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
               "cached_tokens": usage.cached_tokens},
    )


async def call_upstream(ctx: RequestContext, prepared: Prepared, outcome: Outcome, call,
                         *, client_gone):
    """Run `call(ctx, chain, outcome)` in a task of its own; whatever ends it early, settle the
    admission once. If the client leaves meanwhile, `client_gone(task)` takes over the call
    (detached from the request) and settles it with what the provider bills."""
    task = spawn(call(ctx, prepared.chain, outcome))
    try:
        return await asyncio.shield(task)
    except GatewayError as exc:
        outcome.fail("timeout" if exc.status_code == 504 else "upstream_error",
                     outcome.entry.error_kind, exc.status_code)
        await settle(ctx, prepared.admission, outcome)
        raise
    except asyncio.CancelledError:
        spawn(client_gone(ctx, prepared, outcome, task))
        raise
    except BaseException:
        # Our own failure: the settlement must still happen, whatever happens to this task.
        outcome.fail("gateway_error", "internal", 500)
        await settle(ctx, prepared.admission, outcome)
        raise


async def _finish_detached(ctx: RequestContext, prepared: Prepared, outcome: Outcome,
                           calling: asyncio.Task) -> None:
    """The client of a non-streamed request left: let the call finish (the provider bills it
    either way), settle at what it reports, and keep the answer in the cache."""
    try:
        completion = await calling
    except BaseException as exc:
        kind = getattr(exc, "code", None) or outcome.entry.error_kind or "internal"
        outcome.fail(DISCONNECTED[0], str(kind)[:40], DISCONNECTED[2])
        await settle(ctx, prepared.admission, outcome)
        return
    text = str(completion.message.get("content") or "")
    outcome.usage = billed_usage(ctx, outcome.profile, completion.usage, text)
    outcome.fail(*DISCONNECTED)
    entry = await settle(ctx, prepared.admission, outcome)
    await _after_answer(ctx, completion, outcome.profile, outcome.usage, entry.cost)


# --- Non-streamed ----------------------------------------------------------------------------


async def chat_completion_create(ctx: RequestContext) -> CompletionResult:
    """Answer a non-streamed chat completion."""
    hit, prepared = await _lookup_or_prepare(ctx)
    if hit is not None:
        return await _answer_from_cache(ctx, hit, prepared)

    completion, outcome, usage, entry = await _call_and_settle(ctx, prepared=prepared)
    await _after_answer(ctx, completion, outcome.profile, usage, entry.cost)
    body = completion_body(ctx, model=outcome.profile.name, message=completion.message,
                           finish_reason=completion.finish_reason, usage=usage, entry=entry)
    return CompletionResult(body=body, headers=response_headers(ctx, model=outcome.profile.name,
                                                        entry=entry))


async def _call_and_settle(ctx: RequestContext, *, reason: str | None = None,
                           prepared: Prepared | None = None):
    """Route and admit (unless `prepared` already is), call upstream (with fallbacks) and
    settle; return (completion, outcome, usage, entry). `reason` replaces routing's as the
    row's routing_reason."""
    prepared = prepared or await _prepare(ctx)
    outcome = Outcome.of(ctx, reason=reason or prepared.reason)
    completion = await call_upstream(ctx, prepared, outcome, upstream.complete_with_fallbacks,
                                      client_gone=_finish_detached)
    usage = billed_usage(ctx, outcome.profile, completion.usage,
                         str(completion.message.get("content") or ""))
    outcome.usage = usage
    entry = await settle(ctx, prepared.admission, outcome)
    return completion, outcome, usage, entry


async def _verification_answer(ctx: RequestContext, *, reason: str) -> Completion:
    """A verified hit's upstream call (llmops/gateway/verification.py): settled, not stored."""
    return (await _call_and_settle(ctx, reason=reason))[0]


async def _answer_from_cache(ctx: RequestContext, hit, prepared: Prepared | None = None
                             ) -> CompletionResult | StreamResult:
    """Serve a hit; its ledger row also releases the admission made alongside the lookup."""
    outcome = Outcome.of(ctx, reason=f"cache:{hit.kind}")
    entry = await settle(ctx, prepared.admission if prepared else None, outcome,
                         cost_saved=Decimal(hit.cost), hit=hit)
    from semcache.gateway import cache_hit_served

    cache_hit_served(ctx, hit)  # its ledger row is written: count the hit
    verify_behind(ctx, hit, answer=_verification_answer)  # a sampled share, off the client's path
    original = Usage(prompt_tokens=int(hit.usage.get("prompt_tokens", 0)),
                     completion_tokens=int(hit.usage.get("completion_tokens", 0)))
    headers = response_headers(ctx, model=hit.model, entry=entry)
    if ctx.stream:
        return StreamResult(headers=headers, events=replay_stream(ctx, hit, original, entry))
    body = completion_body(ctx, model=hit.model, message=hit.message,
                           finish_reason=hit.finish_reason, usage=original, entry=entry)
    return CompletionResult(body=body, headers=headers)


# --- Streamed --------------------------------------------------------------------------------


async def chat_completion_stream(ctx: RequestContext) -> StreamResult:
    """Start a streamed chat completion: everything up to the first upstream delta happens
    here (so failures before the first byte are clean HTTP errors, with retries and fallbacks);
    the rest is relayed by the returned iterator."""
    hit, prepared = await _lookup_or_prepare(ctx)
    if hit is not None:
        return await _answer_from_cache(ctx, hit, prepared)

    outcome = Outcome.of(ctx, reason=prepared.reason)
    opened = await call_upstream(ctx, prepared, outcome, upstream.open_stream_with_fallbacks,
                                  client_gone=close_opening)
    relay = Relay(ctx, prepared, outcome, opened, on_answer=_after_answer)
    # The server may never start iterating (the client left between the headers and the first
    # chunk), or stop between two chunks without closing the iterator: when the task serving
    # this request ends, whatever the relay did not settle is settled then.
    serving = asyncio.current_task()
    if serving is not None:
        serving.add_done_callback(relay.settle_if_abandoned)
    return StreamResult(headers=response_headers(ctx, model=outcome.profile.name),
                        events=relay.events())

