"""The k-nearest-neighbour quality predictor and the RouteLLM metrics."""

import numpy as np
import pytest

from routing import evaluation
from routing.models import ModelProfile
from routing.predictor import MODEL, TIER, KnnPredictor, predict_profile


def unit(*values) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def predictor():
    # Two topics: "math" (x axis) where the small model fails, "trivia" (y axis) where it is fine.
    vectors, targets, scores = [], [], []
    rng = np.random.default_rng(0)
    for _ in range(30):
        math = unit(1, 0.1 * rng.random(), 0.1 * rng.random())
        trivia = unit(0.1 * rng.random(), 1, 0.1 * rng.random())
        vectors += [math, trivia, math, trivia]
        targets += [(TIER, "efficient"), (TIER, "efficient"), (MODEL, "big"), (MODEL, "big")]
        scores += [0.0, 1.0, 1.0, 1.0]
    return KnnPredictor(k=10, prior_weight=2).fit(targets, np.stack(vectors), np.array(scores))


def test_neighbours_decide(predictor):
    math, trivia = unit(1, 0.05, 0), unit(0.05, 1, 0)
    assert predictor.predict((TIER, "efficient"), math, prior=0.5).quality < 0.2
    assert predictor.predict((TIER, "efficient"), trivia, prior=0.5).quality > 0.8
    assert predictor.predict((MODEL, "big"), math, prior=0.5).quality > 0.8


def test_prior_when_no_labels_or_far_away(predictor):
    assert predictor.predict((TIER, "premium"), unit(1, 0, 0), prior=0.7).quality == 0.7
    far = predictor.predict((TIER, "efficient"), unit(0, 0, 1), prior=0.7)
    assert far.quality == pytest.approx(0.7, abs=0.05)  # weights ~0: the prior dominates


def test_profile_uses_its_own_labels_then_its_tier_then_prior(predictor):
    big = ModelProfile(name="big", tier="premium", quality_score=0.3)
    small = ModelProfile(name="small", tier="efficient", quality_score=0.9)
    other = ModelProfile(name="x", tier="standard", quality_score=0.55)
    math = unit(1, 0.05, 0)
    assert predict_profile(predictor, big, math).quality > 0.8
    assert predict_profile(predictor, small, math).quality < 0.3
    assert predict_profile(predictor, other, math).quality == 0.55
    assert predict_profile(predictor, small, None).quality == 0.9


class TestCurve:
    weak = np.array([1, 0, 0, 1, 0, 1, 1, 0])
    strong = np.array([1, 1, 1, 1, 0, 1, 0, 1])

    def test_oracle_recovers_the_gap_first(self):
        oracle = (self.strong - self.weak) + np.arange(8) * 1e-3  # distinct: no ties
        curve = evaluation.curve(oracle, self.weak, self.strong)
        # weak 4/8, strong 6/8: the gap is 2 prompts; 3 prompts gain, so PGR 0.5 after one
        # strong call, 1.0 after two, 1.5 after three.
        assert curve.cpt50 == pytest.approx(1 / 8)
        assert curve.cpt80 == pytest.approx(2 / 8)
        assert curve.apgr > 1.0

    def test_reverse_oracle_is_worst(self):
        curve = evaluation.curve(-(self.strong - self.weak).astype(float), self.weak, self.strong)
        assert curve.apgr < 0.5
        assert curve.cpt80 == 1.0

    def test_random_is_about_half(self):
        rng = np.random.default_rng(1)
        weak = rng.random(4000) < 0.6
        strong = rng.random(4000) < 0.8
        apgrs = [evaluation.curve(evaluation.random_scores(4000, seed=100 + s), weak, strong).apgr
                 for s in range(5)]
        assert np.mean(apgrs) == pytest.approx(0.5, abs=0.05)

    def test_ties_are_never_split(self):
        curve = evaluation.curve(np.zeros(8), self.weak, self.strong)
        assert list(curve.shares) == [0.0, 1.0]
        assert curve.apgr == pytest.approx(0.5)


def test_keyword_baseline_levels():
    assert evaluation.keyword_complexity("Please analyze this contract") == 1.0
    assert evaluation.keyword_complexity("What is the capital of France?") == 0.0
    assert evaluation.keyword_complexity("Hello there") == 0.5


def test_learned_scores_route_hard_topics_to_strong():
    rng = np.random.default_rng(0)
    train, vectors = [], []
    for i in range(200):
        hard = i % 2 == 0
        vectors.append(unit(1, 0.2 * rng.random(), 0) if hard else unit(0, 1, 0.2 * rng.random()))
        prompt = "Solve 3x + 4 = 19 for x" if hard else "Name the largest ocean on Earth"
        train.append(evaluation.Outcome(prompt=f"{prompt} ({i})", weak_correct=not hard,
                                        strong_correct=True))
    test = [evaluation.Outcome(prompt="Solve 2x - 1 = 5 for x", weak_correct=False,
                               strong_correct=True),
            evaluation.Outcome(prompt="Name the smallest ocean on Earth", weak_correct=True,
                               strong_correct=True)]
    test_vectors = np.stack([unit(1, 0.1, 0), unit(0, 1, 0.1)])
    scores = evaluation.learned_scores(np.stack(vectors), train, test_vectors, test, k=10)
    assert scores[0] > scores[1]


def _labeled(n=240):
    rng = np.random.default_rng(0)
    texts, vectors, scores = [], [], []
    for i in range(n):
        hard = i % 2 == 0
        texts.append(("Compute the integral of x^2 + 3x = 7, show steps " if hard
                      else "What is the capital city of this country? ") + str(i))
        vectors.append(unit(1, 0.2 * rng.random(), 0.1) if hard
                       else unit(0.1, 1, 0.2 * rng.random()))
        scores.append(float(not hard) if rng.random() < 0.9 else float(hard))
    return texts, np.stack(vectors), np.array(scores)


def test_outcome_model_learns_from_text_and_neighbours():
    from routing.learned import OutcomeModel

    texts, vectors, scores = _labeled()
    assert OutcomeModel.can_fit(scores, min_examples=200)
    assert not OutcomeModel.can_fit(np.ones(300), min_examples=200)  # one outcome only
    model = OutcomeModel(k=20).fit(texts, vectors, scores)
    probabilities = model.predict(["Compute the integral of x^2 + 5x = 2, show steps",
                                   "What is the capital city of Peru?"],
                                  np.stack([unit(1, 0.1, 0.1), unit(0.1, 1, 0.1)]))
    assert probabilities[0] < 0.4 < 0.6 < probabilities[1]


def test_routing_predictor_prefers_learned_model_then_knn_then_prior():
    from routing.learned import OutcomeModel
    from routing.predictor import RoutingPredictor

    texts, vectors, scores = _labeled()
    knn = KnnPredictor(k=10).fit([(MODEL, "sparse")] * 4, vectors[:4], scores[:4])
    learned = {(TIER, "efficient"): OutcomeModel(k=20).fit(texts, vectors, scores)}
    predictor = RoutingPredictor(knn, learned)
    easy = unit(0.1, 1, 0.1)
    small = ModelProfile(name="small", tier="efficient", quality_score=0.1)
    sparse = ModelProfile(name="sparse", tier="premium", quality_score=0.5)
    other = ModelProfile(name="other", tier="standard", quality_score=0.42)
    assert predictor.predict(small, "What is the capital city of Chile?", easy).quality > 0.6
    assert predictor.predict(sparse, "x", easy).support > 0
    assert predictor.predict(other, "x", easy).quality == 0.42


def test_the_default_model_is_the_prior_until_the_deployment_labels_replace_it():
    from routing.learned import OutcomeModel
    from routing.predictor import RoutingPredictor

    texts, vectors, scores = _labeled()
    default = OutcomeModel(k=20).fit(texts, vectors, scores)  # efficient: fails the math
    math, trivia = unit(1, 0.1, 0.1), unit(0.1, 1, 0.1)
    math_text, trivia_text = "Compute the integral of x^2 + 5x = 2, show steps", "Capital of Peru?"
    small = ModelProfile(name="small", tier="efficient", quality_score=0.5)
    standard = ModelProfile(name="mid", tier="standard", quality_score=0.42)

    shipped = RoutingPredictor(KnnPredictor(), defaults={(TIER, "efficient"): default})
    assert shipped.predicts and not RoutingPredictor(KnnPredictor()).predicts
    assert shipped.predict(small, math_text, math).quality < 0.4
    assert shipped.predict(small, trivia_text, trivia).quality > 0.6
    assert shipped.predict(standard, math_text, math).quality == 0.42  # no default for its tier
    assert shipped.predict(small, math_text, None).quality == 0.5  # no embedding: static prior

    # A few labels of its own: the kNN vote, shrunk toward the default's prediction, moves the
    # prompts near them and leaves the others on the default.
    few = KnnPredictor(k=10).fit([(MODEL, "small")] * 3, np.stack([math] * 3), np.ones(3))
    adjusted = RoutingPredictor(few, defaults={(TIER, "efficient"): default})
    before = shipped.predict(small, math_text, math).quality
    assert adjusted.predict(small, math_text, math).quality > before + 0.2
    far = adjusted.predict(small, trivia_text, unit(0, 0.2, 1))
    assert far.quality == pytest.approx(
        shipped.predict(small, trivia_text, unit(0, 0.2, 1)).quality, abs=0.05)

    # Enough labels for a learned model of its own: the default no longer counts.
    flipped = OutcomeModel(k=20).fit(texts, vectors, 1.0 - scores)
    own = RoutingPredictor(KnnPredictor(), {(TIER, "efficient"): flipped},
                           defaults={(TIER, "efficient"): default})
    assert own.predict(small, math_text, math).quality > 0.6
