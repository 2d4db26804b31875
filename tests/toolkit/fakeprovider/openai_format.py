"""OpenAI Chat Completions as the fake answers it: the whole answer, the stream, the errors."""

import json
import time

from tests.toolkit.fakeprovider.answers import Answer, WireFormat, argument_pieces, message_text
from tests.toolkit.fakeprovider.behaviors import Behavior, ToolCall, reported


def _usage(answer: Answer, behavior: Behavior) -> dict:
    prompt, completion = reported(behavior, answer.prompt_tokens, answer.completion_tokens)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": answer.reasoning_tokens,
                                      "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }


def _tool_call(tool: ToolCall) -> dict:
    return {"id": tool.id, "type": "function",
            "function": {"name": tool.name, "arguments": json.dumps(tool.arguments)}}


def openai_error_body(status: int, quoted_key: str | None = None) -> dict:
    """Return OpenAI's error body for `status` (quoting `quoted_key` when given)."""
    kind = {400: "invalid_request_error", 401: "invalid_request_error",
            404: "invalid_request_error",
            429: "rate_limit_exceeded"}.get(status, "server_error")
    if quoted_key is not None:
        return {"error": {"message": f"Incorrect API key provided: {quoted_key}. Header was "
                                     f"Bearer {quoted_key}", "type": kind,
                          "param": quoted_key, "code": "invalid_api_key"}}
    return {"error": {"message": f"fake provider error {status}", "type": kind,
                      "param": None, "code": kind}}


class OpenAIFormat(WireFormat):
    path = "/v1/chat/completions"
    wire = "openai"
    id_prefix = "chatcmpl-"

    def __init__(self, body: dict, behavior: Behavior, meter) -> None:
        super().__init__(body, behavior, meter)
        self.created = int(time.time())
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))

    def prompt_texts(self, body: dict) -> list[str]:
        return [message_text(m.get("content")) for m in body.get("messages") or []]

    def max_tokens(self, body: dict) -> int | None:
        return body.get("max_completion_tokens") or body.get("max_tokens")

    def error_body(self, status: int, quoted_key: str | None = None) -> dict:
        return openai_error_body(status, quoted_key)

    def completion(self) -> dict:
        if self.behavior.missing_fields:
            return {"id": self.id, "object": "chat.completion", "model": self.model}
        message: dict = {"role": "assistant", "content": self.answer.text or None,
                         "refusal": None, "annotations": []}
        if self.answer.tool_call:
            message["tool_calls"] = [_tool_call(self.answer.tool_call)]
        body = {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "choices": [{"index": 0, "message": message,
                                                  "logprobs": None,
                                                  "finish_reason": self.answer.finish}],
                "system_fingerprint": "fp_fake", "service_tier": "default"}
        if self.reports_usage:
            body["usage"] = _usage(self.answer, self.behavior)
        return body

    def _chunk(self, delta: dict, finish: str | None = None) -> bytes:
        chunk = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                 "model": self.model, "system_fingerprint": "fp_fake",
                 "choices": [{"index": 0, "delta": delta, "logprobs": None,
                              "finish_reason": finish}]}
        if self.include_usage:
            chunk["usage"] = None
        return b"data: " + json.dumps(chunk).encode() + b"\n\n"

    def opening(self) -> list[bytes]:
        return [self._chunk({"role": "assistant", "content": "", "refusal": None})]

    def content(self, text: str) -> bytes:
        return self._chunk({"content": text})

    def closing(self) -> list[bytes]:
        events = []
        if self.answer.tool_call:
            tool = self.answer.tool_call
            events.append(self._chunk({"tool_calls": [{"index": 0, "id": tool.id,
                                                       "type": "function", "function": {
                                                           "name": tool.name,
                                                           "arguments": ""}}]}))
            for piece in argument_pieces(tool):
                events.append(self._chunk({"tool_calls": [{"index": 0, "function": {
                    "arguments": piece}}]}))
        events.append(self._chunk({}, self.answer.finish))
        if self.include_usage and self.reports_usage:
            events.append(b"data: " + json.dumps({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "system_fingerprint": "fp_fake", "choices": [],
                "usage": _usage(self.answer, self.behavior)}).encode() + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events
