"""Fallback through a real provider server on 127.0.0.1: the first model fails, the second
answers, and one ledger row names both."""

import openai
import pytest

from budgets.models import UsageRecord
from tests.toolkit.fixtures import fast_resilience  # noqa: F401

pytestmark = pytest.mark.usefixtures("fast_resilience")


@pytest.fixture(autouse=True)
def _one_quick_retry(settings):
    settings.ROUTING_MAX_RETRIES = 1
    settings.PROVIDER_READ_TIMEOUT_SECONDS = 0.5


@pytest.fixture
def client(live_gateway, api_key):
    return openai.OpenAI(base_url=live_gateway.api_base, api_key=api_key.key, max_retries=0,
                         timeout=30)


@pytest.mark.parametrize("failing", ["fake-error-500", "fake-error-429-ra-1", "fake-slow-3000"],
                         ids=["500", "429-retry-after", "timeout"])
def test_first_model_fails_second_answers_one_row_names_both(client, fake_profile,
                                                             fake_provider, failing):
    fake_profile("second", upstream="fake-ok")
    fake_profile("first", upstream=failing, fallbacks=["second"])
    completion = client.chat.completions.create(
        model="first", messages=[{"role": "user", "content": "hello"}])
    assert completion.model == "second"
    record = UsageRecord.objects.get()
    assert record.served_model == "second"
    assert record.attempted_models[0] == "first" and record.attempted_models[-1] == "second"
    assert record.routing_reason == "fallback"
    assert record.status == "ok"
    models_called = [r.body["model"] for r in fake_provider.requests]
    assert models_called[0] == failing and models_called[-1] == "fake-ok"
    # The retry budget is one retry per model: never more calls than that.
    assert models_called.count(failing) <= 2


def test_auto_route_falls_back_along_its_chain(client, fake_profile, settings):
    settings.ROUTING_TIER_MIN_QUALITY = {"standard": 0.5}
    fake_profile("cheap-broken", upstream="fake-error-500", quality_score=0.7,
                 input_price_per_token="0.0000001", output_price_per_token="0.0000001")
    fake_profile("dear-ok", upstream="fake-ok", quality_score=0.9)
    completion = client.chat.completions.create(
        model="auto", messages=[{"role": "user", "content": "hello"}])
    assert completion.model == "dear-ok"
    record = UsageRecord.objects.get()
    assert record.requested_model == "auto"
    assert record.attempted_models[0] == "cheap-broken"
    assert record.served_model == "dear-ok"
