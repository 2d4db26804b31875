"""Render the pipeline's chat answer as a Responses API `response` object and event stream.

The pipeline yields `chat.completion.chunk` objects (a cached answer is replayed as chunks too,
and a stream that broke mid-way ends with an `{"error": ...}` object). `ResponseEvents` turns
them into the Responses event stream; a non-streamed answer goes through the same class as one
chunk, so both shapes of a response are built by one piece of code.
"""

import secrets
import time
from dataclasses import dataclass, field

# finish_reason → the reason an answer is incomplete (Responses' `incomplete_details.reason`).
INCOMPLETE_REASONS = {"length": "max_output_tokens", "content_filter": "content_filter"}

Event = tuple[str, dict]  # (event name, its data)


def new_id(prefix: str) -> str:
    """Return an id in OpenAI's style: `<prefix>_<48 hex digits>` (unguessable: ids are the
    only handle on a stored response)."""
    return f"{prefix}_{secrets.token_hex(24)}"


@dataclass
class ResponseShell:
    """What every rendering of one response shares: its id, its creation time and the
    validated request whose settings a response object echoes."""

    request: dict
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))


def response_usage(usage: dict | None) -> dict | None:
    """Return Responses' usage for the pipeline's chat usage (keeping llmops' `cost` and
    `llmops` additions, as chat completions have them)."""
    if usage is None:
        return None
    body = {
        "input_tokens": usage["prompt_tokens"],
        "input_tokens_details": {
            "cached_tokens": (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)},
        "output_tokens": usage["completion_tokens"],
        "output_tokens_details": {
            "reasoning_tokens": (usage.get("completion_tokens_details") or {}).get(
                "reasoning_tokens", 0)},
        "total_tokens": usage["total_tokens"],
    }
    for extra in ("cost", "llmops"):
        if extra in usage:
            body[extra] = usage[extra]
    return body


def response_object(shell: ResponseShell, *, model: str, status: str, output: list[dict],
                    usage: dict | None = None, incomplete_reason: str | None = None,
                    error: dict | None = None) -> dict:
    """Return a `response` object: the answer's output items and the request's settings."""
    request = shell.request
    parallel = request.get("parallel_tool_calls")
    return {
        "id": shell.id,
        "object": "response",
        "created_at": shell.created_at,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "metadata": request.get("metadata") or {},
        "model": model,
        "output": output,
        "parallel_tool_calls": True if parallel is None else parallel,
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "store": request.get("store", True),
        "temperature": request.get("temperature"),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice") or "auto",
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p"),
        "truncation": "disabled",
        "usage": response_usage(usage),
        "user": request.get("user"),
    }


class ResponseEvents:
    """Turn one answer's `chat.completion.chunk` objects into Responses stream events.

    Call `opening()`, then `feed(chunk)` for each chunk, then `closing()`; each returns the
    events to send, numbered by `sequence_number`. Text becomes a `message` output item with
    one `output_text` part, each tool call a `function_call` item. `response` is the final
    response object and `message` the chat message of the answer once `closing()` ran.
    """

    def __init__(self, shell: ResponseShell, *, model: str):
        self.shell = shell
        self.model = model
        self.sequence = 0
        self.items: list[dict] = []
        self.text_item: dict | None = None  # the message item text is being added to
        self.text_parts: list[str] = []  # its text so far
        self.calls: dict[int, dict] = {}  # chat tool-call index → its open function_call item
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self.response: dict | None = None
        self.message: dict | None = None

    def _event(self, kind: str, **fields) -> Event:
        event = (kind, {"type": kind, "sequence_number": self.sequence, **fields})
        self.sequence += 1
        return event

    def _snapshot(self, status: str, **fields) -> dict:
        return response_object(self.shell, model=self.model, status=status,
                               output=self.items if status != "in_progress" else [], **fields)

    def opening(self) -> list[Event]:
        return [self._event("response.created", response=self._snapshot("in_progress")),
                self._event("response.in_progress", response=self._snapshot("in_progress"))]

    def feed(self, chunk: dict) -> list[Event]:
        """Return the events of one chunk (an `{"error": ...}` object fails the response)."""
        if "error" in chunk:
            return self._failed(chunk["error"])
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        events: list[Event] = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                events += self._text(delta["content"])
            for fragment in delta.get("tool_calls") or []:
                events += self._tool_call(fragment)
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return events

    def closing(self) -> list[Event]:
        """Return the events that finish the answer: open items done, then
        `response.completed` (or `response.incomplete`, cut by max_output_tokens)."""
        incomplete = INCOMPLETE_REASONS.get(self.finish_reason or "")
        events: list[Event] = []
        if not self.items:  # an empty answer is still a message, as OpenAI renders it
            events += self._open_text()
        if self.text_item is not None:
            events += self._close_text("incomplete" if incomplete else "completed")
        for index in sorted(self.calls):
            events += self._close_call(self.calls[index])
        self.calls = {}
        status = "incomplete" if incomplete else "completed"
        self.response = self._snapshot(status, usage=self.usage, incomplete_reason=incomplete)
        self.message = self._chat_message()
        return events + [self._event(f"response.{status}", response=self.response)]

    # --- message items --------------------------------------------------------------------

    def _open_text(self) -> list[Event]:
        item = {"id": new_id("msg"), "type": "message", "status": "in_progress",
                "role": "assistant", "content": []}
        self.items.append(item)
        self.text_item = item
        index = len(self.items) - 1
        part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        return [self._event("response.output_item.added", output_index=index,
                            item={**item, "content": []}),
                self._event("response.content_part.added", item_id=item["id"],
                            output_index=index, content_index=0, part=part)]

    def _text(self, text: str) -> list[Event]:
        events = self._open_text() if self.text_item is None else []
        item = self.text_item
        self.text_parts.append(text)  # joined once, when the item is done (no quadratic copy)
        return events + [self._event("response.output_text.delta", item_id=item["id"],
                                     output_index=len(self.items) - 1, content_index=0,
                                     delta=text, logprobs=[])]

    def _position(self, item: dict) -> int:
        """Return the item's output_index (by identity: two items may look alike)."""
        return next(index for index, other in enumerate(self.items) if other is item)

    @staticmethod
    def _item_text(item: dict) -> str:
        return item["content"][0]["text"] if item["content"] else ""

    def _finish_text_item(self) -> None:
        """Give the open message item its whole text."""
        self.text_item["content"] = [{"type": "output_text", "annotations": [], "logprobs": [],
                                      "text": "".join(self.text_parts)}]
        self.text_parts = []

    def _close_text(self, status: str) -> list[Event]:
        self._finish_text_item()
        item, self.text_item = self.text_item, None
        item["status"] = status
        index, part = self._position(item), item["content"][0]
        return [self._event("response.output_text.done", item_id=item["id"], output_index=index,
                            content_index=0, text=part["text"], logprobs=[]),
                self._event("response.content_part.done", item_id=item["id"],
                            output_index=index, content_index=0, part=part),
                self._event("response.output_item.done", output_index=index, item=item)]

    # --- function_call items --------------------------------------------------------------

    def _tool_call(self, fragment: dict) -> list[Event]:
        events: list[Event] = []
        index = fragment.get("index", 0)
        function = fragment.get("function") or {}
        item = self.calls.get(index)
        if item is None:
            if self.text_item is not None:
                events += self._close_text("completed")
            item = {"id": new_id("fc"), "type": "function_call", "status": "in_progress",
                    "call_id": fragment.get("id") or new_id("call"),
                    "name": function.get("name") or "", "arguments": ""}
            self.items.append(item)
            self.calls[index] = item
            events.append(self._event("response.output_item.added",
                                      output_index=len(self.items) - 1, item=dict(item)))
        elif function.get("name"):
            item["name"] += function["name"]
        if function.get("arguments"):
            item["arguments"] += function["arguments"]
            events.append(self._event("response.function_call_arguments.delta",
                                      item_id=item["id"], output_index=self._position(item),
                                      delta=function["arguments"]))
        return events

    def _close_call(self, item: dict) -> list[Event]:
        item["status"] = "completed"
        index = self._position(item)
        return [self._event("response.function_call_arguments.done", item_id=item["id"],
                            output_index=index, arguments=item["arguments"]),
                self._event("response.output_item.done", output_index=index, item=item)]

    # --- endings ----------------------------------------------------------------------------

    def _failed(self, error: dict) -> list[Event]:
        if self.text_item is not None:
            self._finish_text_item()
        for item in self.items:
            if item["status"] == "in_progress":
                item["status"] = "incomplete"
        message = error.get("message") or "The response failed."
        self.response = self._snapshot(
            "failed", usage=self.usage,
            error={"code": "server_error", "message": message})
        return [self._event("error", code=error.get("code"), message=message,
                            param=error.get("param")),
                self._event("response.failed", response=self.response)]

    def _chat_message(self) -> dict:
        """Return the answer as the chat assistant message a follow-up continues from."""
        text = "".join(self._item_text(item) for item in self.items if item["type"] == "message")
        calls = [{"id": item["call_id"], "type": "function",
                  "function": {"name": item["name"], "arguments": item["arguments"]}}
                 for item in self.items if item["type"] == "function_call"]
        if calls:
            return {"role": "assistant", "content": text or None, "tool_calls": calls}
        return {"role": "assistant", "content": text}


def response_from_completion(shell: ResponseShell, completion: dict) -> ResponseEvents:
    """Return the finished `ResponseEvents` of a whole `chat.completion` (its `response` and
    `message` set), rendered as its stream would have been."""
    choice = completion["choices"][0]
    message = choice["message"]
    delta: dict = {"content": message.get("content") or ""}
    if message.get("tool_calls"):
        delta["tool_calls"] = [{"index": i, **call}
                               for i, call in enumerate(message["tool_calls"])]
    events = ResponseEvents(shell, model=completion["model"])
    events.feed({"model": completion["model"], "usage": completion.get("usage"),
                 "choices": [{"delta": delta, "finish_reason": choice.get("finish_reason")}]})
    events.closing()
    return events
