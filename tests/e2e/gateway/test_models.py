"""End to end: `GET /v1/models` says which models the gateway can call now, and a model it
cannot call is refused with a clear 400 before anything is reserved (official openai SDK)."""

import httpx
import openai
import pytest

from budgets.models import BudgetReservation, UsageRecord
from routing.models import ModelProfile
from routing.selectors import invalidate_snapshot

OWN_KEY_ENV = "LLMOPS_E2E_UNSET_PROFILE_KEY"


@pytest.fixture
def unkeyed(settings, monkeypatch, fake_provider, simulated_profiles):
    """Beside the simulated models: an OpenAI profile without OPENAI_API_KEY (the cheapest of
    all, so `auto` would want it), and an Anthropic one whose own key variable is unset."""
    settings.OPENAI_API_KEY = ""
    monkeypatch.delenv(OWN_KEY_ENV, raising=False)
    common = dict(tier="efficient", context_window=128000, max_output_tokens=1000,
                  base_url=fake_provider.base_url, quality_score=0.99)
    ModelProfile.objects.create(name="gpt-unkeyed", provider="openai", upstream_model="gpt-4o",
                                input_price_per_token="0.0000000001",
                                output_price_per_token="0.0000000001", **common)
    ModelProfile.objects.create(name="claude-own-key", provider="anthropic",
                                upstream_model="claude-haiku-4-5", api_key_env=OWN_KEY_ENV,
                                input_price_per_token="0.000001",
                                output_price_per_token="0.000005", **common)
    invalidate_snapshot()
    yield
    invalidate_snapshot()


def test_the_list_holds_only_models_that_can_be_called(openai_client, unkeyed):
    ids = [m.id for m in openai_client.models.list()]
    assert ids == ["auto", "simulated-efficient", "simulated-premium", "simulated-standard"]


def test_all_lists_every_enabled_model_with_why_it_cannot_be_called(openai_client, unkeyed):
    models = {m.id: m for m in openai_client.models.list(extra_query={"all": "true"})}
    assert set(models) == {"auto", "simulated-efficient", "simulated-premium",
                           "simulated-standard", "gpt-unkeyed", "claude-own-key"}
    assert models["gpt-unkeyed"].owned_by == "openai"
    assert models["gpt-unkeyed"].model_extra["llmops"] == {
        "usable": False, "reason": "OPENAI_API_KEY is not set"}
    assert models["claude-own-key"].model_extra["llmops"] == {
        "usable": False, "reason": f"{OWN_KEY_ENV} is not set"}
    for name in ("auto", "simulated-efficient"):
        assert models[name].model_extra["llmops"] == {"usable": True, "reason": None}


def test_a_key_set_makes_its_models_usable(openai_client, unkeyed, settings):
    settings.OPENAI_API_KEY = "sk-now-configured"
    assert "gpt-unkeyed" in [m.id for m in openai_client.models.list()]


def test_all_must_be_a_boolean(live_gateway, api_key, unkeyed):
    response = httpx.get(f"{live_gateway.api_base}/models", params={"all": "maybe"},
                         headers={"Authorization": f"Bearer {api_key.key}"}, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == "all"


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_calling_a_model_without_its_key_is_a_clear_400(openai_client, unkeyed, fake_provider,
                                                        stream):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(
            model="gpt-unkeyed", messages=[{"role": "user", "content": "hi"}], stream=stream)
    error = caught.value.body
    assert error["code"] == "model_not_configured" and error["param"] == "model"
    assert error["type"] == "invalid_request_error"
    assert error["message"].startswith(
        "Model 'gpt-unkeyed' cannot be called: OPENAI_API_KEY is not set on this gateway.")
    # Refused before admission: nothing reserved, nothing charged, no provider called.
    assert not UsageRecord.objects.exists() and not BudgetReservation.objects.exists()
    assert fake_provider.requests == []


def test_the_error_names_a_profiles_own_key_variable(openai_client, unkeyed):
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(
            model="claude-own-key", messages=[{"role": "user", "content": "hi"}])
    assert f"{OWN_KEY_ENV} is not set" in caught.value.body["message"]


def test_auto_never_picks_a_model_it_cannot_call(openai_client, unkeyed, fake_provider):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "hello"}])
    assert raw.headers["x-llmops-model"].startswith("simulated-")
    assert fake_provider.requests == []


def test_auto_with_nothing_callable_says_which_keys_are_missing(openai_client, unkeyed):
    ModelProfile.objects.filter(provider="simulated").update(enabled=False)
    invalidate_snapshot()
    assert [m.id for m in openai_client.models.list()] == []
    with pytest.raises(openai.BadRequestError) as caught:
        openai_client.chat.completions.create(
            model="auto", messages=[{"role": "user", "content": "hi"}])
    error = caught.value.body
    assert error["code"] == "model_not_configured"
    assert "gpt-unkeyed: OPENAI_API_KEY is not set" in error["message"]
    assert f"claude-own-key: {OWN_KEY_ENV} is not set" in error["message"]
    assert not UsageRecord.objects.exists()
