"""Savings by source and shadow mode, end to end: live gateway, fake provider, openai SDK."""

import time
import uuid
from decimal import Decimal

import openai
import pytest

from budgets.models import UsageRecord
from routing.pricing import usage_cost
from tests.toolkit.cache_engine import fresh_cache_engine
from tests.toolkit.fakeprovider import Behavior

UNSET_KEY_ENV = "SAVINGS_TEST_KEY_NEVER_SET"


@pytest.fixture
def cache_on(settings):
    """The semantic cache on, on a fresh in-process store (the live gateway is this process)."""
    settings.ENABLE_SEMANTIC_CACHE = True
    settings.ROUTING_BACKOFF_BASE_SECONDS = 0.01
    settings.ROUTING_BACKOFF_MAX_SECONDS = 0.05
    with fresh_cache_engine(settings) as engine:
        yield engine


@pytest.fixture
def models(fake_profile, monkeypatch):
    """`sv-cheap` (efficient, what auto picks), `sv-dear` (premium), `sv-broken` (cheap, always
    fails, falls back to sv-dear) and `sv-keyless` (its key is not set: it cannot serve)."""
    monkeypatch.delenv(UNSET_KEY_ENV, raising=False)
    return {
        "cheap": fake_profile("sv-cheap", tier="efficient", quality_score=0.9,
                              input_price_per_token="0.000001",
                              output_price_per_token="0.000002"),
        "dear": fake_profile("sv-dear", tier="premium", quality_score=0.95,
                             input_price_per_token="0.00001", output_price_per_token="0.00003"),
        "broken": fake_profile("sv-broken", upstream="fake-error-500", fallbacks=["sv-dear"],
                               quality_score=0.1, input_price_per_token="0.000001",
                               output_price_per_token="0.000002"),
        "keyless": fake_profile("sv-keyless", provider="openai", upstream="gpt-none",
                                api_key_env=UNSET_KEY_ENV, quality_score=0.99,
                                input_price_per_token="0.00002",
                                output_price_per_token="0.00006"),
    }


@pytest.fixture
def client(live_gateway, api_key, cache_on, models):
    return openai.OpenAI(base_url=live_gateway.api_base, api_key=api_key.key, max_retries=0,
                         timeout=30)


def team_set(api_key, **fields) -> None:
    team = api_key.api_key.team
    for name, value in fields.items():
        setattr(team, name, value)
    team.save()


def ask(client, model: str, content: str, **headers):
    """Send one chat completion; return (its text, its headers, its ledger row)."""
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": content}],
        extra_headers=headers or None)
    reply = raw.parse()
    record = UsageRecord.objects.get(request_id=raw.headers["x-request-id"])
    return reply.choices[0].message.content, raw.headers, record


def priced(profile, record) -> Decimal:
    """What `profile` bills for the row's token counts."""
    profile.refresh_from_db()  # prices as the database holds them (Decimal)
    return usage_cost(profile, prompt_tokens=record.prompt_tokens,
                      completion_tokens=record.completion_tokens,
                      cached_tokens=record.cached_tokens,
                      reasoning_tokens=record.reasoning_tokens)


def fresh(text: str = "Explain what a reference model is") -> str:
    return f"{text} [{uuid.uuid4().hex[:10]}]"


def until_hit(client, model: str, content: str, status: str = "hit_exact"):
    """Ask until the write-behind store made `content` a hit of `status` (bounded)."""
    for _ in range(50):
        answer = ask(client, model, content, **{"Cache-Control": "no-store"})
        if answer[1]["x-llmops-cache"] == status:
            return answer
        time.sleep(0.1)
    pytest.fail(f"never a {status}: {content!r}")


class TestRealizedSavings:
    def test_routing_saves_the_team_reference_at_the_real_tokens(self, client, api_key, models):
        team_set(api_key, reference_model="sv-dear")
        _, headers, record = ask(client, "auto", fresh())
        assert record.served_model == "sv-cheap" and record.reference_model == "sv-dear"
        assert record.cost == priced(models["cheap"], record) > 0
        assert record.routing_saved == priced(models["dear"], record) - record.cost > 0
        assert record.cost_saved == record.routing_saved and record.cache_saved == 0

    def test_a_named_model_is_its_own_reference(self, client, models):
        _, _, record = ask(client, "sv-cheap", fresh())
        assert (record.reference_model, record.routing_saved, record.cost_saved) == (
            "sv-cheap", 0, 0)

    def test_a_fallback_dearer_than_the_named_model_saves_a_negative_amount(self, client,
                                                                            models):
        _, _, record = ask(client, "sv-broken", fresh())
        assert record.served_model == "sv-dear" and record.reference_model == "sv-broken"
        assert record.routing_saved == priced(models["broken"], record) - record.cost < 0
        assert record.cost_saved == record.routing_saved

    def test_no_saving_is_claimed_against_a_model_that_could_not_serve(self, client, api_key):
        team_set(api_key, reference_model="sv-keyless")
        _, _, record = ask(client, "auto", fresh())
        assert record.served_model == "sv-cheap"
        assert (record.reference_model, record.routing_saved, record.cost_saved) == ("", 0, 0)

    def test_no_reference_configured_claims_nothing_for_auto(self, client, settings):
        settings.LLMOPS_REFERENCE_MODEL = ""
        _, _, record = ask(client, "auto", fresh())
        assert (record.reference_model, record.routing_saved) == ("", 0)

    def test_cache_hits_save_what_the_stored_call_cost_by_source(self, client):
        tag = uuid.uuid4().hex[:6]
        first = ask(client, "sv-dear", f"What is the capital city of France? ({tag})")[2]
        exact = until_hit(client, "sv-dear", f"What is the capital city of France? ({tag})")[2]
        assert exact.cache_status == "hit_exact" and exact.cost == 0
        assert exact.cache_saved == exact.cost_saved == first.cost > 0
        assert exact.routing_saved == 0
        semantic = [ask(client, "sv-dear", variant, **{"Cache-Control": "no-store"})[2]
                    for variant in (f"What's the capital city of France? ({tag})",
                                    f"what is the capital city of France ({tag})")]
        semantic = [r for r in semantic if r.cache_status == "hit_semantic"]
        assert semantic, "no paraphrase hit semantically"
        assert all(r.cache_saved == r.cost_saved == first.cost for r in semantic)


class TestShadowMode:
    def test_a_would_hit_changes_no_answer_and_no_charge(self, client, api_key, models,
                                                         fake_provider):
        content = fresh("What does shadow mode measure?")
        stored = ask(client, "sv-dear", content)[2]
        until_hit(client, "sv-dear", content)
        team_set(api_key, shadow_mode=True)
        calls = len(fake_provider.requests)
        fake_provider.enqueue(Behavior(text="a fresh answer straight from upstream"))
        text, headers, record = ask(client, "sv-dear", content)
        # Served as sent: the provider answered, nothing came from the cache.
        assert text == "a fresh answer straight from upstream"
        assert len(fake_provider.requests) == calls + 1
        assert headers["x-llmops-cache"] == "miss" and record.cache_status == "miss"
        # Charged what the provider bills, at the model the client named.
        billed = fake_provider.invoice[record.request_id]
        assert (record.prompt_tokens, record.completion_tokens) == (
            billed.prompt_tokens, billed.completion_tokens)
        assert record.served_model == "sv-dear"
        assert record.cost == priced(models["dear"], record) > 0
        assert Decimal(headers["x-llmops-cost"]) == record.cost
        # ... yet the row says what the cache would have done, and what it would have avoided.
        assert record.shadow and record.shadow_cache_status == "hit_exact"
        assert record.shadow_cache_entry and record.shadow_cache_similarity == 1.0
        assert record.shadow_cache_saved == record.cost
        assert record.shadow_model == "sv-cheap"  # what auto would have chosen
        assert (record.cache_saved, record.routing_saved, record.cost_saved) == (0, 0, 0)
        assert stored.shadow is False

    def test_a_would_route_is_priced_at_the_same_tokens(self, client, api_key, models,
                                                        fake_provider):
        team_set(api_key, shadow_mode=True)
        _, headers, record = ask(client, "sv-dear", fresh())
        assert record.served_model == "sv-dear" and headers["x-llmops-model"] == "sv-dear"
        assert record.shadow_cache_status == "" and record.shadow_model == "sv-cheap"
        assert record.shadow_routing_saved == record.cost - priced(models["cheap"], record) > 0
        assert record.routing_saved == 0

    def test_auto_is_served_by_the_reference_model(self, client, api_key, models, settings):
        settings.LLMOPS_SHADOW_MODE = True  # the global switch; the team sets nothing
        settings.LLMOPS_REFERENCE_MODEL = "sv-dear"
        _, _, record = ask(client, "auto", fresh())
        assert record.requested_model == "auto" and record.served_model == "sv-dear"
        assert record.shadow and record.shadow_model == "sv-cheap"
        assert record.reference_model == "sv-dear" and record.routing_saved == 0
        assert record.shadow_routing_saved == record.cost - priced(models["cheap"], record) > 0
