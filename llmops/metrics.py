"""Prometheus metrics: the names and labels are a contract with monitoring/ (docs/architecture.md).

Label values are bounded (model, status, reason, similarity range, kind, scope) — never a user,
key or request id, which would create one series per caller.
"""

from prometheus_client import Counter, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
COST_BUCKETS = (0.00001, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5)

requests_total = Counter(
    "llm_requests_total", "Chat completion requests answered.", ["model", "status", "cached"]
)
cost_per_request = Histogram(
    "llm_cost_per_request_dollars", "Cost of one request in USD.", ["model"],
    buckets=COST_BUCKETS,
)
# Team is a tenant (created by an operator), so its value set is bounded; never a user or key.
cost_total = Counter("llm_cost_dollars_total", "Spend in USD.", ["model", "team", "tier"])
tokens_total = Counter("llm_tokens_total", "Tokens processed.", ["model", "direction"])
request_duration = Histogram(
    "llm_request_duration_seconds", "Gateway request duration.", ["model", "cached"],
    buckets=LATENCY_BUCKETS,
)
upstream_duration = Histogram(
    "llm_upstream_duration_seconds", "Provider call duration.", ["model"],
    buckets=LATENCY_BUCKETS,
)
time_to_first_token = Histogram(
    "llm_time_to_first_token_seconds", "Time to the first streamed token.", ["model"],
    buckets=LATENCY_BUCKETS,
)
model_selection_total = Counter(
    "llm_model_selection_total", "Routing decisions.", ["selected_model", "reason"]
)
# llm_budget_utilization_ratio is not a Gauge here: a beat task computes it into a shared
# snapshot that /metrics publishes (llmops/observability/budget_gauge.py), so every process and
# the worker agree on one value and nothing is computed per request.
cache_hits_total = Counter(
    "semantic_cache_hits_total", "Cache hits.", ["similarity_range"]
)
cache_misses_total = Counter("semantic_cache_misses_total", "Cache misses.")
cache_errors_total = Counter(
    "semantic_cache_errors_total", "Lookups bypassed because the cache store failed."
)
# Texts per forward pass of a process's micro-batching embedder: under load a miss costs about
# 6.9 ms of CPU alone and 4.6 per text in batches of 8 (docs/performance.md), so small batches
# at high traffic say the batching is not working.
embed_batch_size = Histogram(
    "semantic_cache_embed_batch_size", "Texts per embedding forward pass.",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
cost_saved_total = Counter(
    "llm_cost_saved_dollars_total", "USD saved by cache hits.", ["source"]
)
upstream_errors_total = Counter(
    "llm_upstream_errors_total", "Provider call failures.", ["model", "kind"]
)
# Usage a provider reported that could not be billed as is (negative, non-integer, absurd or
# missing): the request was charged the gateway's own count instead.
usage_rejected_total = Counter(
    "llm_provider_usage_rejected_total",
    "Provider usage reports replaced by the gateway's own count.", ["model", "reason"]
)
# reason: "budget" (402) or "rate_limit" (429); scope: the budget's scope (key, user, team, global)
# or the throttle's scope ("api_key"). Which key or team was refused is in the refusal log line.
refused_total = Counter(
    "llm_requests_refused_total", "Requests refused before any model was called.",
    ["reason", "scope"],
)
fallbacks_total = Counter(
    "llm_fallbacks_total", "Requests served by a fallback model.", ["from_model", "to_model"]
)
quality_score = Histogram(
    "llm_response_quality_score", "Response quality scores (0-10).", ["model", "task_type"],
    buckets=(1, 2, 3, 4, 5, 6, 7, 8, 9, 10),
)
hallucination_flags_total = Counter(
    "llm_hallucination_flags_total", "Answers the judge flagged for unsupported claims.",
    ["model", "task_type"],
)
feedback_total = Counter(
    "llm_feedback_total", "Quality verdicts received.", ["source", "verdict"]
)


def similarity_range(similarity: float | None) -> str:
    """Return the bounded label for a hit's similarity ("exact" for exact-path hits)."""
    if similarity is None:
        return "exact"
    for floor in (0.99, 0.97, 0.95, 0.9, 0.85):
        if similarity >= floor:
            return f">={floor}"
    return "<0.85"


def observe_request(
    *, model: str, status: str, cache_status: str, cost: float, cost_saved: float,
    prompt_tokens: int, completion_tokens: int, duration_s: float,
    upstream_s: float | None = None, ttft_s: float | None = None,
    similarity: float | None = None, routing_saved: float = 0.0,
    team: str | None = None, tier: str | None = None,
) -> None:
    """Record one finished request (called once per ledger row).

    `routing_saved` is what routing saved against the requested (or reference) model, in USD;
    `team` and `tier` label the spend so it can be broken down per tenant.
    """
    cached = "true" if cache_status.startswith("hit") else "false"
    model = model or "none"
    requests_total.labels(model=model, status=status, cached=cached).inc()
    request_duration.labels(model=model, cached=cached).observe(duration_s)
    if cached == "true":
        cache_hits_total.labels(similarity_range=similarity_range(similarity)).inc()
        cost_saved_total.labels(source="cache").inc(max(cost_saved, 0.0))
    elif cache_status == "miss":
        cache_misses_total.inc()
    elif cache_status == "error":
        cache_errors_total.inc()
    cost = max(cost, 0.0)  # counters only go up; a refund is the ledger's business
    if cost:
        cost_total.labels(model=model, team=team or "unknown", tier=tier or "unknown").inc(cost)
    if routing_saved > 0:
        cost_saved_total.labels(source="routing").inc(routing_saved)
    cost_per_request.labels(model=model).observe(cost)
    if prompt_tokens > 0:
        tokens_total.labels(model=model, direction="input").inc(prompt_tokens)
    if completion_tokens > 0:
        tokens_total.labels(model=model, direction="output").inc(completion_tokens)
    if upstream_s is not None:
        upstream_duration.labels(model=model).observe(upstream_s)
    if ttft_s is not None:
        time_to_first_token.labels(model=model).observe(ttft_s)


def observe_model_selection(*, model: str, reason: str) -> None:
    """Record one routing decision."""
    model_selection_total.labels(selected_model=model, reason=reason).inc()


def observe_upstream_error(*, model: str, kind: str) -> None:
    """Record one failed provider call (`kind`: timeout, connect, http_5xx, ...)."""
    upstream_errors_total.labels(model=model, kind=kind).inc()


def observe_refusal(*, reason: str, scope: str) -> None:
    """Record one request refused by a budget (`reason="budget"`) or a rate limit."""
    refused_total.labels(reason=reason, scope=scope).inc()


def observe_fallback(*, from_model: str, to_model: str) -> None:
    """Record a request answered by `to_model` after `from_model` failed."""
    fallbacks_total.labels(from_model=from_model, to_model=to_model).inc()


def observe_quality(
    *, model: str, task_type: str, score: float, source: str, verdict: str,
    hallucination: bool = False,
) -> None:
    """Record one quality verdict: a user's feedback or the judge's score (0-10)."""
    model = model or "none"
    quality_score.labels(model=model, task_type=task_type).observe(score)
    feedback_total.labels(source=source, verdict=verdict).inc()
    if hallucination:
        hallucination_flags_total.labels(model=model, task_type=task_type).inc()


def observe_usage_rejected(*, model: str, reason: str) -> None:
    """Record a provider usage report the gateway replaced with its own count."""
    usage_rejected_total.labels(model=model or "none", reason=reason).inc()
