"""Anthropic Messages ⇄ the pipeline's OpenAI shape (llmops/api/messages/translate.py)."""

import json

from llmops.api.messages.translate import (
    chat_messages,
    chat_params,
    content_blocks,
    message_body,
    stop_reason,
    tool_input,
)

TOOL = {"name": "get_weather", "description": "Weather now.",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}


class TestChatMessages:
    def test_system_blocks_become_one_system_message_first(self):
        messages = chat_messages({"system": [{"type": "text", "text": "Be brief."},
                                             {"type": "text", "text": "Answer in French."}],
                                  "messages": [{"role": "user", "content": "hi"}]})
        assert messages == [
            {"role": "system", "content": "Be brief.\n\nAnswer in French."},
            {"role": "user", "content": "hi"}]

    def test_images_become_image_url_parts(self):
        [message] = chat_messages({"messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": "iVBORw0KGgo="}},
            {"type": "image", "source": {"type": "url", "url": "https://x.test/a.png"}},
            {"type": "text", "text": "What is this?"}]}]})
        assert message == {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
            {"type": "text", "text": "What is this?"}]}

    def test_tool_use_and_tool_result_become_tool_calls_and_tool_messages(self):
        messages = chat_messages({"messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Use the tool.", "signature": "s"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                 "input": {"city": "Paris"}}]},
            {"role": "user", "content": [
                {"type": "text", "text": "Also, be quick."},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [
                    {"type": "text", "text": "sunny"},
                    {"type": "image", "source": {"type": "url", "url": "https://x.test/m.png"}}]},
            ]}]})
        assert messages[1] == {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
        # tool results come right after the call; the turn's text and images follow them
        assert messages[2] == {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"}
        assert messages[3] == {"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x.test/m.png"}},
            {"type": "text", "text": "Also, be quick."}]}

    def test_a_failed_tool_result_says_so(self):
        messages = chat_messages({"messages": [{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": "timeout",
             "is_error": True}]}]})
        assert messages == [{"role": "tool", "tool_call_id": "t", "content": "Error: timeout"}]

    def test_an_assistant_turn_of_tool_calls_only_has_null_content(self):
        [message] = chat_messages({"messages": [{"role": "assistant", "content": [
            {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]})
        assert message["content"] is None and message["tool_calls"][0]["id"] == "t"


class TestChatParams:
    def test_names_are_openais(self):
        params = chat_params({"max_tokens": 100, "temperature": 0.5, "top_p": 0.9, "top_k": 5,
                              "stop_sequences": ["END"], "metadata": {"user_id": "u-1"}})
        assert params == {"max_tokens": 100, "temperature": 0.5, "top_p": 0.9,
                          "stop": ["END"], "user": "u-1"}

    def test_tools_become_functions_and_tool_choice_maps(self):
        choices = {"auto": "auto", "any": "required", "none": "none"}
        for kind, expected in choices.items():
            params = chat_params({"max_tokens": 1, "tools": [TOOL],
                                  "tool_choice": {"type": kind}})
            assert params["tool_choice"] == expected
        params = chat_params({"max_tokens": 1, "tools": [TOOL], "tool_choice": {
            "type": "tool", "name": "get_weather", "disable_parallel_tool_use": True}})
        assert params["tools"] == [{"type": "function", "function": {
            "name": "get_weather", "parameters": TOOL["input_schema"],
            "description": "Weather now."}}]
        assert params["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
        assert params["parallel_tool_calls"] is False

    def test_tool_choice_without_tools_is_dropped(self):
        assert chat_params({"max_tokens": 1, "tool_choice": {"type": "any"}}) == {
            "max_tokens": 1}

    def test_output_format_becomes_a_json_schema_response_format(self):
        schema = {"type": "object", "properties": {"a": {"type": "string"}}}
        params = chat_params({"max_tokens": 1, "output_config": {
            "format": {"type": "json_schema", "schema": schema}}})
        assert params["response_format"] == {"type": "json_schema", "json_schema": {
            "name": "output", "schema": schema}}


class TestAnswer:
    def test_stop_reasons(self):
        assert [stop_reason(r) for r in ("stop", "length", "tool_calls", "content_filter",
                                         None, "other")] == [
            "end_turn", "max_tokens", "tool_use", "refusal", "end_turn", "end_turn"]

    def test_tool_input_keeps_arguments_that_are_not_an_object(self):
        assert tool_input('{"a": 1}') == {"a": 1}
        assert tool_input("") == {}
        assert tool_input("[1]") == {"_arguments": [1]}
        assert tool_input("{broken") == {"_arguments": "{broken"}

    def test_content_blocks_text_then_tool_use(self):
        blocks = content_blocks({"role": "assistant", "content": "Looking.", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "f", "arguments": json.dumps({"x": 1})}}]})
        assert blocks == [{"type": "text", "text": "Looking."},
                          {"type": "tool_use", "id": "c1", "name": "f", "input": {"x": 1}}]
        assert content_blocks({"role": "assistant", "content": ""}) == []

    def test_message_body_counts_input_without_cache_reads(self):
        body = message_body({
            "model": "m", "choices": [{"message": {"role": "assistant", "content": "hi"},
                                       "finish_reason": "length"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 7,
                      "prompt_tokens_details": {"cached_tokens": 60}, "cost": 0.1,
                      "llmops": {"request_id": "r1"}}}, request_id="r1")
        assert body["id"] == "msg_r1" and body["type"] == "message"
        assert body["stop_reason"] == "max_tokens" and body["stop_sequence"] is None
        assert body["usage"] == {"input_tokens": 40, "output_tokens": 7,
                                 "cache_creation_input_tokens": 0,
                                 "cache_read_input_tokens": 60, "cost": 0.1,
                                 "llmops": {"request_id": "r1"}}
