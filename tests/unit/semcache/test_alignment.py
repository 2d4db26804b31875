"""Token-alignment features: weights, alignment of token vectors, the real model's verdicts."""

import numpy as np
import pytest

from semcache.alignment import IDENTICAL, align, token_embedder_for, token_weights


class TestTokenWeights:
    def test_punctuation_weighs_nothing_and_function_words_little(self):
        weights = token_weights("How do I learn Python?")
        assert len(weights) == 6  # how do i learn python ?
        assert weights[-1] == 0.0
        assert max(weights[:3]) < 0.1 < min(weights[3:5])

    def test_rare_words_weigh_more_than_common_ones(self):
        common, rare = token_weights("people"), token_weights("kubernetes")
        assert rare.max() > common.max()


class TestAlign:
    def test_identical_tokens_give_the_identical_features(self):
        rng = np.random.default_rng(0)
        tokens = rng.standard_normal((5, 384)).astype(np.float32)
        weights = np.array([0.05, 0.5, 0.8, 0.0, 0.9], dtype=np.float32)
        features = align(tokens, weights, tokens.copy(), weights)
        assert features.vector() == pytest.approx(list(IDENTICAL), abs=1e-5)

    def test_a_token_without_counterpart_is_the_weakest_match(self):
        rng = np.random.default_rng(1)
        shared = rng.standard_normal((3, 384)).astype(np.float32)
        odd = rng.standard_normal((1, 384)).astype(np.float32)
        weights = np.full(4, 0.8, dtype=np.float32)
        features = align(np.vstack([shared, odd]), weights, np.vstack([shared, shared[:1]]),
                         weights)
        assert features.min_query < 0.3 and features.min_stored == pytest.approx(1.0, abs=1e-5)
        assert features.missing_query > 0.5
        assert features.missing_stored == pytest.approx(0.0, abs=1e-5)

    def test_empty_side_is_maximally_different(self):
        features = align(np.zeros((0, 384)), np.zeros(0), np.ones((2, 384)), np.ones(2))
        assert features.recall == 0.0 and features.precision == 0.0


class _NoTokens:
    pass


def test_token_embedder_for_an_object_without_a_model_is_none():
    assert token_embedder_for(_NoTokens()) is None


@pytest.fixture(scope="module")
def tokens():
    from semcache.embedder import get_embedder

    return token_embedder_for(get_embedder())


def _decide(tokens, query, stored, cosine=None):
    from django.conf import settings

    from semcache.decision import decide
    from semcache.index import Candidate

    if cosine is None:
        vectors = tokens.embed_sync([query, stored])
        cosine = float(vectors[0] @ vectors[1])
    return decide(query, [Candidate("x", cosine, stored)],
                  threshold=settings.SEMCACHE_DECISION_THRESHOLDS["alignment"],
                  token_embedder=tokens)


class TestWithTheModel:
    """The alignment decision with the real MiniLM token vectors, at its operating point."""

    def test_token_vectors_drop_the_special_tokens(self, tokens):
        vectors = tokens.embed_tokens_sync(["How do I learn Python?", "hi"])
        assert [v.shape for v in vectors] == [(6, 384), (1, 384)]

    @pytest.mark.parametrize("query,stored", [
        ("how do i learn python quickly?", "how do i learn java quickly?"),
        ("what is the best laptop for gaming?", "what is the best laptop for programming?"),
        ("how do i cook rice in a microwave?", "how do i cook pasta in a microwave?"),
    ])
    def test_a_swapped_content_word_is_refused_even_at_high_cosine(self, tokens, query, stored):
        # Lower case, so the entity guard cannot see the swap; and a cosine as high as a
        # paraphrase's (the real one is lower): the penalties alone must refuse.
        assert _decide(tokens, query, stored, cosine=0.97) is None

    @pytest.mark.parametrize("query,stored", [
        ("How do I reset my password?", "How can I reset my password?"),
        ("Is 7 a prime number?", "Is seven a prime number?"),
    ])
    def test_a_paraphrase_is_accepted(self, tokens, query, stored):
        assert _decide(tokens, query, stored) is not None
