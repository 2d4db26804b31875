"""A fresh semantic-cache engine for one test: on an in-process store, or on Redis."""

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def fresh_cache_engine(settings, *, redis_url: str = "", prefix: str | None = None) -> Iterator:
    """Yield this process's cache engine rebuilt on `redis_url` (an in-process store when empty)
    under `prefix`, its breaker and team policies reset; forget it and empty its store after.

    The store is emptied through a new connection: a test may have pointed the engine's own at
    a dead server.
    """
    from semcache import gateway
    from semcache.services import get_engine

    settings.SEMCACHE_REDIS_URL = redis_url
    if prefix is not None:
        settings.SEMCACHE_KEY_PREFIX = prefix
    get_engine.cache_clear()
    gateway.breaker.reset()
    gateway.clear_policy_cache()
    engine = get_engine()
    try:
        yield engine
    finally:
        gateway.breaker.reset()
        get_engine.cache_clear()
        if redis_url:
            from semcache.store import RedisStore

            RedisStore(url=redis_url, prefix=settings.SEMCACHE_KEY_PREFIX).flush()
        else:
            engine.store.flush()
