"""The embeddings money path through the live gateway: hostile usage billed at the bound, a
failed call's one ledger row, retries and same-model fallbacks, books straight after."""

import uuid
from decimal import Decimal

import httpx
import pytest

from budgets.models import BudgetReservation, UsageRecord
from tests.toolkit.fakeprovider import Behavior, fake_tokens
from tests.toolkit.fixtures import (  # noqa: F401
    assert_books_straight,
    fast_resilience,
    no_semantic_cache,
    team_budget,
)
from tests.toolkit.gateway_calls import caller_headers

pytestmark = pytest.mark.usefixtures("no_semantic_cache", "fast_resilience", "team_budget")
TEXT = "the quick brown fox jumps over the lazy dog"


def _embedding_profile(fake_profile, name, **fields):
    return fake_profile(name, mode="embedding", output_price_per_token="0", max_output_tokens=0,
                        context_window=8191, **fields)


def _embed(live_gateway, api_key, model, text=TEXT):
    request_id = uuid.uuid4().hex
    response = httpx.post(f"{live_gateway.api_base}/embeddings",
                          json={"model": model, "input": [text]},
                          headers=caller_headers(api_key, request_id), timeout=30)
    return response, request_id


@pytest.mark.parametrize("lie", ["huge", "under", "negative", "missing"])
def test_hostile_usage_is_billed_at_the_reserved_bound(live_gateway, api_key, fake_profile,
                                                       fake_provider, lie):
    _embedding_profile(fake_profile, "e-liar", upstream="text-embedding-fake")
    fake_provider.enqueue(Behavior(lie=lie))
    response, request_id = _embed(live_gateway, api_key, "e-liar")
    assert response.status_code == 200, response.text
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.prompt_tokens == record.estimated_prompt_tokens >= fake_tokens(TEXT)
    assert response.json()["usage"]["prompt_tokens"] == record.prompt_tokens
    assert_books_straight()


def test_upstream_failure_leaves_one_row_and_nothing_held(live_gateway, api_key, fake_profile,
                                                          fake_provider):
    _embedding_profile(fake_profile, "e-down", upstream="fake-error-503")
    response, request_id = _embed(live_gateway, api_key, "e-down")
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "api_error"
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.status == "upstream_error" and record.cost == 0
    assert record.endpoint == "embeddings"
    assert len(fake_provider.requests) == 3  # the first try and two retries
    assert_books_straight()


def test_fallback_only_to_the_same_upstream_model(live_gateway, api_key, fake_profile,
                                                  fake_provider):
    _embedding_profile(fake_profile, "e-backup", upstream="text-embedding-fake")
    _embedding_profile(fake_profile, "e-other", upstream="other-embedding-model")
    _embedding_profile(fake_profile, "e-primary", upstream="text-embedding-fake",
                       base_url=fake_provider.refused_url, fallbacks=["e-other", "e-backup"])
    response, request_id = _embed(live_gateway, api_key, "e-primary")
    assert response.status_code == 200, response.text
    assert response.json()["model"] == "e-backup"
    record = UsageRecord.objects.get(request_id=request_id)
    assert record.served_model == "e-backup" and record.routing_reason == "fallback"
    assert "e-other" not in record.attempted_models
    assert record.cost == Decimal("0.000001") * fake_tokens(TEXT)
    assert not BudgetReservation.objects.exists()
