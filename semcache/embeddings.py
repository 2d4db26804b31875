"""The exact cache of embeddings: one vector per (tenant, model, dimensions, input).

An embedding model is deterministic, so a repeated input is always a correct hit; nothing is
semantic here. Each input of a request is its own entry, so a batch that repeats some inputs
sends only the others upstream. Vectors are stored as little-endian float32 bytes in the cache's
store (`put_values`: Redis when configured, else in process) with the team's cache TTL, so the
client's `encoding_format` never splits the cache.

The rules are the semantic cache's: ENABLE_SEMANTIC_CACHE switches it, the team's policy can
turn it off or share it across teams, `Cache-Control: no-cache` skips the lookup and `no-store`
the store, and a store that fails is bypassed (never raises into the pipeline).
"""

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings

from llmops.background import Background
from semcache.gateway import breaker, cache_enabled
from semcache.namespaces import SHARED_TENANT
from semcache.policy import team_policy
from semcache.services import get_engine
from semcache.store import StoreUnavailable

logger = logging.getLogger(__name__)

_VERSION = 1
_writes = Background()


def embedding_key(*, tenant: str, model: str, dimensions: int | None, item: str | list) -> str:
    """Return the store key of one input's vector: a string and the same text as token ids are
    different inputs (a model may not tokenize the text as the client did)."""
    payload = {"v": _VERSION, "t": tenant, "m": model, "d": dimensions,
               "s" if isinstance(item, str) else "ids": item}
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return "emb:" + hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()[:48]


@dataclass
class EmbeddingLookup:
    """What the cache knows of one request's inputs: its status (a ledger `cache_status`), each
    input's cached vector (None: a miss) and how to store the misses' vectors."""

    status: str
    vectors: list[np.ndarray | None]
    keys: list[str] = field(default_factory=list)  # per input; empty when not looked up
    ttl_seconds: float = 0.0
    storable: bool = False

    @property
    def misses(self) -> list[int]:
        """Return the positions of the inputs the cache does not hold."""
        return [i for i, vector in enumerate(self.vectors) if vector is None]


def _decode(value: bytes | None) -> np.ndarray | None:
    if not value or len(value) % 4:
        return None
    return np.frombuffer(value, dtype="<f4").astype(np.float32)


async def embeddings_lookup(*, team_id: int | None, model: str, dimensions: int | None,
                            inputs: list, cache_control: Any) -> EmbeddingLookup:
    """Return the cached vectors of `inputs` for this team and model. Never raises: a failing
    store is a miss with status "error"."""
    empty = [None] * len(inputs)
    if not cache_enabled():
        return EmbeddingLookup("disabled", empty)
    try:
        policy = await team_policy(team_id)
        if not policy.enabled:
            return EmbeddingLookup("disabled", empty)
        tenant = SHARED_TENANT if policy.shared else f"team:{team_id}"
        keys = [embedding_key(tenant=tenant, model=model, dimensions=dimensions, item=item)
                for item in inputs]
        ttl_hours = policy.ttl_hours if policy.ttl_hours is not None else settings.CACHE_TTL_HOURS
        storable = not cache_control.no_store
        if cache_control.no_cache:
            return EmbeddingLookup("bypass", empty, keys, ttl_hours * 3600, storable)
        if breaker.is_open():
            return EmbeddingLookup("error", empty)
        values = await asyncio.to_thread(get_engine().store.get_values, keys)
        vectors = [_decode(v) for v in values]
        status = "hit_exact" if all(v is not None for v in vectors) else "miss"
        return EmbeddingLookup(status, vectors, keys, ttl_hours * 3600, storable)
    except StoreUnavailable:
        breaker.trip()
        logger.warning("semcache: store unavailable, embeddings cache bypassed")
    except Exception:  # noqa: BLE001 - a cache failure must never fail the request
        logger.exception("semcache: embeddings lookup failed, cache bypassed")
    return EmbeddingLookup("error", empty)


async def _put_behind(values: dict[str, bytes], ttl_seconds: float) -> None:
    try:
        await asyncio.to_thread(get_engine().store.put_values, values, ttl_seconds=ttl_seconds)
    except StoreUnavailable:
        breaker.trip()
        logger.warning("semcache: store unavailable, embeddings not cached")
    except Exception:  # noqa: BLE001 - off the request path; never surfaces
        logger.exception("semcache: storing embeddings failed")


def embeddings_store_behind(lookup: EmbeddingLookup, vectors: dict[int, np.ndarray]) -> None:
    """Store the vectors the provider made for the lookup's misses ({position: vector}), off
    the request path, unless the client said no-store or the cache did not look. Never raises."""
    if not lookup.storable or not lookup.keys or not vectors:
        return
    try:
        values = {lookup.keys[i]: np.asarray(v, dtype="<f4").tobytes()
                  for i, v in vectors.items()}
        _writes.spawn(_put_behind(values, lookup.ttl_seconds))
    except Exception:  # noqa: BLE001
        logger.exception("semcache: could not schedule storing embeddings")


async def wait_for_pending_embedding_writes(timeout: float = 10.0) -> None:
    """Wait until scheduled embedding stores finished (tests, graceful shutdown)."""
    await _writes.wait(timeout)
