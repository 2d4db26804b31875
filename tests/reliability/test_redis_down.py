"""Redis stopped and restarted during traffic (a private redis-server, never the shared one).

Expected: every request is answered (the cache bypassed and counted), cooldowns keep working per
process, and the cache serves hits again once Redis is back.
"""

import threading
import time
import uuid

import httpx
import pytest

from budgets.models import UsageRecord
from tests.toolkit.assertions import metric_value
from tests.toolkit.fakeprovider import Behavior
from tests.toolkit.fixtures import assert_books_straight, scrape_metrics
from tests.toolkit.redis_server import PrivateRedis, redis_server_available

pytestmark = pytest.mark.redis


@pytest.fixture
def private_redis(settings, fast_resilience):
    if not redis_server_available():
        pytest.skip("redis-server is not installed")
    with PrivateRedis() as server:
        settings.ENABLE_SEMANTIC_CACHE = True
        settings.SEMCACHE_REDIS_URL = server.url
        settings.SEMCACHE_KEY_PREFIX = f"reliab-{uuid.uuid4().hex[:6]}"
        settings.SEMCACHE_REDIS_RETRY_SECONDS = 0.3
        settings.ROUTING_REDIS_URL = server.url
        from semcache.gateway import breaker

        breaker.reset()
        yield server
        breaker.reset()


def _ask(client: httpx.Client, content: str, model: str = "simulated-efficient") -> httpx.Response:
    return client.post("/v1/chat/completions", json={
        "model": model, "messages": [{"role": "user", "content": content}]})


def _until_hit(client: httpx.Client, content: str) -> httpx.Response:
    for _ in range(50):
        response = _ask(client, content)
        assert response.status_code == 200, response.text
        if response.headers["x-llmops-cache"].startswith("hit"):
            return response
        time.sleep(0.1)
    pytest.fail(f"the cache never answered {content!r}: {response.headers['x-llmops-cache']}")


def test_requests_flow_while_redis_is_down_and_the_cache_recovers(gateway_http, simulated_profiles,
                                                                   private_redis):
    cached = f"What is the boiling point of water? {uuid.uuid4().hex[:6]}"
    _until_hit(gateway_http, cached)
    errors_before = metric_value(scrape_metrics(), "semantic_cache_errors_total")

    # Traffic runs in the background while Redis dies and comes back.
    statuses: list[int] = []
    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=str(gateway_http.base_url), headers=gateway_http.headers,
                          timeout=30) as client:
            for i in range(300):
                if stop.is_set():
                    return
                statuses.append(_ask(client, f"background question {i} {uuid.uuid4().hex[:4]}")
                                .status_code)

    def wait_for(count: int) -> None:
        for _ in range(600):
            if len(statuses) >= count:
                return
            time.sleep(0.05)
        pytest.fail(f"traffic stalled at {len(statuses)} requests")

    worker = threading.Thread(target=traffic)
    worker.start()
    try:
        wait_for(3)
        private_redis.kill()
        during = len(statuses)
        response = _ask(gateway_http, cached)  # was a hit; now the cache is unreachable
        assert response.status_code == 200, response.text
        assert response.headers["x-llmops-cache"] in ("error", "bypass", "miss")
        record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
        assert record.cache_status in ("error", "bypass", "miss") and record.cost > 0
        wait_for(during + 5)
        private_redis.start()  # same port, empty (no persistence)
        restarted = len(statuses)
        wait_for(restarted + 3)
    finally:
        stop.set()
        worker.join(timeout=60)
    assert statuses and set(statuses) == {200}, statuses
    assert metric_value(scrape_metrics(), "semantic_cache_errors_total") > errors_before

    # Back: the entry was lost with the old Redis, so it is stored again and then served.
    _until_hit(gateway_http, cached)
    assert UsageRecord.objects.count() >= len(statuses) + 2
    assert_books_straight()


def test_cooldowns_degrade_to_per_process_without_redis(gateway_http, fault_profiles,
                                                        fake_provider, private_redis, settings):
    settings.ENABLE_SEMANTIC_CACHE = False
    settings.ROUTING_MAX_RETRIES = 0
    settings.ROUTING_COOLDOWN_FAILURES = 2
    private_redis.kill()
    # Two failures of the primary (each served by the fallback) open its cooldown...
    for _ in range(2):
        fake_provider.enqueue(Behavior(status=500), Behavior())
        response = _ask(gateway_http, f"cooldown {uuid.uuid4().hex[:6]}", model="fault-primary")
        assert response.status_code == 200
        assert response.headers["x-llmops-model"] == "fault-fallback"
    fake_provider.reset()
    # ...so the next request skips the primary altogether, Redis or not.
    response = _ask(gateway_http, f"cooldown {uuid.uuid4().hex[:6]}", model="fault-primary")
    assert response.status_code == 200
    assert [r.body["model"] for r in fake_provider.requests] == ["upstream-fallback"]
