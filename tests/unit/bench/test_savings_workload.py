"""The savings bench's workload builder (bench/savings_workload.py) on small synthetic data."""

import pytest

from bench import savings_answers
from bench.savings_workload import (
    TARGET_REPEAT_SHARE,
    build,
    expected_repeat_share,
    qqp_clusters,
    repeat_share,
    solve_exponent,
)


def _outcomes(n: int) -> list[dict]:
    return [{"prompt": f"task {i}: compute {i} + {i}", "weak_correct": i % 3 != 0,
             "strong_correct": i % 5 != 0} for i in range(n)]


def _pairs(clusters: int) -> list[dict]:
    pairs = []
    for c in range(clusters):
        pairs.append({"text_a": f"question {c} a", "text_b": f"question {c} b", "label": 1})
        if c % 2:
            pairs.append({"text_a": f"question {c} b", "text_b": f"question {c} c", "label": 1})
        pairs.append({"text_a": f"question {c} a", "text_b": f"other {c}", "label": 0})
    return pairs


@pytest.fixture(scope="module")
def workload():
    return build(_outcomes(2000), _pairs(3000), requests=2000, seed=7)


def test_each_half_repeats_the_target_share(workload):
    lines = workload.lines
    tasks = [line["body"]["messages"][0]["content"] for line in lines
             if line["body"]["model"] == "auto"]
    clusters = [line["label"]["answer_key"] for line in lines
                if line["body"]["model"] == "bench-strong"]
    assert len(tasks) == len(clusters) == 1000
    assert abs(repeat_share(tasks) - TARGET_REPEAT_SHARE) <= 0.02
    assert abs(repeat_share(clusters) - TARGET_REPEAT_SHARE) <= 0.02


def test_no_prompt_is_both_in_the_workload_and_the_examples(workload):
    used = {line["body"]["messages"][0]["content"] for line in workload.lines}
    assert not used & {row["prompt"] for row in workload.examples}
    assert len(workload.examples) == 800


def test_lines_are_batch_lines_with_labels(workload):
    line = workload.lines[0]
    assert set(line) == {"custom_id", "method", "url", "body", "label"}
    assert line["url"] == "/v1/chat/completions"
    for line in workload.lines:
        if line["body"]["model"] == "auto":
            assert set(line["label"]) == {"weak_correct", "strong_correct"}
        else:
            assert line["label"]["answer_key"].startswith("qqp-")
    assert len({line["custom_id"] for line in workload.lines}) == 2000


def test_the_same_seed_builds_the_same_workload(workload):
    again = build(_outcomes(2000), _pairs(3000), requests=2000, seed=7)
    assert again.lines == workload.lines


def test_clusters_are_connected_duplicate_pairs():
    clusters = qqp_clusters(_pairs(4))
    assert sorted(map(len, clusters)) == [2, 2, 3, 3]
    assert all(not text.startswith("other") for group in clusters for text in group)


def test_solved_exponent_meets_the_share():
    exponent = solve_exponent(5000, 3000, 0.45)
    assert exponent > 0
    assert expected_repeat_share(5000, exponent, 3000) == pytest.approx(0.45, abs=1e-6)


def test_a_pool_that_repeats_too_much_when_uniform_is_refused():
    with pytest.raises(ValueError, match="more distinct items"):
        solve_exponent(100, 1000, 0.45)


def test_a_cached_answer_is_correct_only_for_its_own_key():
    label = {"answer_key": "qqp-1"}
    stored = savings_answers.answer_content("how to learn python?", label, "strong")
    assert savings_answers.score("best way to learn python?", label, stored) == 1
    assert savings_answers.score("how to learn java?", {"answer_key": "qqp-2"}, stored) == 0
    task = {"weak_correct": 0, "strong_correct": 1}
    wrong = savings_answers.answer_content("2 + 2?", task, "weak")
    assert savings_answers.score("2 + 2?", task, wrong) == 0
    right = savings_answers.answer_content("2 + 2?", task, "strong")
    assert savings_answers.score("2 + 2?", task, right) == 1
    assert savings_answers.score("3 + 3?", task, right) == 0
