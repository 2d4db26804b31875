"""Anthropic Messages as the fake answers it: the whole answer, the stream, the errors."""

import json

from tests.toolkit.fakeprovider.answers import WireFormat, argument_pieces, message_text
from tests.toolkit.fakeprovider.behaviors import reported

_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _sse(name: str, payload: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()


class AnthropicFormat(WireFormat):
    path = "/v1/messages"
    wire = "anthropic"
    id_prefix = "msg_"

    def prompt_texts(self, body: dict) -> list[str]:
        system = body.get("system")
        texts = [message_text(system)] if system else []
        return texts + [message_text(m.get("content")) for m in body.get("messages") or []]

    def max_tokens(self, body: dict) -> int | None:
        return body.get("max_tokens")

    def _usage(self, output_tokens: int) -> dict:
        cached, written = self.answer.cached_tokens, self.behavior.cache_creation_tokens
        # Anthropic's input_tokens exclude cache reads and writes.
        fresh, output = reported(self.behavior, max(0, self.answer.prompt_tokens - cached
                                                    - written), output_tokens)
        return {"input_tokens": fresh, "cache_creation_input_tokens": written,
                "cache_read_input_tokens": cached, "output_tokens": output}

    def error_body(self, status: int, quoted_key: str | None = None) -> dict:
        kind = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
                529: "overloaded_error"}.get(status, "api_error")
        message = (f"fake provider error {status}" if quoted_key is None
                   else f"invalid x-api-key: {quoted_key}")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def _blocks(self) -> list[dict]:
        blocks = [{"type": "text", "text": self.answer.text}] if self.answer.words else []
        if self.answer.tool_call:
            tool = self.answer.tool_call
            blocks.append({"type": "tool_use", "id": tool.id, "name": tool.name,
                           "input": tool.arguments})
        return blocks

    def completion(self) -> dict:
        if self.behavior.missing_fields:
            return {"id": self.id, "type": "message", "model": self.model}
        body = {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": self._blocks(), "stop_reason": _STOP[self.answer.finish],
                "stop_sequence": None}
        if self.reports_usage:
            body["usage"] = self._usage(self.answer.completion_tokens)
        return body

    def opening(self) -> list[bytes]:
        message = {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                   "content": [], "stop_reason": None, "stop_sequence": None}
        if self.reports_usage:
            message["usage"] = self._usage(1)
        return [_sse("message_start", {"type": "message_start", "message": message}),
                _sse("content_block_start", {"type": "content_block_start", "index": 0,
                                             "content_block": {"type": "text", "text": ""}}),
                _sse("ping", {"type": "ping"})]

    def content(self, text: str) -> bytes:
        return _sse("content_block_delta", {"type": "content_block_delta", "index": 0,
                                            "delta": {"type": "text_delta", "text": text}})

    def closing(self) -> list[bytes]:
        events = [_sse("content_block_stop", {"type": "content_block_stop", "index": 0})]
        if self.answer.tool_call:
            tool = self.answer.tool_call
            events.append(_sse("content_block_start", {
                "type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": tool.id, "name": tool.name,
                                  "input": {}}}))
            for piece in argument_pieces(tool):
                events.append(_sse("content_block_delta", {
                    "type": "content_block_delta", "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": piece}}))
            events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 1}))
        delta = {"type": "message_delta", "delta": {
            "stop_reason": _STOP[self.answer.finish], "stop_sequence": None}}
        if self.reports_usage:
            delta["usage"] = {"output_tokens": self._usage(self.answer.completion_tokens)[
                "output_tokens"]}
        events.append(_sse("message_delta", delta))
        events.append(_sse("message_stop", {"type": "message_stop"}))
        return events
