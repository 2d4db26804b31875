"""Fixtures for the semantic cache on a real Redis (database 3, a key prefix of its own)."""

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.toolkit.cache_engine import fresh_cache_engine


def semcache_redis_url() -> str:
    """Return the Redis URL of these tests: TEST_REDIS_URL's server (or localhost), database 3."""
    base = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL") or \
        "redis://127.0.0.1:6379/0"
    parts = urlsplit(base)
    return urlunsplit((parts.scheme, parts.netloc, "/3", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = semcache_redis_url()
    try:
        redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()
    except redis.exceptions.RedisError:
        pytest.skip(f"no Redis at {url}")
    return url


@pytest.fixture
def redis_prefix() -> str:
    return f"semcache-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def redis_engine(settings, redis_url, redis_prefix):
    """This process's cache engine on Redis database 3 under a fresh key prefix."""
    with fresh_cache_engine(settings, redis_url=redis_url, prefix=redis_prefix) as engine:
        yield engine
