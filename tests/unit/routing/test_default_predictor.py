"""The shipped default predictor: its file, and what happens when it is off or cannot be fitted."""

import json

import pytest

from routing import default_predictor
from routing.default_predictor import SHIPPED_EXAMPLES, default_models


def test_the_shipped_file_is_outcome_rows_of_both_kinds():
    rows = [json.loads(line) for line in SHIPPED_EXAMPLES.read_text().splitlines()]
    assert len(rows) >= 400 and len({r["prompt"] for r in rows}) == len(rows)
    kinds = {(r["weak_correct"], r["strong_correct"]) for r in rows}
    assert kinds == {(1, 1), (0, 1), (0, 0)}
    assert all(set(r) == {"prompt", "weak_correct", "strong_correct"} for r in rows)


def test_off_when_the_setting_is_empty(settings):
    settings.ROUTING_DEFAULT_EXAMPLES = ""
    assert default_models() == {}


def test_an_embedder_that_fails_leaves_routing_on_priors(settings, monkeypatch, caplog):
    import semcache.embedder

    class Broken:
        def embed_sync(self, texts):
            raise RuntimeError("no model files")

    settings.ROUTING_DEFAULT_EXAMPLES = str(SHIPPED_EXAMPLES)
    monkeypatch.setattr(semcache.embedder, "get_embedder", lambda: Broken())
    monkeypatch.setattr(default_predictor, "_fitted", {})
    assert default_models() == {}
    assert "Fitting the default routing predictor" in caplog.text


@pytest.mark.parametrize("column", ["weak_correct", "strong_correct"])
def test_a_file_with_one_outcome_fits_no_model_for_it(settings, tmp_path, monkeypatch, column):
    import numpy as np

    import semcache.embedder

    class Small:
        def embed_sync(self, texts):
            rng = np.random.default_rng(0)
            vectors = rng.normal(size=(len(texts), 8)).astype(np.float32)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    path = tmp_path / "outcomes.jsonl"
    other = "strong_correct" if column == "weak_correct" else "weak_correct"
    path.write_text("".join(json.dumps({"prompt": f"prompt {i}", column: 1, other: i % 2}) + "\n"
                            for i in range(240)))
    settings.ROUTING_DEFAULT_EXAMPLES = str(path)
    monkeypatch.setattr(semcache.embedder, "get_embedder", lambda: Small())
    monkeypatch.setattr(default_predictor, "_fitted", {})
    fitted = default_models()
    tier = "efficient" if column == "weak_correct" else "premium"
    assert ("tier", tier) not in fitted and len(fitted) == 1
