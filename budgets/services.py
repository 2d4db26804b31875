"""Budget admission and settlement: reserve before the call, charge the actual cost after it.

`request_admit` and `request_settle` are the two calls the gateway pipeline makes; every
admitted request ends in exactly one `request_settle`, which writes its one ledger row.
"""

from dataclasses import dataclass, field
from decimal import Decimal

from django.db import transaction

from budgets.models import UsageRecord
from llmops.gateway.context import Principal


@dataclass
class Admission:
    """A request let through admission, with what was reserved for it."""

    request_id: str
    principal: Principal
    reserved: Decimal = Decimal(0)
    reservation_ids: list[int] = field(default_factory=list)


@dataclass
class UsageEntry:
    """Everything the ledger records about one finished request."""

    request_id: str
    principal: Principal
    requested_model: str
    served_model: str = ""
    attempted_models: list[str] = field(default_factory=list)
    routing_reason: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated_prompt_tokens: int = 0
    estimated_cost: Decimal = Decimal(0)
    cost: Decimal = Decimal(0)
    cost_saved: Decimal = Decimal(0)
    cache_status: str = "miss"
    cache_similarity: float | None = None
    stream: bool = False
    latency_ms: int | None = None
    ttft_ms: int | None = None
    upstream_latency_ms: int | None = None
    status: str = "ok"
    error_kind: str = ""
    http_status: int = 200


def request_admit(*, principal: Principal, request_id: str, estimated_cost: Decimal) -> Admission:
    """Admit a request whose upper-bound cost is `estimated_cost`, reserving it on every budget
    that applies; raise `llmops.errors.BudgetExceeded` when one would be overspent."""
    return Admission(request_id=request_id, principal=principal, reserved=estimated_cost)


@transaction.atomic
def request_settle(*, admission: Admission | None, entry: UsageEntry) -> UsageRecord:
    """Release the admission's reservations, charge the actual cost and write the ledger row."""
    principal = entry.principal
    record = UsageRecord(
        request_id=entry.request_id,
        api_key_id=principal.api_key_id,
        user_id=principal.user_id,
        team_id=principal.team_id,
        requested_model=entry.requested_model,
        served_model=entry.served_model,
        attempted_models=entry.attempted_models,
        routing_reason=entry.routing_reason,
        prompt_tokens=entry.prompt_tokens,
        completion_tokens=entry.completion_tokens,
        cached_tokens=entry.cached_tokens,
        reasoning_tokens=entry.reasoning_tokens,
        estimated_prompt_tokens=entry.estimated_prompt_tokens,
        estimated_cost=entry.estimated_cost,
        cost=entry.cost,
        cost_saved=entry.cost_saved,
        cache_status=entry.cache_status,
        cache_similarity=entry.cache_similarity,
        stream=entry.stream,
        latency_ms=entry.latency_ms,
        ttft_ms=entry.ttft_ms,
        upstream_latency_ms=entry.upstream_latency_ms,
        status=entry.status,
        error_kind=entry.error_kind,
        http_status=entry.http_status,
    )
    record.save(force_insert=True)
    return record
