"""AnthropicMessagesAdapter against the fake provider over real HTTP."""

import json

import pytest

from llmops.providers import errors
from llmops.providers.anthropic_messages import AnthropicMessagesAdapter
from llmops.providers.base import Usage
from llmops.providers.openai_chat import merge_tool_call_deltas
from tests.integration.providers import helpers
from tests.integration.providers.helpers import API_KEY, cassette, drain, make_call, text_of
from tests.toolkit.fakeprovider import Behavior, ToolCall

adapter = AnthropicMessagesAdapter()

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]


class TestRequestTranslation:
    async def test_system_folded_max_tokens_and_headers(self, fake_provider):
        call = make_call(fake_provider.base_url, "claude-test", params={
            "stop": "END", "temperature": 1.5, "user": "u-1", "seed": 3})
        call.messages = [{"role": "system", "content": "Be terse."},
                         {"role": "developer", "content": "Answer in English."},
                         {"role": "user", "content": "Hi"}]
        await adapter.complete(call)

        sent = fake_provider.last_request
        assert sent.path == "/v1/messages"
        assert sent.sent_key(API_KEY) and "authorization" not in sent.headers
        assert sent.headers["anthropic-version"] == "2023-06-01"
        assert sent.body == {
            "model": "claude-test",
            "system": "Be terse.\n\nAnswer in English.",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
            "max_tokens": 4096,            # required by Anthropic, absent from the call
            "stop_sequences": ["END"],
            "temperature": 1.0,            # OpenAI's 0-2 range clamped to Anthropic's 0-1
            "metadata": {"user_id": "u-1"},
        }                                  # seed has no Anthropic equivalent: dropped

    @pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
    async def test_request_id_is_sent_upstream(self, fake_provider, stream):
        call = make_call(fake_provider.base_url, "claude-test", request_id="req-anthropic-1")
        await (drain(adapter, call) if stream else adapter.complete(call))
        assert fake_provider.last_request.headers["x-request-id"] == "req-anthropic-1"

    async def test_tool_round_trip_request(self, fake_provider):
        call = make_call(fake_provider.base_url, "claude-test", params={
            "tools": TOOLS, "tool_choice": "required", "max_tokens": 100})
        call.messages = [
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "t1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}},
                {"id": "t2", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'}}]},
            {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
            {"role": "tool", "tool_call_id": "t2", "content": "rain"},
        ]
        await adapter.complete(call)

        body = fake_provider.last_request.body
        assert body["tools"] == [{"name": "get_weather", "description": "Weather for a city",
                                  "input_schema": TOOLS[0]["function"]["parameters"]}]
        assert body["tool_choice"] == {"type": "any"}
        assert body["max_tokens"] == 100
        assert body["messages"][1] == {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "t2", "name": "get_weather", "input": {"city": "Rome"}}]}
        assert body["messages"][2] == {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": "sunny"},
            {"type": "tool_result", "tool_use_id": "t2", "content": "rain"}]}


class TestAnswers:
    async def test_complete(self, fake_provider):
        completion = await adapter.complete(make_call(fake_provider.base_url, "claude-test"))
        assert completion.message == {"role": "assistant",
                                      "content": "Echo: Say hello to the gateway tests can"}
        assert completion.finish_reason == "stop"
        assert completion.usage == Usage(prompt_tokens=19, completion_tokens=8)

    async def test_stream_matches_complete(self, fake_provider):
        await helpers.stream_and_complete(adapter, make_call(fake_provider.base_url, "claude-test"))
        assert fake_provider.requests[0].body["stream"] is True

    @pytest.mark.parametrize("stream", [False, True])
    async def test_cache_reads_and_writes_are_prompt_tokens_once(self, fake_provider, stream):
        fake_provider.enqueue(Behavior(cached_tokens=6, cache_creation_tokens=5))
        call = make_call(fake_provider.base_url, "claude-test")
        if stream:
            usage = (await drain(adapter, call))[0][-1].usage
        else:
            usage = (await adapter.complete(call)).usage
        # the fake splits 19 prompt tokens into 8 fresh + 6 read + 5 written
        assert usage == Usage(prompt_tokens=19, completion_tokens=8, cached_tokens=6)

    async def test_tool_call_complete(self, fake_provider):
        fake_provider.enqueue(Behavior(text="Checking.", tool_call=ToolCall(
            "get_weather", {"city": "Paris"}, "toolu_1")))
        completion = await adapter.complete(make_call(fake_provider.base_url, "claude-test"))
        assert completion.finish_reason == "tool_calls"
        assert completion.message == {"role": "assistant", "content": "Checking.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}

    async def test_tool_call_stream(self, fake_provider):
        fake_provider.enqueue(Behavior(text="Checking.", tool_call=ToolCall(
            "get_weather", {"city": "Paris"}, "toolu_1")))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "claude-test"))
        assert error is None
        assert text_of(deltas) == "Checking."
        fragments = [f for d in deltas if d.tool_calls for f in d.tool_calls]
        merged = merge_tool_call_deltas(fragments)
        assert merged == [{"id": "toolu_1", "type": "function",
                           "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]
        assert deltas[-1].finish_reason == "tool_calls"

    async def test_max_tokens_gives_length(self, fake_provider):
        completion = await adapter.complete(make_call(fake_provider.base_url, "claude-test",
                                                      params={"max_tokens": 2}))
        assert completion.finish_reason == "length"

    @pytest.mark.parametrize("stream", [False, True])
    async def test_no_usage_is_none(self, fake_provider, stream):
        call = make_call(fake_provider.base_url, "fake-nousage")
        if stream:
            deltas, error = await drain(adapter, call)
            assert error is None and deltas[-1].usage is None
        else:
            assert (await adapter.complete(call)).usage is None

    async def test_cassette_answer(self, fake_provider):
        fake_provider.enqueue(Behavior(
            replay=json.dumps(cassette("anthropic_messages")["response"])))
        completion = await adapter.complete(make_call(fake_provider.base_url, "claude-test"))
        assert completion.finish_reason == "tool_calls"
        assert completion.message["content"] == (
            "I'll check the current weather in San Francisco for you.")
        assert json.loads(completion.message["tool_calls"][0]["function"]["arguments"]) == {
            "location": "San Francisco, CA"}
        assert completion.usage == Usage(prompt_tokens=472 + 188 + 1024, completion_tokens=89,
                                         cached_tokens=1024)

    async def test_cassette_stream(self, fake_provider):
        fake_provider.enqueue(Behavior(replay=cassette("anthropic_messages")["stream"]))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "claude-test"))
        assert error is None
        assert text_of(deltas) == "Okay, let's check the weather for San Francisco, CA:"
        calls = merge_tool_call_deltas([f for d in deltas if d.tool_calls for f in d.tool_calls])
        assert calls[0]["id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
        assert json.loads(calls[0]["function"]["arguments"]) == {"location": "San Francisco, CA"}
        assert deltas[-1].finish_reason == "tool_calls"
        assert deltas[-1].usage == Usage(prompt_tokens=472, completion_tokens=89)


STATUS_ERRORS = [
    (400, errors.ProviderBadRequest), (404, errors.ProviderBadRequest),
    (401, errors.ProviderAuthError), (403, errors.ProviderAuthError),
    (429, errors.ProviderRateLimited), (500, errors.ProviderServerError),
    (529, errors.ProviderServerError),
]


class TestErrors(helpers.TransportErrorTests):
    adapter, model = adapter, "claude-test"

    @pytest.mark.parametrize("stream", [False, True])
    @pytest.mark.parametrize(("status", "error_class"), STATUS_ERRORS)
    async def test_status_maps_to_error(self, fake_provider, status, error_class, stream):
        call = make_call(fake_provider.base_url, f"fake-error-{status}-ra-2")
        with pytest.raises(error_class) as caught:
            await helpers.complete_or_stream(adapter, call, stream=stream)
        assert caught.value.status == status
        assert API_KEY not in str(caught.value)
        if status == 429:
            assert caught.value.retry_after == 2.0
        if status == 529:
            assert caught.value.retryable and caught.value.kind == "server_error"

    async def test_cut_mid_stream_is_interrupted(self, fake_provider):
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "fake-cut-2"))
        assert isinstance(error, errors.StreamInterrupted)
        assert text_of(deltas) == "Echo: Say"

    async def test_stall_is_interrupted(self, fake_provider, settings):
        settings.PROVIDER_STREAM_IDLE_TIMEOUT_SECONDS = 0.2
        fake_provider.enqueue(Behavior(stall_after=1, stall_seconds=3))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "claude-test"))
        assert isinstance(error, errors.StreamInterrupted) and text_of(deltas) == "Echo:"

    @pytest.mark.parametrize("model", ["fake-malformed", "fake-missing"])
    async def test_malformed(self, fake_provider, model):
        with pytest.raises(errors.ProviderMalformedResponse):
            await adapter.complete(make_call(fake_provider.base_url, model))

    async def test_malformed_stream(self, fake_provider):
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "fake-malformed"))
        assert deltas == [] and isinstance(error, errors.ProviderMalformedResponse)

    async def test_error_event_after_start_is_interrupted(self, fake_provider):
        stream = cassette("anthropic_messages")["stream"].split("event: content_block_stop")[0]
        stream += ('event: error\ndata: {"type": "error", "error": '
                   '{"type": "overloaded_error", "message": "Overloaded"}}\n\n')
        fake_provider.enqueue(Behavior(replay=stream))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "claude-test"))
        assert text_of(deltas).startswith("Okay")
        assert isinstance(error, errors.StreamInterrupted) and "overloaded" in error.message

    async def test_error_event_before_start_is_typed(self, fake_provider):
        fake_provider.enqueue(Behavior(replay=(
            'event: error\ndata: {"type": "error", "error": '
            '{"type": "overloaded_error", "message": "Overloaded"}}\n\n')))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "claude-test"))
        assert deltas == [] and isinstance(error, errors.ProviderServerError) and error.retryable

    def test_no_key_is_not_configured(self, settings):
        settings.ANTHROPIC_API_KEY = ""
        with pytest.raises(errors.ProviderNotConfigured):
            adapter.build_request(make_call("", api_key=""), stream=False)

    def test_default_url_and_configured_key(self, settings):
        settings.ANTHROPIC_API_KEY = "ak-key"
        request = adapter.build_request(make_call("", api_key=""), stream=True)
        assert request.url == "https://api.anthropic.com/v1/messages"
        assert request.headers["x-api-key"] == "ak-key"
        assert request.headers["Accept"] == "text/event-stream"
