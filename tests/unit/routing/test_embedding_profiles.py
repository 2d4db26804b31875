"""Embedding profiles: their own kind of model profile, never confused with chat ones."""

import pytest
from django.core.exceptions import ValidationError

from routing.catalog import catalog_entry_for
from routing.defaults import all_default_profiles
from routing.embedding_route import embedding_route, input_bound
from routing.errors import InvalidRequest, ModelNotFound
from routing.models import ModelProfile
from routing.selectors import invalidate_snapshot


def _profile(**fields) -> ModelProfile:
    defaults = dict(name="emb", provider="openai_compatible", upstream_model="e",
                    base_url="http://127.0.0.1:9/v1", mode="embedding",
                    input_price_per_token="0.0000001", output_price_per_token="0",
                    supports_streaming=False, context_window=100)
    return ModelProfile(**{**defaults, **fields})


def test_an_embedding_profile_bills_input_only_on_a_provider_that_embeds():
    _profile().clean()
    with pytest.raises(ValidationError) as excinfo:
        _profile(output_price_per_token="0.000001").clean()
    assert "output_price_per_token" in excinfo.value.message_dict
    with pytest.raises(ValidationError) as excinfo:
        _profile(provider="anthropic").clean()
    assert "provider" in excinfo.value.message_dict
    with pytest.raises(ValidationError) as excinfo:
        _profile(provider="local", mode="chat").clean()
    assert "mode" in excinfo.value.message_dict


def test_default_profiles_include_the_free_local_model():
    local = next(p for p in all_default_profiles() if p["name"] == "llmops-minilm")
    assert local["provider"] == "local" and local["mode"] == "embedding"
    assert local["input_price_per_token"] == 0 and local["options"]["dimensions"] == 384
    ModelProfile(**local).clean()


def test_catalog_matches_an_embedding_profile_to_embedding_entries_only():
    catalog = {"e": {"mode": "embedding", "input_cost_per_token": 2e-8,
                     "litellm_provider": "openai"}}
    assert catalog_entry_for(_profile(), catalog)[0] == "e"
    assert catalog_entry_for(_profile(mode="chat"), catalog) is None


def test_input_bound_never_below_the_token_count():
    assert input_bound([1, 2, 3], provider="openai") == 3
    assert input_bound("hello world, again", provider="openai") >= 4


@pytest.mark.django_db(transaction=True)
class TestEmbeddingRoute:
    @pytest.fixture(autouse=True)
    def profiles(self):
        _profile().save()
        _profile(name="emb-384", options={"dimensions": 384}).save()
        ModelProfile.objects.create(name="chat", provider="simulated", upstream_model="c",
                                    input_price_per_token="0.000001",
                                    output_price_per_token="0.000001")
        invalidate_snapshot()
        yield
        invalidate_snapshot()

    async def test_routes_an_embedding_model(self):
        route = await embedding_route(requested_model="emb", inputs=["a b", [1, 2]],
                                      dimensions=None)
        assert route.profile.name == "emb" and route.fallbacks == []
        assert route.input_bounds["emb"][1] == 2
        assert route.prompt_bounds([1]) == {"emb": 2}

    @pytest.mark.parametrize(("model", "inputs", "dimensions", "code"), [
        ("chat", ["x"], None, "model_not_embedding"),
        ("auto", ["x"], None, "model_not_embedding"),
        ("emb-384", ["x"], 64, "unsupported_dimensions"),
        ("emb", ["word " * 200], None, "context_length_exceeded"),
    ])
    async def test_refusals(self, model, inputs, dimensions, code):
        with pytest.raises(InvalidRequest) as excinfo:
            await embedding_route(requested_model=model, inputs=inputs, dimensions=dimensions)
        assert excinfo.value.code == code

    async def test_unknown_model(self):
        with pytest.raises(ModelNotFound):
            await embedding_route(requested_model="nope", inputs=["x"], dimensions=None)
