"""Admission: reserve the request's upper-bound cost, clamping its output to what the budget
covers, and leak nothing when the client leaves while it is in flight."""

import asyncio
import logging
from dataclasses import dataclass
from decimal import Decimal

from django.db import DatabaseError

from budgets.errors import BudgetExceeded
from budgets.services import Admission, request_admit
from llmops.background import spawn
from llmops.db import run_db
from llmops.errors import ServiceUnavailable
from llmops.gateway import holder, upstream
from llmops.gateway.context import RequestContext
from llmops.gateway.settlement import DISCONNECTED, Outcome, settle
from routing.models import ModelProfile
from routing.pricing import max_cost

logger = logging.getLogger("llmops.gateway")


@dataclass
class Prepared:
    """A request that passed cache, routing and admission, ready to call upstream."""

    ctx: RequestContext
    chain: list[ModelProfile]
    admission: Admission
    reason: str


# A request that named no max_tokens is answered with fewer output tokens rather than refused,
# down to this many: below it, an answer would be too short to be worth paying for.
MIN_CLAMPED_OUTPUT_TOKENS = 16


async def admit(ctx: RequestContext, chain: list[ModelProfile]) -> Admission:
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
            clamp = affordable_output_tokens(ctx, chain, exc)
            if clamp is None:
                raise
            ctx.output_clamp = clamp
    raise refusal


def affordable_output_tokens(ctx: RequestContext, chain: list[ModelProfile],
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
    task = spawn(_db(request_admit, principal=ctx.principal, request_id=ctx.request_id,
                     estimated_cost=ctx.estimated_cost, requested_model=ctx.requested_model,
                     holder=holder.holder_id()))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        spawn(_release_unused(ctx, task))
        raise


async def _release_unused(ctx: RequestContext, admitting: asyncio.Task) -> None:
    try:
        admission = await admitting
    except Exception:
        return  # refused or failed: nothing was reserved
    await release_unused(ctx, admission)


async def release_unused(ctx: RequestContext, admission: Admission) -> None:
    """Settle an admission whose request ended before any model was called (its client left):
    one ledger row, nothing charged, the reservation released."""
    outcome = Outcome.of(ctx, reason=ctx.route.reason if ctx.route else "")
    outcome.fail(*DISCONNECTED)
    await settle(ctx, admission, outcome)


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
