"""Routing savings per request, measured against the priciest enabled profile."""

from decimal import Decimal

import pytest

from llmops.observability.savings import routing_saved_usd

pytestmark = pytest.mark.django_db(transaction=True)


async def test_auto_requests_save_the_difference_to_the_baseline(simulated_profiles):
    # simulated-premium: 0.0000025 in, 0.00001 out -> 1000 + 1000 tokens cost 0.0125.
    saved = await routing_saved_usd(requested_model="auto", prompt_tokens=1000,
                                    completion_tokens=1000, cost=Decimal("0.002"))
    assert saved == pytest.approx(0.0105)


async def test_explicit_models_and_empty_calls_save_nothing(simulated_profiles):
    assert await routing_saved_usd(requested_model="simulated-standard", prompt_tokens=10,
                                   completion_tokens=10, cost=Decimal(0)) == 0
    assert await routing_saved_usd(requested_model="auto", prompt_tokens=0,
                                   completion_tokens=0, cost=Decimal(0)) == 0
