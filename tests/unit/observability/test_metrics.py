"""The contract metrics: names, bounded labels, and what one observed request records."""

from prometheus_client import REGISTRY

from llmops import metrics

# Label names that would create one series per caller or per request.
UNBOUNDED = {"user", "user_id", "api_key", "key", "key_prefix", "request_id", "id", "prompt"}


def _value(name: str, labels: dict | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


class TestMetricLabel:
    def test_no_metric_has_a_per_caller_label(self):
        for collector in (v for k, v in vars(metrics).items() if hasattr(v, "_labelnames")):
            assert not UNBOUNDED & set(collector._labelnames), collector._name

    def test_contract_metrics_are_registered(self):
        names = {metric.name for metric in REGISTRY.collect()}
        for name in ("llm_requests", "llm_cost_per_request_dollars", "llm_cost_dollars",
                     "llm_tokens", "llm_request_duration_seconds", "llm_model_selection",
                     "semantic_cache_hits", "semantic_cache_misses", "llm_cost_saved_dollars",
                     "llm_upstream_errors", "llm_response_quality_score",
                     "llm_hallucination_flags", "llm_time_to_first_token_seconds",
                     "llm_upstream_duration_seconds"):
            assert name in names, name


class TestObserveRequest:
    def test_a_miss_records_cost_tokens_and_separate_latencies(self):
        labels = {"model": "unit-m1", "status": "ok", "cached": "false"}
        before = _value("llm_requests_total", labels)
        misses = _value("semantic_cache_misses_total")
        metrics.observe_request(
            model="unit-m1", status="ok", cache_status="miss", cost=0.002, cost_saved=0.0,
            prompt_tokens=10, completion_tokens=5, duration_s=1.5, upstream_s=1.2, ttft_s=0.3,
            routing_saved=0.01, team="acme", tier="standard",
        )
        assert _value("llm_requests_total", labels) == before + 1
        assert _value("semantic_cache_misses_total") == misses + 1
        assert _value("llm_cost_dollars_total",
                      {"model": "unit-m1", "team": "acme", "tier": "standard"}) >= 0.002
        assert _value("llm_tokens_total", {"model": "unit-m1", "direction": "input"}) >= 10
        assert _value("llm_upstream_duration_seconds_count", {"model": "unit-m1"}) >= 1
        assert _value("llm_time_to_first_token_seconds_count", {"model": "unit-m1"}) >= 1
        assert _value("llm_request_duration_seconds_sum",
                      {"model": "unit-m1", "cached": "false"}) >= 1.5
        assert _value("llm_cost_saved_dollars_total", {"source": "routing"}) >= 0.01

    def test_a_hit_counts_savings_by_similarity_range(self):
        before = _value("semantic_cache_hits_total", {"similarity_range": ">=0.95"})
        saved = _value("llm_cost_saved_dollars_total", {"source": "cache"})
        metrics.observe_request(
            model="unit-m2", status="ok", cache_status="hit_semantic", cost=0.0,
            cost_saved=0.004, prompt_tokens=0, completion_tokens=0, duration_s=0.01,
            similarity=0.96,
        )
        assert _value("semantic_cache_hits_total", {"similarity_range": ">=0.95"}) == before + 1
        assert _value("llm_cost_saved_dollars_total", {"source": "cache"}) == saved + 0.004

    def test_similarity_ranges_are_a_fixed_set(self):
        assert metrics.similarity_range(None) == "exact"
        assert metrics.similarity_range(0.999) == ">=0.99"
        assert metrics.similarity_range(0.5) == "<0.85"


class TestObserveQuality:
    def test_a_flagged_judgement_counts_a_hallucination(self):
        labels = {"model": "unit-m3", "task_type": "code"}
        metrics.observe_quality(model="unit-m3", task_type="code", score=4, source="judge",
                                verdict="neutral", hallucination=True)
        assert _value("llm_response_quality_score_count", labels) == 1
        assert _value("llm_response_quality_score_sum", labels) == 4
        assert _value("llm_hallucination_flags_total", labels) == 1
        assert _value("llm_feedback_total", {"source": "judge", "verdict": "neutral"}) >= 1
