"""The decision: threshold on adjusted similarity, hard guards, identical text."""

from semcache.decision import decide
from semcache.index import Candidate


class TestDecision:
    def test_below_threshold_is_a_miss(self):
        assert decide("a b c", [Candidate("x", 0.80, "a b d")], threshold=0.9) is None

    def test_identical_text_passes(self):
        verdict = decide("What is AI?", [Candidate("x", 0.97, "What is AI?")], threshold=0.99)
        assert verdict and verdict.candidate.entry_id == "x"

    def test_guard_refuses_a_close_candidate_and_takes_the_next(self):
        candidates = [Candidate("a", 0.97, "Is 9 a prime number?"),
                      Candidate("b", 0.96, "Is seven a prime number?")]
        verdict = decide("Is 7 a prime number?", candidates, threshold=0.9)
        assert verdict.candidate.entry_id == "b"

    def test_guards_off_takes_the_nearest(self):
        candidates = [Candidate("a", 0.97, "Is 9 a prime number?")]
        assert decide("Is 7 a prime number?", candidates, threshold=0.9, guards=False)
