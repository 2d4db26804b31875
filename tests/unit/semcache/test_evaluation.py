"""The cache decision's evaluation on labelled pairs (semcache.evaluation), run and reported."""

import io

import numpy as np

from semcache.evaluation import Pair, cache_evaluate, cached_embed, evaluate, report_lines
from semcache.judged import Outcome
from tests.unit.semcache.helpers import random_unit

PAIRS = [
    Pair("How do I learn to cook pasta?", "What is the best way to learn cooking pasta?", 1),
    Pair("What is the capital of France?", "What is the capital of France?", 1),
    Pair("What is 15 percent of 240?", "What is 15 percent of 420?", 0),
    Pair("Why is the sky blue?", "How do airplanes fly?", 0),
]


class TestRun:
    def test_a_run_with_the_gateways_embedder(self, tmp_path):
        bars = io.StringIO()
        result = cache_evaluate(PAIRS, threshold=0.968, cache_dir=tmp_path, progress_file=bars)
        assert result["queries"] == 4 and result["duplicate_queries"] == 2
        assert result["threshold"] == 0.968 and result["precision"] == 1.0
        assert result["hit_rate"] >= 0.5  # the identical question at least
        assert "embedding" in bars.getvalue() and "querying" in bars.getvalue()
        assert list(tmp_path.glob("eval-embeddings-*.npy"))  # cached for the next run
        again = cache_evaluate(PAIRS, threshold=0.968, cache_dir=tmp_path)
        assert {k: again[k] for k in ("hit_rate", "precision", "thresholds")} == {
            k: result[k] for k in ("hit_rate", "precision", "thresholds")}

    def test_embeddings_are_cached_by_content_and_tag(self, tmp_path):
        calls = []

        def embed(texts):
            calls.append(list(texts))
            return np.ones((len(texts), 2), dtype=np.float32)

        cached_embed(embed, ["a", "b"], tmp_path, tag="fp32")
        cached_embed(embed, ["a", "b"], tmp_path, tag="fp32")
        cached_embed(embed, ["a", "b"], tmp_path, tag="int8")
        assert calls == [["a", "b"], ["a", "b"]]


class TestLookups:
    # Line N is LINES[N - 1]; each text gets its own random direction, except the paraphrase
    # query of line 2, which gets its stored question's (cosine 1.0, no guard objects).
    LINES = [
        Pair("How do I boil an egg?", "How do I boil an egg?", 1),              # exact hit
        Pair("Where is the nearest bakery?", "Where is the closest bakery?", 1),  # semantic
        Pair("How do I boil an egg?", "Why is the ocean salty?", 0),            # miss
        Pair("Why is the sky blue?", "How  do I boil an egg?", 0),              # exact, line 1
    ]

    def embed(self, texts):
        rng = np.random.default_rng(7)
        vectors = dict(zip(dict.fromkeys(texts), random_unit(rng, len(set(texts))),
                           strict=True))
        vectors["Where is the closest bakery?"] = vectors["Where is the nearest bakery?"]
        return np.stack([vectors[t] for t in texts])

    def test_each_query_reports_the_line_that_served_it(self):
        seen = []
        result = evaluate(self.LINES, embed=self.embed, threshold=0.968, on_lookup=seen.append)
        assert [lookup.outcome for lookup in seen] == [
            Outcome(1, 1), Outcome(2, 2), Outcome(3, None), Outcome(4, 1)]
        assert [lookup.exact for lookup in seen] == [True, False, False, True]
        assert [lookup.label_correct for lookup in seen] == [True, True, False, True]
        # Line 3 stores line 1's question again: the index holds it once, under line 1.
        assert seen[1].candidate_lines[0] == 2 and sorted(seen[2].candidate_lines) == [1, 2, 4]
        assert seen[0].candidates == [] and seen[0].candidate_lines == []
        assert result["hits"] == sum(lookup.hit_line is not None for lookup in seen) == 3
        # Watching the lookups changes nothing else.
        unwatched = evaluate(self.LINES, embed=self.embed, threshold=0.968)
        timings = {k for k in result if k.endswith(("_ms_mean", "_ms_p50", "_ms_p99", "seconds"))}
        assert {k: v for k, v in unwatched.items() if k not in timings} == {
            k: v for k, v in result.items() if k not in timings}


class TestReport:
    RESULT = {
        "queries": 4, "duplicate_queries": 2, "stored_entries": 4, "index_mode": "exact",
        "threshold": 0.968, "hit_rate": 0.5, "precision": 1.0, "false_hits_per_1k": 0.0,
        "lookup_ms_p50": 0.21, "lookup_ms_p99": 0.5, "gray_zone_lookups": 1,
        "gray_zone_ms_p50": 0.3, "gray_zone_ms_p99": 0.4,
        "thresholds": [{"threshold": 0.8, "hit_rate": 1.0, "precision": 0.6667,
                        "false_hits_per_1k": 250.0}],
    }

    def test_lines(self):
        assert report_lines(self.RESULT) == [
            "4 queries (2 duplicates), 4 entries stored (exact index)",
            "decision (cosine >= 0.968 after the hard guards): hit rate 0.500  precision 1.000"
            "  false hits/1k 0.0",
            "search + decision per lookup: p50 0.21 ms, p99 0.50 ms; 1 lookups with a candidate"
            " at or above the threshold: p50 0.30 ms, p99 0.40 ms",
            "plain cosine thresholds:",
            "  threshold  hit_rate  precision  false_hits/1k",
            "  0.80       1.000     0.667      250.0",
        ]

    def test_judged_lines_follow_the_decision(self):
        judged = {
            "verdicts": 5, "hits": 3, "misses": 3, "hits_identical": 1, "hits_judged": 1,
            "misses_judged": 2, "same": 2, "different": 0, "unsure": 1, "recall_queries": 2,
            "recalled": 1, "precision": 0.6667, "precision_unsure_right": 1.0,
            "precision_interval": [0.2077, 1.0], "recall": 0.5, "recall_interval": [0.0946, 0.9054],
        }
        lines = report_lines({**self.RESULT, "judged": judged})
        assert lines[2:4] == [
            "judged (5 verdicts): precision 0.667-1.000 [0.208, 1.000] (UNSURE wrong-right, 95%"
            " interval)  recall 0.500 [0.095, 0.905] (1 of 2 queries with a SAME entry served"
            " one)",
            "  coverage: 2 of 3 hits (1 on identical text; 1 judged: 1 SAME, 0 DIFFERENT,"
            " 1 UNSURE), 2 of 3 misses",
        ]
        assert lines[:2] + lines[4:] == report_lines(self.RESULT)
        empty = {**judged, "precision": None, "recall": None}
        assert "precision - (UNSURE" in report_lines({**self.RESULT, "judged": empty})[2]
