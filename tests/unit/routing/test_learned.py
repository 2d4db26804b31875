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
