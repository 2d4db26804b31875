"""The gateway pipeline, top to bottom: cache → route → reserve → call → settle → store.

Every request that passes admission ends in exactly one `request_settle` (one ledger row),
whether it succeeded, was served from cache, failed upstream, or lost its client mid-stream.
"""

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError

from budgets.errors import BudgetExceeded, DuplicateRequestId
from budgets.services import Admission, UsageEntry, request_admit, request_settle
from llmops import metrics
from llmops.db import run_db
from llmops.errors import GatewayError, ServiceUnavailable
from llmops.gateway import holder, upstream
from llmops.gateway.background import spawn
from llmops.gateway.context import RequestContext
from llmops.gateway.responses import completion_body, usage_body
from llmops.gateway.usage import billed_usage
from llmops.observability.judge import judge_sample_maybe_async
from llmops.observability.logs import log_request
from llmops.observability.savings import routing_saved_usd
from llmops.providers.base import Completion, Usage
from routing.models import ModelProfile
from routing.pricing import max_cost, usage_cost
from routing.router import route
from routing.tokens import estimate_request_prompt_tokens

logger = logging.getLogger("llmops.gateway")

# Settlement must survive the request task being cancelled (client gone): `_spawn` keeps it.
_spawn = spawn


@dataclass
class Prepared:
    """A request that passed cache, routing and admission, ready to call upstream."""

    ctx: RequestContext
    chain: list[ModelProfile]
    admission: Admission
    reason: str


@dataclass
class Outcome:
    """What happened upstream, in the terms the ledger records."""

    profile: ModelProfile | None = None
    usage: Usage | None = None
    status: str = "ok"
    error_kind: str = ""
    http_status: int = 200
    attempted: list[str] = field(default_factory=list)
    upstream_ms: int | None = None
    ttft_ms: int | None = None
    reason: str = ""

    def fail(self, status: str, error_kind: str, http_status: int) -> None:
        """Record how the request ended when it did not end well."""
        self.status, self.error_kind, self.http_status = status, error_kind, http_status


DISCONNECTED = ("client_disconnected", "client_disconnected", 499)


@dataclass
class CompletionResult:
    """A finished non-streamed answer with the headers that describe it."""

    body: dict
    headers: dict[str, str]


@dataclass
class StreamResult:
    """A stream that has started upstream: headers now, SSE bytes as they come."""

    headers: dict[str, str]
    events: AsyncIterator[bytes]


# --- Steps ------------------------------------------------------------------------------------


async def _db(fn, /, **kwargs):
    """Run a database step; a database that is down becomes a clean 503, never a 500."""
    try:
        return await run_db(fn, **kwargs)
    except DatabaseError as exc:
        logger.error("database unavailable", extra={"error": str(exc)[:200]})
        raise ServiceUnavailable(
            "The gateway's database is unavailable; no model was called.",
            code="database_unavailable",
        ) from exc


async def _lookup_cache(ctx: RequestContext):
    """Return the cached answer, or None: semcache decides whether to look, and never raises."""
    from semcache.gateway import cache_lookup

    started = time.perf_counter()
    hit = await cache_lookup(ctx)
    if "cache_lookup" in ctx.timings:  # the cache ran (switched off, it is no stage)
        # The embedding is its own stage ("embed", set by semcache); "cache" is the rest.
        ctx.timings["cache"] = time.perf_counter() - started - ctx.timings.get("embed", 0.0)
    return hit


async def _prepare(ctx: RequestContext) -> Prepared:
    started = time.perf_counter()
    decision = await route(ctx)
    ctx.route = decision
    chain = [decision.profile, *decision.fallbacks]
    ctx.timings["route"] = time.perf_counter() - started
    metrics.observe_model_selection(model=decision.profile.name, reason=decision.reason)

    # One bound per model in the chain (tokenizers, tool prompts and image rules differ);
    # reserve for the dearest model the request may end up on, so a fallback never overspends.
    # A part that cannot be bounded raises routing.errors.UnboundedInput: a 400, nothing reserved.
    ctx.prompt_bounds = {p.name: estimate_request_prompt_tokens(
        messages=ctx.messages, params=ctx.params, provider=p.provider,
        upstream_model=p.upstream_model, context_window=p.context_window) for p in chain}
    ctx.estimated_prompt_tokens = max(ctx.prompt_bounds.values())
    started = time.perf_counter()
    admission = await _admit(ctx, chain)
    ctx.timings["admission"] = time.perf_counter() - started
    return Prepared(ctx=ctx, chain=chain, admission=admission, reason=decision.reason)


# A request that named no max_tokens is answered with fewer output tokens rather than refused,
# down to this many: below it, an answer would be too short to be worth paying for.
MIN_CLAMPED_OUTPUT_TOKENS = 16


async def _admit(ctx: RequestContext, chain: list[ModelProfile]) -> Admission:
    """Reserve the request's upper-bound cost. When it does not fit and the client set no
    max_tokens, lower the output limit to what the remaining budget covers and try again
    (at most twice: another budget may be the tighter one); the hard limit is never moved."""
    refusal: BudgetExceeded | None = None
    for _ in range(3):
        ctx.estimated_cost = max(
            max_cost(p, prompt_tokens=ctx.prompt_bounds[p.name],
                     max_output_tokens=upstream.output_limit(ctx, p))
            for p in chain
        )
        try:
            return await _admit_once(ctx)
        except BudgetExceeded as exc:
            refusal = exc
            clamp = _affordable_output_tokens(ctx, chain, exc)
            if clamp is None:
                raise
            ctx.output_clamp = clamp
    raise refusal


def _affordable_output_tokens(ctx: RequestContext, chain: list[ModelProfile],
                              refusal: BudgetExceeded) -> int | None:
    """Return the output limit the refusing budget's remainder covers on every profile of the
    chain, or None when the client chose max_tokens itself or too little would remain."""
    if ctx.max_output_tokens or "remaining" not in refusal.extra:
        return None
    remaining = Decimal(refusal.extra["remaining"])
    affordable = []
    for profile in chain:
        prompt_cost = max_cost(profile, prompt_tokens=ctx.prompt_bounds[profile.name],
                               max_output_tokens=0)
        per_token = max_cost(profile, prompt_tokens=0, max_output_tokens=1)
        if per_token <= 0:
            return None
        affordable.append(int((remaining - prompt_cost) / per_token))
    tokens = min(affordable)
    current = min(upstream.output_limit(ctx, p) for p in chain)
    if tokens < MIN_CLAMPED_OUTPUT_TOKENS or tokens >= current:
        return None
    return tokens


async def _admit_once(ctx: RequestContext) -> Admission:
    """Run admission so that a client leaving while it is in flight cannot leak it: admission
    runs on to its end in its own task, and an admission that went through is released (one
    ledger row, nothing charged: no model was called)."""
    holder.heartbeat_ensure_running()
    task = _spawn(_db(request_admit, principal=ctx.principal, request_id=ctx.request_id,
                      estimated_cost=ctx.estimated_cost, requested_model=ctx.requested_model,
                      holder=holder.holder_id()))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        _spawn(_release_unused(ctx, task))
        raise


async def _release_unused(ctx: RequestContext, admitting: asyncio.Task) -> None:
    try:
        admission = await admitting
    except Exception:
        return  # refused or failed: nothing was reserved
    outcome = Outcome(reason=ctx.route.reason if ctx.route else "")
    outcome.fail(*DISCONNECTED)
    await _settle(ctx, admission, outcome)


async def _settle(ctx: RequestContext, admission: Admission | None, outcome: Outcome,
                  *, cost_saved: Decimal = Decimal(0), hit=None) -> UsageEntry:
    usage = outcome.usage or Usage()
    profile = outcome.profile
    cost = Decimal(0)
    if profile is not None and hit is None:
        cost = usage_cost(profile, prompt_tokens=usage.prompt_tokens,
                          completion_tokens=usage.completion_tokens,
                          cached_tokens=usage.cached_tokens,
                          reasoning_tokens=usage.reasoning_tokens)
    served = hit.model if hit is not None else (profile.name if profile else "")
    entry = UsageEntry(
        request_id=ctx.request_id,
        principal=ctx.principal,
        requested_model=ctx.requested_model,
        served_model=served,
        attempted_models=outcome.attempted,
        routing_reason=outcome.reason,
        prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens,
        cached_tokens=usage.cached_tokens,
        reasoning_tokens=usage.reasoning_tokens,
        estimated_prompt_tokens=ctx.estimated_prompt_tokens,
        estimated_cost=ctx.estimated_cost,
        cost=cost,
        cost_saved=cost_saved,
        cache_status=ctx.cache_status,
        cache_similarity=ctx.cache_similarity,
        stream=ctx.stream,
        latency_ms=ctx.elapsed_ms(),
        ttft_ms=outcome.ttft_ms,
        upstream_latency_ms=outcome.upstream_ms,
        status=outcome.status,
        error_kind=outcome.error_kind,
        http_status=outcome.http_status,
    )
    started = time.perf_counter()
    record = None
    for attempt in range(3):
        try:
            record = await run_db(request_settle, admission=admission, entry=entry)
            break
        except DatabaseError:
            if attempt < 2:
                await asyncio.sleep(0.2 * (attempt + 1))
    if record is None:
        # The call already happened: keep trying in the background while the reservation is
        # still held (the sweep would otherwise release it unpaid). Settling is idempotent per
        # request id, so a retry that races a late success cannot charge twice.
        _spawn(_settle_eventually(admission, entry))
    ctx.timings["settle"] = time.perf_counter() - started
    routing_saved = 0.0
    if hit is None:
        routing_saved = await routing_saved_usd(
            requested_model=ctx.requested_model, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, cost=cost)
    metrics.observe_request(
        team=ctx.principal.team_name, tier=ctx.principal.tier, routing_saved=routing_saved,
        model=served, status=outcome.status, cache_status=ctx.cache_status,
        cost=float(cost), cost_saved=float(cost_saved), prompt_tokens=usage.prompt_tokens,
        completion_tokens=usage.completion_tokens, duration_s=ctx.elapsed_ms() / 1000,
        upstream_s=None if outcome.upstream_ms is None else outcome.upstream_ms / 1000,
        ttft_s=None if outcome.ttft_ms is None else outcome.ttft_ms / 1000,
        similarity=ctx.cache_similarity,
    )
    if record is not None:
        log_request(record, principal=ctx.principal)
    return entry


async def _settle_eventually(admission: Admission | None, entry: UsageEntry) -> None:
    deadline = time.monotonic() + settings.BUDGET_RESERVATION_TIMEOUT_SECONDS / 2
    delay = 0.25
    while time.monotonic() < deadline:
        await asyncio.sleep(delay)
        try:
            await run_db(request_settle, admission=admission, entry=entry)
            logger.warning("ledger write succeeded after retries",
                           extra={"request_id": entry.request_id})
            return
        except DatabaseError:
            delay = min(delay * 2, 5.0)
        except DuplicateRequestId:
            # A cache hit's id turned out to be taken in its team (the answer was already
            # served while the database was down): that row stands, this one is not written.
            logger.error("ledger write refused: request id already used",
                         extra={"request_id": entry.request_id})
            return
    logger.critical("ledger write failed; the entry is lost unless replayed",
                    extra={"request_id": entry.request_id, "entry": repr(entry)})


def _headers(ctx: RequestContext, *, model: str, entry: UsageEntry | None = None) -> dict:
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
    """Off the request path: store the answer in the cache, maybe sample it for the judge."""
    _store_in_cache(ctx, completion, profile, usage, cost)
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


async def _call_upstream(ctx: RequestContext, prepared: Prepared, outcome: Outcome, call,
                         *, client_gone):
    """Run `call(ctx, chain, outcome)` in a task of its own; whatever ends it early, settle the
    admission once. If the client leaves meanwhile, `client_gone(task)` takes over the call
    (detached from the request) and settles it with what the provider bills."""
    task = _spawn(call(ctx, prepared.chain, outcome))
    try:
        return await asyncio.shield(task)
    except GatewayError as exc:
        outcome.fail("timeout" if exc.status_code == 504 else "upstream_error",
                     outcome.error_kind, exc.status_code)
        await _settle(ctx, prepared.admission, outcome)
        raise
    except asyncio.CancelledError:
        _spawn(client_gone(ctx, prepared, outcome, task))
        raise
    except BaseException:
        # Our own failure: the settlement must still happen, whatever happens to this task.
        outcome.fail("gateway_error", "internal", 500)
        await asyncio.shield(_spawn(_settle(ctx, prepared.admission, outcome)))
        raise


async def _finish_detached(ctx: RequestContext, prepared: Prepared, outcome: Outcome,
                           calling: asyncio.Task) -> None:
    """The client of a non-streamed request left: let the call finish (the provider bills it
    either way), settle at what it reports, and keep the answer in the cache."""
    try:
        completion = await calling
    except BaseException as exc:
        kind = getattr(exc, "code", None) or outcome.error_kind or "internal"
        outcome.fail(DISCONNECTED[0], str(kind)[:40], DISCONNECTED[2])
        await _settle(ctx, prepared.admission, outcome)
        return
    text = str(completion.message.get("content") or "")
    outcome.usage = billed_usage(ctx, outcome.profile, completion.usage, text)
    outcome.fail(*DISCONNECTED)
    entry = await _settle(ctx, prepared.admission, outcome)
    await _after_answer(ctx, completion, outcome.profile, outcome.usage, entry.cost)


async def _close_opening(ctx: RequestContext, prepared: Prepared, outcome: Outcome,
                         opening: asyncio.Task) -> None:
    """The client of a stream left before its first token: close the upstream stream now (no
    more tokens are generated for nobody) and charge the prompt the provider already took in,
    plus whatever it had sent."""
    opening.cancel()
    try:
        opened = await opening
    except BaseException:
        opened = None
    text = ""
    if opened is not None:
        text = opened.first.content or ""
        await opened.aclose()
    elif outcome.profile is None and outcome.attempted:
        # Cut while a profile was being tried: that one holds the prompt.
        outcome.profile = next((p for p in prepared.chain if p.name == outcome.attempted[-1]),
                               None)
    outcome.fail(*DISCONNECTED)
    if outcome.profile is not None:
        outcome.usage = billed_usage(ctx, outcome.profile, None, text)
    await _settle(ctx, prepared.admission, outcome)


# --- Non-streamed ----------------------------------------------------------------------------


async def chat_completion_create(ctx: RequestContext) -> CompletionResult:
    """Answer a non-streamed chat completion."""
    hit = await _lookup_cache(ctx)
    if hit is not None:
        return await _answer_from_cache(ctx, hit)

    prepared = await _prepare(ctx)
    outcome = Outcome(reason=prepared.reason)
    completion = await _call_upstream(ctx, prepared, outcome, upstream.complete_with_fallbacks,
                                      client_gone=_finish_detached)

    usage = billed_usage(ctx, outcome.profile, completion.usage,
                         str(completion.message.get("content") or ""))
    outcome.usage = usage
    entry = await _settle(ctx, prepared.admission, outcome)
    await _after_answer(ctx, completion, outcome.profile, usage, entry.cost)
    body = completion_body(ctx, model=outcome.profile.name, message=completion.message,
                           finish_reason=completion.finish_reason, usage=usage, entry=entry)
    return CompletionResult(body=body, headers=_headers(ctx, model=outcome.profile.name,
                                                        entry=entry))


async def _answer_from_cache(ctx: RequestContext, hit) -> CompletionResult | StreamResult:
    usage = Usage(prompt_tokens=0, completion_tokens=0)
    outcome = Outcome(usage=usage, reason=f"cache:{hit.kind}", attempted=[])
    entry = await _settle(ctx, None, outcome, cost_saved=Decimal(hit.cost), hit=hit)
    from semcache.gateway import cache_hit_served

    cache_hit_served(ctx, hit)  # its ledger row is written: count the hit
    original = Usage(prompt_tokens=int(hit.usage.get("prompt_tokens", 0)),
                     completion_tokens=int(hit.usage.get("completion_tokens", 0)))
    headers = _headers(ctx, model=hit.model, entry=entry)
    if ctx.stream:
        return StreamResult(headers=headers, events=_replay_stream(ctx, hit, original, entry))
    body = completion_body(ctx, model=hit.model, message=hit.message,
                           finish_reason=hit.finish_reason, usage=original, entry=entry)
    return CompletionResult(body=body, headers=headers)


# --- Streamed --------------------------------------------------------------------------------


def _sse(payload: dict | str) -> bytes:
    import json

    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


async def _replay_stream(ctx, hit, usage: Usage, entry: UsageEntry) -> AsyncIterator[bytes]:
    from llmops.gateway.responses import chunk_body

    yield _sse(chunk_body(ctx, model=hit.model, delta={"role": "assistant", "content": ""}))
    content = hit.message.get("content") or ""
    if content:
        yield _sse(chunk_body(ctx, model=hit.model, delta={"content": content}))
    if hit.message.get("tool_calls"):
        calls = [dict(c, index=i) for i, c in enumerate(hit.message["tool_calls"])]
        yield _sse(chunk_body(ctx, model=hit.model, delta={"tool_calls": calls}))
    yield _sse(chunk_body(ctx, model=hit.model, delta={}, finish_reason=hit.finish_reason))
    if ctx.include_usage:
        yield _sse(chunk_body(ctx, model=hit.model, usage=usage_body(ctx, usage, entry)))
    yield _sse("[DONE]")


async def chat_completion_stream(ctx: RequestContext) -> StreamResult:
    """Start a streamed chat completion: everything up to the first upstream delta happens
    here (so failures before the first byte are clean HTTP errors, with retries and fallbacks);
    the rest is relayed by the returned iterator."""
    hit = await _lookup_cache(ctx)
    if hit is not None:
        return await _answer_from_cache(ctx, hit)

    prepared = await _prepare(ctx)
    outcome = Outcome(reason=prepared.reason)
    opened = await _call_upstream(ctx, prepared, outcome, upstream.open_stream_with_fallbacks,
                                  client_gone=_close_opening)
    relay = _Relay(ctx, prepared, outcome, opened)
    # The server may never start iterating (the client left between the headers and the first
    # chunk): an iterator never started never runs its `finally`, so when the task serving this
    # request ends, whatever the relay did not settle is settled here.
    serving = asyncio.current_task()
    if serving is not None:
        serving.add_done_callback(relay.settle_if_never_started)
    return StreamResult(headers=_headers(ctx, model=outcome.profile.name), events=relay.events())


class _Relay:
    """Relays one upstream stream to the client and settles it exactly once, however it ends."""

    def __init__(self, ctx: RequestContext, prepared: Prepared, outcome: Outcome,
                 opened: "upstream.OpenedStream"):
        self.ctx, self.prepared, self.outcome, self.opened = ctx, prepared, outcome, opened
        self.started = False
        self.settled = False
        self.text_parts: list[str] = []
        self.reported: Usage | None = None

    def _usage(self) -> Usage:
        return billed_usage(self.ctx, self.outcome.profile, self.reported,
                            "".join(self.text_parts))

    async def _settle(self) -> UsageEntry:
        self.settled = True
        return await _settle(self.ctx, self.prepared.admission, self.outcome)

    def settle_if_never_started(self, _task: asyncio.Task | None = None) -> None:
        if self.started or self.settled:
            return
        self.settled = True
        _spawn(self._close_unstarted())

    async def _close_unstarted(self) -> None:
        await self.opened.aclose()
        self.text_parts.append(self.opened.first.content or "")
        self.outcome.fail(*DISCONNECTED)
        self.outcome.usage = self._usage()
        await _settle(self.ctx, self.prepared.admission, self.outcome)

    async def events(self) -> AsyncIterator[bytes]:
        from llmops.gateway.responses import chunk_body
        from llmops.providers.errors import ProviderError

        if self.settled:
            return  # settled as abandoned before the server asked for the first chunk
        self.started = True
        ctx, outcome = self.ctx, self.outcome
        model = outcome.profile.name
        tool_calls: dict[int, dict] = {}
        finish_reason: str | None = None
        try:
            async for delta in self.opened.deltas():
                if delta.usage is not None:
                    self.reported = delta.usage
                piece: dict = {}
                if delta.role:
                    piece["role"] = delta.role
                if delta.content:
                    piece["content"] = delta.content
                    self.text_parts.append(delta.content)
                if delta.tool_calls:
                    piece["tool_calls"] = delta.tool_calls
                    upstream.merge_tool_call_deltas(tool_calls, delta.tool_calls)
                if delta.finish_reason:
                    finish_reason = delta.finish_reason
                if piece or delta.finish_reason:
                    yield _sse(chunk_body(ctx, model=model, delta=piece,
                                          finish_reason=delta.finish_reason))
            outcome.usage = self._usage()
            entry = await self._settle()
            if ctx.include_usage:
                yield _sse(chunk_body(ctx, model=model,
                                      usage=usage_body(ctx, outcome.usage, entry)))
            yield _sse("[DONE]")
            message: dict = {"role": "assistant", "content": "".join(self.text_parts)}
            if tool_calls:
                message["tool_calls"] = [tool_calls[i] for i in sorted(tool_calls)]
                message["content"] = message["content"] or None
            await _after_answer(ctx, Completion(message=message,
                                                finish_reason=finish_reason or "stop",
                                                usage=outcome.usage),
                                outcome.profile, outcome.usage, entry.cost)
        except ProviderError as exc:
            # The stream broke after bytes were relayed: never retried (the client has them).
            # Charge what was relayed, tell the client in-band, and end the stream properly.
            metrics.observe_upstream_error(model=model, kind=exc.kind)
            outcome.fail("upstream_error", exc.kind, 502)
            outcome.usage = self._usage()
            await self._settle()
            yield _sse({"error": {"message": "The model provider's stream broke mid-way.",
                                  "type": "api_error", "code": exc.kind, "param": None}})
            yield _sse("[DONE]")
        finally:
            await self.opened.aclose()
            if not self.settled:
                # The client went away (task cancelled / generator closed): the upstream stream
                # is closed above, so the provider bills the prompt and what it had sent.
                outcome.fail(*DISCONNECTED)
                outcome.usage = self._usage()
                task = _spawn(self._settle())
                try:
                    await asyncio.shield(task)
                except (asyncio.CancelledError, GeneratorExit):
                    pass  # the settle task runs on; `spawn` keeps it alive
