"""The per-key throttle: DRF's sliding window, atomic on Redis, DRF's own code elsewhere."""

import uuid
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from llmops.api.throttling import ApiKeyRateThrottle
from tests.toolkit.fixtures import require_redis


def _request(prefix: str):
    return SimpleNamespace(auth=SimpleNamespace(prefix=prefix), META={})


@pytest.fixture
def redis_cache(settings):
    require_redis()
    settings.CACHES = {"default": {
        "BACKEND": "django_redis.cache.RedisCache", "LOCATION": "redis://127.0.0.1:6379/9",
        "KEY_PREFIX": f"throttle-test-{uuid.uuid4().hex[:8]}",
        "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
    }}


def _throttle(monkeypatch, rate: str) -> type[ApiKeyRateThrottle]:
    monkeypatch.setattr(ApiKeyRateThrottle, "rate", rate, raising=False)
    return ApiKeyRateThrottle


@pytest.mark.redis
def test_on_redis_concurrent_requests_never_exceed_the_limit(redis_cache, monkeypatch):
    cls = _throttle(monkeypatch, "5/min")
    request = _request("k1")
    with ThreadPoolExecutor(max_workers=8) as pool:
        verdicts = list(pool.map(lambda _: cls().allow_request(request, None), range(24)))
    assert verdicts.count(True) == 5
    refused = cls()
    assert not refused.allow_request(request, None)
    assert 55 <= refused.wait() <= 60  # the oldest of the 5 leaves the window within a minute
    assert cls().allow_request(_request("k2"), None)  # another key has its own window


@pytest.mark.redis
def test_on_redis_the_window_slides(redis_cache, monkeypatch):
    cls = _throttle(monkeypatch, "2/min")
    clock = [1000.0]
    monkeypatch.setattr(ApiKeyRateThrottle, "timer", lambda self: clock[0])
    request = _request("slide")
    assert cls().allow_request(request, None)
    clock[0] += 30
    assert cls().allow_request(request, None)
    assert not cls().allow_request(request, None)
    clock[0] += 31  # the first request left the window; the second has not
    assert cls().allow_request(request, None)
    assert not cls().allow_request(request, None)


def test_other_caches_run_drfs_own_window(settings, monkeypatch):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": uuid.uuid4().hex}}
    cls = _throttle(monkeypatch, "2/min")
    request = _request("local")
    assert [cls().allow_request(request, None) for _ in range(3)] == [True, True, False]
