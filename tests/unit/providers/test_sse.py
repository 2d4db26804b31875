"""The shared SSE parser."""

from llmops.providers.sse import SSEEvent, parse_sse


async def _lines(text: str):
    for line in text.split("\n"):
        yield line


async def _events(text: str) -> list[SSEEvent]:
    return [event async for event in parse_sse(_lines(text))]


class TestParseSSE:
    async def test_events_names_comments_and_multiline_data(self):
        text = (": keep-alive\n\nevent: message_start\ndata: {\"a\":\n"
                "data: 1}\n\ndata:[DONE]\n\nid: 7\nretry: 10\n\n")
        assert await _events(text) == [SSEEvent("message_start", '{"a":\n1}'),
                                       SSEEvent("message", "[DONE]")]

    async def test_unterminated_last_event_is_kept(self):
        assert await _events("data: [DONE]") == [SSEEvent("message", "[DONE]")]
