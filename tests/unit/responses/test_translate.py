"""A Responses request becomes the chat request the pipeline runs; what cannot is a 400."""

import pytest

from llmops.errors import InvalidRequest
from llmops.responses.translate import (
    chat_messages,
    chat_request,
    chat_response_format,
    chat_tool_choice,
    chat_tools,
)


def test_a_string_is_one_user_message():
    assert chat_messages("hi") == [{"role": "user", "content": "hi"}]


def test_message_parts_become_chat_parts():
    messages = chat_messages([
        {"role": "developer", "content": "Be terse."},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "What is this?"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA",
             "detail": "low"}]},
        {"role": "assistant", "content": [{"type": "output_text", "text": "A ", "annotations": []},
                                          {"type": "output_text", "text": "cat."}]},
    ])
    assert messages == [
        {"role": "developer", "content": "Be terse."},
        {"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA",
                                                "detail": "low"}}]},
        {"role": "assistant", "content": "A cat."},
    ]


def test_function_calls_join_the_assistant_turn_and_outputs_are_tool_messages():
    call = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
    messages = chat_messages([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": "Calling."},
        call, {**call, "call_id": "c2"},
        {"type": "reasoning", "id": "rs_1", "summary": []},  # nothing a chat model reads
        {"type": "function_call_output", "call_id": "c1", "output": "1"},
        {"type": "function_call_output", "call_id": "c2",
         "output": [{"type": "input_text", "text": "2"}]},
    ])
    assert messages[1] == {"role": "assistant", "content": "Calling.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "c2", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    assert messages[2:] == [{"role": "tool", "tool_call_id": "c1", "content": "1"},
                            {"role": "tool", "tool_call_id": "c2", "content": "2"}]
    assert chat_messages([call])[0]["content"] is None


@pytest.mark.parametrize(("items", "param"), [
    ([{"type": "item_reference", "id": "x"}], "input[0].type"),
    (["hello"], "input[0]"),
    ([{"role": "tool", "content": "x"}], "input[0].role"),
    ([{"role": "user", "content": 5}], "input[0].content"),
    ([{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}],
     "input[0].content[0].type"),
    ([{"role": "user", "content": [{"type": "input_text"}]}], "input[0].content[0].text"),
    ([{"role": "user", "content": [{"type": "input_image", "image_url": "u",
                                    "detail": "max"}]}], "input[0].content[0].detail"),
    ([{"role": "assistant", "content": [{"type": "input_image", "image_url": "u"}]}],
     "input[0].content"),
    ([{"type": "function_call", "name": "f", "arguments": "{}"}], "input[0].call_id"),
    ([{"type": "function_call_output", "call_id": "c", "output": 3}], "input[0].output"),
    ([{"type": "reasoning"}], "input"),
])
def test_what_cannot_be_carried_is_refused_with_its_path(items, param):
    with pytest.raises(InvalidRequest) as refused:
        chat_messages(items)
    assert refused.value.param == param and refused.value.status_code == 400


def test_flat_function_tools_become_chat_tools():
    assert chat_tools([{"type": "function", "name": "f", "description": "d",
                        "parameters": {"type": "object"}, "strict": True}]) == [
        {"type": "function", "function": {"name": "f", "description": "d",
                                          "parameters": {"type": "object"}, "strict": True}}]
    with pytest.raises(InvalidRequest) as refused:
        chat_tools([{"type": "function", "name": "f"}, {"type": "file_search"}])
    assert refused.value.param == "tools[1].type"


def test_tool_choice_forms():
    assert chat_tool_choice("required") == "required"
    assert chat_tool_choice({"type": "function", "name": "f"}) == {
        "type": "function", "function": {"name": "f"}}
    with pytest.raises(InvalidRequest):
        chat_tool_choice({"type": "allowed_tools", "tools": []})


def test_text_formats():
    assert chat_response_format({"format": {"type": "text"}}) is None
    assert chat_response_format({"format": {"type": "json_object"}}) == {"type": "json_object"}
    assert chat_response_format({"format": {"type": "json_schema", "name": "n",
                                            "schema": {}, "strict": False}}) == {
        "type": "json_schema", "json_schema": {"name": "n", "schema": {}, "strict": False}}
    with pytest.raises(InvalidRequest) as refused:
        chat_response_format({"format": {"type": "yaml"}})
    assert refused.value.param == "text.format.type"


def test_chat_request_puts_instructions_first_and_keeps_them_out_of_the_conversation():
    history = [{"role": "user", "content": "before"}, {"role": "assistant", "content": "ok"}]
    chat, conversation = chat_request(
        {"model": "auto", "input": "now", "instructions": "Be kind.", "max_output_tokens": 9,
         "temperature": 0.5, "stream": True, "metadata": {"k": "v"}}, history)
    assert conversation == [*history, {"role": "user", "content": "now"}]
    assert chat["messages"] == [{"role": "system", "content": "Be kind."}, *conversation]
    assert chat["max_completion_tokens"] == 9 and chat["temperature"] == 0.5
    assert chat["stream"] is True and chat["stream_options"] == {"include_usage": True}
    assert chat["metadata"] == {"k": "v"} and "tools" not in chat
