"""Wire-format translation and usage normalization, without HTTP."""

import json

import pytest

from llmops.providers import errors
from llmops.providers.anthropic_messages import (
    AnthropicStreamDecoder,
    translate_messages,
    translate_params,
    usage_from_anthropic,
)
from llmops.providers.base import Usage
from llmops.providers.openai_chat import (
    OpenAIStreamDecoder,
    chat_params,
    merge_tool_call_deltas,
    usage_from_openai,
)
from llmops.providers.sse import SSEEvent


class TestOpenAIUsage:
    def test_details(self):
        raw = {"prompt_tokens": 10, "completion_tokens": 20,
               "prompt_tokens_details": {"cached_tokens": 4},
               "completion_tokens_details": {"reasoning_tokens": 15}}
        assert usage_from_openai(raw) == Usage(10, 20, 4, 15)

    @pytest.mark.parametrize("raw", [None, {}, {"prompt_tokens": None, "completion_tokens": 1}])
    def test_unusable_is_none(self, raw):
        assert usage_from_openai(raw) is None

    def test_null_details(self):  # Gemini and vLLM send null detail objects
        raw = {"prompt_tokens": 3, "completion_tokens": 2, "prompt_tokens_details": None,
               "completion_tokens_details": None}
        assert usage_from_openai(raw) == Usage(3, 2)


class TestOpenAIDecoder:
    def _chunk(self, **choice) -> SSEEvent:
        return SSEEvent("message", json.dumps({"choices": [{"index": 0, **choice}]}))

    def test_end_without_done_after_finish_reason_is_complete(self):
        decoder = OpenAIStreamDecoder()
        decoder.feed(self._chunk(delta={"content": "hi"}))
        decoder.feed(self._chunk(delta={}, finish_reason="length"))
        [closing] = decoder.finish()
        assert closing.finish_reason == "length" and closing.usage is None

    def test_end_without_finish_reason_is_interrupted(self):
        decoder = OpenAIStreamDecoder()
        decoder.feed(self._chunk(delta={"content": "hi"}))
        with pytest.raises(errors.StreamInterrupted):
            decoder.finish()

    def test_odd_shapes_raise_plain_errors_the_mixin_types(self):
        # The mixin turns these into ProviderMalformedResponse / StreamInterrupted.
        with pytest.raises(AttributeError):
            OpenAIStreamDecoder().feed(SSEEvent("message", '{"choices": ["x"]}'))
        with pytest.raises(errors.ProviderMalformedResponse):
            OpenAIStreamDecoder().feed(SSEEvent("message", '[1, 2]'))

    def test_error_event(self):
        with pytest.raises(errors.ProviderServerError, match="boom"):
            OpenAIStreamDecoder().feed(SSEEvent("message", '{"error": {"message": "boom"}}'))


class TestChatParams:
    def test_passes_known_and_drops_owned(self):
        assert chat_params({"temperature": 0, "stream": True, "model": "x", "seed": None}) == {
            "temperature": 0}

    def test_refuses_n(self):
        with pytest.raises(errors.ProviderBadRequest):
            chat_params({"n": 2})

    def test_merge_tool_calls_by_index(self):
        fragments = [
            {"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}},
            {"index": 1, "id": "b", "function": {"name": "g", "arguments": "{"}},
            {"index": 0, "function": {"arguments": "{}"}},
            {"index": 1, "function": {"arguments": "}"}},
        ]
        assert [c["function"] for c in merge_tool_call_deltas(fragments)] == [
            {"name": "f", "arguments": "{}"}, {"name": "g", "arguments": "{}"}]


class TestAnthropicMessages:
    def test_images_and_multi_part_user(self):
        system, turns = translate_messages([
            {"role": "system", "content": [{"type": "text", "text": "Sys"}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,QUJD"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]},
        ])
        assert system == "Sys"
        assert turns[0]["content"][1:] == [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg",
                                         "data": "QUJD"}},
            {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]

    def test_tool_results_come_first_and_turns_merge(self):
        _, turns = translate_messages([
            {"role": "user", "content": "a"},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "calling",
             "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "t", "content": [{"type": "text", "text": "42"}]},
            {"role": "user", "content": "thanks"},
        ])
        assert [t["role"] for t in turns] == ["user", "assistant", "user"]
        assert len(turns[0]["content"]) == 2
        assert turns[1]["content"] == [
            {"type": "text", "text": "calling"},
            {"type": "tool_use", "id": "t", "name": "f", "input": {}}]
        assert turns[2]["content"] == [
            {"type": "tool_result", "tool_use_id": "t", "content": "42"},
            {"type": "text", "text": "thanks"}]

    def test_bad_tool_arguments(self):
        with pytest.raises(errors.ProviderBadRequest):
            translate_messages([{"role": "assistant", "tool_calls": [
                {"id": "t", "function": {"name": "f", "arguments": "{oops"}}]}])


class TestAnthropicParams:
    def test_tool_choice_forms(self):
        tools = [{"type": "function", "function": {"name": "f"}}]
        named = {"type": "function", "function": {"name": "f"}}
        body, _ = translate_params({"tools": tools, "tool_choice": named,
                                    "parallel_tool_calls": False}, default_max_tokens=10)
        assert body["tool_choice"] == {"type": "tool", "name": "f",
                                       "disable_parallel_tool_use": True}
        assert body["tools"] == [{"name": "f", "input_schema": {"type": "object",
                                                                "properties": {}}}]
        body, _ = translate_params({"tools": tools, "tool_choice": "none"}, default_max_tokens=10)
        assert body["tool_choice"] == {"type": "none"}

    def test_max_tokens_and_json_mode(self):
        body, extra = translate_params({"max_completion_tokens": 77,
                                        "response_format": {"type": "json_object"}},
                                       default_max_tokens=10)
        assert body == {"max_tokens": 77} and "JSON" in extra

    @pytest.mark.parametrize("params", [{"n": 3}, {"logprobs": True}, {"bogus": 1},
                                        {"response_format": {"type": "grammar"}}])
    def test_refused(self, params):
        with pytest.raises(errors.ProviderBadRequest):
            translate_params(params, default_max_tokens=10)


class TestAnthropicUsage:
    def test_cache_reads_and_writes_are_prompt(self):
        usage = usage_from_anthropic({"input_tokens": 10, "cache_read_input_tokens": 100,
                                      "cache_creation_input_tokens": 50, "output_tokens": 7})
        assert usage == Usage(prompt_tokens=160, completion_tokens=7, cached_tokens=100)

    def test_missing_is_none(self):
        assert usage_from_anthropic({"output_tokens": 3}) is None
        assert usage_from_anthropic(None) is None

    def test_stream_usage_later_counts_win(self):
        decoder = AnthropicStreamDecoder()
        decoder.feed(SSEEvent("message_start", '{"type": "message_start", "message": '
                              '{"usage": {"input_tokens": 5, "output_tokens": 1}}}'))
        decoder.feed(SSEEvent("message_delta", '{"type": "message_delta", "delta": '
                              '{"stop_reason": "max_tokens"}, "usage": {"output_tokens": 9}}'))
        [last] = decoder.feed(SSEEvent("message_stop", '{"type": "message_stop"}'))
        assert last.finish_reason == "length" and last.usage == Usage(5, 9)

    def test_stream_without_message_stop_is_interrupted(self):
        decoder = AnthropicStreamDecoder()
        decoder.feed(SSEEvent("message_start", '{"type": "message_start", "message": {}}'))
        with pytest.raises(errors.StreamInterrupted):
            decoder.finish()
