"""The cache decision's evaluation on labelled pairs (semcache.evaluation), run and reported."""

import io

import numpy as np

from semcache.evaluation import Pair, cache_evaluate, cached_embed, report_lines

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
