"""OpenAI-shaped response bodies: ChatCompletion, chunks, and usage with llmops' additions."""

import time

from llmops.gateway.context import RequestContext
from llmops.providers.base import Usage


def usage_body(ctx: RequestContext, usage: Usage, entry) -> dict:
    """Return OpenAI's usage object plus `cost` (USD) and the `llmops` explanation."""
    route = ctx.route
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
        "completion_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "cost": float(entry.cost),
        "llmops": {
            "request_id": ctx.request_id,
            "cache": {"status": ctx.cache_status, "similarity": ctx.cache_similarity},
            "requested_model": ctx.requested_model,
            "model": entry.served_model,
            "routing_reason": entry.routing_reason or (route.reason if route else ""),
            "attempted_models": entry.attempted_models,
            "estimated_cost": float(entry.estimated_cost),
            "cost": float(entry.cost),
            "cost_saved": float(entry.cost_saved),
            # Set when the request named no max_tokens and the remaining budget covered only
            # this many output tokens: sent upstream as max_tokens instead of refusing.
            "max_tokens_clamped": ctx.output_clamp,
        },
    }


def completion_body(ctx: RequestContext, *, model: str, message: dict, finish_reason: str,
                    usage: Usage, entry) -> dict:
    """Return a `chat.completion` object."""
    message = {"role": "assistant", "content": message.get("content"), **message,
               "refusal": message.get("refusal")}
    return {
        "id": f"chatcmpl-{ctx.request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": message, "finish_reason": finish_reason, "logprobs": None}
        ],
        "usage": usage_body(ctx, usage, entry),
        "system_fingerprint": None,
    }


def chunk_body(ctx: RequestContext, *, model: str, delta: dict | None = None,
               finish_reason: str | None = None, usage: dict | None = None) -> dict:
    """Return a `chat.completion.chunk` (the usage-only final chunk has no choices)."""
    body: dict = {
        "id": f"chatcmpl-{ctx.request_id}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": None,
    }
    if usage is not None:
        body["choices"] = []
        body["usage"] = usage
    else:
        body["choices"] = [{"index": 0, "delta": delta or {}, "finish_reason": finish_reason,
                            "logprobs": None}]
        if ctx.include_usage:
            body["usage"] = None
    return body
