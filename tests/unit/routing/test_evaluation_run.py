"""One router evaluation run (routing.evaluation_run) and its report (routing.evaluation_report)."""

import pytest

from routing.evaluation_report import evaluation_json, evaluation_lines
from routing.evaluation_run import (
    EvaluationError,
    RouterEvalOptions,
    operating_margins,
    outcome_splits,
    policy_bars,
    router_evaluate,
)
from tests.unit.routing.helpers import FakeEmbedder, outcomes_file


@pytest.fixture
def outcomes(tmp_path, monkeypatch):
    import semcache.embedder

    monkeypatch.setattr(semcache.embedder, "get_embedder", lambda: FakeEmbedder())
    return outcomes_file(tmp_path, n=90)


def _options(tmp_path, **fields) -> RouterEvalOptions:
    return RouterEvalOptions(cache_dir=tmp_path / "cache", **fields)


class TestOptions:
    @pytest.mark.parametrize(("fields", "message"), [
        ({"folds": 2}, "--folds needs a FILE."),
        ({"folds": 2, "file": "x.jsonl", "repeats": 0}, "--repeats must be at least 1."),
        ({"train": "x.jsonl"}, "Give --train A --test B, or --folds N FILE."),
        ({"folds": 2, "file": "/nonexistent/outcomes.jsonl"}, "No such file"),
    ])
    def test_splits_refuse_what_cannot_run(self, tmp_path, fields, message):
        with pytest.raises(EvaluationError, match=message):
            outcome_splits(_options(tmp_path, **fields))

    def test_folds_of_every_repeat(self, tmp_path, outcomes):
        names, splits = outcome_splits(_options(tmp_path, folds=3, file=str(outcomes),
                                                seed=2, repeats=2))
        assert names == ["s2f0", "s2f1", "s2f2", "s3f0", "s3f1", "s3f2"]
        assert all(len(train) + len(test) == 90 for train, test in splits)

    def test_policy_rows_and_margins(self, settings):
        settings.ROUTING_TIER_MIN_QUALITY = {"free": 0.6, "premium": 0.8}
        settings.ROUTING_ESCALATION_MARGIN = 0.05
        assert list(policy_bars(None)) == ["policy bar-only", "policy margin-only",
                                           "policy free 0.60", "policy premium 0.80"]
        assert policy_bars([0.7])["policy bar 0.70"] == 0.7
        with pytest.raises(EvaluationError, match="between 0 and 1"):
            policy_bars([1.5])
        assert operating_margins(None) == [None, 0.05]
        assert operating_margins([0.1, 0.2]) == [None, 0.1, 0.2]


@pytest.mark.django_db
class TestRun:
    def test_a_run_and_its_report(self, tmp_path, outcomes):
        result = router_evaluate(options=_options(tmp_path, folds=3, file=str(outcomes),
                                                  layers="none", margin=[0.1]))
        assert result.split_names == ["s0f0", "s0f1", "s0f2"]
        assert set(result.summary) == {"learned", "weak-only", "random", "keyword"}
        assert result.summary["learned"]["apgr"] > result.summary["random"]["apgr"]
        assert {(p["rule"], p["escalation_margin"]) for p in result.operating} >= {
            ("policy margin-only", None), ("policy margin-only", 0.1)}
        report = evaluation_json(result)
        assert report["apgr"] == result.summary["learned"]["apgr"]
        assert report["folds"] == 3 and report["layers"] == [] and report["temperature"] is None
        lines = evaluation_lines(result)
        assert lines[0] == ("Routing between gpt-4o-mini (weak) and gpt-4o (strong) prices, "
                            "256 output tokens per call; 3 split(s).")
        assert lines[-1].startswith("learned per split: s0f0 ")
        assert any(line.split()[:3] == ["policy", "margin-only", "0.100"] for line in lines)

    @pytest.mark.parametrize(("fields", "message"), [
        ({"weak_model": "nope"}, "Unknown profile 'nope'"),
        ({"weak_model": "gpt-4o"}, "must name different profiles"),
        ({"layers": "4"}, "no pooled layer"),
        ({"layers": "four"}, "--layers"),
    ])
    def test_what_cannot_run_is_refused(self, tmp_path, outcomes, fields, message):
        with pytest.raises(EvaluationError, match=message):
            router_evaluate(options=_options(tmp_path, folds=2, file=str(outcomes), **fields))
