"""Cooldown state is shared by separate gateway processes through Redis (DB 4)."""

import os
import subprocess
import sys
import uuid

import pytest
from django.conf import settings

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/4")

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url():
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    prefix = f"llmops-test:routing:{uuid.uuid4().hex[:8]}"
    yield REDIS_URL, prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def run_worker(redis_url: str, prefix: str, *args: str) -> str:
    env = {**os.environ, "ROUTING_REDIS_URL": redis_url, "ROUTING_REDIS_PREFIX": prefix,
           "ROUTING_COOLDOWN_FAILURES": "3", "ROUTING_COOLDOWN_SECONDS": "30",
           "DJANGO_SETTINGS_MODULE": "llmops.settings.test"}
    done = subprocess.run([sys.executable, "-m", "tests.integration.routing.cooldown_worker",
                           *args], cwd=settings.BASE_DIR, env=env, capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.strip().splitlines()[-1]


def test_failures_from_two_processes_open_one_shared_cooldown(redis_url):
    url, prefix = redis_url
    # Neither process alone reaches the threshold of 3; together they do.
    assert run_worker(url, prefix, "fail", "model-a", "2") == "recorded 2"
    assert run_worker(url, prefix, "check", "model-a") == "inactive"
    assert run_worker(url, prefix, "fail", "model-a", "1") == "recorded 1"
    assert run_worker(url, prefix, "check", "model-a") == "active"
    assert run_worker(url, prefix, "check", "model-b") == "inactive"


async def test_this_process_sees_the_other_process_cooldown(redis_url, settings):
    from routing import resilience

    url, prefix = redis_url
    settings.ROUTING_REDIS_URL = url
    settings.ROUTING_REDIS_PREFIX = prefix
    resilience.reset_local_state()
    try:
        assert not await resilience.cooldown_active("model-c")
        run_worker(url, prefix, "fail", "model-c", "3")
        assert await resilience.cooldown_active("model-c")  # nothing local: it came from Redis
    finally:
        resilience.reset_local_state()
