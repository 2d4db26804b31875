"""The exact embeddings cache: keys, and the stores' plain values (memory and Redis)."""

import os
import uuid

import numpy as np
import pytest

from semcache.embeddings import embedding_key
from semcache.store import MemoryStore, RedisStore


def test_keys_separate_tenant_model_dimensions_and_input_kind():
    base = dict(tenant="team:1", model="m", dimensions=None, item="hi")
    key = embedding_key(**base)
    assert key == embedding_key(**base)
    for change in ({"tenant": "team:2"}, {"model": "n"}, {"dimensions": 8}, {"item": [6151]},
                   {"item": "hi "}):
        assert embedding_key(**{**base, **change}) != key


def test_memory_values_expire_and_are_bounded():
    store = MemoryStore(max_values=2)
    vector = np.arange(3, dtype="<f4").tobytes()
    store.put_values({"a": vector, "b": vector}, ttl_seconds=60)
    assert store.get_values(["b", "a", "c"]) == [vector, vector, None]
    store.put_values({"c": vector}, ttl_seconds=60)  # "b" was read before "a": "b" goes
    assert store.get_values(["a", "b", "c"]) == [vector, None, vector]
    store.put_values({"d": vector}, ttl_seconds=-1)  # pushes "a" out, and is expired at once
    assert store.get_values(["d", "a"]) == [None, None]
    assert store.clear_values() == 1 and store.get_values(["c"]) == [None]


def test_redis_values():
    url = os.environ.get("EMBEDDINGS_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")
    store = RedisStore(url=url, prefix=f"emb-test-{uuid.uuid4().hex[:8]}")
    try:
        store.ping()
    except Exception:
        pytest.skip(f"no Redis at {url}")
    try:
        store.put_values({"a": b"\x00\x00\x80?"}, ttl_seconds=60)
        assert store.get_values(["a", "b"]) == [b"\x00\x00\x80?", None]
        assert store.r.ttl(store._k("v", "a")) > 0
        assert store.clear_values() == 1 and store.get_values(["a"]) == [None]
    finally:
        store.flush()
