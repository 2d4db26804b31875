"""One structured line per request (logger "llmops.request"), written from its ledger row."""

import logging

from budgets.models import UsageRecord

logger = logging.getLogger("llmops.request")


def _key_prefix(record: UsageRecord, key_prefix: str | None) -> str | None:
    if key_prefix is not None:
        return key_prefix
    # Only when the key is already loaded: this runs on the async request path, where a lazy
    # foreign-key query would be both slow and forbidden.
    if UsageRecord.api_key.is_cached(record) and record.api_key is not None:
        return record.api_key.prefix
    return None


def request_log_fields(record: UsageRecord, *, key_prefix: str | None = None,
                       team: str | None = None) -> dict:
    """Return the fields of the request's log line. Never the API key itself: its prefix only."""
    return {
        "request_id": record.request_id,
        "key_prefix": _key_prefix(record, key_prefix),
        "api_key_id": record.api_key_id,
        "user_id": record.user_id,
        "team_id": record.team_id,
        "team": team,
        "requested_model": record.requested_model,
        "model": record.served_model or None,
        "attempted_models": record.attempted_models,
        "routing_reason": record.routing_reason or None,
        "cache_status": record.cache_status,
        "cache_similarity": record.cache_similarity,
        "status": record.status,
        "error_kind": record.error_kind or None,
        "http_status": record.http_status,
        "stream": record.stream,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        # Decimal → str keeps all 12 places; JSON floats would round sub-cent costs.
        "cost_usd": str(record.cost),
        "cost_saved_usd": str(record.cost_saved),
        "latency_ms": record.latency_ms,
        "ttft_ms": record.ttft_ms,
        "upstream_latency_ms": record.upstream_latency_ms,
    }


def log_request(record: UsageRecord, *, principal=None) -> None:
    """Write the request's JSON line (pass the pipeline's `Principal` to name key and team)."""
    fields = request_log_fields(
        record,
        key_prefix=getattr(principal, "key_prefix", None),
        team=getattr(principal, "team_name", None),
    )
    level = logging.INFO if record.status == "ok" else logging.WARNING
    logger.log(level, "request", extra=fields)
