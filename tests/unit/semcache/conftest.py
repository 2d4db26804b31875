"""Fixtures for the semantic cache's unit tests: an in-process store, request contexts."""

import pytest

from tests.unit.semcache.helpers import make_ctx  # noqa: F401


@pytest.fixture
def memory_engine(settings):
    """This process's cache engine on a fresh in-process store."""
    from semcache import gateway
    from semcache.services import get_engine

    settings.SEMCACHE_REDIS_URL = ""
    get_engine.cache_clear()
    gateway.breaker.reset()
    gateway.clear_policy_cache()
    engine = get_engine()
    yield engine
    engine.store.flush()
    get_engine.cache_clear()
