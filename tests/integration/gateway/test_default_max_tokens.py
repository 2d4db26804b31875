"""A default max_tokens (per team, else LLMOPS_DEFAULT_MAX_TOKENS) for requests that set none.

Without one, admission must reserve a model's whole max output for a one-line question; with
one, that limit is what goes upstream, so the smaller reservation is still a true bound.
"""

from decimal import Decimal

import openai
import pytest

from budgets.models import UsageRecord
from budgets.services import budget_set
from routing.pricing import max_cost
from routing.tokens import estimate_prompt_tokens

MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture
def client(live_gateway, api_key):
    return openai.OpenAI(base_url=live_gateway.api_base, api_key=api_key.key, max_retries=0,
                         timeout=30)


@pytest.fixture
def team(api_key):
    return api_key.api_key.team


@pytest.fixture
def profile(fake_profile):
    # Prices such that the model's full max output (1,000 tokens) reserves $0.002.
    profile = fake_profile("m-default-limit", input_price_per_token="0.000001",
                           output_price_per_token="0.000002", max_output_tokens=1000)
    profile.refresh_from_db()  # prices as Decimals
    return profile


def _call(client, **extra):
    raw = client.chat.completions.with_raw_response.create(model="m-default-limit",
                                                           messages=MESSAGES, **extra)
    return UsageRecord.objects.get(request_id=raw.headers["x-request-id"])


def _reserved_for(profile, output_tokens: int) -> Decimal:
    prompt = estimate_prompt_tokens(MESSAGES, provider=profile.provider)
    return max_cost(profile, prompt_tokens=prompt, max_output_tokens=output_tokens)


def test_without_a_default_the_model_max_output_is_reserved_and_nothing_is_sent(
        client, profile, fake_provider):
    record = _call(client)
    assert "max_tokens" not in fake_provider.requests[-1].body
    assert record.estimated_cost == _reserved_for(profile, 1000)


def test_team_default_is_sent_upstream_and_reserved(client, team, profile, fake_provider):
    team.default_max_tokens = 64
    team.save()
    record = _call(client)
    assert fake_provider.requests[-1].body["max_tokens"] == 64
    assert record.estimated_cost == _reserved_for(profile, 64)
    assert record.cost <= record.estimated_cost


def test_the_request_own_max_tokens_wins_over_the_default(client, team, profile, fake_provider):
    team.default_max_tokens = 64
    team.save()
    record = _call(client, max_tokens=300)
    assert fake_provider.requests[-1].body["max_tokens"] == 300
    assert record.estimated_cost == _reserved_for(profile, 300)


def test_setting_applies_when_the_team_has_none(client, profile, fake_provider, settings):
    settings.LLMOPS_DEFAULT_MAX_TOKENS = 128
    _call(client)
    assert fake_provider.requests[-1].body["max_tokens"] == 128


def test_team_default_comes_before_the_setting(client, team, profile, fake_provider, settings):
    settings.LLMOPS_DEFAULT_MAX_TOKENS = 128
    team.default_max_tokens = 32
    team.save()
    _call(client)
    assert fake_provider.requests[-1].body["max_tokens"] == 32


def test_default_above_the_model_max_output_is_clamped_not_refused(client, team, profile,
                                                                    fake_provider):
    team.default_max_tokens = 50_000
    team.save()
    record = _call(client)
    assert fake_provider.requests[-1].body["max_tokens"] == 1000
    assert record.estimated_cost == _reserved_for(profile, 1000)


def test_a_small_budget_answers_with_the_output_it_covers(client, team, profile, fake_provider):
    # $0.001 a day: less than the $0.002 the model's max output would reserve, far more than
    # the question costs. With no max_tokens of its own, the request is answered with the output
    # the budget covers (sent upstream, and said in usage.llmops) instead of being refused.
    budget_set(scope="team", team=team, daily_limit=Decimal("0.001"))
    raw = client.chat.completions.with_raw_response.create(model="m-default-limit",
                                                           messages=MESSAGES)
    clamp = raw.parse().usage.model_extra["llmops"]["max_tokens_clamped"]
    sent = fake_provider.requests[-1].body["max_tokens"]
    assert sent == clamp and 16 <= clamp < 1000
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    assert record.status == "ok"
    assert record.estimated_cost == _reserved_for(profile, clamp) <= Decimal("0.001")

    # A request that chose its own max_tokens is never changed: it is refused.
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model="m-default-limit", max_tokens=1000,
            messages=[{"role": "user", "content": "And the capital of Italy?"}])
    assert refused.value.status_code == 402
    assert refused.value.body["code"] == "budget_exceeded"


def test_without_a_clamp_usage_says_none(client, profile):
    raw = client.chat.completions.with_raw_response.create(model="m-default-limit",
                                                           messages=MESSAGES)
    assert raw.parse().usage.model_extra["llmops"]["max_tokens_clamped"] is None


def test_a_budget_too_small_for_a_useful_answer_is_still_refused(client, team, profile):
    # The prompt alone costs ~$0.00002; $0.00003 leaves output for fewer than 16 tokens.
    budget_set(scope="team", team=team, daily_limit=Decimal("0.00003"))
    with pytest.raises(openai.APIStatusError) as refused:
        _call(client)
    assert refused.value.status_code == 402
