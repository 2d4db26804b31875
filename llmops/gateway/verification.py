"""Verified hits: a share of semantic hits is also answered upstream, off the client's path, and
the fresh answer compared with the cached one (docs/savings.md, "Verified hits").

The client has its cached answer at once; the verification call runs in the background as a
request of its own: routed to the model that produced the cached answer, admitted on the same
key's and team's budgets (refused: the hit simply goes unverified), charged and written as its own
ledger row (routing_reason "cache:verify", cache_status "bypass"), never stored in the cache. In
shadow mode a would-hit needs no extra call: the request itself went upstream, and its answer is
compared with the one the cache would have served. The comparison and the namespace's threshold
are semcache's (`cache_verification_record`).
"""

import dataclasses
import logging
import random
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal

from django.conf import settings

from llmops.background import Background
from llmops.gateway.context import CacheControl, RequestContext, SavingsOptions
from llmops.observability.judge import answer_judged_right
from llmops.providers.base import Completion

logger = logging.getLogger("llmops.gateway")

VERIFY_REASON = "cache:verify"
# Verification calls and comparisons in flight, awaitable (tests, graceful shutdown).
_verifications = Background()

Answer = Callable[..., Awaitable[Completion]]


def verification_sampled() -> bool:
    """Return whether this semantic hit is verified (with probability SEMCACHE_VERIFY_SHARE)."""
    share = settings.SEMCACHE_VERIFY_SHARE
    return share > 0 and random.random() < share


def verification_context(ctx: RequestContext, hit) -> RequestContext:
    """Return the verification request of a served hit: the same conversation and generation
    parameters, sent non-streamed to the model that produced the cached answer, under its own
    request id, around the cache (no lookup, no store), claiming no saving."""
    return dataclasses.replace(
        ctx, request_id=f"{ctx.request_id[:56]}.verify", requested_model=hit.model,
        stream=False, include_usage=False, started=time.perf_counter(),
        cache_control=CacheControl(no_cache=True, no_store=True), cache_status="bypass",
        cache_similarity=None, savings=SavingsOptions(), shadow=None, route=None,
        reference=None, estimated_prompt_tokens=0, prompt_bounds={}, output_clamp=None,
        estimated_cost=Decimal(0), timings={})


def verify_behind(ctx: RequestContext, hit, *, answer: Answer) -> bool:
    """After a semantic hit was served: when sampled, verify it in the background with
    `answer(verification ctx, reason=VERIFY_REASON)` (the pipeline's upstream call, admitted and
    settled); return whether it was started."""
    if hit.kind != "semantic" or not hit.message.get("content") or not verification_sampled():
        return False
    _verifications.spawn(_verify(ctx, hit, answer))
    return True


def shadow_verify_behind(ctx: RequestContext, fresh: dict) -> bool:
    """After a shadow-mode request was answered upstream: compare its answer with the semantic
    would-hit's, if it had one (every one is verified: it costs no extra call)."""
    hit = getattr(ctx.shadow, "hit", None)
    if hit is None or hit.kind != "semantic":
        return False
    _verifications.spawn(_compare(ctx, hit, fresh))
    return True


async def _verify(ctx: RequestContext, hit, answer: Answer) -> None:
    verifying = verification_context(ctx, hit)
    try:
        completion = await answer(verifying, reason=VERIFY_REASON)
    except Exception as exc:  # noqa: BLE001 - refused or failed: the hit goes unverified
        logger.info("verified hit skipped: %s", type(exc).__name__,
                    extra={"request_id": ctx.request_id})
        return
    await _compare(ctx, hit, completion.message)


async def _compare(ctx: RequestContext, hit, fresh: dict) -> None:
    from semcache.gateway import cache_verification_record

    judged = await answer_judged_right(messages=ctx.messages,
                                       answer=str(hit.message.get("content") or ""),
                                       request_id=f"{ctx.request_id[:56]}.verify")
    await cache_verification_record(ctx, hit, fresh, judged_right=judged)


async def wait_for_verifications(timeout: float = 10.0) -> None:
    """Wait until verification calls and comparisons in flight are done (tests, shutdown)."""
    await _verifications.wait(timeout)
