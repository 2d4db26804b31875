"""OpenAIResponsesAdapter against the fake provider's `/v1/responses` over real HTTP."""

import json

import pytest

from llmops.providers import errors
from llmops.providers.base import Usage
from llmops.providers.openai_chat import merge_tool_call_deltas
from llmops.providers.openai_responses import OpenAIResponsesAdapter
from llmops.providers.registry import get_adapter
from tests.integration.providers import helpers
from tests.integration.providers.helpers import API_KEY, drain, make_call, text_of
from tests.toolkit.fakeprovider import Behavior, ToolCall

adapter = OpenAIResponsesAdapter()

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
PNG = "data:image/png;base64,iVBORw0KGgo="


def responses_sse(*events: dict) -> str:
    """Return a Responses event stream holding `events` (for a replayed answer)."""
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)


class TestRequestTranslation:
    async def test_messages_become_instructions_and_input_items(self, fake_provider):
        call = make_call(fake_provider.base_url, "gpt-5-mini", params={
            "temperature": 0.3, "top_p": 0.9, "max_tokens": 64, "user": "u-1", "seed": 7,
            "tools": TOOLS, "tool_choice": {"type": "function",
                                             "function": {"name": "get_weather"}},
            "parallel_tool_calls": False,
            "response_format": {"type": "json_schema", "json_schema": {
                "name": "weather", "schema": {"type": "object"}, "strict": True}}})
        call.messages = [
            {"role": "system", "content": "Be terse."},
            {"role": "system", "content": [{"type": "text", "text": "Answer in English."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Weather here?"},
                {"type": "image_url", "image_url": {"url": PNG, "detail": "low"}}]},
            {"role": "assistant", "content": "Checking.", "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ]
        await adapter.complete(call)

        sent = fake_provider.last_request
        assert sent.path == "/v1/responses"
        assert sent.sent_key(API_KEY) and sent.headers["authorization"].startswith("Bearer ")
        assert sent.body == {
            "model": "gpt-5-mini",
            "instructions": "Be terse.\n\nAnswer in English.",
            "input": [
                {"role": "user", "content": [
                    {"type": "input_text", "text": "Weather here?"},
                    {"type": "input_image", "image_url": PNG, "detail": "low"}]},
                {"role": "assistant", "content": "Checking."},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                 "arguments": '{"city": "Paris"}'},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
            ],
            "temperature": 0.3, "top_p": 0.9, "user": "u-1", "parallel_tool_calls": False,
            "max_output_tokens": 64,
            "tools": [{"type": "function", "name": "get_weather",
                       "description": "Weather for a city", "strict": True,
                       "parameters": TOOLS[0]["function"]["parameters"]}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "text": {"format": {"type": "json_schema", "name": "weather",
                                "schema": {"type": "object"}, "strict": True}},
            "store": False,                # the gateway keeps conversations, not the provider
        }                                  # seed has no Responses equivalent: dropped

    @pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
    async def test_request_id_and_stream_flag(self, fake_provider, stream):
        call = make_call(fake_provider.base_url, "gpt-test", request_id="req-responses-1")
        await (drain(adapter, call) if stream else adapter.complete(call))
        sent = fake_provider.last_request
        assert sent.headers["x-request-id"] == "req-responses-1"
        assert sent.body.get("stream", False) is stream
        assert sent.headers["accept"] == ("text/event-stream" if stream else "application/json")

    @pytest.mark.parametrize(("params", "refused"), [
        ({"stop": ["END"]}, "stop"), ({"logprobs": True}, "logprobs"), ({"n": 2}, "n > 1")])
    async def test_what_it_cannot_carry_is_refused_before_sending(self, fake_provider, params,
                                                                 refused):
        with pytest.raises(errors.ProviderBadRequest, match=refused):
            await adapter.complete(make_call(fake_provider.base_url, params=params))
        assert fake_provider.requests == []

    async def test_an_output_limit_below_openais_floor_is_refused(self, fake_provider):
        # Raising it to 16 would let the provider bill more output than the gateway reserved.
        with pytest.raises(errors.ProviderBadRequest, match="below 16"):
            await adapter.complete(make_call(fake_provider.base_url, params={"max_tokens": 15}))
        assert fake_provider.requests == []
        await adapter.complete(make_call(fake_provider.base_url, params={"max_tokens": 16}))
        assert fake_provider.last_request.body["max_output_tokens"] == 16

    async def test_profile_options(self, fake_provider):
        call = make_call(fake_provider.base_url, options={
            "extra_body": {"reasoning": {"effort": "low"}},
            "extra_headers": {"OpenAI-Organization": "org-1"}})
        await adapter.complete(call)
        sent = fake_provider.last_request
        assert sent.body["reasoning"] == {"effort": "low"}
        assert sent.headers["openai-organization"] == "org-1"
        with pytest.raises(errors.ProviderNotConfigured, match="stream_usage"):
            await adapter.complete(make_call(fake_provider.base_url,
                                             options={"stream_usage": False}))


class TestAnswers:
    async def test_complete(self, fake_provider):
        completion = await adapter.complete(make_call(fake_provider.base_url))
        assert completion.message == {"role": "assistant",
                                      "content": "Echo: Say hello to the gateway tests can"}
        assert completion.finish_reason == "stop"
        # The fake's word count: 3 + (4 + 3 words of instructions) + (4 + 5 words of input).
        assert completion.usage == Usage(prompt_tokens=19, completion_tokens=8)

    async def test_stream_matches_complete(self, fake_provider):
        await helpers.stream_and_complete(adapter, make_call(fake_provider.base_url))

    async def test_cached_and_reasoning_tokens(self, fake_provider):
        call = make_call(fake_provider.base_url, "fake-cached-10-reasoning-5")
        completion = await adapter.complete(call)
        deltas, _ = await drain(adapter, call)
        for usage in (completion.usage, deltas[-1].usage):
            assert (usage.cached_tokens, usage.reasoning_tokens) == (10, 5)
            assert usage.completion_tokens == 8 + 5

    async def test_function_call(self, fake_provider):
        fake_provider.enqueue(Behavior(text="", tool_call=ToolCall(id="call_x")))
        completion = await adapter.complete(make_call(fake_provider.base_url))
        assert completion.finish_reason == "tool_calls"
        assert completion.message["content"] is None
        assert completion.message["tool_calls"] == [{
            "id": "call_x", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]

    async def test_streamed_function_call_after_text(self, fake_provider):
        fake_provider.enqueue(Behavior(text="Let me check.", tool_call=ToolCall(id="call_y")))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert error is None and text_of(deltas) == "Let me check."
        fragments = [f for d in deltas if d.tool_calls for f in d.tool_calls]
        assert len(fragments) == 3  # the item added, then the arguments in two pieces
        [call] = merge_tool_call_deltas(fragments)
        assert (call["id"], call["function"]["name"]) == ("call_y", "get_weather")
        assert json.loads(call["function"]["arguments"]) == {"city": "Paris"}
        assert deltas[-1].finish_reason == "tool_calls" and deltas[-1].usage is not None

    @pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
    async def test_incomplete_is_length(self, fake_provider, stream):
        # A server without OpenAI's floor of 16 output tokens (vLLM, say): the profile says so.
        call = make_call(fake_provider.base_url, params={"max_tokens": 3},
                         options={"min_output_tokens": 0})
        if stream:
            deltas, _ = await drain(adapter, call)
            finish, text = deltas[-1].finish_reason, text_of(deltas)
        else:
            completion = await adapter.complete(call)
            finish, text = completion.finish_reason, completion.message["content"]
        assert finish == "length" and text == "Echo: Say hello"

    @pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
    async def test_no_usage_is_none(self, fake_provider, stream):
        call = make_call(fake_provider.base_url, "fake-nousage")
        if stream:
            deltas, _ = await drain(adapter, call)
            assert deltas[-1].finish_reason == "stop" and deltas[-1].usage is None
        else:
            assert (await adapter.complete(call)).usage is None

    async def test_arguments_sent_only_when_done(self, fake_provider):
        """A server that sends a call's arguments whole, in function_call_arguments.done."""
        item = {"id": "fc_1", "type": "function_call", "call_id": "call_z", "name": "f",
                "arguments": ""}
        fake_provider.enqueue(Behavior(replay=responses_sse(
            {"type": "response.created", "response": {"status": "in_progress"}},
            {"type": "response.output_item.added", "output_index": 0, "item": item},
            {"type": "response.function_call_arguments.done", "item_id": "fc_1",
             "output_index": 0, "arguments": '{"a": 1}'},
            {"type": "response.completed", "response": {"status": "completed", "usage": {
                "input_tokens": 5, "output_tokens": 2}}})))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert error is None
        [call] = merge_tool_call_deltas([f for d in deltas if d.tool_calls for f in d.tool_calls])
        assert call["function"]["arguments"] == '{"a": 1}'
        assert deltas[-1].usage == Usage(prompt_tokens=5, completion_tokens=2)

    async def test_server_ignoring_stream_flag(self, fake_provider):
        fake_provider.enqueue(Behavior(ignore_stream=True))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert error is None and text_of(deltas) == "Echo: Say hello to the gateway tests can"
        assert deltas[-1].usage == Usage(prompt_tokens=19, completion_tokens=8)


class TestErrors(helpers.TransportErrorTests, helpers.StatusErrorTests):
    adapter, model = adapter, "gpt-test"

    async def test_cut_mid_stream_is_interrupted(self, fake_provider):
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "fake-cut-2"))
        assert isinstance(error, errors.StreamInterrupted)
        assert text_of(deltas) == "Echo: Say"

    async def test_cut_before_any_delta_is_retryable(self, fake_provider):
        deltas, error = await drain(adapter, make_call(fake_provider.base_url, "fake-cut-0"))
        assert deltas == [] and isinstance(error, errors.ProviderConnectionError)
        assert error.retryable

    async def test_stall_is_interrupted(self, fake_provider, settings):
        settings.PROVIDER_STREAM_IDLE_TIMEOUT_SECONDS = 0.2
        fake_provider.enqueue(Behavior(stall_after=1, stall_seconds=3))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert isinstance(error, errors.StreamInterrupted) and text_of(deltas) == "Echo:"

    @pytest.mark.parametrize("model", ["fake-malformed", "fake-missing"])
    async def test_malformed(self, fake_provider, model):
        with pytest.raises(errors.ProviderMalformedResponse):
            await adapter.complete(make_call(fake_provider.base_url, model))

    async def test_dropped_connection(self, fake_provider):
        with pytest.raises(errors.ProviderConnectionError):
            await adapter.complete(make_call(fake_provider.base_url, "fake-drop"))

    @pytest.mark.parametrize(("code", "error_class"), [
        ("server_error", errors.ProviderServerError),
        ("rate_limit_exceeded", errors.ProviderRateLimited),
        ("invalid_prompt", errors.ProviderBadRequest)])
    async def test_response_failed_event(self, fake_provider, code, error_class):
        fake_provider.enqueue(Behavior(replay=responses_sse(
            {"type": "response.created", "response": {"status": "in_progress"}},
            {"type": "response.failed", "response": {"status": "failed", "error": {
                "code": code, "message": "the model broke"}}})))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert deltas == [] and isinstance(error, error_class)  # nothing relayed: retry-safe
        assert "the model broke" in error.message

    async def test_error_event_after_text_is_interrupted(self, fake_provider):
        fake_provider.enqueue(Behavior(replay=responses_sse(
            {"type": "response.created", "response": {"status": "in_progress"}},
            {"type": "response.output_text.delta", "item_id": "m", "output_index": 0,
             "content_index": 0, "delta": "Hello"},
            {"type": "error", "code": "server_error", "message": "overloaded"})))
        deltas, error = await drain(adapter, make_call(fake_provider.base_url))
        assert text_of(deltas) == "Hello" and isinstance(error, errors.StreamInterrupted)
        assert "overloaded" in error.message

    async def test_failed_response_object(self, fake_provider):
        fake_provider.enqueue(Behavior(replay=json.dumps({
            "id": "resp_1", "object": "response", "status": "failed", "output": [],
            "error": {"code": "server_error", "message": "boom"}})))
        with pytest.raises(errors.ProviderServerError, match="boom"):
            await adapter.complete(make_call(fake_provider.base_url))


class TestRegistry:
    def test_entry_shares_openai_key_and_endpoint(self, settings):
        settings.OPENAI_API_KEY = "sk-openai"
        resolved = get_adapter("openai_responses")
        assert isinstance(resolved, OpenAIResponsesAdapter)
        assert resolved.api_key_for() == "sk-openai"
        request = resolved.build_request(
            make_call("", provider="openai_responses", api_key=""), stream=False)
        assert request.url == "https://api.openai.com/v1/responses"
        assert request.headers["Authorization"] == "Bearer sk-openai"

    def test_without_key_is_not_configured(self, settings):
        settings.OPENAI_API_KEY = ""
        with pytest.raises(errors.ProviderNotConfigured, match="OPENAI_API_KEY"):
            get_adapter("openai_responses").build_request(
                make_call("", provider="openai_responses", api_key=""), stream=False)
