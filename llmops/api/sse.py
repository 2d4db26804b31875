"""Server-sent events on the wire: one event's bytes, and Chat Completions' stream encoding."""

import json
from collections.abc import AsyncIterator


def sse_event(data: dict | str, *, event: str | None = None) -> bytes:
    """Return one server-sent event: an optional `event:` line (the Responses and Anthropic
    Messages streams name theirs) and its `data:` line, JSON-encoded when it is an object."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    if event is None:
        return f"data: {payload}\n\n".encode()
    return f"event: {event}\ndata: {payload}\n\n".encode()


async def chat_completion_sse(chunks: AsyncIterator[dict]) -> AsyncIterator[bytes]:
    """Encode a stream of `chat.completion.chunk` objects as OpenAI sends them: one `data:`
    event each, then `data: [DONE]`."""
    async for chunk in chunks:
        yield sse_event(chunk)
    yield sse_event("[DONE]")
