"""Server-sent events as the front doors put them on the wire."""

import json

from llmops.api.sse import chat_completion_sse, sse_event


def test_an_event_is_a_data_line_and_a_blank_line():
    assert sse_event({"a": 1, "b": [1, 2]}) == b'data: {"a":1,"b":[1,2]}\n\n'
    assert sse_event("[DONE]") == b"data: [DONE]\n\n"


def test_a_named_event_has_its_event_line_first():
    assert sse_event({"type": "message_stop"}, event="message_stop") == (
        b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


async def test_chat_completions_end_with_done():
    chunks = [{"object": "chat.completion.chunk", "choices": [{"delta": {"content": "hé"}}]},
              {"object": "chat.completion.chunk", "choices": [], "usage": {"total_tokens": 3}}]

    async def source():
        for chunk in chunks:
            yield chunk

    events = [event async for event in chat_completion_sse(source())]
    assert events[-1] == b"data: [DONE]\n\n"
    assert [json.loads(e[len(b"data: "):]) for e in events[:-1]] == chunks
