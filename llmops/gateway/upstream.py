"""Calling the provider: retries with backoff, fallbacks along the chain, cooldowns.

Retries and fallbacks happen only before the first streamed byte reaches the client; after
that, a failure ends the stream (see streaming.Relay).
"""

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from django.conf import settings

from llmops import metrics
from llmops.background import spawn
from llmops.errors import UpstreamError, UpstreamTimeout
from llmops.gateway.context import RequestContext
from llmops.gateway.settlement import Outcome
from llmops.providers.base import Completion, Delta, Embeddings, ProviderCall
from llmops.providers.errors import ProviderError, ProviderNotConfigured, ProviderTimeout
from llmops.providers.registry import get_adapter
from routing import policy, resilience
from routing.models import ModelProfile


def output_limit(ctx: RequestContext, profile: ModelProfile) -> int:
    """Return the most output tokens this request may produce on `profile`."""
    limit = policy.output_limit(profile, requested=ctx.max_output_tokens,
                                default=ctx.default_max_tokens)
    return limit if ctx.output_clamp is None else min(limit, ctx.output_clamp)


def build_call(ctx: RequestContext, profile: ModelProfile) -> ProviderCall:
    """Return the upstream request for `profile` (parameters clamped to what it accepts)."""
    adapter = get_adapter(profile.provider)
    params = dict(ctx.params)
    limit = output_limit(ctx, profile)
    if (ctx.max_output_tokens or ctx.default_max_tokens or ctx.output_clamp
            or "max_tokens" in params or "max_completion_tokens" in params):
        params.pop("max_completion_tokens", None)
        params["max_tokens"] = limit
    api_key = adapter.api_key_for(profile.api_key_env)
    if adapter.needs_key and not api_key:
        raise ProviderNotConfigured(f"No API key is configured for provider {profile.provider}.")
    return ProviderCall(
        upstream_model=profile.upstream_model,
        messages=ctx.messages,
        provider=profile.provider,
        params=params,
        base_url=profile.base_url,
        api_key=api_key,
        options=dict(profile.options),
        request_id=ctx.request_id,
    )


def merge_tool_call_deltas(into: dict[int, dict], deltas: list[dict]) -> None:
    """Accumulate streamed tool-call fragments (OpenAI delta shape) into whole calls."""
    for fragment in deltas:
        index = fragment.get("index", 0)
        call = into.setdefault(index, {"id": "", "type": "function",
                                       "function": {"name": "", "arguments": ""}})
        if fragment.get("id"):
            call["id"] = fragment["id"]
        function = fragment.get("function") or {}
        call["function"]["name"] += function.get("name") or ""
        call["function"]["arguments"] += function.get("arguments") or ""


def _gateway_error(exc: ProviderError, model: str) -> UpstreamError:
    """Return the client-facing error for a provider failure (no provider secrets in it)."""
    message = f"Model '{model}' failed: {exc.message}"
    if isinstance(exc, ProviderTimeout):
        return UpstreamTimeout(message, code="upstream_timeout")
    if exc.kind == "rate_limited":
        from llmops.errors import RateLimited

        return RateLimited(message, code="upstream_rate_limited", retry_after=exc.retry_after)
    if exc.kind == "bad_request":
        from llmops.errors import InvalidRequest

        return InvalidRequest(message, code="upstream_bad_request")
    return UpstreamError(message, code=exc.kind)


async def _attempts(ctx: RequestContext, chain: list[ModelProfile], outcome: Outcome,
                    call_once):
    """Run `call_once(profile, call)` along the chain with retries; return the first success.
    What happens goes straight into the outcome's ledger entry (models tried, reason, timing)."""
    entry = outcome.entry
    last_error: ProviderError | None = None
    last_model = chain[0].name
    max_retries = getattr(settings, "ROUTING_MAX_RETRIES", 2)
    # Routing looked these up moments ago, before admission: the first attempt trusts it.
    routed = ctx.route.not_cooling if ctx.route is not None else frozenset()
    for position, profile in enumerate(chain):
        # Only a profile with somewhere to fall back to is skipped while cooling down, so the
        # last one of the chain (the only one, usually) costs no cooldown lookup. Later ones are
        # looked up again: failed attempts took time in which other requests may have cooled
        # them.
        if (position < len(chain) - 1 and not (position == 0 and profile.name in routed)
                and await resilience.cooldown_active(profile)):
            entry.routing_reason = "cooldown"
            continue
        try:
            call = build_call(ctx, profile)
        except ProviderError as exc:
            last_error, last_model = exc, profile.name
            entry.attempted_models.append(profile.name)
            continue
        for attempt in range(max_retries + 1):
            entry.attempted_models.append(profile.name)
            started = time.perf_counter()
            try:
                result = await call_once(profile, call)
            except ProviderError as exc:
                last_error, last_model = exc, profile.name
                entry.error_kind = exc.kind
                metrics.observe_upstream_error(model=profile.name, kind=exc.kind)
                await resilience.record_failure(profile, kind=exc.kind,
                                                retry_after=exc.retry_after)
                if exc.retryable and attempt < max_retries:
                    await asyncio.sleep(resilience.backoff_delay(attempt + 1, exc.retry_after))
                    continue
                break
            entry.upstream_latency_ms = int((time.perf_counter() - started) * 1000)
            ctx.timings["upstream"] = time.perf_counter() - started
            outcome.profile = profile
            entry.error_kind = ""
            if position > 0:
                entry.routing_reason = "fallback"
                metrics.observe_fallback(from_model=chain[0].name, to_model=profile.name)
            return result
        if last_error is not None and not last_error.fallback:
            break
    outcome.profile = chain[0] if outcome.profile is None else outcome.profile
    if last_error is None:
        last_error = ProviderError("No model in the fallback chain could be called.")
    entry.error_kind = last_error.kind
    raise _gateway_error(last_error, last_model) from last_error


async def complete_with_fallbacks(ctx: RequestContext, chain: list[ModelProfile],
                                  outcome: Outcome) -> Completion:
    """Return the first whole answer along the chain; raise an UpstreamError when none."""

    async def call_once(profile: ModelProfile, call: ProviderCall) -> Completion:
        completion = await get_adapter(profile.provider).complete(call)
        # The shared failure reset need not hold up the answer.
        spawn(resilience.record_success(profile, latency_ms=ctx.elapsed_ms(), ttft_ms=None))
        return completion

    return await _attempts(ctx, chain, outcome, call_once)


async def embed_with_fallbacks(ctx: RequestContext, chain: list[ModelProfile],
                               outcome: Outcome) -> Embeddings:
    """Return the embeddings of `ctx.params["input"]` from the first profile of the chain that
    makes them (retries, cooldowns and error mapping as for chat); raise an UpstreamError when
    none does."""

    async def call_once(profile: ModelProfile, call: ProviderCall) -> Embeddings:
        embeddings = await get_adapter(profile.provider).embed(call)
        spawn(resilience.record_success(profile, latency_ms=ctx.elapsed_ms(), ttft_ms=None))
        return embeddings

    return await _attempts(ctx, chain, outcome, call_once)


@dataclass
class OpenedStream:
    """An upstream stream whose first delta already arrived."""

    first: Delta
    rest: AsyncIterator[Delta]

    async def deltas(self) -> AsyncIterator[Delta]:
        yield self.first
        async for delta in self.rest:
            yield delta

    async def aclose(self) -> None:
        closer = getattr(self.rest, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:
                pass


async def open_stream_with_fallbacks(ctx: RequestContext, chain: list[ModelProfile],
                                     outcome: Outcome) -> OpenedStream:
    """Open a stream along the chain; return once its first delta arrived."""

    async def call_once(profile: ModelProfile, call: ProviderCall) -> OpenedStream:
        stream = get_adapter(profile.provider).stream(call)
        try:
            first = await anext(stream)
        except StopAsyncIteration:
            raise ProviderError("The provider closed the stream without an answer.") from None
        except BaseException:
            await stream.aclose()
            raise
        outcome.entry.ttft_ms = ctx.elapsed_ms()
        spawn(resilience.record_success(profile, latency_ms=ctx.elapsed_ms(),
                                        ttft_ms=outcome.entry.ttft_ms))
        return OpenedStream(first=first, rest=stream)

    return await _attempts(ctx, chain, outcome, call_once)
