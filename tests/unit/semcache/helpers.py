"""Helpers shared by the semantic cache tests."""

import uuid

import numpy as np

from llmops.gateway.context import CacheControl, RequestContext
from llmops.principal import Principal
from semcache.gateway import cache_lookup, wait_for_pending_writes


def make_ctx(text: str | None = None, *, team_id: int = 1, messages: list | None = None,
             model: str = "auto", params: dict | None = None, metadata: dict | None = None,
             headers: dict | None = None, no_cache: bool = False,
             no_store: bool = False) -> RequestContext:
    """Return a request context for a chat request."""
    messages = messages or [{"role": "user", "content": text}]
    return RequestContext(
        request_id=uuid.uuid4().hex,
        principal=Principal(api_key_id=1, key_prefix="sk-test", user_id=1, team_id=team_id,
                            team_name=f"team-{team_id}", tier="standard"),
        body={"model": model, "messages": messages}, messages=messages, requested_model=model,
        params=dict(params or {}), metadata=dict(metadata or {}), headers=dict(headers or {}),
        cache_control=CacheControl(no_cache=no_cache, no_store=no_store),
    )


def unit(vector) -> np.ndarray:
    vector = np.asarray(vector, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def random_unit(rng: np.random.Generator, n: int = 1, dim: int = 384) -> np.ndarray:
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


ANSWER = {"role": "assistant", "content": "Paris."}
TOOL_CALL = {"role": "assistant", "content": None, "tool_calls": [
    {"id": "call_1", "type": "function",
     "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}
USAGE = {"prompt_tokens": 12, "completion_tokens": 3, "cached_tokens": 0}


async def stored(text: str) -> bool:
    """Return whether a later identical request is answered from the cache."""
    await wait_for_pending_writes()
    return await cache_lookup(make_ctx(text)) is not None


async def looked_up(text: str, **kwargs) -> RequestContext:
    """Return the context of a request for `text` after its cache lookup."""
    ctx = make_ctx(text, **kwargs)
    await cache_lookup(ctx)
    return ctx
