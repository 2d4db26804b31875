"""Judged evaluation (semcache/judged.py) on synthetic pairs: loading and hash checks, judged
precision with its UNSURE-both-ways interval, judged recall and coverage."""

import json
from pathlib import Path

import pytest

from semcache.evaluation import Pair, load_pairs
from semcache.judged import (
    KINDS,
    JudgedPair,
    Outcome,
    applicable,
    judged_report,
    load_verdicts,
    pair_hash,
    verdict_counts,
    wilson,
)

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "semcache" / "data" / "judged_qqp_dev.jsonl"
QQP = ROOT.parent / "shared" / "data" / "qqp_pairs_dev.jsonl"
# Line N of a pairs file is PAIRS[N - 1]; queries are text_b, stored questions text_a.
PAIRS = [
    Pair("How do I boil an egg?", "How can I boil an egg?", 1),                     # 1
    Pair("Is tea healthier than coffee?", "Is coffee healthier than tea?", 0),      # 2
    Pair("What does this diagram show?", "What does the diagram below show?", 0),   # 3
    Pair("How do I plant tulips?", "When should tulip bulbs be planted?", 1),       # 4
    Pair("Where is the  nearest bakery?", "Where is the nearest bakery?", 1),       # 5
    Pair("Why is the ocean salty?", "How cold is the ocean in winter?", 0),         # 6
]


def verdict(q: int, c: int, label: str, kind: str = "paraphrase") -> JudgedPair:
    return JudgedPair(query_line=q, candidate_line=c, candidate_side="a",
                      hash=pair_hash(PAIRS[q - 1].text_b, PAIRS[c - 1].text_a),
                      verdict=label, kind=kind, reason="")


VERDICTS = [
    verdict(1, 1, "SAME"),
    verdict(1, 4, "DIFFERENT", "other"),
    verdict(2, 2, "DIFFERENT", "role_swap"),
    verdict(3, 3, "UNSURE", "deictic"),
    verdict(4, 4, "SAME"),
    verdict(6, 6, "DIFFERENT", "other"),
]


def test_pair_hash_normalizes_whitespace_and_width_but_not_order():
    assert pair_hash("How  do I\tboil an egg? ", "x") == pair_hash("How do I boil an egg?", "x")
    assert pair_hash("ＡＢＣ", "x") == pair_hash("ABC", "x")
    assert pair_hash("a", "b") != pair_hash("b", "a")


def test_load_verdicts_round_trip_and_rejects_bad_lines(tmp_path):
    path = tmp_path / "verdicts.jsonl"
    path.write_text("".join(json.dumps(v.__dict__) + "\n" for v in VERDICTS) + "\n")
    assert load_verdicts(path) == VERDICTS
    path.write_text(json.dumps({**VERDICTS[0].__dict__, "verdict": "MAYBE"}) + "\n")
    with pytest.raises(ValueError, match=":1: verdict, kind or side"):
        load_verdicts(path)
    path.write_text('{"query_line": 1}\n')
    with pytest.raises(ValueError, match=":1: not a verdict"):
        load_verdicts(path)


def test_changed_source_text_is_detected_and_missing_lines_are_skipped():
    changed = list(PAIRS)
    changed[1] = Pair("Is tea healthier than coffee?", "Is green tea healthier than coffee?", 0)
    with pytest.raises(ValueError, match="1 verdicts do not match.*query line 2"):
        applicable(changed, VERDICTS)
    # A file read with a limit: verdicts beyond it do not apply.
    assert applicable(PAIRS[:3], VERDICTS) == [VERDICTS[0], VERDICTS[2], VERDICTS[3]]


def test_wilson_interval():
    low, high = wilson(95, 100)
    assert low == pytest.approx(0.8882, abs=1e-4) and high == pytest.approx(0.9785, abs=1e-4)
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(10, 10)[1] == pytest.approx(1.0) and wilson(0, 10)[0] == pytest.approx(0.0)


def test_precision_counts_unsure_both_ways_and_identical_text_as_same():
    outcomes = [
        Outcome(1, 1),      # SAME
        Outcome(2, 2),      # DIFFERENT (role swap)
        Outcome(3, 3),      # UNSURE
        Outcome(4, None),   # miss, has a SAME candidate
        Outcome(5, 5),      # identical after normalization: SAME without a verdict
        Outcome(6, 1),      # hit without a verdict: not scored
    ]
    report = judged_report(PAIRS, outcomes, VERDICTS)
    result = report.as_dict()
    assert (report.hits, report.misses) == (5, 1)
    assert (report.hits_identical, report.hits_judged, report.misses_judged) == (1, 3, 1)
    assert (report.same, report.different, report.unsure) == (2, 1, 1)
    assert result["precision"] == 0.5 and result["precision_unsure_right"] == 0.75
    assert result["precision_interval"] == [round(wilson(2, 4)[0], 4), round(wilson(3, 4)[1], 4)]
    assert result["different_by_kind"] == {"role_swap": 1}
    assert result["coverage_hits"] == 0.8 and result["coverage_misses"] == 1.0
    # Queries 1 and 4 have a SAME candidate; the decision served it to query 1 only.
    assert (report.recall_queries, report.recalled) == (2, 1) and result["recall"] == 0.5


def test_hit_on_a_different_candidate_is_not_recall():
    report = judged_report(PAIRS, [Outcome(1, 4), Outcome(4, 4)], VERDICTS)
    assert (report.same, report.different) == (1, 1)
    assert (report.recall_queries, report.recalled) == (2, 1)
    assert report.different_by_kind == {"other": 1}


def test_no_hits_and_no_verdicts():
    result = judged_report(PAIRS, [Outcome(6, None)], []).as_dict()
    assert result["precision"] is None and result["precision_interval"] == [0.0, 1.0]
    assert result["recall"] is None and result["coverage_hits"] is None
    assert result["coverage_misses"] == 0.0


def test_verdict_counts():
    counts = verdict_counts(VERDICTS)
    assert counts["verdict"] == {"SAME": 2, "DIFFERENT": 3, "UNSURE": 1}
    assert counts["verdict_kind"]["DIFFERENT/other"] == 2


def test_shipped_verdict_file_holds_no_text():
    rows = [json.loads(line) for line in SHIPPED.read_text().splitlines()]
    assert len(rows) >= 600
    assert all(set(row) == {"query_line", "candidate_line", "candidate_side", "hash", "verdict",
                            "kind", "reason"} for row in rows)
    assert {row["kind"] for row in rows} <= set(KINDS)
    assert all(row["reason"] for row in rows if row["verdict"] != "SAME")
    assert all(len(row["reason"]) <= 100 for row in rows)


@pytest.mark.skipif(not QQP.exists(), reason="../shared/data/qqp_pairs_dev.jsonl missing")
def test_shipped_verdicts_match_the_dev_file_and_quote_none_of_it():
    pairs, verdicts = load_pairs(QQP), load_verdicts(SHIPPED)
    assert applicable(pairs, verdicts) == verdicts
    for v in verdicts:
        words = v.reason.lower().split()
        spans = {" ".join(words[i:i + 4]) for i in range(len(words) - 3)}
        texts = (pairs[v.query_line - 1].text_b + " " + pairs[v.candidate_line - 1].text_a).lower()
        assert not any(span in texts for span in spans), (v.query_line, v.candidate_line)
