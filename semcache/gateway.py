"""The seam the gateway pipeline calls: lookup, served-hit count, store, feedback, warm-up.

The cache's rules live here and only here: whether a request is looked up (the switch
ENABLE_SEMANTIC_CACHE, the client's no-cache, the team's policy) and whether its answer is stored
(`answer_cacheable`: the client's no-store, complete answers only); the pipeline calls and obeys.

Nothing here raises into the pipeline: a cache that fails is a cache that is bypassed
(docs/architecture.md, invariant 5). Redis work runs on worker threads, the embedding on the
embedder's batching thread, so the event loop only awaits. After a Redis failure a circuit breaker
skips Redis for SEMCACHE_REDIS_RETRY_SECONDS, so a dead Redis costs requests nothing, not a
timeout each.
"""

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
from django.conf import settings

from llmops.background import Background
from semcache.deixis import refers_to_unseen
from semcache.embedder import get_embedder
from semcache.namespaces import Scope, build_scope, content_text
from semcache.policy import TeamPolicy, breaker, clear_policy_cache, team_policy
from semcache.services import Found, get_engine
from semcache.store import StoreUnavailable
from semcache.verification import answer_agreement, threshold_change_create

logger = logging.getLogger(__name__)

__all__ = [
    "CACHEABLE_FINISH", "COUNTERS", "CacheHit", "CacheRequest", "answer_cacheable", "breaker",
    "cache_enabled", "cache_feedback", "cache_hit_served", "cache_lookup", "cache_store",
    "cache_store_behind", "cache_verification_record", "clear_policy_cache", "embed_with_layers",
    "wait_for_pending_writes", "warm_up",
]

# This process's tally of outcomes (cache_status, and "store_error"), for tests and benchmarks.
COUNTERS: Counter = Counter()
# The finish reasons of a complete answer: only those are stored. Anything else (length,
# content_filter, error, or a reason an OpenAI-compatible server passes through as it is, such as
# vLLM's "abort") may be a cut or refused answer, which a hit would then serve to everyone.
CACHEABLE_FINISH = ("stop", "tool_calls")
# Write-behind stores and hit counts: off the request path, awaited by `wait_for_pending_writes`.
_writes = Background()


class _Caller(Protocol):
    @property
    def team_id(self) -> int | None: ...


class CacheRequest(Protocol):
    """What the cache reads of a request, and the findings it writes back onto it; the
    gateway's RequestContext is one (llmops/gateway/context.py)."""

    request_id: str
    principal: _Caller
    messages: list[dict]
    requested_model: str
    metadata: dict
    headers: dict[str, str]
    cache_control: Any              # the client's Cache-Control: `.no_cache`, `.no_store`
    timings: dict[str, float]       # written: "embed" and "cache_lookup", in seconds
    # Written by `cache_lookup`: the outcome, the similarity of a semantic hit, and the prompt's
    # embedding with its pooled intermediate layers (routing reuses both); the layers only when
    # `embedding_layers_wanted` (read).
    cache_status: str
    cache_similarity: float | None
    embedding: Any
    embedding_layers: dict | None
    embedding_layers_wanted: bool

    def answer_params(self) -> dict:
        """Return the generation parameters that change the answer."""
        ...


@dataclass
class CacheHit:
    kind: str                  # "exact" | "semantic"
    similarity: float | None   # None for exact hits
    entry_id: str
    message: dict
    finish_reason: str
    model: str                 # profile name that produced the answer
    usage: dict                # prompt_tokens, completion_tokens, cached_tokens of the original
    cost: Decimal              # what the original call cost = the saving of this hit
    found: Found | None = field(default=None, repr=False)  # counted once served


# Cache lookups in progress in this process: how busy it is, for the embedder's batching
# (`Embedder._fill`). Only event loops change it.
_in_progress = 0


def _lookups_in_progress() -> int:
    return _in_progress


def _scope(ctx: CacheRequest, policy: TeamPolicy) -> Scope:
    return build_scope(
        team_id=ctx.principal.team_id, messages=ctx.messages,
        requested_model=ctx.requested_model, answer_params=ctx.answer_params(),
        shared=policy.shared,
    )


def _request_threshold(ctx: CacheRequest) -> float | None:
    raw = (ctx.metadata or {}).get("cache_similarity_threshold")
    if raw is None:
        raw = (ctx.headers or {}).get("x-llmops-cache-threshold")
    if raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return min(max(value, 0.5), 1.0)


def _set(ctx: CacheRequest, status: str, similarity: float | None = None) -> None:
    ctx.cache_status = status
    ctx.cache_similarity = similarity
    COUNTERS[status] += 1


def _hit(found: Found) -> CacheHit:
    entry = found.entry
    return CacheHit(
        kind=found.kind, similarity=found.similarity, entry_id=entry.id, message=entry.message,
        finish_reason=entry.finish_reason, model=entry.model, usage=entry.usage, cost=entry.cost,
        found=found,
    )


# A lookup counts its misses; a hit is counted (and its request remembered for feedback) by
# `cache_hit_served`, once the gateway has written the hit's ledger row: a hit the gateway
# refuses (a request id its team already used) leaves no trace here either.
def _lookup_semantic(scope, vector, threshold, team_threshold):
    engine = get_engine()
    if team_threshold is not None:
        threshold = engine.threshold_for(scope.namespace, team_threshold)
    found = engine.find_semantic(scope, vector, threshold=threshold)
    if found is None:
        engine.record(None, scope.namespace)
    return found


def _lookup_exact(scope):
    engine = get_engine()
    found = engine.find_exact(scope)
    if found is None and not scope.semantic:
        engine.record(None, scope.namespace)
    return found


async def embed_with_layers(embedder, text: str, *, layers: bool = True
                            ) -> tuple[np.ndarray, dict | None]:
    """Return the text's embedding and its pooled intermediate layers from one pass, or the
    embedding and None when `layers` is false or the embedder has none (a stand-in, a
    wrapper)."""
    if layers and hasattr(embedder, "embed_with_layers"):
        return await embedder.embed_with_layers(text)
    return await embedder.embed(text), None


def cache_enabled() -> bool:
    """Return whether the semantic cache is switched on (ENABLE_SEMANTIC_CACHE)."""
    return bool(getattr(settings, "ENABLE_SEMANTIC_CACHE", False))


async def cache_lookup(ctx: CacheRequest, *,
                       on_semantic: Callable[[], None] | None = None) -> CacheHit | None:
    """Return a cached answer for the request, or None; set ctx.cache_status and friends.

    The seam decides whether to look: switched off, the cache is no stage of the request (status
    "disabled", no timing); a client's no-cache skips the lookup ("bypass"), as does a team whose
    policy turns the cache off ("disabled") or a store the breaker holds off ("error").
    Never raises: a lookup that fails is a miss with status "error".

    `on_semantic` is called once the exact lookup missed and the embedding is about to start:
    the caller may start work that a miss needs alongside it (the gateway routes and reserves
    a named model's budget while the prompt is embedded; docs/architecture.md).
    """
    if not cache_enabled():
        _set(ctx, "disabled")
        return None
    global _in_progress
    started = time.perf_counter()
    _in_progress += 1
    try:
        if ctx.cache_control.no_cache:
            _set(ctx, "bypass")
            return None
        policy = await team_policy(ctx.principal.team_id)
        if not policy.enabled:
            _set(ctx, "disabled")
            return None
        if breaker.is_open():
            _set(ctx, "error")
            return None
        scope = _scope(ctx, policy)
        found = await asyncio.to_thread(_lookup_exact, scope)
        if found is not None:
            _set(ctx, "hit_exact", 1.0)
            return _hit(found)
        if not scope.semantic:
            _set(ctx, "miss")
            return None
        embedder = get_embedder()
        if getattr(embedder, "load", False) is None:  # test doubles may not batch
            embedder.load = _lookups_in_progress
        if on_semantic is not None:
            on_semantic()
        embed_started = time.perf_counter()
        try:
            vector, ctx.embedding_layers = await embed_with_layers(
                embedder, scope.query_text, layers=ctx.embedding_layers_wanted)
        finally:
            ctx.timings["embed"] = time.perf_counter() - embed_started
        ctx.embedding = vector
        override = _request_threshold(ctx)
        team = None if override is not None else (
            policy.threshold if policy.threshold is not None
            else settings.CACHE_SIMILARITY_THRESHOLD
        )
        found = await asyncio.to_thread(_lookup_semantic, scope, vector, override, team)
        if found is None:
            _set(ctx, "miss")
            return None
        _set(ctx, "hit_semantic", found.similarity)
        return _hit(found)
    except StoreUnavailable:
        breaker.trip()
        logger.warning("semcache: store unavailable, cache bypassed", exc_info=True)
        _set(ctx, "error")
        return None
    except Exception:  # noqa: BLE001 - a cache failure must never fail the request
        logger.exception("semcache: lookup failed, cache bypassed")
        _set(ctx, "error")
        return None
    finally:
        _in_progress -= 1
        # Excludes the embedding, which is its own Server-Timing stage ("embed").
        ctx.timings["cache_lookup"] = (time.perf_counter() - started
                                       - ctx.timings.get("embed", 0.0))


async def _record_hit_behind(hit: CacheHit, team_id: int | None, request_id: str) -> None:
    try:
        await asyncio.to_thread(get_engine().record, hit.found, hit.found.entry.namespace,
                                team_id=team_id, request_id=request_id or None)
    except StoreUnavailable:
        breaker.trip()
        logger.warning("semcache: store unavailable, hit not counted")
    except Exception:  # noqa: BLE001 - off the request path; never surfaces
        logger.exception("semcache: counting a hit failed")


def cache_hit_served(ctx: CacheRequest, hit: CacheHit) -> None:
    """Count a hit the gateway served (its ledger row written) with its saving, and remember
    which entry answered the request, for feedback; off the request path, never raises."""
    if hit.found is None:
        return
    try:
        _writes.spawn(_record_hit_behind(hit, ctx.principal.team_id, ctx.request_id))
    except Exception:  # noqa: BLE001
        logger.exception("semcache: could not schedule counting a hit")


def _put(scope, vector, request_id, fields, ttl_seconds):
    return get_engine().put(scope, vector=vector, ttl_seconds=ttl_seconds,
                            request_id=request_id or None, **fields)


async def _store_behind(scope: Scope, vector, request_id: str, fields: dict,
                        ttl_seconds: float) -> None:
    try:
        if vector is None and scope.semantic:
            vector = await get_embedder().embed(scope.query_text)
        if settings.SEMCACHE_WRITE_BEHIND == "celery":
            from semcache.tasks import semcache_store_entry

            payload = {
                "scope": scope.__dict__, "vector": None if vector is None else vector.tolist(),
                "request_id": request_id, "ttl_seconds": ttl_seconds,
                "fields": {**fields, "cost": str(fields["cost"])},
            }
            await asyncio.to_thread(semcache_store_entry.delay, payload)
        else:
            await asyncio.to_thread(_put, scope, vector, request_id, fields, ttl_seconds)
    except StoreUnavailable:
        breaker.trip()
        COUNTERS["store_error"] += 1
        logger.warning("semcache: store unavailable, answer not cached")
    except Exception:  # noqa: BLE001 - off the request path; never surfaces
        COUNTERS["store_error"] += 1
        logger.exception("semcache: storing an answer failed")


def points_at_unseen(messages: list[dict]) -> bool:
    """Return whether the last message is user text pointing at content it does not carry ("the
    equation below", "this picture": semcache/deixis.py). A message with an image part carries
    what it points at."""
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "user":
        return False
    text, text_only = content_text(last.get("content"))
    return text_only and refers_to_unseen(text)


def answer_cacheable(ctx: CacheRequest, *, message: dict, finish_reason: str) -> bool:
    """Return whether the answer to this request may be stored: the cache is on, the client did
    not send no-store, the answer was not served from the cache nor the team's cache turned off
    (status "hit_exact", "hit_semantic", "disabled"), it is complete (CACHEABLE_FINISH) and
    not empty (content or tool calls), and the prompt does not point at content it does not
    carry (no later prompt could be answered by that answer; the decision never serves one)."""
    return (cache_enabled() and not ctx.cache_control.no_store
            and ctx.cache_status not in ("hit_exact", "hit_semantic", "disabled")
            and finish_reason in CACHEABLE_FINISH
            and bool(message.get("content") or message.get("tool_calls"))
            and not points_at_unseen(ctx.messages))


async def _schedule_store(ctx: CacheRequest, *, message: dict, finish_reason: str, model: str,
                          usage: dict, cost: Decimal) -> None:
    try:
        if breaker.is_open():
            COUNTERS["store_error"] += 1
            return
        policy = await team_policy(ctx.principal.team_id)
        if not policy.enabled:
            return
        scope = _scope(ctx, policy)
        ttl_hours = policy.ttl_hours if policy.ttl_hours is not None else settings.CACHE_TTL_HOURS
        fields = {"message": dict(message), "finish_reason": finish_reason, "model": model,
                  "usage": dict(usage), "cost": Decimal(cost)}
        _writes.spawn(
            _store_behind(scope, ctx.embedding, ctx.request_id, fields, ttl_hours * 3600))
    except Exception:  # noqa: BLE001
        logger.exception("semcache: could not schedule the store")


def _cacheable(ctx: CacheRequest, message: dict, finish_reason: str) -> bool:
    try:
        return answer_cacheable(ctx, message=message, finish_reason=finish_reason)
    except Exception:  # noqa: BLE001 - a malformed answer is simply not stored
        logger.exception("semcache: could not tell whether an answer may be stored")
        return False


async def cache_store(ctx: CacheRequest, *, message: dict, finish_reason: str, model: str,
                      usage: dict, cost: Decimal) -> None:
    """Schedule storing the answer of a request (write-behind) when `answer_cacheable`; return
    once the team's policy is read and the write scheduled. Never raises."""
    if _cacheable(ctx, message, finish_reason):
        await _schedule_store(ctx, message=message, finish_reason=finish_reason, model=model,
                              usage=usage, cost=cost)


def cache_store_behind(ctx: CacheRequest, *, message: dict, finish_reason: str, model: str,
                       usage: dict, cost: Decimal) -> None:
    """Store the answer of a request when `answer_cacheable`, all of it off the request path
    (the policy read included): the gateway's call once it has answered. Never raises."""
    if not _cacheable(ctx, message, finish_reason):
        return
    try:
        _writes.spawn(_schedule_store(ctx, message=message, finish_reason=finish_reason,
                                      model=model, usage=usage, cost=cost))
    except Exception:  # noqa: BLE001
        logger.exception("semcache: could not schedule the store")


async def wait_for_pending_writes(timeout: float = 10.0) -> None:
    """Wait until scheduled write-behind stores and hit counts finished (tests, graceful
    shutdown)."""
    await _writes.wait(timeout)


async def cache_feedback(*, team_id: int | None, request_id: str, correct: bool) -> bool:
    """Apply a client's verdict on the answer of its team's request; return whether its entry
    was found (another team's request of the same id is never reached).

    A cached answer marked wrong is evicted, and its namespace's threshold tightens by
    semcache.services.FEEDBACK_STEP.
    """
    try:
        return await asyncio.to_thread(get_engine().feedback, team_id=team_id,
                                       request_id=request_id, correct=correct)
    except Exception:  # noqa: BLE001
        logger.warning("semcache: feedback not applied", exc_info=True)
        return False


async def cache_verification_record(ctx: CacheRequest, hit: CacheHit, fresh: dict, *,
                                    judged_right: bool | None = None) -> bool | None:
    """Compare a semantic hit's cached answer with a fresh answer to the same request, count the
    verdict in the hit's namespace and let it move the namespace's threshold (logged); return
    whether they agreed, or None when there was nothing to compare (an answer without text, an
    exact hit). `judged_right`: the judge's verdict on the cached answer, where it gave one.
    Never raises."""
    cached_text = str(hit.message.get("content") or "")
    fresh_text = str(fresh.get("content") or "")
    if hit.kind != "semantic" or hit.found is None or not cached_text or not fresh_text:
        return None
    try:
        embedder = get_embedder()
        cosine = answer_agreement(await embedder.embed(cached_text),
                                  await embedder.embed(fresh_text))
        agreed = cosine >= settings.SEMCACHE_VERIFY_AGREEMENT and judged_right is not False
        team_id = ctx.principal.team_id
        policy = await team_policy(team_id)
        base = (policy.threshold if policy.threshold is not None
                else settings.CACHE_SIMILARITY_THRESHOLD)
        move = await asyncio.to_thread(get_engine().verification_record,
                                       hit.found.entry.namespace, agreed=agreed, base=base,
                                       team_id=hit.found.entry.team_id)
        COUNTERS["verified_agree" if agreed else "verified_disagree"] += 1
        if move is not None:
            logger.info("semcache: namespace %s threshold %.4f -> %.4f (verified precision "
                        "%d/%d, target %.3f)", move.namespace[:12], move.old, move.new,
                        move.window.agree, move.window.verdicts, move.target)
            from llmops.db import run_db

            await run_db(threshold_change_create, move=move)
        return agreed
    except StoreUnavailable:
        breaker.trip()
        logger.warning("semcache: store unavailable, verified hit not counted")
    except Exception:  # noqa: BLE001 - off the request path; never surfaces
        logger.exception("semcache: recording a verified hit failed")
    return None


def warm_up() -> None:
    """Load the embedder and run one embedding; connect the store (never raises)."""
    try:
        get_embedder().warm_up()
    except Exception:  # noqa: BLE001
        logger.exception("semcache: embedder warm-up failed")
    try:
        get_engine().store.ping()
        get_engine().search.sync()  # chooses (and logs) where vectors are searched
    except Exception:  # noqa: BLE001
        logger.warning("semcache: store not reachable at start-up", exc_info=True)
