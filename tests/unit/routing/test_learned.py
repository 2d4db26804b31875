"""The learned model's hand-rolled inference matches what sklearn and brute force compute."""

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from routing.learned import _WordScorer, neighbour_ladder, neighbour_rates


def test_word_scorer_matches_tfidf_transform_dot_weights():
    texts = ["the cat sat on the mat", "a dog sat on a log", "the cat and the dog",
             "what is the capital of France?", "solve 3x + 4 = 19 for x"]
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True).fit(texts)
    weights = np.random.default_rng(0).normal(size=len(vectorizer.vocabulary_))
    queries = texts + ["the cat the cat the cat on a mat", "nothing known here", ""]
    expected = vectorizer.transform(queries) @ weights
    assert _WordScorer(vectorizer, weights).logits(queries) == pytest.approx(expected, abs=1e-9)


def test_neighbour_rates_match_brute_force():
    rng = np.random.default_rng(1)
    index = rng.normal(size=(60, 8)).astype(np.float32)
    index /= np.linalg.norm(index, axis=1, keepdims=True)
    scores = rng.random(60)
    ks = (1, 5, 20)
    rates = neighbour_rates(index, scores, index, ks=ks, exclude_self=True)
    for row in (0, 17, 59):
        sims = index @ index[row]
        sims[row] = -np.inf
        order = np.argsort(-sims)
        for column, k in enumerate(ks):
            weights = np.clip(sims[order[:k]], 1e-6, 1)
            assert rates[row, column] == pytest.approx(
                (weights * scores[order[:k]]).sum() / weights.sum(), rel=1e-5)
        assert rates[row, -1] == pytest.approx(sims[order[0]], rel=1e-5)
    # More neighbours asked for than indexed: every neighbour counts.
    small = neighbour_rates(index[:3], scores[:3], index[3:5], ks=(10,))
    weights = np.clip(index[3:5] @ index[:3].T, 1e-6, 1)
    assert small[:, 0] == pytest.approx((weights * scores[:3]).sum(1) / weights.sum(1), rel=1e-5)


def test_neighbour_ladder_spans_topic_to_domain():
    assert neighbour_ladder(80) == (10, 27, 80, 320)
    assert neighbour_ladder(1) == (1, 4)


def test_one_prompt_predicts_as_in_a_batch():
    from routing.features import feature_matrix
    from routing.learned import OutcomeModel

    rng = np.random.default_rng(2)
    texts = [("Compute the integral of x^2, show steps " if i % 2 else "Name the capital of ")
             + str(i) for i in range(120)]
    vectors = rng.normal(size=(120, 6)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = (np.arange(120) % 2 == 0).astype(float)
    model = OutcomeModel(k=8).fit(texts, vectors, scores)
    batch = model.predict(texts[:12], vectors[:12])  # above SINGLE_THREAD_ROWS
    for row in (0, 5, 11):
        one = model.predict([texts[row]], vectors[row:row + 1],
                            features=feature_matrix([texts[row]]))
        # Similarities are float32: one row (gemv) and a block (gemm) round differently, by
        # ~1e-9 in the probability on this machine; a real path difference shows as >1e-3.
        assert one[0] == pytest.approx(batch[row], abs=1e-7)


def test_predict_averages_the_members_probabilities():
    from routing.learned import OutcomeModel

    rng = np.random.default_rng(3)
    texts = [("Prove that the sum of " if i % 3 else "Which planet is ") + str(i)
             for i in range(90)]
    vectors = rng.normal(size=(90, 5)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    scores = (np.arange(90) % 3 != 0).astype(float)
    model = OutcomeModel(k=8).fit(texts, vectors, scores)
    text_logit, stack_logit = model.member_logits(texts[:20], vectors[:20])
    expected = (1 / (1 + np.exp(-text_logit)) + 1 / (1 + np.exp(-stack_logit))) / 2
    assert model.predict(texts[:20], vectors[:20]) == pytest.approx(expected, abs=1e-12)


def _layered_examples(n=160, seed=3):
    """Prompts whose outcome only layer 3 tells apart: the final vectors are noise, the words
    the same for both outcomes."""
    rng = np.random.default_rng(seed)
    texts = [f"Answer question number {i} of the quiz" for i in range(n)]
    scores = (np.arange(n) % 2 == 0).astype(float)
    final = rng.normal(size=(n, 6)).astype(np.float32)
    layer3 = rng.normal(scale=0.3, size=(n, 6)).astype(np.float32)
    layer3[:, 0] += np.where(scores > 0.5, 1.0, -1.0)
    final /= np.linalg.norm(final, axis=1, keepdims=True)
    layer3 /= np.linalg.norm(layer3, axis=1, keepdims=True)
    return texts, final, {3: layer3}, scores


def test_layer_members_predict_when_the_request_brings_the_layers():
    from routing.learned import OutcomeModel

    texts, final, layers, scores = _layered_examples()
    model = OutcomeModel(k=8, layers=(3,), temperature=1.5).fit(
        texts[:120], final[:120], scores[:120], layers={3: layers[3][:120]})
    assert model.layered
    held_out = model.predict(texts[120:], final[120:], layers={3: layers[3][120:]})
    good, bad = held_out[scores[120:] > 0.5], held_out[scores[120:] < 0.5]
    assert good.min() > bad.max()  # layer 3 separates them; the words and final vectors cannot
    one = model.predict(texts[120:121], final[120:121], layers={3: layers[3][120:121]})
    assert one[0] == pytest.approx(held_out[0], abs=1e-9)


def test_without_layers_the_prediction_is_the_final_only_model():
    from routing.learned import OutcomeModel

    texts, final, layers, scores = _layered_examples()
    layered = OutcomeModel(k=8, layers=(3,), temperature=1.5).fit(
        texts, final, scores, layers=layers)
    plain = OutcomeModel(k=8).fit(texts, final, scores)
    expected = plain.predict(texts[:30], final[:30])
    # A request without layers (embedder unavailable, an old caller), or without the layer
    # the model uses, gets exactly the prediction of the model before layers.
    assert layered.predict(texts[:30], final[:30]) == pytest.approx(expected, abs=1e-12)
    assert layered.predict(texts[:30], final[:30], layers={5: layers[3][:30]}) == (
        pytest.approx(expected, abs=1e-12))
    assert not layered.uses_layers(None) and layered.uses_layers({3: layers[3][:1]})
    # Fitted without the examples' layers, a model with `layers` set is the plain one.
    unlayered = OutcomeModel(k=8, layers=(3,), temperature=1.5).fit(texts, final, scores)
    assert not unlayered.layered
    assert unlayered.predict(texts[:30], final[:30], layers={3: layers[3][:30]}) == (
        pytest.approx(expected, abs=1e-12))
