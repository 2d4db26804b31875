"""Calling the provider (llmops/gateway/upstream.py): the upstream request for a model, retries
and fallbacks along the chain, cooldowns, and the error a client sees.

The chain's calls go to the fake provider on 127.0.0.1.
"""

import pytest

from llmops.errors import InvalidRequest, RateLimited, UpstreamError, UpstreamTimeout
from llmops.gateway import upstream
from llmops.gateway.settlement import Outcome
from llmops.gateway.upstream import (
    build_call,
    complete_with_fallbacks,
    merge_tool_call_deltas,
    open_stream_with_fallbacks,
    output_limit,
)
from llmops.providers.errors import (
    ProviderBadRequest,
    ProviderNotConfigured,
    ProviderRateLimited,
    ProviderServerError,
    ProviderTimeout,
)
from routing import resilience
from tests.toolkit.fakeprovider import Behavior
from tests.toolkit.fixtures import fast_resilience  # noqa: F401
from tests.unit.gateway.factories import profile, request


def served(name: str, base_url: str, upstream_model: str = "fake-ok", **fields):
    """Return an unsaved OpenAI-compatible profile on the fake provider."""
    return profile(name, provider="openai_compatible", base_url=base_url,
                   upstream_model=upstream_model, **fields)


class TestOutputLimit:
    def test_the_request_limit_within_the_model_and_the_budget_clamp(self):
        model = profile(max_output_tokens=1000)
        assert output_limit(request(), model) == 1000
        assert output_limit(request(max_output_tokens=300), model) == 300
        assert output_limit(request(max_output_tokens=5000), model) == 1000
        assert output_limit(request(default_max_tokens=64), model) == 64
        assert output_limit(request(max_output_tokens=300, output_clamp=120), model) == 120


class TestBuildCall:
    def test_no_limit_asked_none_sent(self):
        call = build_call(request(), profile(provider="openai_compatible"))
        assert "max_tokens" not in call.params

    def test_the_clients_limit_goes_as_max_tokens_within_the_model(self):
        ctx = request(max_output_tokens=5000,
                      params={"max_completion_tokens": 5000, "temperature": 0.2})
        call = build_call(ctx, profile(provider="openai_compatible", max_output_tokens=1000))
        assert call.params == {"max_tokens": 1000, "temperature": 0.2}
        assert ctx.params == {"max_completion_tokens": 5000, "temperature": 0.2}

    def test_a_default_or_a_clamp_is_sent(self):
        model = profile(provider="openai_compatible")
        assert build_call(request(default_max_tokens=64), model).params["max_tokens"] == 64
        assert build_call(request(output_clamp=32), model).params["max_tokens"] == 32

    def test_the_call_carries_the_model_and_the_request(self):
        model = profile("m", provider="openai_compatible", base_url="http://127.0.0.1:9/v1",
                        options={"extra_headers": {"X-Fake-Behavior": "words-3"}})
        call = build_call(request(), model)
        assert (call.upstream_model, call.provider, call.base_url, call.request_id) == (
            "m", "openai_compatible", "http://127.0.0.1:9/v1", "req-1")
        assert call.messages == [{"role": "user", "content": "hello"}]
        assert call.options == model.options and call.options is not model.options

    def test_a_provider_without_its_key_is_not_configured(self, monkeypatch):
        monkeypatch.delenv("UPSTREAM_TEST_KEY", raising=False)
        keyed = profile(provider="openai", api_key_env="UPSTREAM_TEST_KEY")
        with pytest.raises(ProviderNotConfigured):
            build_call(request(), keyed)
        monkeypatch.setenv("UPSTREAM_TEST_KEY", "sk-upstream-test")
        assert build_call(request(), keyed).api_key == "sk-upstream-test"


def test_streamed_tool_call_fragments_are_merged_by_index():
    calls: dict[int, dict] = {}
    merge_tool_call_deltas(calls, [
        {"index": 0, "id": "call_1", "function": {"name": "get_", "arguments": ""}},
        {"index": 1, "id": "call_2", "function": {"name": "search", "arguments": "{}"}},
        {"index": 0, "function": {"name": "weather", "arguments": "{\"city\":"}},
        {"index": 0, "function": {"arguments": " \"Oslo\"}"}},
    ])
    assert calls == {
        0: {"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}},
        1: {"id": "call_2", "type": "function",
            "function": {"name": "search", "arguments": "{}"}},
    }


class TestGatewayError:
    @pytest.mark.parametrize(("error", "kind", "code", "status"), [
        (ProviderTimeout("slow"), UpstreamTimeout, "upstream_timeout", 504),
        (ProviderRateLimited("busy", retry_after=7), RateLimited, "upstream_rate_limited", 429),
        (ProviderBadRequest("bad"), InvalidRequest, "upstream_bad_request", 400),
        (ProviderServerError("down"), UpstreamError, "server_error", 502),
    ])
    def test_each_provider_failure_has_its_client_error(self, error, kind, code, status):
        mapped = upstream._gateway_error(error, "m")
        assert type(mapped) is kind
        assert (mapped.code, mapped.status_code) == (code, status)
        assert str(mapped.detail).startswith("Model 'm' failed: ")

    def test_a_rate_limit_keeps_its_retry_after(self):
        assert upstream._gateway_error(ProviderRateLimited(retry_after=7), "m").retry_after == 7


@pytest.mark.usefixtures("fast_resilience")
class TestAlongTheChain:
    @pytest.fixture(autouse=True)
    def _one_retry(self, settings):
        settings.ROUTING_MAX_RETRIES = 1
        settings.ROUTING_COOLDOWN_FAILURES = 1

    async def test_a_retryable_failure_is_retried_on_the_same_model(self, fake_provider):
        ctx = request()
        outcome = Outcome.of(ctx)
        fake_provider.enqueue(Behavior(status=429, retry_after="0"))
        chain = [served("a", fake_provider.base_url)]
        completion = await complete_with_fallbacks(ctx, chain, outcome)
        assert completion.message["content"]
        assert outcome.entry.attempted_models == ["a", "a"]
        assert outcome.profile is chain[0] and outcome.entry.error_kind == ""
        assert outcome.entry.upstream_latency_ms >= 0 and "upstream" in ctx.timings

    async def test_a_failing_model_falls_back_to_the_next(self, fake_provider):
        ctx = request()
        outcome = Outcome.of(ctx, reason="explicit")
        chain = [served("a", fake_provider.base_url, "fake-error-500"),
                 served("b", fake_provider.base_url)]
        await complete_with_fallbacks(ctx, chain, outcome)
        assert outcome.entry.attempted_models == ["a", "a", "b"]
        assert outcome.profile is chain[1] and outcome.entry.routing_reason == "fallback"

    async def test_a_bad_request_is_not_tried_elsewhere(self, fake_provider):
        ctx = request()
        outcome = Outcome.of(ctx)
        chain = [served("a", fake_provider.base_url, "fake-error-400"),
                 served("b", fake_provider.base_url)]
        with pytest.raises(InvalidRequest):
            await complete_with_fallbacks(ctx, chain, outcome)
        assert outcome.entry.attempted_models == ["a"]
        assert outcome.entry.error_kind == "bad_request" and len(fake_provider.requests) == 1

    async def test_when_every_model_fails_the_last_error_is_the_answer(self, fake_provider):
        ctx = request()
        outcome = Outcome.of(ctx)
        chain = [served("a", fake_provider.base_url, "fake-error-500"),
                 served("b", fake_provider.base_url, "fake-error-503")]
        with pytest.raises(UpstreamError) as failed:
            await complete_with_fallbacks(ctx, chain, outcome)
        assert "Model 'b' failed" in str(failed.value.detail)
        assert outcome.profile is chain[0] and outcome.entry.error_kind == "server_error"

    async def test_a_cooling_model_with_a_fallback_is_skipped(self, fake_provider):
        cooling = served("a", fake_provider.base_url)
        await resilience.record_failure(cooling, kind="server_error", retry_after=None)
        ctx = request()
        outcome = Outcome.of(ctx)
        await complete_with_fallbacks(ctx, [cooling, served("b", fake_provider.base_url)],
                                      outcome)
        assert outcome.entry.attempted_models == ["b"] and len(fake_provider.requests) == 1

    async def test_the_last_model_is_called_though_it_cools(self, fake_provider):
        alone = served("a", fake_provider.base_url)
        await resilience.record_failure(alone, kind="server_error", retry_after=None)
        ctx = request()
        outcome = Outcome.of(ctx)
        await complete_with_fallbacks(ctx, [alone], outcome)
        assert outcome.entry.attempted_models == ["a"]

    async def test_a_model_without_its_key_is_passed_over(self, fake_provider, monkeypatch):
        monkeypatch.delenv("UPSTREAM_TEST_KEY", raising=False)
        keyless = profile("k", provider="openai", api_key_env="UPSTREAM_TEST_KEY")
        ctx = request()
        outcome = Outcome.of(ctx)
        await complete_with_fallbacks(ctx, [keyless, served("b", fake_provider.base_url)],
                                      outcome)
        assert outcome.entry.attempted_models == ["k", "b"]
        assert outcome.profile.name == "b"

    async def test_a_stream_opens_once_its_first_delta_arrived(self, fake_provider):
        ctx = request(stream=True)
        outcome = Outcome.of(ctx)
        chain = [served("a", fake_provider.base_url, "fake-error-500"),
                 served("b", fake_provider.base_url, "fake-words-3")]
        opened = await open_stream_with_fallbacks(ctx, chain, outcome)
        try:
            text = "".join([delta.content async for delta in opened.deltas()])
        finally:
            await opened.aclose()
        assert len(text.split()) == 3
        assert outcome.profile is chain[1] and outcome.entry.ttft_ms is not None
