"""Anthropic's event stream from the pipeline's `chat.completion.chunk` objects.

`message_start`, then per content block `content_block_start`, its deltas (`text_delta`,
`input_json_delta`) and `content_block_stop`, then `message_delta` (stop_reason and the final
usage) and `message_stop`. A stream that broke mid-way ends with an `error` event, as
Anthropic's does. The input token count is only known at the end (the pipeline's usage chunk):
`message_start` says 0 and `message_delta` carries the real counts, which the SDKs keep.
"""

from collections.abc import AsyncIterator

from llmops.api.messages.errors import anthropic_error_body
from llmops.api.messages.translate import anthropic_usage, message_id, stop_reason
from llmops.api.sse import sse_event


class _Encoder:
    """The state of one stream: which content block is open, the stop reason, the usage."""

    def __init__(self, *, request_id: str) -> None:
        self.request_id = request_id
        self.started = False
        self.index = -1          # the current content block's index
        self.open: str | None = None  # "text" or "tool_use" while a block is open
        self.tools: dict[int, int] = {}  # OpenAI tool-call index → content block index
        self.finish_reason: str | None = None
        self.usage: dict = {}

    def start(self, model: str) -> list[bytes]:
        self.started = True
        message = {"id": message_id(self.request_id), "type": "message", "role": "assistant",
                   "model": model, "content": [], "stop_reason": None, "stop_sequence": None,
                   "usage": {"input_tokens": 0, "output_tokens": 0}}
        return [sse_event({"type": "message_start", "message": message}, event="message_start"),
                sse_event({"type": "ping"}, event="ping")]

    def _close_block(self) -> list[bytes]:
        if self.open is None:
            return []
        self.open = None
        return [sse_event({"type": "content_block_stop", "index": self.index},
                          event="content_block_stop")]

    def _open_block(self, kind: str, block: dict) -> list[bytes]:
        events = self._close_block()
        self.index += 1
        self.open = kind
        events.append(sse_event({"type": "content_block_start", "index": self.index,
                                 "content_block": block}, event="content_block_start"))
        return events

    def _delta(self, delta: dict) -> bytes:
        return sse_event({"type": "content_block_delta", "index": self.index, "delta": delta},
                         event="content_block_delta")

    def text(self, text: str) -> list[bytes]:
        events = [] if self.open == "text" else self._open_block(
            "text", {"type": "text", "text": ""})
        events.append(self._delta({"type": "text_delta", "text": text}))
        return events

    def tool_call(self, fragment: dict) -> list[bytes]:
        events: list[bytes] = []
        position = fragment.get("index", 0)
        function = fragment.get("function") or {}
        if position not in self.tools:
            events += self._open_block("tool_use", {
                "type": "tool_use", "id": fragment.get("id") or "",
                "name": function.get("name") or "", "input": {}})
            self.tools[position] = self.index
        elif self.tools[position] != self.index:
            return events  # a fragment of an earlier, closed call: Anthropic cannot reopen it
        if function.get("arguments"):
            events.append(self._delta({"type": "input_json_delta",
                                       "partial_json": function["arguments"]}))
        return events

    def chunk(self, chunk: dict) -> list[bytes]:
        events = [] if self.started else self.start(chunk.get("model") or "")
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self.text(delta["content"])
            for fragment in delta.get("tool_calls") or []:
                events += self.tool_call(fragment)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def finish(self) -> list[bytes]:
        events = self._close_block()
        usage = anthropic_usage(self.usage)
        events.append(sse_event({
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(self.finish_reason), "stop_sequence": None},
            "usage": usage}, event="message_delta"))
        events.append(sse_event({"type": "message_stop"}, event="message_stop"))
        return events

    def error(self, error: dict) -> list[bytes]:
        message = str(error.get("message") or "The stream failed.")
        body = anthropic_error_body(502, message, request_id=self.request_id,
                                    details={"code": error.get("code")} if error.get("code")
                                    else None)
        return [sse_event(body, event="error")]


async def messages_sse(chunks: AsyncIterator[dict], *, request_id: str) -> AsyncIterator[bytes]:
    """Encode the pipeline's chunks (include_usage on) as Anthropic's Messages event stream."""
    encoder = _Encoder(request_id=request_id)
    broken = False
    # Read to the end even after an error, so the relay finishes (closes upstream) as it does
    # for the chat endpoint; the error is its last chunk.
    async for chunk in chunks:
        if broken:
            continue
        if "error" in chunk and "choices" not in chunk:
            broken = True
            for event in encoder.error(chunk["error"] or {}):
                yield event
            continue
        for event in encoder.chunk(chunk):
            yield event
    if broken or not encoder.started:
        return  # nothing was relayed (the stream was settled as abandoned), or it broke
    for event in encoder.finish():
        yield event
