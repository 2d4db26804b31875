"""Server-sent events: the stream parser, and the decoder contract each wire format fills in."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

from llmops.providers import errors
from llmops.providers.base import Delta


@dataclass
class SSEEvent:
    """One server-sent event: its `event:` name ('message' when absent) and joined `data:`."""

    event: str
    data: str


async def parse_sse(lines: AsyncIterator[str]) -> AsyncIterator[SSEEvent]:
    """Yield the events of an SSE stream given its lines (without line endings)."""
    name = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield SSEEvent(name or "message", "\n".join(data))
            name, data = "", []
            continue
        if line.startswith(":"):  # a comment, e.g. a keep-alive ping
            continue
        field, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if field == "data":
            data.append(value)
        elif field == "event":
            name = value
    # The spec drops an unterminated last event; we keep it because a server that closes right
    # after "data: [DONE]" without the blank line has still said everything.
    if data:
        yield SSEEvent(name or "message", "\n".join(data))


def load_json(data: str | bytes, *, what: str) -> dict:
    """Return `data` (an event's data, a whole answer) parsed as a
    JSON object; raise `ProviderMalformedResponse` otherwise."""
    try:
        payload = json.loads(data)
    except ValueError as exc:
        raise errors.ProviderMalformedResponse(f"{what} is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise errors.ProviderMalformedResponse(f"{what} is not a JSON object")
    return payload


class StreamDecoder:
    """Turns one provider's SSE events into `Delta`s. One instance per stream."""

    #: set once the provider signalled the end of the answer
    done: bool = False

    # --- Methods that child classes must implement ---------------------------------------
    def feed(self, event: SSEEvent) -> list[Delta]:
        """Return the deltas carried by `event`; raise a `ProviderError` for error events."""
        raise NotImplementedError("subclasses of StreamDecoder must provide feed()")

    # --- Optional ------------------------------------------------------------------------
    def finish(self) -> list[Delta]:
        """Return the closing deltas once the body ended; raise if the answer is incomplete."""
        if not self.done:
            raise errors.StreamInterrupted("the stream ended before the provider finished")
        return []
