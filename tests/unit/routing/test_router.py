"""route(ctx): explicit models, auto routing over stored profiles, aliases, cooldown, budget."""

from decimal import Decimal

import numpy as np
import pytest

from llmops.gateway.context import RequestContext
from llmops.principal import Principal
from routing import learned, resilience, router
from routing.errors import InvalidRequest, ModelNotConfigured, ModelNotFound, ModelsUnavailable
from routing.models import ModelProfile, RouterAlias, RoutingExample
from routing.selectors import invalidate_predictor, invalidate_snapshot, routing_predictor
from routing.services import profiles_load_defaults

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def fresh(settings, monkeypatch):
    async def unlimited(ctx):
        return None

    # Budgets are tested on their own; here an unlimited budget keeps the policy in view.
    monkeypatch.setattr(router, "budget_remaining_for", unlimited)
    settings.ROUTING_REDIS_URL = ""
    settings.REDIS_URL = ""
    settings.OPENAI_API_KEY = ""
    settings.GEMINI_API_KEY = ""
    settings.ANTHROPIC_API_KEY = ""
    settings.ROUTING_TIER_MIN_QUALITY = {"free": 0.6, "standard": 0.72, "premium": 0.8}
    settings.ROUTING_MAX_LATENCY_MS = 0
    settings.ROUTING_ESCALATION_MARGIN = 0.05
    resilience.reset_local_state()
    invalidate_snapshot()
    invalidate_predictor()
    yield
    resilience.reset_local_state()
    invalidate_snapshot()
    invalidate_predictor()


@pytest.fixture
def defaults():
    profiles_load_defaults()
    invalidate_snapshot()


def ctx_for(model="auto", content="Hello there", tier="standard", team_id=1, **kw):
    principal = Principal(api_key_id=1, key_prefix="p", user_id=1, team_id=team_id,
                          team_name="t", tier=tier)
    messages = kw.pop("messages", [{"role": "user", "content": content}])
    return RequestContext(request_id="r1", principal=principal, body={}, messages=messages,
                          requested_model=model, params=kw.pop("params", {}), **kw)


async def test_explicit_model_with_configured_fallbacks(defaults):
    decision = await router.route(ctx_for("simulated-premium"))
    assert decision.reason == "explicit"
    assert decision.profile.name == "simulated-premium"
    assert [p.name for p in decision.fallbacks] == ["simulated-standard"]


async def test_explicit_model_without_its_key_is_refused_by_name(defaults):
    with pytest.raises(ModelNotConfigured) as caught:
        await router.route(ctx_for("gpt-4o"))
    assert caught.value.param == "model" and caught.value.code == "model_not_configured"
    assert caught.value.message.startswith(
        "Model 'gpt-4o' cannot be called: OPENAI_API_KEY is not set on this gateway.")


async def test_explicit_model_without_its_key_is_refused_even_with_usable_fallbacks(
        defaults, settings):
    settings.OPENAI_API_KEY = "sk-test"  # its fallback gpt-4.1-mini is usable now
    with pytest.raises(ModelNotConfigured, match="ANTHROPIC_API_KEY is not set"):
        await router.route(ctx_for("claude-sonnet-4-5"))


async def test_auto_with_no_callable_model_names_what_is_missing(defaults):
    await ModelProfile.objects.filter(provider="simulated").aupdate(enabled=False)
    invalidate_snapshot()
    with pytest.raises(ModelNotConfigured) as caught:
        await router.route(ctx_for())
    message = caught.value.message
    assert "claude-haiku-4-5: ANTHROPIC_API_KEY is not set" in message
    assert "gemini-2.5-flash: GEMINI_API_KEY is not set" in message
    assert "and 1 more" in message  # six models: five named


async def test_models_offered_say_which_can_be_called(defaults, settings):
    offered = {m.name: m.unavailable for m in await router.models_offered()}
    assert offered["auto"] == "" and offered["simulated-efficient"] == ""
    assert offered["gpt-4o"] == "OPENAI_API_KEY is not set"
    assert offered["claude-haiku-4-5"] == "ANTHROPIC_API_KEY is not set"
    assert [m.name for m in await router.models_offered()][0] == "auto"
    await ModelProfile.objects.filter(provider="simulated").aupdate(enabled=False)
    invalidate_snapshot()
    assert (await router.models_offered())[0].unavailable == "no enabled model can be called"
    settings.GEMINI_API_KEY = "g-key"
    assert (await router.models_offered())[0].unavailable == ""


async def test_no_enabled_model_leaves_auto_nothing(settings):
    assert [(m.name, m.unavailable) for m in await router.models_offered()] == [
        ("auto", "no model is enabled")]
    with pytest.raises(ModelNotFound):
        await router.route(ctx_for())


async def test_unknown_model():
    with pytest.raises(ModelNotFound):
        await router.route(ctx_for("no-such-model"))


async def test_explicit_prompt_too_long_names_the_model(defaults):
    with pytest.raises(InvalidRequest) as caught:
        await router.route(ctx_for("simulated-efficient", content="word " * 200_000))
    assert "simulated-efficient" in str(caught.value)
    assert caught.value.code == "context_length_exceeded"


@pytest.mark.parametrize(("tier", "expected"), [("free", "simulated-efficient"),
                                                ("standard", "simulated-standard"),
                                                ("premium", "simulated-premium")])
async def test_auto_by_tier_on_priors_skips_models_without_keys(defaults, tier, expected):
    decision = await router.route(ctx_for(tier=tier))
    assert decision.profile.name == expected
    assert decision.reason == "auto:quality"
    chain = [decision.profile, *decision.fallbacks]
    assert all(p.provider == "simulated" for p in chain)  # no OpenAI/Gemini/Anthropic key set


async def test_auto_uses_real_models_once_their_key_is_set(defaults, settings):
    settings.OPENAI_API_KEY = "sk-test"
    decision = await router.route(ctx_for(tier="free"))
    # gpt-4o-mini and simulated-efficient share prices and prior: the tie goes by name.
    assert decision.profile.name == "gpt-4o-mini"


async def test_auto_prompt_beyond_every_context_window(defaults):
    await ModelProfile.objects.filter(name="simulated-standard").aupdate(context_window=128000)
    invalidate_snapshot()
    with pytest.raises(InvalidRequest) as caught:
        await router.route(ctx_for(content="word " * 200_000))
    assert "context window is 128000" in str(caught.value)


async def test_auto_capability_missing_everywhere(defaults):
    with pytest.raises(InvalidRequest) as caught:
        await router.route(ctx_for(params={"tools": [{"type": "function",
                                                      "function": {"name": "f"}}]}))
    assert "tools" in str(caught.value)


async def test_auto_latency_hint(defaults):
    decision = await router.route(ctx_for(tier="premium", metadata={"max_latency_ms": 700}))
    assert decision.profile.name == "simulated-standard"  # premium's 1200 ms breaks the limit
    assert decision.reason == "auto:best_available"
    assert decision.rejected["simulated-premium"].startswith("latency:")


async def test_auto_skips_cooling_profiles(defaults):
    await resilience.record_failure("simulated-standard", kind="rate_limited", retry_after=30)
    decision = await router.route(ctx_for(tier="standard"))
    assert decision.profile.name == "simulated-premium"
    assert decision.rejected["simulated-standard"] == "cooldown"


async def test_everything_cooling_is_a_clear_503(defaults):
    for name in ("simulated-efficient", "simulated-standard", "simulated-premium"):
        await resilience.record_failure(name, kind="rate_limited", retry_after=30)
    with pytest.raises(ModelsUnavailable):
        await router.route(ctx_for())


async def test_explicit_model_cooling_goes_to_its_fallback(defaults):
    await resilience.record_failure("simulated-premium", kind="rate_limited", retry_after=30)
    decision = await router.route(ctx_for("simulated-premium"))
    assert (decision.profile.name, decision.reason) == ("simulated-standard", "cooldown")


async def test_budget_low_downgrades(defaults, monkeypatch):
    async def low(ctx):
        return Decimal("0.05")

    monkeypatch.setattr(router, "budget_remaining_for", low)
    decision = await router.route(ctx_for(tier="premium", max_output_tokens=1000))
    # The bar drops from 0.80 to 0.65: the efficient model's prior (0.68) now meets it.
    assert decision.profile.name == "simulated-efficient"
    assert decision.reason == "auto:budget"


async def test_budget_lookup_never_raises(monkeypatch):
    monkeypatch.undo()
    # Through ROUTING_BUDGET_REMAINING (budgets.selectors), routing gets a value or None.
    remaining = await router.budget_remaining_for(ctx_for())
    assert remaining is None or isinstance(remaining, Decimal)


async def test_a_failing_budget_lookup_routes_without_budget_awareness(monkeypatch, settings):
    monkeypatch.undo()
    settings.ROUTING_BUDGET_REMAINING = "routing.tests_do_not_exist.budget_remaining"
    assert await router.budget_remaining_for(ctx_for()) is None


async def test_learned_predictions_decide(defaults):
    # Labels: the efficient tier fails prompts near `hard` and succeeds near `easy`.
    dims = 8
    hard, easy = np.eye(dims, dtype=np.float32)[0], np.eye(dims, dtype=np.float32)[1]
    rows = []
    for i in range(20):
        for vector, score in ((hard, 0.0), (easy, 1.0)):
            rows.append(RoutingExample(prompt=f"{i}-{score}", prompt_hash=f"{i}-{score}",
                                       embedding=vector.tobytes(), tier="efficient", score=score,
                                       source="test"))
    await RoutingExample.objects.abulk_create(rows)
    invalidate_predictor()
    await routing_predictor(wait=True)  # requests never wait for a refit; the test does
    easy_decision = await router.route(ctx_for(tier="standard", embedding=easy))
    hard_decision = await router.route(ctx_for(tier="standard", embedding=hard))
    assert easy_decision.profile.name == "simulated-efficient"
    assert easy_decision.predicted_quality > 0.8
    assert hard_decision.profile.name == "simulated-standard"


async def test_team_alias_restricts_candidates(defaults):
    from llmops.models import Team

    team = await Team.objects.acreate(name="alias-team")
    await RouterAlias.objects.acreate(name="cheap-router", team=team,
                                      candidates=["simulated-efficient"], min_quality=0.9)
    decision = await router.route(ctx_for("cheap-router", team_id=team.id))
    assert decision.profile.name == "simulated-efficient"
    with pytest.raises(ModelNotFound):
        await router.route(ctx_for("cheap-router", team_id=team.id + 1))


async def test_disabled_profiles_are_not_candidates(defaults):
    await ModelProfile.objects.filter(name="simulated-standard").aupdate(enabled=False)
    invalidate_snapshot()
    decision = await router.route(ctx_for(tier="standard"))
    assert decision.profile.name == "simulated-premium"


async def test_well_labeled_targets_get_the_learned_model(defaults, monkeypatch):
    monkeypatch.setattr(learned, "MIN_EXAMPLES", 30)
    monkeypatch.setattr(learned, "K", 5)
    dims = 8
    hard, easy = np.eye(dims, dtype=np.float32)[0], np.eye(dims, dtype=np.float32)[1]
    rows = []
    for i in range(30):
        for vector, score, prompt in ((hard, 0.0, "Solve 12x + 7 = 43 and show the steps"),
                                      (easy, 1.0, "Say hello to the whole team today")):
            rows.append(RoutingExample(prompt=f"{prompt} {i}", prompt_hash=f"{i}-{score}",
                                       embedding=vector.tobytes(), tier="efficient", score=score,
                                       source="test"))
    await RoutingExample.objects.abulk_create(rows)
    invalidate_predictor()
    predictor = await routing_predictor(wait=True)
    assert ("tier", "efficient") in predictor.learned
    easy_decision = await router.route(ctx_for(content="Say hello to the whole team now",
                                               embedding=easy))
    hard_decision = await router.route(ctx_for(content="Solve 3x + 2 = 11 and show the steps",
                                               embedding=hard))
    assert easy_decision.profile.name == "simulated-efficient"
    assert hard_decision.profile.name != "simulated-efficient"


async def test_escalation_margin_comes_from_settings(defaults, settings):
    # Priors: efficient 0.68, standard 0.76, premium 0.84; the premium tier's bar is 0.80.
    settings.ROUTING_ESCALATION_MARGIN = 0.05
    decision = await router.route(ctx_for(tier="premium"))
    assert (decision.profile.name, decision.reason) == ("simulated-premium", "auto:quality")
    # 0.08 better is within a 0.10 margin: the standard model serves, and the reason says why.
    settings.ROUTING_ESCALATION_MARGIN = 0.10
    decision = await router.route(ctx_for(tier="premium"))
    assert (decision.profile.name, decision.reason) == ("simulated-standard", "auto:no_gain")
    assert decision.required_quality == 0.8
    settings.ROUTING_ESCALATION_MARGIN = None  # off: the bar alone
    decision = await router.route(ctx_for(tier="premium"))
    assert decision.profile.name == "simulated-premium"


async def test_learned_model_uses_the_requests_layers_and_routes_without_them(defaults,
                                                                              monkeypatch):
    monkeypatch.setattr(learned, "MIN_EXAMPLES", 30)
    monkeypatch.setattr(learned, "K", 5)
    monkeypatch.setattr(learned, "LAYERS", (3, 5))
    dims = 8
    eye = np.eye(dims, dtype=np.float32)
    # The final embedding cannot tell the outcomes apart; layers 3 and 5 can.
    same = ((eye[0] + eye[1]) / np.sqrt(2)).astype(np.float32)
    hard, easy = eye[2], eye[3]
    prompt = "Tell me about the thing number"
    rows = []
    for i in range(30):
        for layer_vector, score in ((hard, 0.0), (easy, 1.0)):
            rows.append(RoutingExample(
                prompt=f"{prompt} {i}", prompt_hash=f"{i}-{score}", embedding=same.tobytes(),
                layer_embeddings=b"".join(v.tobytes() for v in (eye[7], layer_vector,
                                                                layer_vector)),
                layers="1,3,5", tier="efficient", score=score, source="test"))
    await RoutingExample.objects.abulk_create(rows)
    invalidate_predictor()
    predictor = await routing_predictor(wait=True)
    assert predictor.learned[("tier", "efficient")].layered
    easy_decision = await router.route(ctx_for(content=f"{prompt} 99", embedding=same,
                                               embedding_layers={3: easy, 5: easy}))
    hard_decision = await router.route(ctx_for(content=f"{prompt} 99", embedding=same,
                                               embedding_layers={3: hard, 5: hard}))
    assert easy_decision.profile.name == "simulated-efficient"
    assert hard_decision.profile.name != "simulated-efficient"
    efficient = ModelProfile(name="simulated-efficient", tier="efficient", quality_score=0.5)
    text = f"{prompt} 99"
    assert (predictor.predict(efficient, text, same, layers={3: easy, 5: easy}).quality
            > predictor.predict(efficient, text, same, layers={3: hard, 5: hard}).quality + 0.3)
    # No layers on the request (say the embedder gave none): it still routes, on the final
    # embedding's members, exactly as the model without layers predicts.
    plain = predictor.learned[("tier", "efficient")].member_logits([text], same[None, :])
    expected = float(np.mean([1 / (1 + np.exp(-z[0])) for z in plain]))
    fallback = await router.route(ctx_for(content=text, embedding=same))
    assert fallback.profile is not None
    assert predictor.predict(efficient, text, same).quality == pytest.approx(expected)


async def test_examples_without_layers_train_the_final_only_model(defaults, monkeypatch):
    monkeypatch.setattr(learned, "MIN_EXAMPLES", 30)
    monkeypatch.setattr(learned, "K", 5)
    monkeypatch.setattr(learned, "LAYERS", (3, 5))
    hard, easy = np.eye(8, dtype=np.float32)[0], np.eye(8, dtype=np.float32)[1]
    rows = [RoutingExample(prompt=f"{prompt} {i}", prompt_hash=f"{i}-{score}",
                           embedding=vector.tobytes(), tier="efficient", score=score,
                           source="test")
            for i in range(30) for vector, score, prompt in (
                (hard, 0.0, "Solve 12x + 7 = 43 and show the steps"),
                (easy, 1.0, "Say hello to the whole team today"))]
    await RoutingExample.objects.abulk_create(rows)
    invalidate_predictor()
    predictor = await routing_predictor(wait=True)
    assert not predictor.learned[("tier", "efficient")].layered
    decision = await router.route(ctx_for(content="Say hello to the whole team now",
                                          embedding=easy, embedding_layers={3: hard, 5: hard}))
    assert decision.profile.name == "simulated-efficient"


async def test_router_embeds_with_layers_when_the_cache_did_not(defaults, monkeypatch):
    import semcache.embedder

    calls = []

    class LayeredEmbedder:
        async def embed_with_layers(self, text):
            calls.append(text)
            return np.ones(4, dtype=np.float32) / 2, {3: np.ones(4, dtype=np.float32) / 2}

    monkeypatch.setattr(semcache.embedder, "get_embedder", lambda: LayeredEmbedder())
    vector, layers = await router.prompt_embedding(ctx_for(content="no cache ran"))
    assert calls == ["no cache ran"] and vector.shape == (4,) and set(layers) == {3}

    class Broken:
        async def embed_with_layers(self, text):
            raise RuntimeError("embedder down")

    monkeypatch.setattr(semcache.embedder, "get_embedder", lambda: Broken())
    assert await router.prompt_embedding(ctx_for(content="x")) == (None, None)


@pytest.mark.parametrize("formats", [True, False])
async def test_each_prompt_format_gets_its_members_as_configured(defaults, monkeypatch,
                                                                formats):
    from routing.features import CHOICES, OPEN

    monkeypatch.setattr(learned, "MIN_EXAMPLES", 20)
    monkeypatch.setattr(learned, "K", 5)
    monkeypatch.setattr(learned, "FORMATS", formats)
    rng = np.random.default_rng(5)
    rows = []
    for i in range(40):
        vector = rng.normal(size=8).astype(np.float32)
        vector /= np.linalg.norm(vector)
        prompt = (f"Which value fits case {i}?\nA. one\nB. two\nC. three\nD. four\nAnswer:"
                  if i < 20 else f"Work out case {i} step by step.")
        rows.append(RoutingExample(prompt=prompt, prompt_hash=str(i), embedding=vector.tobytes(),
                                   tier="efficient", score=float(i % 2), source="test"))
    await RoutingExample.objects.abulk_create(rows)
    invalidate_predictor()
    predictor = await routing_predictor(wait=True)
    model = predictor.learned[("tier", "efficient")]
    assert model.format_sizes == ({CHOICES: 20, OPEN: 20} if formats else {})


async def test_tools_count_toward_the_context_window():
    await ModelProfile.objects.acreate(
        name="small-window", provider="openai_compatible", upstream_model="small",
        base_url="http://127.0.0.1:9/v1", input_price_per_token="0.000001",
        output_price_per_token="0.000002", context_window=2000, max_output_tokens=500,
        supports_tools=True)
    invalidate_snapshot()
    tools = [{"type": "function", "function": {
        "name": f"tool_{i}", "description": "Look something up in the catalogue " * 4,
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}}}
        for i in range(40)]
    decision = await router.route(ctx_for("small-window", params={"tools": tools[:2]}))
    assert decision.profile.name == "small-window"
    assert decision.prompt_bounds["small-window"] > 100  # the two definitions are counted
    with pytest.raises(InvalidRequest) as caught:
        await router.route(ctx_for("small-window", params={"tools": tools}))
    assert caught.value.code == "context_length_exceeded"
