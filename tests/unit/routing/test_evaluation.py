"""Router evaluation metrics: the routing curve, and what a routing costs per 1,000 prompts."""

import numpy as np
import pytest

from routing import evaluation
from routing.defaults import all_default_profiles
from routing.evaluation import Outcome
from routing.models import ModelProfile


def _profile(name: str) -> ModelProfile:
    return ModelProfile(**next(p for p in all_default_profiles() if p["name"] == name))


WEAK = np.array([1, 0, 0, 1])
STRONG = np.array([1, 1, 1, 0])


class TestCurve:
    def test_an_oracle_recovers_the_gap_at_the_share_of_prompts_that_need_it(self):
        scores = (STRONG - WEAK).astype(float)  # 1 where only the strong model is right
        routed = evaluation.curve(scores, WEAK, STRONG)
        assert routed.cpt50 == routed.cpt80 == 0.5  # the two that need it tie: one step
        assert routed.apgr > 1.0  # routing away from the strong model's own mistake beats it

    def test_tied_scores_are_never_split(self):
        routed = evaluation.curve(np.zeros(4), WEAK, STRONG)
        assert routed.shares.tolist() == [0.0, 1.0]


class TestCosts:
    COSTS = np.array([[1.0, 10.0], [1.0, 10.0], [2.0, 20.0], [2.0, 20.0]])

    def test_cost_at_each_share(self):
        scores = np.array([4.0, 3.0, 2.0, 1.0])
        routed = evaluation.curve(scores, WEAK, STRONG)
        costs = evaluation.costs_at(routed, scores, self.COSTS)
        assert costs["cost_per_1k_all_weak"] == 1500.0
        assert costs["cost_per_1k_all_strong"] == 15000.0
        # CPT(50%) sends the top 2 (the first two rows) to the strong model.
        assert routed.cpt50 == 0.5 and costs["cost_per_1k_cpt50"] == 6000.0

    def test_an_operating_point(self):
        sends = np.array([False, True, True, False])
        point = evaluation.operating_point(sends, WEAK, STRONG, self.COSTS)
        assert point == {"strong_share": 0.5, "accuracy": 1.0, "pgr": pytest.approx(2.0),
                         "cost_per_1k": 8250.0}

    def test_means_over_splits(self):
        assert evaluation.mean_point([{"a": 1.0, "b": 0.1234}, {"a": 2.0, "b": 0.0}]) == {
            "a": 1.5, "b": 0.0617}
        routed = evaluation.curve(np.array([4.0, 3.0, 2.0, 1.0]), WEAK, STRONG)
        row = evaluation.summarize([routed, routed], [{"cost": 1.0}, {"cost": 3.0}])
        assert row["apgr"] == round(routed.apgr, 4) and row["cost"] == 2.0
        assert row["apgr_capped"] <= row["apgr"]
        assert evaluation.curve_metrics(routed) == {k: row[k] for k in ("apgr", "cpt50", "cpt80")}

    def test_needs_and_call_costs_use_each_profiles_tokenizer_and_prices(self):
        test = [Outcome(prompt="What is the capital of France?", weak_correct=True,
                        strong_correct=True)]
        needs = evaluation.prompt_needs(test, 256)
        assert needs[0].max_output_tokens == 256 and needs[0].prompt_tokens["openai"] > 0
        costs = evaluation.call_costs(test, _profile("gpt-4o-mini"), _profile("gpt-4o"), 256)
        assert costs.shape == (1, 2) and 0 < costs[0, 0] < costs[0, 1]
