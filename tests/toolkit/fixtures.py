"""Fixtures for reliability and security tests; conftest.py files import them by name.

    from tests.toolkit.fixtures import *  # noqa: F401,F403
"""

import uuid

import httpx
import pytest

from tests.toolkit.fakeprovider.fixtures import fake_provider, fake_provider_session  # noqa: F401

FAKE_PROVIDER_KEY_ENV = "RELIAB_FAKE_PROVIDER_KEY"
FAKE_PROVIDER_KEY = "sk-fake-provider-key-for-reliability-tests"


@pytest.fixture
def fast_resilience(settings):
    """Retries without real back-off waits and a fresh per-process cooldown state."""
    from routing import resilience

    settings.ROUTING_BACKOFF_BASE_SECONDS = 0.01
    settings.ROUTING_BACKOFF_MAX_SECONDS = 0.05
    settings.ROUTING_REDIS_URL = ""
    settings.REDIS_URL = ""
    resilience.reset_local_state()
    yield
    resilience.reset_local_state()


@pytest.fixture
def no_semantic_cache(settings):
    """Fault tests count upstream calls: no answer may come from an earlier test's cache."""
    settings.ENABLE_SEMANTIC_CACHE = False


@pytest.fixture
def fault_profiles(db, fake_provider, fast_resilience, monkeypatch):  # noqa: F811
    """Two OpenAI-compatible profiles on the fake provider: `fault-primary` falls back to
    `fault-fallback`; plus `fault-alone` without fallbacks. Returned by name."""
    from routing.models import ModelProfile
    from routing.selectors import invalidate_snapshot

    monkeypatch.setenv(FAKE_PROVIDER_KEY_ENV, FAKE_PROVIDER_KEY)
    common = dict(provider="openai_compatible", base_url=fake_provider.base_url,
                  api_key_env=FAKE_PROVIDER_KEY_ENV,
                  tier="standard", input_price_per_token="0.000001",
                  output_price_per_token="0.000002", context_window=128000,
                  max_output_tokens=256)
    profiles = {
        "fault-fallback": ModelProfile.objects.create(
            name="fault-fallback", upstream_model="upstream-fallback", **common),
        "fault-primary": ModelProfile.objects.create(
            name="fault-primary", upstream_model="upstream-primary",
            fallbacks=["fault-fallback"], **common),
        "fault-alone": ModelProfile.objects.create(
            name="fault-alone", upstream_model="upstream-alone", **common),
    }
    invalidate_snapshot()
    yield profiles
    invalidate_snapshot()


@pytest.fixture
def gateway_http(live_gateway, api_key):
    """An httpx client on the live gateway, authenticated with `api_key`."""
    with httpx.Client(base_url=live_gateway.url, timeout=30,
                      headers={"Authorization": f"Bearer {api_key.key}"}) as client:
        yield client


def unique_prompt(text: str = "hello") -> list[dict]:
    """Return messages no earlier test sent (so no cache can answer them)."""
    return [{"role": "user", "content": f"{text} [{uuid.uuid4().hex[:12]}]"}]


@pytest.fixture
def team_budget(db, api_key):
    """A daily team budget of $100 on `api_key`'s team, so admissions hold real reservations."""
    from decimal import Decimal

    from budgets.services import budget_set

    return budget_set(scope="team", team=api_key.api_key.team, daily_limit=Decimal("100"))


def assert_books_straight() -> None:
    """Assert nothing is held and every counter equals what the ledger says (no drift)."""
    from budgets.models import BudgetCounter, BudgetReservation
    from budgets.services import budget_counters_reconcile

    assert list(BudgetReservation.objects.values_list("request_id", "amount")) == []
    assert [c for c in BudgetCounter.objects.all() if c.reserved != 0] == []
    assert budget_counters_reconcile(fix=False) == []


def scrape_metrics(gateway_url: str | None = None) -> str:
    """Return the Prometheus text the gateway exposes: GET /metrics when routed, else the
    in-process registry (the live gateway runs in this process)."""
    if gateway_url:
        try:
            response = httpx.get(f"{gateway_url}/metrics", timeout=10)
            if response.status_code == 200:
                return response.text
        except httpx.HTTPError:
            pass
    from prometheus_client import REGISTRY, generate_latest

    return generate_latest(REGISTRY).decode()


SHARED_REDIS_URL = "redis://127.0.0.1:6379/9"


def require_redis(url: str = SHARED_REDIS_URL) -> str:
    """Skip the calling test unless Redis answers at `url`; return the url."""
    try:
        import redis

        redis.Redis.from_url(url, socket_timeout=0.5).ping()
    except Exception:
        pytest.skip(f"no Redis at {url}")
    return url
