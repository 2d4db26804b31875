"""Settlement: how a request ended, priced into its ledger entry and written exactly once.

Every request that passes admission ends in exactly one `settle` (one ledger row), whether it
succeeded, was served from cache, failed upstream, or lost its client mid-stream.
"""

import asyncio
import logging
import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import DatabaseError

from budgets.errors import DuplicateRequestId
from budgets.services import Admission, UsageEntry, request_settle
from llmops import metrics
from llmops.background import spawn
from llmops.db import run_db
from llmops.gateway.context import RequestContext
from llmops.gateway.savings import savings_finish
from llmops.observability.logs import log_request
from llmops.providers.base import Usage
from routing.models import ModelProfile
from routing.pricing import usage_cost

logger = logging.getLogger("llmops.gateway")

DISCONNECTED = ("client_disconnected", "client_disconnected", 499)


@dataclass
class Outcome:
    """How a request ends, filled in as it goes: its ledger entry (models tried, routing reason,
    timings, status) and the model that answered with the usage it bills, which `settle` prices
    into the entry."""

    entry: UsageEntry
    profile: ModelProfile | None = None
    usage: Usage | None = None

    @classmethod
    def of(cls, ctx: RequestContext, *, reason: str = "") -> "Outcome":
        """Return the outcome of `ctx` before anything happened upstream."""
        return cls(UsageEntry(request_id=ctx.request_id, principal=ctx.principal,
                              requested_model=ctx.requested_model, routing_reason=reason,
                              stream=ctx.stream, endpoint=ctx.endpoint))

    def fail(self, status: str, error_kind: str, http_status: int) -> None:
        """Record how the request ended when it did not end well."""
        entry = self.entry
        entry.status, entry.error_kind, entry.http_status = status, error_kind, http_status


def entry_finish(ctx: RequestContext, outcome: Outcome, *, cost_saved: Decimal = Decimal(0),
                 hit=None) -> UsageEntry:
    """Complete the outcome's entry with what is known only at the end (the served model, the
    billed usage at its prices, the request's estimates and cache result, its latency); return
    it. A cache hit (`hit`) costs nothing and saves `cost_saved`; a call saves what routing
    saved against the reference model (llmops/gateway/savings.py)."""
    entry, usage, profile = outcome.entry, outcome.usage or Usage(), outcome.profile
    if hit is not None:
        entry.served_model = hit.model
    elif profile is not None:
        entry.served_model = profile.name
        entry.cost = usage_cost(profile, prompt_tokens=usage.prompt_tokens,
                                completion_tokens=usage.completion_tokens,
                                cached_tokens=usage.cached_tokens,
                                reasoning_tokens=usage.reasoning_tokens)
    entry.prompt_tokens, entry.completion_tokens = usage.prompt_tokens, usage.completion_tokens
    entry.cached_tokens, entry.reasoning_tokens = usage.cached_tokens, usage.reasoning_tokens
    savings_finish(ctx, entry, hit=hit, cache_saved=cost_saved)
    entry.estimated_prompt_tokens = ctx.estimated_prompt_tokens
    entry.estimated_cost = ctx.estimated_cost
    entry.cache_status, entry.cache_similarity = ctx.cache_status, ctx.cache_similarity
    entry.latency_ms = ctx.elapsed_ms()
    return entry


async def settle(ctx: RequestContext, admission: Admission | None, outcome: Outcome,
                 *, cost_saved: Decimal = Decimal(0), hit=None) -> UsageEntry:
    """Write the request's one ledger row (charging `admission`'s budgets), count it in the
    metrics and log it; return its entry. A write that fails goes on in the background.

    The settlement runs in a task of its own and to its end even when the caller is cancelled
    (the client left while the row was being written): a write still queued for the database
    pool would otherwise be dropped with the caller, leaving the provider's bill off the books
    and the reservation held for as long as this process lives."""
    return await asyncio.shield(spawn(_settle(ctx, admission, outcome, cost_saved=cost_saved,
                                              hit=hit)))


async def _settle(ctx: RequestContext, admission: Admission | None, outcome: Outcome,
                  *, cost_saved: Decimal, hit) -> UsageEntry:
    entry = entry_finish(ctx, outcome, cost_saved=cost_saved, hit=hit)
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
        spawn(_settle_eventually(admission, entry))
    ctx.timings["settle"] = time.perf_counter() - started
    metrics.observe_request(
        team=ctx.principal.team_name, tier=ctx.principal.tier,
        routing_saved=float(entry.routing_saved), model=entry.served_model, status=entry.status,
        cache_status=ctx.cache_status, cost=float(entry.cost),
        cost_saved=float(entry.cache_saved), prompt_tokens=entry.prompt_tokens,
        completion_tokens=entry.completion_tokens, duration_s=ctx.elapsed_ms() / 1000,
        upstream_s=(None if entry.upstream_latency_ms is None
                    else entry.upstream_latency_ms / 1000),
        ttft_s=None if entry.ttft_ms is None else entry.ttft_ms / 1000,
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

