"""Management commands: load_default_models, sync_prices, import_routing_examples, eval_router,
refresh_observed_latency."""

import json
from decimal import Decimal
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from routing.catalog import catalog_entry_for, catalog_load, entry_changes
from routing.models import ModelProfile, RoutingExample
from tests.unit.routing.helpers import FakeEmbedder
from tests.unit.routing.helpers import outcomes_file as _outcomes

CATALOG = Path(__file__).resolve().parents[4] / "shared" / "data" / (
    "model_prices_and_context_window.json")

pytestmark = pytest.mark.django_db


@pytest.fixture
def fake_embedder(monkeypatch):
    import semcache.embedder

    embedder = FakeEmbedder()
    monkeypatch.setattr(semcache.embedder, "get_embedder", lambda: embedder)
    return embedder


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


class TestLoadDefaultModels:
    def test_idempotent(self):
        first = json.loads(run("load_default_models", "--json"))
        assert set(first.values()) == {"created"}
        assert {"simulated-efficient", "simulated-standard", "simulated-premium",
                "gpt-4o-mini", "gpt-4.1-mini", "gpt-4o", "gemini-2.5-flash",
                "claude-haiku-4-5", "claude-sonnet-4-5"} <= set(first)
        second = json.loads(run("load_default_models", "--json"))
        assert set(second.values()) == {"unchanged"}
        assert ModelProfile.objects.count() == len(first)

    def test_simulated_profiles_mirror_real_prices_and_say_so(self):
        run("load_default_models")
        pairs = {"simulated-efficient": "gpt-4o-mini", "simulated-standard": "gpt-4.1-mini",
                 "simulated-premium": "gpt-4o"}
        for simulated, real in pairs.items():
            s, r = ModelProfile.objects.get(name=simulated), ModelProfile.objects.get(name=real)
            assert s.provider == "simulated"
            assert (s.input_price_per_token, s.output_price_per_token) == (
                r.input_price_per_token, r.output_price_per_token)
            assert {"latency_ms", "chunk_interval_ms"} <= set(s.options)
            assert "simulated" in s.options["description"].lower()
        assert ModelProfile.objects.get(name="simulated-efficient").tier == "efficient"

    @pytest.mark.skipif(not CATALOG.exists(), reason="shared price catalog not present")
    def test_real_prices_match_the_public_catalog(self):
        run("load_default_models")
        catalog = catalog_load(CATALOG)
        # Simulated profiles mirror a real one; the local embedding model is free and in no
        # catalog.
        for profile in ModelProfile.objects.exclude(provider__in=["simulated", "local"]):
            found = catalog_entry_for(profile, catalog)
            assert found is not None, profile.name
            changes = entry_changes(profile, found[1])
            assert not changes, (profile.name, changes)


@pytest.mark.skipif(not CATALOG.exists(), reason="shared price catalog not present")
class TestSyncPrices:
    def test_dry_run_shows_diff_and_writes_nothing(self):
        run("load_default_models")
        ModelProfile.objects.filter(name="gpt-4o").update(input_price_per_token=Decimal("1"),
                                                           context_window=10)
        out = run("sync_prices", str(CATALOG), "--dry-run")
        assert "gpt-4o (gpt-4o) would change" in out
        assert "input_price_per_token: 1.000000000000000 -> 0.000002500000000" in out
        assert ModelProfile.objects.get(name="gpt-4o").input_price_per_token == Decimal("1")

    def test_updates_and_never_drops(self):
        run("load_default_models")
        ModelProfile.objects.filter(name="gpt-4o-mini").update(
            output_price_per_token=Decimal("0.5"), cached_input_price_per_token=None)
        ModelProfile.objects.create(name="house-model", provider="openai_compatible",
                                    upstream_model="house", input_price_per_token=1,
                                    output_price_per_token=2)
        report = json.loads(run("sync_prices", str(CATALOG), "--json"))
        assert report["changes"]["gpt-4o-mini"]["output_price_per_token"][1] == "0.000000600000000"
        assert "cached_input_price_per_token" in report["changes"]["gpt-4o-mini"]
        assert report["not_in_catalog"] == ["house-model", "llmops-minilm"]
        mini = ModelProfile.objects.get(name="gpt-4o-mini")
        assert mini.output_price_per_token == Decimal("0.0000006")
        assert mini.cached_input_price_per_token == Decimal("0.000000075")
        assert ModelProfile.objects.filter(name="house-model").exists()
        assert json.loads(run("sync_prices", str(CATALOG), "--json"))["changes"] == {}

    def test_simulated_profiles_follow_their_mirror(self):
        run("load_default_models")
        catalog = catalog_load(CATALOG)
        catalog["gpt-4o-mini"] = {**catalog["gpt-4o-mini"], "input_cost_per_token": 2e-07}
        path = Path(self.tmp) / "catalog.json"
        path.write_text(json.dumps(catalog))
        run("sync_prices", str(path))
        assert ModelProfile.objects.get(name="simulated-efficient").input_price_per_token == (
            Decimal("0.0000002"))

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path):
        self.tmp = tmp_path


def test_import_routing_examples(tmp_path, fake_embedder):
    path = tmp_path / "outcomes.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in [
        {"prompt": "What is 2+2?", "weak_correct": True, "strong_correct": True},
        {"prompt": "Prove Fermat's last theorem", "weak_correct": False, "strong_correct": True},
        {"prompt": "Summarize this", "model": "gpt-4o", "score": 0.5},
    ]) + "\n")
    result = json.loads(run("import_routing_examples", str(path), "--json"))
    assert result == {"file": str(path), "labels": 5, "added": 5}
    assert RoutingExample.objects.filter(tier="efficient", score=0).count() == 1
    assert RoutingExample.objects.filter(model_name="gpt-4o", score=0.5).count() == 1
    example = RoutingExample.objects.get(tier="premium", prompt="What is 2+2?")
    assert np.frombuffer(example.embedding, dtype="<f4").shape == (64,)
    again = json.loads(run("import_routing_examples", str(path), "--json"))
    assert again["added"] == 0


def test_eval_router_json(tmp_path, fake_embedder):
    path = _outcomes(tmp_path)
    result = json.loads(run("eval_router", "--folds", "3", str(path), "--json", "--cache-dir",
                            str(tmp_path / "cache")))
    assert {"apgr", "cpt50", "cpt80", "baselines"} <= set(result)
    assert result["apgr"] > result["baselines"]["random"]["apgr"]
    assert set(result["baselines"]) == {"weak-only", "random", "keyword"}
    assert [s["name"] for s in result["splits"]] == ["s0f0", "s0f1", "s0f2"]
    assert result["formats"] is True  # routing.learned.FORMATS, as the gateway
    off = json.loads(run("eval_router", "--folds", "3", str(path), "--json", "--cache-dir",
                         str(tmp_path / "cache"), "--formats", "off"))
    assert off["formats"] is False
    text = run("eval_router", "--train", str(path), "--test", str(path), "--cache-dir",
               str(tmp_path / "cache"))
    assert "learned" in text and "random" in text and "keyword" in text


def test_eval_router_measures_the_gateway_policy(tmp_path, fake_embedder, settings):
    settings.ROUTING_TIER_MIN_QUALITY = {"free": 0.6, "standard": 0.72, "premium": 0.8}
    settings.ROUTING_ESCALATION_MARGIN = 0.05
    path = _outcomes(tmp_path)
    result = json.loads(run("eval_router", "--folds", "3", str(path), "--json", "--cache-dir",
                            str(tmp_path / "cache")))
    # The existing keys still mean the learned router.
    assert result["apgr"] == result["learned"]["apgr"]
    policy_result = result["policy"]
    assert policy_result["escalation_margin"] == 0.05
    rules = policy_result["rules"]
    assert set(rules) == {"policy bar-only", "policy margin-only", "policy free 0.60",
                          "policy standard 0.72", "policy premium 0.80"}
    assert rules["policy bar-only"]["swept"] == "min_quality"
    assert rules["policy standard 0.72"]["min_quality"] == 0.72
    assert rules["policy margin-only"]["min_quality"] is None
    # With no bar, sweeping the margin is thresholding P(strong) - P(weak): the learned row.
    assert rules["policy margin-only"]["apgr"] == pytest.approx(result["apgr"], abs=0.02)
    points = {(p["rule"], p["escalation_margin"]): p for p in policy_result["operating_points"]}
    assert set(points) == {(rule, margin) for rule in rules if rule != "policy bar-only"
                           for margin in (None, 0.05)}
    for point in points.values():
        assert 0.0 <= point["strong_share"] <= 1.0
    # A higher bar never escalates less (same margin).
    assert (points["policy free 0.60", 0.05]["strong_share"]
            <= points["policy premium 0.80", 0.05]["strong_share"])
    text = run("eval_router", "--folds", "3", str(path), "--cache-dir", str(tmp_path / "cache"),
               "--min-quality", "0.7", "--margin", "0.1")
    assert "policy bar 0.70" in text and "policy margin-only" in text and "0.100" in text


def test_eval_router_policy_rows_come_from_policy_choose(tmp_path, fake_embedder, monkeypatch):
    from routing import policy

    real = policy.choose

    def always_cheapest(candidates, *args, **kwargs):
        choice = real(candidates, *args, **kwargs)
        return policy.Choice(candidates[0], "auto:quality", choice.predicted_quality,
                             choice.min_quality)

    monkeypatch.setattr(policy, "choose", always_cheapest)
    path = _outcomes(tmp_path)
    result = json.loads(run("eval_router", "--folds", "3", str(path), "--json", "--cache-dir",
                            str(tmp_path / "cache"), "--margin", "0.0"))
    # A policy that never escalates shows up as such: the evaluation cannot drift from it.
    assert all(p["strong_share"] == 0.0 for p in result["policy"]["operating_points"])
    assert result["learned"]["apgr"] > 0.5


def test_eval_router_repeats_average_every_fold_of_every_seed(tmp_path, fake_embedder):
    rows = [{"prompt": f"{'integral proof' if i % 2 else 'capital city'} question {i}",
             "weak_correct": bool(i % 2 == 0), "strong_correct": True} for i in range(60)]
    path = tmp_path / "outcomes.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    result = json.loads(run("eval_router", "--folds", "2", "--seed", "3", "--repeats", "2",
                            str(path), "--json", "--cache-dir", str(tmp_path / "cache")))
    assert [s["name"] for s in result["splits"]] == ["s3f0", "s3f1", "s4f0", "s4f1"]
    assert result["apgr"] == pytest.approx(
        np.mean([s["apgr"] for s in result["splits"]]), abs=1e-3)
    text = run("eval_router", "--folds", "2", "--repeats", "2", str(path), "--cache-dir",
               str(tmp_path / "cache"))
    assert "learned per split: s0f0" in text and "weak-only" in text


def test_refresh_observed_latency_from_the_ledger():
    from budgets.models import UsageRecord

    run("load_default_models")
    for i, latency in enumerate([100, 200, 300, 400, 1000]):
        UsageRecord.objects.create(request_id=f"r{i}", requested_model="auto",
                                   served_model="simulated-standard", latency_ms=latency,
                                   upstream_latency_ms=latency, ttft_ms=latency // 2)
    UsageRecord.objects.create(request_id="r-err", requested_model="auto",
                               served_model="simulated-standard", status="upstream_error")
    result = json.loads(run("refresh_observed_latency", "--json"))
    profile = ModelProfile.objects.get(name="simulated-standard")
    assert profile.observed_latency_p50_ms == 300
    assert 800 <= profile.observed_latency_p95_ms <= 1000
    assert profile.observed_ttft_p50_ms == 150
    assert profile.observed_error_rate == pytest.approx(1 / 6, abs=1e-3)
    assert profile.latency_ms == profile.observed_latency_p95_ms
    assert set(result) == {"simulated-standard"}


class LayeredFakeEmbedder(FakeEmbedder):
    """The fake embedder with two "intermediate layers": the vector shifted by one and two."""

    layers = (3, 5)

    def embed_layers_sync(self, texts):
        vectors = self.embed_sync(texts)
        return vectors, np.stack([np.roll(vectors, 1, axis=1), np.roll(vectors, 2, axis=1)],
                                 axis=1)


def test_imported_and_feedback_examples_store_the_embedders_layers(tmp_path, monkeypatch):
    import semcache.embedder
    from routing.selectors import stored_layers
    from routing.services import embedder_embed, routing_example_record_feedback

    embedder = LayeredFakeEmbedder()
    monkeypatch.setattr(semcache.embedder, "get_embedder", lambda: embedder)
    path = tmp_path / "outcomes.jsonl"
    path.write_text(json.dumps({"prompt": "What is 2+2?", "weak_correct": True,
                                "strong_correct": False}) + "\n")
    assert json.loads(run("import_routing_examples", str(path), "--json"))["added"] == 2
    vector = embedder.embed_sync(["What is 2+2?"])[0]
    for example in RoutingExample.objects.all():
        assert example.layers == "3,5"
        layers = stored_layers(example.layer_embeddings, example.layers, (5, 3))
        assert np.array_equal(layers[3], np.roll(vector, 1))
        assert np.array_equal(layers[5], np.roll(vector, 2))
        assert stored_layers(example.layer_embeddings, example.layers, (4,)) is None
    example = routing_example_record_feedback(prompt="Name a prime", model_name="gpt-4o",
                                              score=1.0, embed=embedder_embed(embedder))
    example.refresh_from_db()
    assert example.layers == "3,5" and len(bytes(example.layer_embeddings)) == 2 * 64 * 4
    # An embedder without layers (or a plain embed function) stores none.
    plain = routing_example_record_feedback(prompt="Name a prime", model_name="gpt-4o-mini",
                                            score=0.0, embed=FakeEmbedder().embed_sync)
    plain.refresh_from_db()
    assert plain.layers == "" and bytes(plain.layer_embeddings) == b""
    assert stored_layers(plain.layer_embeddings, plain.layers, (3,)) is None


def test_eval_router_with_and_without_layers(tmp_path, monkeypatch):
    import semcache.embedder

    monkeypatch.setattr(semcache.embedder, "get_embedder", lambda: LayeredFakeEmbedder())
    path = _outcomes(tmp_path)
    cache = str(tmp_path / "cache")
    layered = json.loads(run("eval_router", "--folds", "3", str(path), "--json",
                             "--cache-dir", cache, "--layers", "3,5"))
    assert layered["layers"] == [3, 5] and layered["temperature"] == 1.5
    final = json.loads(run("eval_router", "--folds", "3", str(path), "--json",
                           "--cache-dir", cache, "--layers", "none"))
    assert final["layers"] == [] and final["temperature"] is None
    assert layered["apgr"] != final["apgr"]  # the layer members changed the predictions
    with pytest.raises(CommandError, match="no pooled layer"):
        run("eval_router", "--folds", "3", str(path), "--cache-dir", cache, "--layers", "4")
