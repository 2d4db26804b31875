"""Anthropic's event stream from chat.completion.chunk objects (llmops/api/messages/stream.py)."""

import asyncio
import json

from llmops.api.messages.stream import messages_sse


def _chunk(delta: dict | None = None, finish: str | None = None, usage: dict | None = None):
    body = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "model": "m"}
    if usage is not None:
        return {**body, "choices": [], "usage": usage}
    return {**body, "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}]}


def _events(chunks: list[dict]) -> list[tuple[str, dict]]:
    async def source():
        for chunk in chunks:
            yield chunk

    async def collect():
        return [raw async for raw in messages_sse(source(), request_id="r")]

    events = []
    for raw in asyncio.run(collect()):
        event_line, data_line = raw.decode().strip().split("\n")
        name = event_line.removeprefix("event: ")
        data = json.loads(data_line.removeprefix("data: "))
        assert data["type"] == name
        events.append((name, data))
    return events


USAGE = {"prompt_tokens": 12, "completion_tokens": 3,
         "prompt_tokens_details": {"cached_tokens": 2}}


def test_text_stream():
    events = _events([_chunk({"role": "assistant", "content": ""}), _chunk({"content": "Hel"}),
                      _chunk({"content": "lo"}), _chunk(finish="stop"), _chunk(usage=USAGE)])
    names = [name for name, _ in events]
    assert names == ["message_start", "ping", "content_block_start", "content_block_delta",
                     "content_block_delta", "content_block_stop", "message_delta",
                     "message_stop"]
    start = events[0][1]["message"]
    assert start["id"] == "msg_r" and start["model"] == "m" and start["content"] == []
    assert [e[1]["delta"]["text"] for e in events if e[0] == "content_block_delta"] == [
        "Hel", "lo"]
    delta = events[-2][1]
    assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
    assert delta["usage"]["input_tokens"] == 10 and delta["usage"]["output_tokens"] == 3
    assert delta["usage"]["cache_read_input_tokens"] == 2


def test_text_then_two_tool_calls_are_three_blocks():
    events = _events([
        _chunk({"role": "assistant", "content": "Checking."}),
        _chunk({"tool_calls": [{"index": 0, "id": "c1", "type": "function",
                                "function": {"name": "f", "arguments": ""}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a"'}}]}),
        _chunk({"tool_calls": [{"index": 0, "function": {"arguments": ': 1}'}}]}),
        _chunk({"tool_calls": [{"index": 1, "id": "c2", "type": "function",
                                "function": {"name": "g", "arguments": "{}"}}]}),
        _chunk(finish="tool_calls"), _chunk(usage=USAGE)])
    starts = [e[1] for e in events if e[0] == "content_block_start"]
    assert [(s["index"], s["content_block"]["type"]) for s in starts] == [
        (0, "text"), (1, "tool_use"), (2, "tool_use")]
    assert starts[1]["content_block"] == {"type": "tool_use", "id": "c1", "name": "f",
                                          "input": {}}
    json_parts = [(e[1]["index"], e[1]["delta"]["partial_json"]) for e in events
                  if e[0] == "content_block_delta" and e[1]["delta"]["type"] == "input_json_delta"]
    assert json_parts == [(1, '{"a"'), (1, ": 1}"), (2, "{}")]
    assert [e[1]["index"] for e in events if e[0] == "content_block_stop"] == [0, 1, 2]
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"


def test_a_broken_stream_ends_with_an_error_event():
    events = _events([_chunk({"role": "assistant", "content": "Hi"}),
                      {"error": {"message": "The stream broke.", "type": "api_error",
                                 "code": "malformed", "param": None}}])
    assert events[-1][0] == "error"
    assert events[-1][1]["error"]["type"] == "api_error"
    assert events[-1][1]["error"]["message"] == "The stream broke."
    assert "message_stop" not in [name for name, _ in events]


def test_an_empty_stream_sends_nothing():
    assert _events([]) == []
