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


# --- refusals are visible ------------------------------------------------------------------------


@pytest.fixture
def tally(monkeypatch, settings):
    """A fresh per-process tally of rate-limit refusals, written at once unless a test says."""
    from llmops.observability import refusals

    settings.RATE_LIMIT_REFUSALS_FLUSH_SECONDS = 0
    monkeypatch.setattr(refusals, "_tally", refusals._Tally())
    return refusals


def _key_request(issued, request_id: str = "rq-1"):
    from llmops.selectors import api_key_from_bearer

    api_key = api_key_from_bearer(raw_key=issued.key)  # as authentication loads it
    return SimpleNamespace(auth=api_key, META={}, _request=SimpleNamespace(request_id=request_id))


def _locmem(settings):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                                   "LOCATION": uuid.uuid4().hex}}


def _refused_metric() -> float:
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value("llm_requests_refused_total",
                                     {"reason": "rate_limit", "scope": "api_key"}) or 0.0


def _refused_today(api_key) -> int:
    from django.utils import timezone

    from llmops.models import RateLimitRefusal

    row = RateLimitRefusal.objects.filter(api_key=api_key, day=timezone.now().date()).first()
    return row.refused if row else 0


@pytest.mark.django_db
def test_a_429_writes_one_line_counts_the_metric_and_the_keys_day(
    settings, monkeypatch, tally, api_key, caplog
):
    import json
    import logging

    from llmops.logging import JsonFormatter

    _locmem(settings)
    cls = _throttle(monkeypatch, "2/min")
    before = _refused_metric()
    with caplog.at_level(logging.INFO, logger="llmops.refusal"):
        verdicts = [cls().allow_request(_key_request(api_key, f"rq-{i}"), None)
                    for i in range(3)]
    assert verdicts == [True, True, False]

    (line,) = [json.loads(JsonFormatter().format(r)) for r in caplog.records
               if r.name == "llmops.refusal"]
    row = api_key.api_key
    assert line["request_id"] == "rq-2" and line["reason"] == "rate_limit"
    assert line["scope"] == "api_key" and line["period"] == "60s" and line["unit"] == "requests"
    assert (line["limit"], line["remaining"], line["requested"]) == ("2", "0", "1")
    assert 0 < line["retry_after"] <= 60
    assert line["key_prefix"] == row.prefix and line["team"] == "team-a"
    assert line["user_id"] == row.user_id and line["team_id"] == row.team_id
    assert line["requested_model"] is None  # refused before the body is parsed
    assert api_key.key not in json.dumps(line)

    assert _refused_metric() == before + 1
    assert _refused_today(row) == 1


@pytest.mark.django_db
def test_refusals_are_written_in_batches_not_one_write_each(
    settings, monkeypatch, tally, api_key, make_api_key, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    _locmem(settings)
    cls = _throttle(monkeypatch, "1/min")
    other = make_api_key(team="team-b", user="bob")
    assert cls().allow_request(_key_request(api_key), None)
    assert cls().allow_request(_key_request(other), None)
    assert not cls().allow_request(_key_request(api_key), None)  # the first is written at once
    assert _refused_today(api_key.api_key) == 1

    settings.RATE_LIMIT_REFUSALS_FLUSH_SECONDS = 3600
    requests = [_key_request(api_key), _key_request(other), _key_request(other)]
    with CaptureQueriesContext(connection) as ctx:
        assert not any(cls().allow_request(request, None) for request in requests)
    assert ctx.captured_queries == []  # counted in memory: a flood costs no write per 429
    assert _refused_today(api_key.api_key) == 1

    with django_assert_num_queries(3):  # savepoint, one upsert for both keys, release
        assert tally.rate_refusals_flush() == 2
    assert (_refused_today(api_key.api_key), _refused_today(other.api_key)) == (2, 2)


@pytest.mark.django_db(transaction=True)
def test_counts_of_a_deleted_key_are_dropped_and_the_rest_written(tally, make_api_key):
    kept, gone = make_api_key(team="t1", user="u1"), make_api_key(team="t2", user="u2")
    tally._tally.add(kept.api_key.pk, tally.timezone.now().date())
    tally._tally.add(gone.api_key.pk, tally.timezone.now().date())
    gone.api_key.delete()
    assert tally.rate_refusals_flush() == 1
    assert _refused_today(kept.api_key) == 1


@pytest.mark.django_db
def test_the_next_request_writes_what_is_pending(settings, monkeypatch, tally, api_key,
                                                 make_api_key):
    _locmem(settings)
    cls = _throttle(monkeypatch, "1/min")
    other = make_api_key(team="team-b", user="bob")
    settings.RATE_LIMIT_REFUSALS_FLUSH_SECONDS = 3600
    assert cls().allow_request(_key_request(api_key), None)
    for _ in range(2):
        assert not cls().allow_request(_key_request(api_key), None)
    assert _refused_today(api_key.api_key) == 1  # the second waits for the interval
    settings.RATE_LIMIT_REFUSALS_FLUSH_SECONDS = 0  # as if the interval had passed
    assert cls().allow_request(_key_request(other), None)  # any key's request writes it
    assert _refused_today(api_key.api_key) == 2
