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


def _two_format_examples(n_choices=240, n_open=240, seed=4):
    """Multiple-choice and open prompts in which the same word means opposite outcomes: "proof"
    is hard as an open problem and easy among lettered options (the vectors are noise)."""
    rng = np.random.default_rng(seed)
    texts, scores = [], []
    for i in range(n_choices + n_open):
        hard_word = i % 2 == 0
        stem = f"{'proof' if hard_word else 'fact'} item {i}"
        if i < n_choices:
            texts.append(f"{stem}?\nA. one\nB. two\nC. three\nD. four\nAnswer:")
            scores.append(1.0 if hard_word else 0.0)
        else:
            texts.append(f"{stem}: work it out step by step.")
            scores.append(0.0 if hard_word else 1.0)
    vectors = rng.normal(size=(len(texts), 6)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return texts, vectors, np.array(scores)


def test_prompt_formats_tell_lettered_options_from_open_prompts():
    from routing.features import CHOICES, OPEN, feature_matrix, prompt_formats

    texts = ["Which is a prime?\nA. 4\nB. 6\nC. 7\nD. 9\nAnswer:",
             "Natalia sold clips to 48 of her friends. How many did she sell?",
             "Explain plan A. Then plan B."]
    assert list(prompt_formats(feature_matrix(texts))) == [CHOICES, OPEN, OPEN]


def test_each_format_gets_its_own_members_when_it_has_enough_examples():
    from routing.features import CHOICES, OPEN
    from routing.learned import OutcomeModel

    texts, vectors, scores = _two_format_examples()
    train = np.r_[0:200, 240:440]
    test = np.r_[200:240, 440:480]
    split = OutcomeModel(k=8, min_format_examples=150).fit(
        [texts[i] for i in train], vectors[train], scores[train])
    assert split.format_sizes == {CHOICES: 200, OPEN: 200}
    pooled = OutcomeModel(k=8, formats=False).fit(
        [texts[i] for i in train], vectors[train], scores[train])
    assert pooled.format_sizes == {}

    def accuracy(model):
        predicted = model.predict([texts[i] for i in test], vectors[test])
        return float(np.mean((predicted > 0.5) == (scores[test] > 0.5)))

    # One regression can use a word that means opposite things in the two formats only through
    # what else differs between them (here the prompts' lengths): 79% on these examples.
    assert accuracy(split) == 1.0
    assert accuracy(pooled) < 0.85
    # A prompt is predicted by its own format's members: those of a model of that format alone.
    alone = OutcomeModel(k=8, formats=False).fit(
        [texts[i] for i in train[:200]], vectors[train[:200]], scores[train[:200]])
    choices = [texts[i] for i in test[:40]]
    assert split.predict(choices, vectors[test[:40]]) == pytest.approx(
        alone.predict(choices, vectors[test[:40]]), abs=1e-12)
    # One prompt of either format (what a request brings) predicts as in a mixed batch.
    batch = split.predict([texts[i] for i in test], vectors[test])
    for row in (0, 45):
        one = split.predict([texts[test[row]]], vectors[test[row]:test[row] + 1])
        assert one[0] == pytest.approx(batch[row], abs=1e-7)


def test_a_format_with_too_few_examples_is_predicted_by_the_model_of_all_examples():
    from routing.features import OPEN
    from routing.learned import OutcomeModel

    texts, vectors, scores = _two_format_examples(n_choices=40, n_open=240)
    split = OutcomeModel(k=8, min_format_examples=150).fit(texts, vectors, scores)
    assert split.format_sizes == {OPEN: 240}
    pooled = OutcomeModel(k=8, formats=False).fit(texts, vectors, scores)
    assert split.predict(texts[:40], vectors[:40]) == pytest.approx(
        pooled.predict(texts[:40], vectors[:40]), abs=1e-12)
    # Examples of one format only: that format's members serve every prompt (fitted once).
    only_open = OutcomeModel(k=8, min_format_examples=150).fit(
        texts[40:], vectors[40:], scores[40:])
    assert only_open.format_sizes == {OPEN: 240}
    assert only_open.predict(texts[:5], vectors[:5]).shape == (5,)
    # No prompts: no predictions, whatever the members.
    assert split.predict([], np.zeros((0, 6), np.float32)).shape == (0,)
