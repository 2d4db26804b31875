"""The decision: adjusted similarity against a threshold, hard guards, top-k re-ranking."""

import json
import zlib

import numpy as np
import pytest

from semcache.decision import PARAMS_PATH, decide, load_params
from semcache.index import Candidate


class FakeTokens:
    """Token vectors from a table: text -> vectors; counts its calls."""

    def __init__(self, table=None, fail=False):
        self.table = table or {}
        self.fail = fail
        self.calls: list[list[str]] = []

    def embed_tokens_sync(self, texts):
        self.calls.append(list(texts))
        if self.fail:
            raise RuntimeError("no token vectors today")
        return [self.table.get(t, _vectors(t)) for t in texts]


def _vectors(text: str) -> np.ndarray:
    """Return one vector per word: the same word gives the same vector in every text."""
    out = []
    for word in text.lower().replace("?", " ?").split():
        rng = np.random.default_rng(zlib.crc32(word.encode()))
        out.append(rng.standard_normal(384))
    return np.asarray(out, dtype=np.float32)


class TestDecision:
    def test_below_threshold_is_a_miss(self):
        assert decide("a b c", [Candidate("x", 0.80, "a b d")], threshold=0.9) is None

    def test_identical_text_passes(self):
        verdict = decide("What is AI?", [Candidate("x", 0.97, "What is AI?")], threshold=0.99)
        assert verdict and verdict.candidate.entry_id == "x"

    def test_guard_refuses_a_close_candidate_and_takes_the_next(self):
        candidates = [Candidate("a", 0.97, "Is 9 a prime number?"),
                      Candidate("b", 0.96, "Is seven a prime number?")]
        # Token vectors that see "seven" as "7", as the model does.
        tokens = FakeTokens({"Is seven a prime number?": _vectors("Is 7 a prime number?")})
        verdict = decide("Is 7 a prime number?", candidates, threshold=0.9,
                         token_embedder=tokens)
        assert verdict.candidate.entry_id == "b"

    def test_guards_off_takes_the_nearest(self):
        candidates = [Candidate("a", 0.97, "Is 9 a prime number?")]
        assert decide("Is 7 a prime number?", candidates, threshold=0.9, guards=False)

    @pytest.mark.parametrize("query,stored", [
        ("Is it safe to eat eggs every day?", "Is it not safe to eat eggs every day?"),
        ("Why can't I sleep at night?", "Why can I sleep at night?"),
        ("What is 15% of 200?", "What is 15% of 300?"),
        ("How many days are in 2 weeks?", "How many days are in 3 weeks?"),
        ("How do I learn Python quickly?", "How do I learn Java quickly?"),
        ("What is the population of Paris?", "What is the population of Berlin?"),
        ("Should I learn Python before Java?", "Should I learn Java before Python?"),
    ])
    def test_negation_number_entity_swaps_are_refused_even_if_tokens_align(self, query, stored):
        # Token vectors claiming a perfect match: the hard guards still refuse.
        same = _vectors(query)
        tokens = FakeTokens({query: same, stored: same})
        assert decide(query, [Candidate("x", 0.995, stored)], threshold=0.5,
                      token_embedder=tokens) is None
        assert decide(query, [Candidate("x", 0.995, stored)], threshold=0.5) is None

    def test_the_best_adjusted_candidate_wins_not_the_nearest(self):
        query = "how can i lose weight fast?"
        near_miss = "how can i gain weight fast?"
        paraphrase = "how can i fast lose weight?"  # same words, other order
        candidates = [Candidate("a", 0.985, near_miss), Candidate("b", 0.98, paraphrase)]
        verdict = decide(query, candidates, threshold=0.85, token_embedder=FakeTokens())
        assert verdict is not None and verdict.candidate.entry_id == "b"

    def test_one_token_pass_for_the_gray_zone_only(self):
        tokens = FakeTokens()
        candidates = [Candidate("a", 0.97, "how do i bake bread?"),  # "home" missing: sunk
                      Candidate("b", 0.96, "how to bake bread at home?"),
                      Candidate("c", 0.95, "how do i bake bread at home?!"),
                      Candidate("d", 0.70, "how do i bake a cake at home?")]  # below
        decide("how do i bake bread at home?", candidates, threshold=0.9, token_embedder=tokens)
        assert tokens.calls == [["how do i bake bread at home?", "how to bake bread at home?",
                                 "how do i bake bread at home?!"]]

    def test_no_token_pass_below_the_threshold_or_for_identical_text(self):
        tokens = FakeTokens()
        decide("q one", [Candidate("a", 0.80, "q two")], threshold=0.9, token_embedder=tokens)
        decide("q one", [Candidate("a", 0.99, "q one")], threshold=0.9, token_embedder=tokens)
        assert tokens.calls == []

    def test_a_failing_token_embedder_falls_back_to_the_stricter_lexical_model(self):
        params = load_params()
        query, stored = "how do i bake bread at home?", "how can i bake bread at home?"
        candidates = [Candidate("a", 0.97, stored)]
        tokens = FakeTokens(fail=True)
        lexical = decide(query, candidates, threshold=0.9, token_embedder=tokens)
        assert tokens.calls  # it was tried
        assert lexical == decide(query, candidates, threshold=0.9)
        if params.fallback_offset > 0:
            just_above = 0.97 - params.fallback_offset + 0.001
            assert decide(query, candidates, threshold=just_above) is None

    def test_scores_never_exceed_the_cosine(self):
        query = "what is the best way to learn guitar?"
        candidates = [Candidate("a", 0.95, "what is the best way to learn the guitar?")]
        verdict = decide(query, candidates, threshold=0.5, token_embedder=FakeTokens())
        assert verdict is not None and verdict.score <= 0.95


class TestParams:
    def test_penalties_are_non_negative(self):
        params = load_params()
        for weight in (*params.lexical, *params.full_lexical, *params.full_alignment):
            assert weight >= 0

    def test_the_alignment_threshold_is_its_fitted_operating_point(self, settings):
        raw = json.loads(PARAMS_PATH.read_text())
        assert settings.SEMCACHE_DECISION_THRESHOLDS["alignment"] == pytest.approx(
            raw["full"]["threshold"])

    def test_the_default_threshold_is_the_configured_decisions(self, settings):
        assert settings.SEMCACHE_DECISION == "guards"
        assert settings.CACHE_SIMILARITY_THRESHOLD == settings.SEMCACHE_DECISION_THRESHOLDS[
            "guards"]


class TestGuardsDecision:
    """penalties=False: the cosine of the candidates no hard guard refuses."""

    def test_the_cosine_decides_without_a_token_pass(self):
        tokens = FakeTokens()
        stored = "what is the best way to learn the guitar quickly as an adult beginner?"
        verdict = decide("how do adults learn guitar fast?", [Candidate("x", 0.97, stored)],
                         threshold=0.968, penalties=False, token_embedder=tokens)
        assert verdict is not None and verdict.score == verdict.similarity == 0.97
        assert tokens.calls == []
        assert decide("how do adults learn guitar fast?", [Candidate("x", 0.96, stored)],
                      threshold=0.968, penalties=False) is None

    @pytest.mark.parametrize("query,stored", [
        ("Is 7 a prime number?", "Is 9 a prime number?"),
        ("Is it safe to eat raw eggs?", "Is it not safe to eat raw eggs?"),
        ("What is the capital of France?", "What is the capital of Germany?"),
    ])
    def test_hard_guards_still_refuse(self, query, stored):
        assert decide(query, [Candidate("x", 0.99, stored)], threshold=0.9,
                      penalties=False) is None

    def test_a_refused_nearest_gives_way_to_the_next(self):
        candidates = [Candidate("a", 0.995, "Is 9 a prime number?"),
                      Candidate("b", 0.975, "is 7 a prime number")]
        verdict = decide("Is 7 a prime number?", candidates, threshold=0.968, penalties=False)
        assert verdict is not None and verdict.candidate.entry_id == "b"

    def test_identical_text_passes_at_any_threshold(self):
        verdict = decide("How do I bake bread?", [Candidate("x", 0.5, " How do I  bake bread? ")],
                         threshold=0.99, penalties=False)
        assert verdict is not None and verdict.score == 1.0

    def test_configured_options_follow_the_setting(self, settings):
        from semcache.decision import configured_options

        assert configured_options(object()) == {"penalties": False, "token_embedder": None}
        settings.SEMCACHE_DECISION = "alignment"
        options = configured_options(FakeTokens())
        assert options["penalties"] is True and options["token_embedder"] is not None
