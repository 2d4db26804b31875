"""The decision: the cosine after the hard guards, against a threshold, over the top candidates."""

import pytest

from semcache.decision import decide
from semcache.index import Candidate


class TestDecision:
    def test_below_threshold_is_a_miss(self):
        assert decide("a b c", [Candidate("x", 0.80, "a b d")], threshold=0.9) is None

    def test_identical_text_passes(self):
        verdict = decide("What is AI?", [Candidate("x", 0.97, "What is AI?")], threshold=0.99)
        assert verdict and verdict.candidate.entry_id == "x"

    def test_identical_text_passes_at_any_threshold(self):
        verdict = decide("How do I bake bread?", [Candidate("x", 0.5, " How do I  bake bread? ")],
                         threshold=0.99)
        assert verdict is not None and verdict.score == 1.0

    def test_the_cosine_decides(self):
        stored = "what is the best way to learn the guitar quickly as an adult beginner?"
        verdict = decide("how do adults learn guitar fast?", [Candidate("x", 0.97, stored)],
                         threshold=0.968)
        assert verdict is not None and verdict.score == verdict.similarity == 0.97
        assert decide("how do adults learn guitar fast?", [Candidate("x", 0.96, stored)],
                      threshold=0.968) is None

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
        ("What is the capital of France?", "What is the capital of Germany?"),
        ("Should I learn Python before Java?", "Should I learn Java before Python?"),
    ])
    def test_negation_number_entity_order_swaps_are_refused(self, query, stored):
        assert decide(query, [Candidate("x", 0.995, stored)], threshold=0.5) is None

    def test_a_refused_nearest_gives_way_to_the_next(self):
        candidates = [Candidate("a", 0.995, "Is 9 a prime number?"),
                      Candidate("b", 0.975, "is 7 a prime number")]
        verdict = decide("Is 7 a prime number?", candidates, threshold=0.968)
        assert verdict is not None and verdict.candidate.entry_id == "b"

    def test_the_most_similar_passing_candidate_wins(self):
        candidates = [Candidate("a", 0.97, "how do i bake bread at home"),
                      Candidate("b", 0.98, "how do i bake bread at home?!"),
                      Candidate("c", 0.70, "how do i bake a cake at home?")]
        verdict = decide("how do i bake bread in my home?", candidates, threshold=0.9)
        assert verdict is not None and verdict.candidate.entry_id == "b"

    def test_the_default_threshold_is_the_fitted_operating_point(self, settings):
        assert settings.CACHE_SIMILARITY_THRESHOLD == 0.962
