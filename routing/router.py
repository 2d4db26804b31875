"""Pick the model profile that serves a request, and the fallbacks to try if it fails."""

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import numpy as np
from django.conf import settings

from llmops.db import run_db
from routing import policy, wiring
from routing.errors import InvalidRequest, ModelNotConfigured, ModelNotFound, ModelsUnavailable
from routing.hints import Hints, parse_hints
from routing.models import ModelProfile
from routing.resilience import cooldown_active
from routing.selectors import alias_get, profile_get_enabled, profiles_enabled, routing_predictor
from routing.tokens import PromptEstimate, image_parts, message_text

logger = logging.getLogger("llmops.routing")

AUTO = "auto"


class Caller(Protocol):
    """Who is asking, as routing needs it."""

    @property
    def team_id(self) -> int: ...

    @property
    def tier(self) -> str: ...


class RouteRequest(Protocol):
    """What routing reads of a request; the gateway's RequestContext is one
    (llmops/gateway/context.py). Routing never writes to it."""

    principal: Caller
    messages: list[dict]
    requested_model: str
    params: dict
    max_output_tokens: int | None
    default_max_tokens: int | None
    stream: bool
    metadata: dict
    headers: dict[str, str]
    embedding: Any                 # the semantic cache's prompt embedding, when it ran
    embedding_layers: dict | None  # ... and its pooled intermediate layers


@dataclass
class RouteDecision:
    """The chosen profile, why it was chosen, and the ordered fallbacks."""

    profile: ModelProfile
    reason: str
    fallbacks: list[ModelProfile] = field(default_factory=list)
    predicted_quality: float | None = None
    required_quality: float | None = None
    rejected: dict[str, str] = field(default_factory=dict)  # candidate → why it was dropped
    # {profile name: upper bound on the prompt tokens it bills} for the profile and its
    # fallbacks: what the gateway reserves, counted once here.
    prompt_bounds: dict[str, int] = field(default_factory=dict)
    # Profiles whose cooldown this routing looked up and found off, moments before the call.
    not_cooling: frozenset[str] = frozenset()
    # The request's counted texts, for any later check that needs a text's count again.
    prompt_estimate: PromptEstimate | None = None


@dataclass(frozen=True)
class OfferedModel:
    """A model name a client may send, and why the gateway cannot serve it now ('' when it can)."""

    name: str
    owned_by: str
    created: datetime | None  # None for `auto`
    unavailable: str = ""


async def models_offered() -> list[OfferedModel]:
    """Return `auto`, then every enabled profile by name, each with why it cannot be called now:
    `auto` can whenever one of them can, as it only ever picks those."""
    profiles = sorted(await profiles_enabled(), key=lambda p: p.name)
    offered = [OfferedModel(name=p.name, owned_by=p.provider, created=p.created_at,
                            unavailable=p.unavailable_reason()) for p in profiles]
    # `auto` answers chat: an embedding model it can call does not make it usable.
    chat = [m for m, p in zip(offered, profiles, strict=True) if not p.is_embedding]
    auto = ("" if any(not m.unavailable for m in chat)
            else "no enabled model can be called" if chat else "no model is enabled")
    return [OfferedModel(name=AUTO, owned_by="llmops", created=None, unavailable=auto), *offered]


class Cooldowns:
    """Cooldown state of the profiles one request asks about, each looked up once."""

    def __init__(self) -> None:
        self.active: dict[str, bool] = {}

    async def is_active(self, profile: ModelProfile) -> bool:
        if profile.name not in self.active:
            self.active[profile.name] = await cooldown_active(profile)
        return self.active[profile.name]

    def not_cooling(self) -> frozenset[str]:
        return frozenset(name for name, active in self.active.items() if not active)


async def route(ctx: RouteRequest) -> RouteDecision:
    """Return the routing decision for `ctx`, with the prompt bounds of its chain.

    Raise ModelNotFound for an unknown model, ModelNotConfigured for one the gateway cannot call
    as configured (its key is not set), InvalidRequest for a request no candidate can serve
    (context window, capability, limits), naming what failed, and UnboundedInput for a part
    whose billed tokens cannot be bounded.
    """
    needs = request_needs(ctx)
    cooldowns = Cooldowns()
    decision = await _decide(ctx, needs, cooldowns)
    decision.not_cooling = cooldowns.not_cooling()
    decision.prompt_estimate = needs.estimate
    # One bound per model in the chain (tokenizers, tool prompts and image rules differ).
    decision.prompt_bounds = {
        p.name: needs.estimate.bound(provider=p.provider, upstream_model=p.upstream_model,
                                     context_window=p.context_window)
        for p in (decision.profile, *decision.fallbacks)}
    return decision


async def _decide(ctx: RouteRequest, needs: policy.Needs,
                  cooldowns: Cooldowns) -> RouteDecision:
    if ctx.requested_model != AUTO:
        profile = await profile_get_enabled(name=ctx.requested_model)
        if profile is not None:
            return await _route_explicit(profile, needs, cooldowns)
        alias = await alias_get(name=ctx.requested_model, team_id=ctx.principal.team_id)
        if alias is None:
            raise ModelNotFound(
                f"The model '{ctx.requested_model}' does not exist or is not enabled.",
                param="model",
            )
        return await _route_auto(ctx, needs, cooldowns, names=alias.candidates or None,
                                 alias_quality=alias.min_quality,
                                 alias_latency=alias.max_latency_ms)
    return await _route_auto(ctx, needs, cooldowns)


def request_needs(ctx: RouteRequest) -> policy.Needs:
    """Return what the request requires: its prompt, estimated per model as asked (tools,
    schemas and images included, each piece counted once), and capabilities."""
    response_format = ctx.params.get("response_format") or {}
    return policy.Needs(
        estimate=PromptEstimate(messages=ctx.messages, params=ctx.params),
        max_output_tokens=ctx.max_output_tokens,
        default_max_tokens=ctx.default_max_tokens,
        tools=bool(ctx.params.get("tools")),
        json_mode=isinstance(response_format, dict)
        and response_format.get("type") in ("json_object", "json_schema"),
        vision=any(image_parts(m) for m in ctx.messages),
        streaming=ctx.stream,
    )


async def _usable_fallbacks(profile: ModelProfile, needs: policy.Needs,
                            cooldowns: Cooldowns) -> list[ModelProfile]:
    """Return `profile`'s configured fallbacks that exist, fit the request and are not cooling."""
    result = []
    for name in profile.fallbacks or []:
        candidate = await profile_get_enabled(name=name)
        if (candidate is None or candidate.name == profile.name or candidate.is_embedding
                or not candidate.is_available()
                or policy.missing_capability(candidate, needs)
                or policy.context_problem(candidate, needs)
                or await cooldowns.is_active(candidate)):
            continue
        result.append(candidate)
    return result


async def _route_explicit(profile: ModelProfile, needs: policy.Needs,
                          cooldowns: Cooldowns) -> RouteDecision:
    if profile.is_embedding:
        raise InvalidRequest(
            f"The model '{profile.name}' is an embedding model: it does not answer chat. Use "
            "POST /v1/embeddings with it, or a chat model that GET /v1/models lists.",
            param="model", code="model_not_chat")
    unavailable = profile.unavailable_reason()
    if unavailable:
        # Asked for by name: a configuration the caller can be told about, not a fallback.
        raise ModelNotConfigured(
            f"Model '{profile.name}' cannot be called: {unavailable} on this gateway. Set it "
            "in the gateway's environment, or use a model that GET /v1/models lists.",
            param="model")
    capability = policy.missing_capability(profile, needs)
    if capability:
        raise InvalidRequest(f"The model '{profile.name}' does not support {capability}.",
                             param="model", code="unsupported_capability")
    problem = policy.context_problem(profile, needs)
    if problem:
        raise InvalidRequest(f"The request does not fit '{profile.name}': {problem}.",
                             param="messages", code="context_length_exceeded")
    fallbacks = await _usable_fallbacks(profile, needs, cooldowns)
    if fallbacks and await cooldowns.is_active(profile):
        return RouteDecision(profile=fallbacks[0], reason="cooldown", fallbacks=fallbacks[1:],
                             rejected={profile.name: "cooldown"})
    return RouteDecision(profile=profile, reason="explicit", fallbacks=fallbacks)


def required_quality(tier: str, hints: Hints, alias_quality: float | None) -> float:
    """Return the quality bar: explicit hint, else complexity level, else alias, else tier."""
    if hints.min_quality is not None:
        return hints.min_quality
    if hints.complexity is not None:
        return settings.ROUTING_COMPLEXITY_MIN_QUALITY[hints.complexity]
    if alias_quality is not None:
        return alias_quality
    levels = settings.ROUTING_TIER_MIN_QUALITY
    return levels.get(tier, levels.get("standard", 0.7))


def _latency_limit(hints: Hints, alias_latency: int | None) -> int | None:
    limits = [v for v in (hints.max_latency_ms, alias_latency, settings.ROUTING_MAX_LATENCY_MS)
              if v]
    return min(limits) if limits else None


async def _route_auto(ctx: RouteRequest, needs: policy.Needs, cooldowns: Cooldowns, *,
                      names: list[str] | None = None, alias_quality: float | None = None,
                      alias_latency: int | None = None) -> RouteDecision:
    hints = parse_hints(ctx.metadata, ctx.headers,
                        complexity_levels=settings.ROUTING_COMPLEXITY_MIN_QUALITY)
    limits = policy.Limits(min_quality=required_quality(ctx.principal.tier, hints, alias_quality),
                           max_latency_ms=_latency_limit(hints, alias_latency),
                           max_cost=hints.max_cost)
    # Chat routing chooses among chat models only: an embedding model answers no prompt.
    named = [p for p in await profiles_enabled()
             if not p.is_embedding and (names is None or p.name in names)]
    profiles = [p for p in named if p.is_available()]
    if not profiles:
        _raise_none_callable(ctx.requested_model, named)
    cooling = {p.name for p in profiles if await cooldowns.is_active(p)}
    screening = policy.screen(profiles, needs, limits, cooling=cooling)
    if not screening.eligible:
        _raise_unroutable(screening.rejected, needs, profiles)

    predicted = await _predict(ctx, screening.eligible)
    remaining = await budget_remaining_for(ctx)
    choice = policy.choose(
        screening.eligible, predicted, needs, limits, budget_remaining=remaining,
        low_usd=settings.ROUTING_BUDGET_LOW_USD, low_calls=settings.ROUTING_BUDGET_LOW_CALLS,
        budget_discount=settings.ROUTING_BUDGET_QUALITY_DISCOUNT,
        escalation_margin=settings.ROUTING_ESCALATION_MARGIN)
    configured = await _usable_fallbacks(choice.profile, needs, cooldowns)
    fallbacks = policy.order_fallbacks(
        choice.profile, configured, screening.eligible, predicted, needs, choice.min_quality,
        extra=settings.ROUTING_MAX_FALLBACKS)
    return RouteDecision(profile=choice.profile, reason=choice.reason, fallbacks=fallbacks,
                         predicted_quality=round(choice.predicted_quality, 4),
                         required_quality=choice.min_quality, rejected=screening.rejected)


def _raise_none_callable(requested: str, named: list[ModelProfile]) -> None:
    """Raise the error for `auto` or an alias when none of its enabled models can be called."""
    if not named:
        raise ModelNotFound(f"No enabled model is available for '{requested}'.", param="model")
    shown = sorted(named, key=lambda p: p.name)[:5]
    reasons = "; ".join(f"{p.name}: {p.unavailable_reason()}" for p in shown)
    more = f"; and {len(named) - len(shown)} more" if len(named) > len(shown) else ""
    raise ModelNotConfigured(
        f"No model for '{requested}' can be called on this gateway ({reasons}{more}). Set the "
        "missing keys in the gateway's environment.", param="model")


def _raise_unroutable(rejected: dict[str, str], needs: policy.Needs, profiles: list) -> None:
    """Raise the clearest error for a request that every candidate rejected."""
    reasons = list(rejected.values())
    if all(r.startswith("capability:") for r in reasons):
        wanted = sorted({r.split(":", 1)[1] for r in reasons})
        raise InvalidRequest(f"No available model supports {', '.join(wanted)}.",
                             param="model", code="unsupported_capability")
    if all(r.startswith(("context:", "capability:")) for r in reasons):
        largest = max(profiles, key=lambda p: p.context_window)
        raise InvalidRequest(
            f"The prompt (≤{needs.prompt_tokens_for(largest)} tokens estimated) plus max_tokens "
            f"exceeds every candidate's limits; the largest context window is "
            f"{largest.context_window} ({largest.name}). "
            + "; ".join(f"{n}: {r.split(':', 1)[1]}" for n, r in rejected.items()),
            param="messages", code="context_length_exceeded")
    if all(r == "cooldown" for r in reasons):
        raise ModelsUnavailable("Every candidate model is cooling down after upstream failures.",
                                code="models_cooling_down",
                                retry_after=settings.ROUTING_COOLDOWN_SECONDS)
    raise InvalidRequest(
        "No model meets the request's limits: "
        + "; ".join(f"{name}: {reason}" for name, reason in rejected.items()),
        param="metadata", code="no_model_within_limits")


async def _predict(ctx: RouteRequest, candidates: list) -> dict[str, float]:
    """Return predicted quality per candidate (learned when examples exist, else the prior)."""
    predictor = await routing_predictor()
    vector = layers = None
    if predictor.predicts:
        vector, layers = await prompt_embedding(ctx)
    text = routing_text(ctx.messages)
    memo: dict = {}
    return {p.name: predictor.predict(p, text, vector, layers=layers, memo=memo).quality
            for p in candidates}


def routing_text(messages: list[dict]) -> str:
    """Return the text the predictor judges: the last user message (what is being asked)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return message_text(message)
    return message_text(messages[-1]) if messages else ""


async def prompt_embedding(ctx: RouteRequest) -> tuple[np.ndarray | None, dict | None]:
    """Return the prompt's embedding and its pooled intermediate layers ({layer: vector}, or
    None when the embedder gave none): the semantic cache's when set, else computed once."""
    if ctx.embedding is not None:
        return np.asarray(ctx.embedding, dtype=np.float32), ctx.embedding_layers
    try:
        from semcache.embedder import get_embedder

        embedder = get_embedder()
        text = routing_text(ctx.messages)
        if hasattr(embedder, "embed_with_layers"):
            vector, layers = await embedder.embed_with_layers(text)
            return np.asarray(vector, dtype=np.float32), layers
        if hasattr(embedder, "embed"):
            return np.asarray(await embedder.embed(text), dtype=np.float32), None
        return (await asyncio.to_thread(embedder.embed_sync, [text]))[0], None
    except Exception:  # no embedder: route on priors rather than fail the request
        logger.exception("Prompt embedding failed; routing on prior quality scores")
        return None, None


async def budget_remaining_for(ctx: RouteRequest) -> Decimal | None:
    """Return the caller's remaining budget in USD (None: unlimited or unknown)."""
    try:
        return await run_db(wiring.budget_remaining, principal=ctx.principal)
    except Exception:  # budgets enforce themselves at reservation; routing only leans on them
        logger.exception("budget_remaining failed; routing without budget awareness")
        return None
