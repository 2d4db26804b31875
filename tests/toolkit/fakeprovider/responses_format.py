"""OpenAI Responses (`POST /v1/responses`) as the fake answers it: the `response` object, the
event stream (the message item opened at the first text, a `function_call` item for the tool
call, `response.completed` / `response.incomplete` with usage), the errors."""

import json
import time

from tests.toolkit.fakeprovider.answers import WireFormat, argument_pieces, message_text
from tests.toolkit.fakeprovider.behaviors import reported
from tests.toolkit.fakeprovider.openai_format import openai_error_body


def _item_text(item: dict) -> str:
    if item.get("type", "message") == "message":
        return message_text(item.get("content"))
    if item.get("type") == "function_call_output":
        return message_text(item.get("output"))
    return ""


class ResponsesFormat(WireFormat):
    path = "/v1/responses"
    wire = "openai"
    id_prefix = "resp_"

    def __init__(self, body: dict, behavior, meter) -> None:
        super().__init__(body, behavior, meter)
        self.created = int(time.time())
        self.store = body.get("store", True)
        self.sequence = 0
        self.message_id = f"msg_{self.id[len(self.id_prefix):]}"
        self.text_open = False

    def prompt_texts(self, body: dict) -> list[str]:
        raw = body.get("input")
        items = [{"role": "user", "content": raw}] if isinstance(raw, str) else raw or []
        texts = [_item_text(item) for item in items if isinstance(item, dict)]
        instructions = body.get("instructions")
        return ([instructions] if instructions else []) + texts

    def max_tokens(self, body: dict) -> int | None:
        return body.get("max_output_tokens")

    def error_body(self, status: int, quoted_key: str | None = None) -> dict:
        return openai_error_body(status, quoted_key)  # the same error shape as chat

    # --- the response object ---------------------------------------------------------------
    def _usage(self) -> dict | None:
        if not self.reports_usage:
            return None
        prompt, completion = reported(self.behavior, self.answer.prompt_tokens,
                                      self.answer.completion_tokens)
        return {"input_tokens": prompt,
                "input_tokens_details": {"cached_tokens": self.answer.cached_tokens},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": self.answer.reasoning_tokens},
                "total_tokens": prompt + completion}

    def _message_item(self, status: str) -> dict:
        return {"id": self.message_id, "type": "message", "status": status, "role": "assistant",
                "content": [self._text_part(self.answer.text)] if status != "in_progress"
                else []}

    @staticmethod
    def _text_part(text: str) -> dict:
        return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}

    def _call_item(self, status: str) -> dict:
        tool = self.answer.tool_call
        return {"id": f"fc_{tool.id}", "type": "function_call", "status": status,
                "call_id": tool.id, "name": tool.name,
                "arguments": json.dumps(tool.arguments) if status == "completed" else ""}

    def _status(self) -> tuple[str, dict | None]:
        if self.answer.finish == "length":
            return "incomplete", {"reason": "max_output_tokens"}
        return "completed", None

    def _response(self, status: str, output: list[dict], *, usage: dict | None = None,
                  incomplete: dict | None = None) -> dict:
        return {"id": self.id, "object": "response", "created_at": self.created,
                "status": status, "error": None, "incomplete_details": incomplete,
                "model": self.model, "output": output, "store": self.store, "usage": usage}

    def _output(self) -> list[dict]:
        output = [self._message_item("completed")] if self.answer.words else []
        if self.answer.tool_call:
            output.append(self._call_item("completed"))
        return output

    def completion(self) -> dict:
        if self.behavior.missing_fields:
            return {"id": self.id, "object": "response", "model": self.model}
        status, incomplete = self._status()
        return self._response(status, self._output(), usage=self._usage(),
                              incomplete=incomplete)

    # --- the event stream ------------------------------------------------------------------
    def _event(self, kind: str, **fields) -> bytes:
        payload = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return f"event: {kind}\ndata: {json.dumps(payload)}\n\n".encode()

    def opening(self) -> list[bytes]:
        return [self._event("response.created", response=self._response("in_progress", [])),
                self._event("response.in_progress", response=self._response("in_progress", []))]

    def content(self, text: str) -> bytes:
        events = b""
        if not self.text_open:
            self.text_open = True
            events += self._event("response.output_item.added", output_index=0,
                                  item=self._message_item("in_progress"))
            events += self._event("response.content_part.added", item_id=self.message_id,
                                  output_index=0, content_index=0, part=self._text_part(""))
        return events + self._event("response.output_text.delta", item_id=self.message_id,
                                    output_index=0, content_index=0, delta=text, logprobs=[])

    def closing(self) -> list[bytes]:
        events = []
        if self.text_open:
            part = self._text_part(self.answer.text)
            events += [
                self._event("response.output_text.done", item_id=self.message_id,
                            output_index=0, content_index=0, text=self.answer.text,
                            logprobs=[]),
                self._event("response.content_part.done", item_id=self.message_id,
                            output_index=0, content_index=0, part=part),
                self._event("response.output_item.done", output_index=0,
                            item=self._message_item("completed"))]
        if self.answer.tool_call:
            index = 1 if self.text_open else 0
            item = self._call_item("in_progress")
            events.append(self._event("response.output_item.added", output_index=index,
                                      item=item))
            for piece in argument_pieces(self.answer.tool_call):
                events.append(self._event("response.function_call_arguments.delta",
                                          item_id=item["id"], output_index=index, delta=piece))
            done = self._call_item("completed")
            events += [self._event("response.function_call_arguments.done", item_id=item["id"],
                                   output_index=index, arguments=done["arguments"]),
                       self._event("response.output_item.done", output_index=index, item=done)]
        status, incomplete = self._status()
        events.append(self._event(f"response.{status}", response=self._response(
            status, self._output(), usage=self._usage(), incomplete=incomplete)))
        return events
