"""Retry policy and per-process cooldown; Redis down degrades without raising."""

import pytest

from llmops.background import spawn
from routing import resilience
from routing.models import ModelProfile


@pytest.fixture(autouse=True)
def clean(settings):
    settings.ROUTING_REDIS_URL = ""
    settings.REDIS_URL = ""
    settings.ROUTING_COOLDOWN_FAILURES = 3
    settings.ROUTING_COOLDOWN_SECONDS = 30
    settings.ROUTING_FAILURE_WINDOW_SECONDS = 60
    resilience.reset_local_state()
    yield
    resilience.reset_local_state()


PROFILE = ModelProfile(name="flaky")


class TestBackoff:
    def test_grows_exponentially_within_jitter(self, settings):
        settings.ROUTING_BACKOFF_BASE_SECONDS = 0.5
        settings.ROUTING_BACKOFF_MAX_SECONDS = 8
        for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0)):
            delays = [resilience.backoff_delay(attempt, None) for _ in range(50)]
            assert all(ceiling / 2 <= d <= ceiling for d in delays)
            assert len(set(delays)) > 1  # jitter

    def test_capped(self, settings):
        settings.ROUTING_BACKOFF_MAX_SECONDS = 3
        assert resilience.backoff_delay(20, None) <= 3

    def test_honours_retry_after_up_to_the_cap(self, settings):
        settings.ROUTING_BACKOFF_MAX_SECONDS = 8
        assert resilience.backoff_delay(1, 2.5) >= 2.5
        assert resilience.backoff_delay(1, 60) == 8

    def test_never_retry_after_first_streamed_byte(self, settings):
        settings.ROUTING_MAX_RETRIES = 2
        assert resilience.should_retry(attempt=1, retryable=True, streamed=False)
        assert not resilience.should_retry(attempt=1, retryable=True, streamed=True)
        assert not resilience.should_retry(attempt=3, retryable=True, streamed=False)
        assert not resilience.should_retry(attempt=1, retryable=False, streamed=False)


class TestLocalCooldown:
    async def test_opens_after_repeated_failures(self):
        for _ in range(2):
            await resilience.record_failure(PROFILE, kind="server_error", retry_after=None)
        assert not await resilience.cooldown_active(PROFILE)
        await resilience.record_failure(PROFILE, kind="server_error", retry_after=None)
        assert await resilience.cooldown_active(PROFILE)
        assert await resilience.cooldown_active("flaky")

    async def test_success_resets_the_count(self):
        for _ in range(2):
            await resilience.record_failure(PROFILE, kind="timeout", retry_after=None)
        await resilience.record_success(PROFILE, latency_ms=100, ttft_ms=None)
        await resilience.record_failure(PROFILE, kind="timeout", retry_after=None)
        assert not await resilience.cooldown_active(PROFILE)

    async def test_a_success_recorded_off_the_path_resets_it_too(self):
        for _ in range(2):
            await resilience.record_failure(PROFILE, kind="timeout", retry_after=None)
        await spawn(resilience.record_success(PROFILE, latency_ms=100, ttft_ms=None))
        await resilience.record_failure(PROFILE, kind="timeout", retry_after=None)
        assert not await resilience.cooldown_active(PROFILE)

    async def test_retry_after_opens_at_once(self):
        await resilience.record_failure(PROFILE, kind="rate_limited", retry_after=5)
        assert await resilience.cooldown_active(PROFILE)

    async def test_client_errors_do_not_count(self):
        for _ in range(5):
            await resilience.record_failure(PROFILE, kind="bad_request", retry_after=None)
        assert not await resilience.cooldown_active(PROFILE)

    async def test_expires(self, settings, monkeypatch):
        settings.ROUTING_COOLDOWN_SECONDS = 10
        clock = [1000.0]
        monkeypatch.setattr(resilience.time, "monotonic", lambda: clock[0])
        for _ in range(3):
            await resilience.record_failure(PROFILE, kind="server_error", retry_after=None)
        assert await resilience.cooldown_active(PROFILE)
        clock[0] += 11
        assert not await resilience.cooldown_active(PROFILE)


class TestRedisDown:
    async def test_degrades_to_per_process_without_raising(self, settings):
        # Nothing listens on port 1: every Redis call fails fast.
        settings.ROUTING_REDIS_URL = "redis://127.0.0.1:1/4"
        resilience.reset_local_state()
        assert not await resilience.cooldown_active(PROFILE)
        for _ in range(3):
            await resilience.record_failure(PROFILE, kind="server_error", retry_after=None)
        await resilience.record_success(ModelProfile(name="other"), latency_ms=5, ttft_ms=None)
        assert await resilience.cooldown_active(PROFILE)
