"""A provider added with one registry entry: the adapter, availability, token estimates, price
sync, routing and the live gateway all see it."""

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest

from budgets.models import UsageRecord
from llmops.principal import Principal
from llmops.providers.base import Delta, ProviderAdapter, ProviderCall, Usage
from llmops.providers.registry import get_adapter, profile_available
from routing import resilience, router
from routing.errors import InvalidRequest
from routing.media import image_token_bound
from routing.models import ModelProfile
from routing.providers import ProviderSpec
from routing.selectors import invalidate_snapshot
from routing.services import profiles_sync_prices
from routing.tokens import TOOLS_OVERHEAD, estimate_prompt_tokens, estimate_request_prompt_tokens


class ToyAdapter(ProviderAdapter):
    """Answers "toy: " and the last message, and reports the usage it counted."""

    async def stream(self, call: ProviderCall) -> AsyncIterator[Delta]:
        yield Delta(role="assistant", content=f"toy: {call.messages[-1]['content']}")
        yield Delta(finish_reason="stop", usage=Usage(prompt_tokens=7, completion_tokens=3))


# The one entry: counted like OpenAI, images and tool prompts billed like Anthropic, its prices
# under "toyco" in the catalog, no tools on its wire.
TOY = ProviderSpec(
    name="toy", label="Toy Co", adapter="tests.integration.providers.test_registry.ToyAdapter",
    tokenizer="openai", billing_rules="anthropic", catalog_names=("toyco",),
    key_setting="TOY_API_KEY", base_url="https://api.toy.example/v1", tools=False)

MESSAGES = [{"role": "user", "content": "The quick brown fox jumps over the lazy dog. " * 20}]
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]


@pytest.fixture
def toy(settings, monkeypatch) -> ProviderSpec:
    settings.LLMOPS_EXTRA_PROVIDERS = ["tests.integration.providers.test_registry.TOY"]
    settings.ROUTING_REDIS_URL = settings.REDIS_URL = ""
    settings.ENABLE_SEMANTIC_CACHE = False
    monkeypatch.setenv("TOY_API_KEY", "toy-key")
    resilience.reset_local_state()
    yield TOY
    resilience.reset_local_state()


def _toy_profile(name: str = "toy-model", **fields) -> ModelProfile:
    defaults = dict(provider="toy", upstream_model="toy-1", input_price_per_token="0.000001",
                    output_price_per_token="0.000002", context_window=32000,
                    max_output_tokens=1000)
    profile = ModelProfile.objects.create(name=name, **{**defaults, **fields})
    invalidate_snapshot()
    return profile


def test_the_adapter_is_built_with_its_entry_and_reads_its_key(toy, monkeypatch):
    adapter = get_adapter("toy")
    assert isinstance(adapter, ToyAdapter) and adapter.spec is toy
    assert adapter.api_key_for() == "toy-key"  # no TOY_API_KEY setting: the environment's
    assert profile_available(ModelProfile(name="t", provider="toy"))
    monkeypatch.delenv("TOY_API_KEY")
    assert not profile_available(ModelProfile(name="t", provider="toy"))


def test_an_unregistered_provider_has_no_adapter(settings):
    settings.LLMOPS_EXTRA_PROVIDERS = []
    with pytest.raises(KeyError):
        get_adapter("toy")


def test_token_estimates_follow_its_tokenizer_and_billing_rules(toy):
    assert estimate_prompt_tokens(MESSAGES, provider="toy") == estimate_prompt_tokens(
        MESSAGES, provider="openai")
    assert estimate_prompt_tokens(MESSAGES, provider="toy") < estimate_prompt_tokens(
        MESSAGES, provider="anthropic")

    def bound(provider: str) -> int:
        return estimate_request_prompt_tokens(messages=MESSAGES, params={"tools": TOOLS},
                                              provider=provider,
                                              upstream_model="claude-haiku-4-5")
    # same tokenizer family as a self-hosted server: only Anthropic's tool prompt differs
    assert bound("toy") - bound("openai_compatible") == 346 - TOOLS_OVERHEAD
    image = "https://example.com/cat.png"
    assert image_token_bound(url=image, detail=None, provider="toy",
                             upstream_model="claude-3-haiku") == image_token_bound(
        url=image, detail=None, provider="anthropic", upstream_model="claude-3-haiku")


@pytest.mark.django_db
def test_price_sync_matches_its_catalog_names(toy):
    _toy_profile("toy-a", upstream_model="toy-1")
    _toy_profile("toy-b", upstream_model="toy-2")
    catalog = {
        "toy-1": {"litellm_provider": "toyco", "mode": "chat", "input_cost_per_token": 3e-06,
                  "output_cost_per_token": 4e-06},
        "toy-2": {"litellm_provider": "someone-else", "mode": "chat",
                  "input_cost_per_token": 9e-06},
    }
    report = profiles_sync_prices(catalog=catalog)
    assert report.matched == {"toy-a": "toy-1"}
    assert report.not_in_catalog == ["toy-b"]
    assert ModelProfile.objects.get(name="toy-a").input_price_per_token == Decimal("0.000003")


def _ctx(model: str, **fields):
    from llmops.gateway.context import RequestContext

    principal = Principal(api_key_id=1, key_prefix="p", user_id=1, team_id=1, team_name="t",
                          tier="standard")
    return RequestContext(request_id="r1", principal=principal, body={}, messages=MESSAGES,
                          requested_model=model, **{"params": {}, **fields})


@pytest.mark.django_db(transaction=True)
async def test_routing_chooses_it_and_knows_what_it_cannot_carry(toy, monkeypatch):
    async def unlimited(ctx):
        return None

    monkeypatch.setattr(router, "budget_remaining_for", unlimited)
    await ModelProfile.objects.acreate(  # saved without validation, as code can
        name="toy-model", provider="toy", upstream_model="toy-1", context_window=32000,
        input_price_per_token="0.000001", output_price_per_token="0.000002",
        max_output_tokens=1000, supports_tools=True)
    invalidate_snapshot()

    decision = await router.route(_ctx("auto"))
    assert decision.profile.name == "toy-model"
    assert decision.prompt_bounds == {"toy-model": estimate_request_prompt_tokens(
        messages=MESSAGES, params={}, provider="toy", upstream_model="toy-1",
        context_window=32000)}
    with pytest.raises(InvalidRequest) as refused:  # the profile says tools, its wire cannot
        await router.route(_ctx("toy-model", params={"tools": TOOLS}))
    assert refused.value.code == "unsupported_capability"
    invalidate_snapshot()


def test_the_live_gateway_calls_its_adapter(toy, live_gateway, api_key):
    _toy_profile()
    response = httpx.post(f"{live_gateway.api_base}/chat/completions", timeout=30,
                          headers={"Authorization": f"Bearer {api_key.key}"},
                          json={"model": "toy-model",
                                "messages": [{"role": "user", "content": "hello"}]})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "toy: hello"
    assert response.headers["x-llmops-model"] == "toy-model"
    record = UsageRecord.objects.get(request_id=response.headers["x-request-id"])
    assert (record.prompt_tokens, record.completion_tokens) == (7, 3)
    invalidate_snapshot()
