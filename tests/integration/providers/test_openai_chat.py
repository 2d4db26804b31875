"""OpenAIChatAdapter against the fake provider over real HTTP."""

import asyncio
import email.utils
import json
import time

import pytest

from llmops.providers import errors
from llmops.providers.base import Usage
from llmops.providers.openai_chat import (
    GeminiChatAdapter,
    OpenAIChatAdapter,
    OpenAICompatibleChatAdapter,
    merge_tool_call_deltas,
)
from tests.integration.providers import helpers
from tests.integration.providers.helpers import API_KEY, cassette, drain, make_call, text_of
from tests.toolkit.fakeprovider import Behavior, ToolCall

adapter = OpenAIChatAdapter()


class TestComplete:
    async def test_answer_usage_and_request(self, fake_provider):
        call = make_call(fake_provider.base_url, params={"temperature": 0.2, "max_tokens": 50,
                                                          "stop": ["END"], "seed": 7})
        completion = await adapter.complete(call)

        assert completion.message == {
            "role": "assistant", "content": "Echo: Say hello to the gateway tests can"}
        assert completion.finish_reason == "stop"
        assert completion.usage == Usage(prompt_tokens=19, completion_tokens=8)
        sent = fake_provider.last_request
        assert sent.path == "/v1/chat/completions"
        assert sent.body == {"model": "gpt-test", "messages": call.messages, "temperature": 0.2,
                             "max_completion_tokens": 50, "stop": ["END"], "seed": 7}
        assert sent.sent_key(API_KEY)
        assert API_KEY not in json.dumps(sent.headers)

    @pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
    async def test_request_id_is_sent_upstream(self, fake_provider, stream):
        call = make_call(fake_provider.base_url, request_id="req-openai-1")
        await (drain(adapter, call) if stream else adapter.complete(call))
        assert fake_provider.last_request.headers["x-request-id"] == "req-openai-1"
        await adapter.complete(make_call(fake_provider.base_url))
        assert "x-request-id" not in fake_provider.last_request.headers

    async def test_cached_and_reasoning_tokens(self, fake_provider):
        completion = await adapter.complete(
            make_call(fake_provider.base_url, "fake-cached-12-reasoning-30"))
        assert completion.usage == Usage(prompt_tokens=19, completion_tokens=38,
                                         cached_tokens=12, reasoning_tokens=30)

    async def test_tool_call(self, fake_provider):
        fake_provider.enqueue(Behavior(text="", tool_call=ToolCall("lookup", {"q": "x"}, "c1")))
        completion = await adapter.complete(make_call(fake_provider.base_url))
        assert completion.finish_reason == "tool_calls"
        assert completion.message["content"] is None
        assert completion.message["tool_calls"] == [
            {"id": "c1", "type": "function",
             "function": {"name": "lookup", "arguments": '{"q": "x"}'}}]

    async def test_max_tokens_gives_length(self, fake_provider):
        completion = await adapter.complete(make_call(fake_provider.base_url,
                                                      params={"max_completion_tokens": 3}))
        assert completion.finish_reason == "length"
        assert completion.usage.completion_tokens == 3

    async def test_no_usage_is_none(self, fake_provider):
        completion = await adapter.complete(make_call(fake_provider.base_url, "fake-nousage"))
        assert completion.usage is None
        assert completion.message["content"]

    @pytest.mark.parametrize("model", ["fake-malformed", "fake-missing"])
    async def test_malformed(self, fake_provider, model):
        with pytest.raises(errors.ProviderMalformedResponse):
            await adapter.complete(make_call(fake_provider.base_url, model))

    async def test_cut_body_is_a_connection_error(self, fake_provider):
        with pytest.raises(errors.ProviderConnectionError):
            await adapter.complete(make_call(fake_provider.base_url, "fake-cut-0"))

    async def test_stalled_body_is_a_timeout(self, fake_provider, settings):
        settings.PROVIDER_READ_TIMEOUT_SECONDS = 0.3
        fake_provider.enqueue(Behavior(stall_after=0, stall_seconds=3))
        with pytest.raises(errors.ProviderTimeout):
            await adapter.complete(make_call(fake_provider.base_url))

    async def test_cassette_answer(self, fake_provider):
        recorded = cassette("openai_chat")
        fake_provider.enqueue(Behavior(replay=json.dumps(recorded["response"])))
        completion = await adapter.complete(make_call(fake_provider.base_url))
        assert completion.finish_reason == "tool_calls"
        assert completion.message["tool_calls"][0]["function"]["name"] == "get_current_weather"
        assert completion.usage == Usage(prompt_tokens=82, completion_tokens=17, cached_tokens=64)


class TestStream:
    async def test_stream_matches_complete(self, fake_provider):
        call = make_call(fake_provider.base_url, "fake-cached-4-reasoning-2")
        deltas, completion = await helpers.stream_and_complete(adapter, call)
        assert completion.usage == Usage(19, 10, 4, 2)
        assert all(d.usage is None and d.finish_reason is None for d in deltas[:-1])
        streamed = fake_provider.requests[0].body
        assert streamed["stream"] is True
        assert streamed["stream_options"] == {"include_usage": True}

    async def test_tool_call_fragments(self, fake_provider):
        fake_provider.enqueue(Behavior(text="", tool_call=ToolCall("lookup", {"q": "x"}, "c1")))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert error is None
        fragments = [f for d in deltas if d.tool_calls for f in d.tool_calls]
        assert len(fragments) == 3  # name, then the arguments in two pieces
        assert merge_tool_call_deltas(fragments) == [
            {"id": "c1", "type": "function",
             "function": {"name": "lookup", "arguments": '{"q": "x"}'}}]
        assert deltas[-1].finish_reason == "tool_calls"

    async def test_no_usage_is_none(self, fake_provider):
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "fake-nousage"))
        assert error is None
        assert deltas[-1].finish_reason == "stop" and deltas[-1].usage is None

    async def test_stream_usage_option_off(self, fake_provider):
        call = make_call(fake_provider.base_url, options={"stream_usage": False})
        deltas, error = await drain(adapter, call)
        assert error is None and deltas[-1].usage is None
        assert "stream_options" not in fake_provider.last_request.body

    async def test_cut_mid_stream_is_interrupted(self, fake_provider):
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "fake-cut-3"))
        assert isinstance(error, errors.StreamInterrupted)
        assert text_of(deltas) == "Echo: Say hello"

    async def test_cut_before_any_delta_is_retryable(self, fake_provider):
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "fake-cut-0"))
        assert deltas == []
        assert isinstance(error, errors.ProviderConnectionError) and error.retryable

    async def test_stall_after_start_is_interrupted(self, fake_provider, settings):
        settings.PROVIDER_STREAM_IDLE_TIMEOUT_SECONDS = 0.2
        fake_provider.enqueue(Behavior(stall_after=2, stall_seconds=3))
        started = time.monotonic()
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert isinstance(error, errors.StreamInterrupted)
        assert text_of(deltas) == "Echo: Say"
        assert time.monotonic() - started < 2

    async def test_stall_after_role_chunk_is_a_timeout(self, fake_provider, settings):
        # Only "role: assistant" arrived: nothing was relayed, so the call can still be retried.
        settings.PROVIDER_READ_TIMEOUT_SECONDS = 0.3
        fake_provider.enqueue(Behavior(stall_after=0, stall_seconds=3))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert deltas == []
        assert isinstance(error, errors.ProviderTimeout) and error.retryable

    async def test_server_ignoring_stream_flag(self, fake_provider):
        fake_provider.enqueue(Behavior(ignore_stream=True, tool_call=ToolCall(id="c9")))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert error is None
        assert deltas[0].role == "assistant" and deltas[0].content.startswith("Echo:")
        assert deltas[0].tool_calls[0]["id"] == "c9" and deltas[0].tool_calls[0]["index"] == 0
        assert deltas[-1].finish_reason == "tool_calls" and deltas[-1].usage.prompt_tokens == 19

    async def test_empty_stream_is_retryable(self, fake_provider):
        fake_provider.enqueue(Behavior(replay=": nothing to say\n\n"))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert deltas == [] and isinstance(error, errors.ProviderConnectionError)

    async def test_odd_chunk_shape_after_start_is_interrupted(self, fake_provider):
        recorded = cassette("openai_chat")["stream"].split("\n\n")
        broken = "\n\n".join([*recorded[:2], 'data: {"choices": [42]}', ""])
        fake_provider.enqueue(Behavior(replay=broken))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert text_of(deltas) == "Hello" and isinstance(error, errors.StreamInterrupted)

    async def test_malformed_first_chunk(self, fake_provider):
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "fake-malformed"))
        assert deltas == [] and isinstance(error, errors.ProviderMalformedResponse)

    async def test_cassette_stream(self, fake_provider):
        fake_provider.enqueue(Behavior(replay=cassette("openai_chat")["stream"]))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert error is None
        assert text_of(deltas) == "Hello! How can I help?"
        assert deltas[-1].usage == Usage(prompt_tokens=19, completion_tokens=74,
                                         reasoning_tokens=64)

    async def test_many_concurrent_streams(self, fake_provider):
        results = await asyncio.gather(*(
            drain(adapter, make_call(fake_provider.base_url, "fake-pace-5")) for _ in range(60)))
        assert all(error is None and deltas[-1].usage for deltas, error in results)


STATUS_ERRORS = [
    (400, errors.ProviderBadRequest), (404, errors.ProviderBadRequest),
    (422, errors.ProviderBadRequest), (401, errors.ProviderAuthError),
    (403, errors.ProviderAuthError), (429, errors.ProviderRateLimited),
    (500, errors.ProviderServerError), (503, errors.ProviderServerError),
]


class TestErrors(helpers.TransportErrorTests):
    adapter, model = adapter, "gpt-test"

    @pytest.mark.parametrize("stream", [False, True])
    @pytest.mark.parametrize(("status", "error_class"), STATUS_ERRORS)
    async def test_status_maps_to_error(self, fake_provider, status, error_class, stream):
        call = make_call(fake_provider.base_url, f"fake-error-{status}-ra-3")
        with pytest.raises(error_class) as caught:
            await helpers.complete_or_stream(adapter, call, stream=stream)
        assert caught.value.status == status
        assert "fake provider error" in caught.value.message  # the provider's message is kept
        assert API_KEY not in str(caught.value)
        if status == 429:
            assert caught.value.retry_after == 3.0

    async def test_retry_after_http_date(self, fake_provider):
        when = email.utils.formatdate(time.time() + 30, usegmt=True)
        fake_provider.enqueue(Behavior(status=429, retry_after=when))
        with pytest.raises(errors.ProviderRateLimited) as caught:
            await adapter.complete(make_call(fake_provider.base_url))
        assert 25 <= caught.value.retry_after <= 31

    async def test_dropped_connection(self, fake_provider):
        with pytest.raises(errors.ProviderConnectionError):
            await adapter.complete(make_call(fake_provider.base_url, "fake-drop"))

    async def test_unknown_param_refused_before_sending(self, fake_provider):
        with pytest.raises(errors.ProviderBadRequest, match="frobnicate"):
            await adapter.complete(make_call(fake_provider.base_url, params={"frobnicate": 1}))
        assert fake_provider.requests == []

    async def test_unknown_option_is_a_profile_error(self, fake_provider):
        with pytest.raises(errors.ProviderNotConfigured, match="colour"):
            await adapter.complete(make_call(fake_provider.base_url, options={"colour": 1}))


class TestProviderDefaults:
    def test_gemini_default_url_and_key(self, settings):
        settings.GEMINI_API_KEY = "gm-key"
        request = GeminiChatAdapter().build_request(make_call("", api_key=""), stream=False)
        assert request.url == (
            "https://generativelanguage.googleapis.com/v1beta/openai/chat/completions")
        assert request.headers["Authorization"] == "Bearer gm-key"

    def test_provider_on_the_call_picks_defaults(self, settings):
        settings.GEMINI_API_KEY = "gm-key"
        call = make_call("", api_key="")
        call.provider = "gemini"
        request = adapter.build_request(call, stream=False)
        assert request.url.startswith("https://generativelanguage.googleapis.com/")

    def test_openai_without_key_is_not_configured(self, settings):
        settings.OPENAI_API_KEY = ""
        with pytest.raises(errors.ProviderNotConfigured):
            adapter.build_request(make_call("", api_key=""), stream=False)

    async def test_compatible_server_needs_no_key(self, fake_provider):
        compatible = OpenAICompatibleChatAdapter()
        completion = await compatible.complete(make_call(fake_provider.base_url, api_key=""))
        assert completion.message["content"]
        assert "authorization" not in fake_provider.last_request.headers

    def test_openai_key_never_sent_to_another_provider(self, settings):
        # What the gateway sends while every OpenAI-format provider maps to OpenAIChatAdapter:
        # adapter.api_key_for() resolves OPENAI_API_KEY for gemini and self-hosted profiles too.
        settings.OPENAI_API_KEY, settings.GEMINI_API_KEY = "sk-openai", "gm-key"
        gemini = make_call("", api_key="sk-openai", provider="gemini")
        assert adapter.build_request(gemini, stream=False).headers["Authorization"] == (
            "Bearer gm-key")
        hosted = make_call("http://10.0.0.5:8000/v1", api_key="sk-openai",
                           provider="openai_compatible")
        assert "Authorization" not in adapter.build_request(hosted, stream=False).headers

    def test_custom_base_url_without_key_is_sent_as_is(self, settings):
        settings.OPENAI_API_KEY = "sk-openai"
        request = adapter.build_request(make_call("http://proxy.internal/v1", api_key=""),
                                        stream=False)
        assert "Authorization" not in request.headers  # the provider key stays home

    def test_max_tokens_name_per_provider(self):
        params = {"max_tokens": 9}
        openai = adapter.build_request(make_call("", params=params), stream=False)
        assert openai.body["max_completion_tokens"] == 9 and "max_tokens" not in openai.body
        hosted = make_call("http://h/v1", params={"max_completion_tokens": 9, "max_tokens": 99},
                           provider="openai_compatible")
        body = adapter.build_request(hosted, stream=False).body
        assert body["max_tokens"] == 9 and "max_completion_tokens" not in body

    def test_compatible_server_needs_base_url(self):
        with pytest.raises(errors.ProviderNotConfigured, match="base_url"):
            OpenAICompatibleChatAdapter().build_request(make_call(""), stream=False)
