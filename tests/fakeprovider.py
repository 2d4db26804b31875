"""A real HTTP fake of OpenAI Chat Completions and Anthropic Messages, scripted per request.

It listens on 127.0.0.1 (ephemeral port) in a background thread running its own asyncio loop,
so thousands of concurrent and slow connections cost little. Each request's behaviour comes from
the server's FIFO queue (`server.enqueue(Behavior(...))`) or, when the queue is empty, from the
upstream model name (`fake-error-429-ra-3`, `fake-slow-2000-pace-10`, `fake-cut-3`, ... see
`behavior_for_model`) or, for a real model name, the same rules in an `X-Fake-Behavior` request
header (`slow-2000-pace-10`; a profile sends it through its `extra_headers` option). Every
request is recorded with its keys redacted to a fingerprint.

    with run_fake_provider() as server:
        server.enqueue(Behavior(status=500))
        ... ProviderCall(base_url=server.base_url, upstream_model="gpt-4o-mini", ...)
        assert server.requests[-1].body["model"] == "gpt-4o-mini"

It also keeps an invoice, as a provider bills: per request id (the `X-Request-ID` header), the
prompt of every call it accepted and the answer tokens it actually sent, also when the client
left before the first byte or mid-stream (`cut`). Reported usage follows the invoice unless a
behaviour lies (`Behavior(lie=...)`, `fake-lie-huge`). Tokens are the fake's word count by
default; `run_fake_provider(billing=True)` counts them as a real provider bills them
(tests.toolkit.billing: tool definitions, schemas and images included).
"""

import asyncio
import contextlib
import hashlib
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

_FILLER = ("the fake provider answers deterministically so tests can assert exact text usage "
           "latency and every failure mode of a real upstream model").split()
_TOKENS_PER_MESSAGE = 4
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 408: "Request Timeout", 422: "Unprocessable Entity",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 529: "Overloaded"}


@dataclass(frozen=True)
class ToolCall:
    """A tool call the fake answers with instead of (after) its text."""

    name: str = "get_weather"
    arguments: dict = field(default_factory=lambda: {"city": "Paris"})
    id: str = "call_fake_1"


@dataclass(frozen=True)
class Behavior:
    """How the fake answers one request. The defaults are a normal, quick, complete answer."""

    status: int = 200               # an HTTP error status answers with the provider's error body
    retry_after: str | None = None  # Retry-After header value (seconds or an HTTP date)
    delay_ms: int = 0               # wait before the response headers (the first byte)
    interval_ms: int = 0            # wait between streamed chunks
    text: str | None = None         # the answer; default: derived from the last user message
    words: int = 8                  # length of the default answer, in words (= tokens here)
    cut_after: int | None = None    # abort the socket after N content chunks (non-stream: no body)
    stall_after: int | None = None  # after N content chunks send nothing for `stall_seconds`
                                    # (non-stream: the headers, then a stalled body)
    stall_seconds: float = 30.0
    malformed: bool = False         # 200 whose body / first stream event is not JSON
    missing_fields: bool = False    # 200 JSON without the answer fields (choices / content)
    usage: bool = True              # False: a 200 without any usage
    cached_tokens: int = 0          # OpenAI cached_tokens / Anthropic cache_read_input_tokens
    cache_creation_tokens: int = 0  # Anthropic cache_creation_input_tokens
    reasoning_tokens: int = 0       # OpenAI completion_tokens_details.reasoning_tokens
    tool_call: ToolCall | None = None
    drop: bool = False              # close the connection without any answer
    replay: str | None = None       # send this body verbatim (a recorded answer or SSE stream)
    ignore_stream: bool = False     # answer a stream request with the whole JSON answer
    lie: str | None = None          # report usage falsely (see LIES); the invoice keeps the truth

    def __post_init__(self) -> None:
        if self.lie is not None and self.lie not in LIES:
            raise ValueError(f"unknown lie {self.lie!r}; one of {', '.join(LIES)}")


#: How a lying provider reports the prompt and answer tokens it bills (`Behavior.lie`).
LIES = {
    "negative": lambda prompt, completion: (-max(prompt, 1), -max(completion, 1)),
    "float": lambda prompt, completion: (prompt + 0.5, completion + 0.5),
    "huge": lambda prompt, completion: (10**12, 10**12),
    "under": lambda prompt, completion: (prompt // 10, completion // 10),
    "missing": None,  # no usage at all
}


def _reported(behavior: Behavior, prompt: int, completion: int) -> tuple[float, float]:
    """Return the (prompt, completion) numbers the provider reports for what it bills."""
    lie = LIES.get(behavior.lie) if behavior.lie else None
    return lie(prompt, completion) if lie else (prompt, completion)


def behavior_for_model(model: str) -> Behavior:
    """Return the behaviour a model name asks for (`fake-<rule>[-<value>]...`, else normal).

    Rules: error-<status>, ra-<seconds> (Retry-After), slow-<ms> (before first byte),
    pace-<ms> (between chunks), cut-<n>, stall-<n>, malformed, missing, nousage, tool,
    cached-<n>, reasoning-<n>, words-<n>, drop, lie-<kind> (see LIES). Other words are ignored.
    E.g. `fake-error-429-ra-3`, `fake-slow-200-cut-2`, `fake-lie-huge-words-20`.
    """
    parts = model.split("-")
    if not parts or parts[0] != "fake":
        return Behavior()
    flags = {"malformed": {"malformed": True}, "missing": {"missing_fields": True},
             "nousage": {"usage": False}, "tool": {"tool_call": ToolCall()}, "drop": {"drop": True}}
    numbers = {"error": "status", "ra": "retry_after", "slow": "delay_ms", "pace": "interval_ms",
               "cut": "cut_after", "stall": "stall_after", "cached": "cached_tokens",
               "reasoning": "reasoning_tokens", "words": "words"}
    changes: dict = {}
    tokens = iter(parts[1:])
    for token in tokens:
        if token in flags:
            changes.update(flags[token])
        elif token in numbers:
            value = next(tokens, "0")
            changes[numbers[token]] = value if token == "ra" else int(value)
        elif token == "lie":
            changes["lie"] = next(tokens, "")
    if changes.get("status") == 429 and "retry_after" not in changes:
        changes["retry_after"] = "1"
    return replace(Behavior(), **changes)


def key_fingerprint(key: str) -> str:
    """Return how a recorded request shows `key` (tests compare, logs never see the key)."""
    return f"[redacted:{hashlib.sha256(key.encode()).hexdigest()[:12]}]"


@dataclass
class RecordedRequest:
    """One request the fake received. Authorization and x-api-key are fingerprints."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict | None
    behavior: Behavior

    def sent_key(self, key: str) -> bool:
        """Return True when this request carried `key` (as Bearer token or x-api-key)."""
        fingerprint = key_fingerprint(key)
        return fingerprint in (self.headers.get("authorization", "").partition(" ")[2],
                               self.headers.get("x-api-key", ""))


def _redact(headers: dict[str, str]) -> dict[str, str]:
    headers = dict(headers)
    if "authorization" in headers:
        scheme, _, token = headers["authorization"].partition(" ")
        headers["authorization"] = f"{scheme} {key_fingerprint(token)}"
    if "x-api-key" in headers:
        headers["x-api-key"] = key_fingerprint(headers["x-api-key"])
    return headers


# --- The answer, shared by both wire formats -------------------------------------------------
def _message_text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text") or p.get("content") or "") for p in content
                        if isinstance(p, dict))
    return ""


class WordMeter:
    """The fake's own token count (the default): a prompt is 3 + (4 + its words) per message,
    an answer one token per word. Small exact numbers that tests can assert."""

    def prompt_tokens(self, body: dict, *, wire: str, texts: list[str]) -> int:
        return 3 + sum(_TOKENS_PER_MESSAGE + len(t.split()) for t in texts)

    def output_tokens(self, words: list[str], tool_call: ToolCall | None) -> int:
        return len(words)


class BillingMeter:
    """A real provider's count (tests.toolkit.billing): the whole request body as billed (tool
    definitions, schemas and images included), the answer's text and tool call as tokens."""

    def prompt_tokens(self, body: dict, *, wire: str, texts: list[str]) -> int:
        from tests.toolkit.billing import billed_prompt_tokens

        return billed_prompt_tokens(body, model=str(body.get("model", "")), provider=wire)

    def output_tokens(self, words: list[str], tool_call: ToolCall | None) -> int:
        from tests.toolkit.billing import billed_text_tokens

        tokens = billed_text_tokens(" ".join(words)) if words else 0
        if tool_call is not None:
            tokens += billed_text_tokens(tool_call.name + json.dumps(tool_call.arguments))
        return tokens


@dataclass
class Answer:
    words: list[str]
    finish: str  # "stop" | "length" | "tool_calls"
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    tool_call: ToolCall | None
    meter: WordMeter | BillingMeter = field(default_factory=WordMeter, repr=False)

    @property
    def chunks(self) -> list[str]:
        return [w if i == 0 else " " + w for i, w in enumerate(self.words)]

    @property
    def text(self) -> str:
        return " ".join(self.words)

    def tokens_sent(self, chunks: int) -> int:
        """Return the answer tokens billed once `chunks` content chunks were sent (the reasoning
        came before them; the tool call comes after them)."""
        return self.meter.output_tokens(self.words[:chunks], None) + self.reasoning_tokens


def _answer(behavior: Behavior, prompt_texts: list[str], max_tokens: int | None, *,
            prompt_tokens: int, meter: WordMeter | BillingMeter) -> Answer:
    last = prompt_texts[-1] if prompt_texts else ""
    if behavior.text is not None:
        words = behavior.text.split(" ") if behavior.text else []
    else:
        words = ["Echo:", *last.split()[:6]]
        while len(words) < behavior.words:
            words.append(_FILLER[len(words) % len(_FILLER)])
        words = words[:behavior.words]
    finish = "stop"
    if max_tokens is not None:
        while words and meter.output_tokens(words, behavior.tool_call) > max_tokens:
            words, finish = words[:-1], "length"
    if behavior.tool_call is not None:
        finish = "tool_calls"
    return Answer(words=words, finish=finish, prompt_tokens=prompt_tokens,
                  completion_tokens=(meter.output_tokens(words, behavior.tool_call)
                                     + behavior.reasoning_tokens),
                  cached_tokens=min(behavior.cached_tokens, prompt_tokens),
                  reasoning_tokens=behavior.reasoning_tokens, tool_call=behavior.tool_call,
                  meter=meter)


# --- OpenAI Chat Completions ------------------------------------------------------------------
def _openai_usage(answer: Answer, behavior: Behavior) -> dict:
    prompt, completion = _reported(behavior, answer.prompt_tokens, answer.completion_tokens)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": answer.cached_tokens, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": answer.reasoning_tokens,
                                      "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                      "rejected_prediction_tokens": 0},
    }


def _openai_tool_call(tool: ToolCall) -> dict:
    return {"id": tool.id, "type": "function",
            "function": {"name": tool.name, "arguments": json.dumps(tool.arguments)}}


class OpenAIFormat:
    path = "/v1/chat/completions"
    wire = "openai"

    def __init__(self, body: dict, behavior: Behavior, meter: WordMeter | BillingMeter):
        self.model = body.get("model", "")
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        texts = [_message_text(m.get("content")) for m in body.get("messages") or []]
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        self.answer = _answer(behavior, texts, max_tokens, meter=meter,
                              prompt_tokens=meter.prompt_tokens(body, wire=self.wire, texts=texts))
        self.behavior = behavior
        self.reports_usage = behavior.usage and behavior.lie != "missing"

    def error_body(self, status: int) -> dict:
        kind = {400: "invalid_request_error", 401: "invalid_request_error",
                404: "invalid_request_error",
                429: "rate_limit_exceeded"}.get(status, "server_error")
        return {"error": {"message": f"fake provider error {status}", "type": kind,
                          "param": None, "code": kind}}

    def completion(self) -> dict:
        if self.behavior.missing_fields:
            return {"id": self.id, "object": "chat.completion", "model": self.model}
        message: dict = {"role": "assistant", "content": self.answer.text or None,
                         "refusal": None, "annotations": []}
        if self.answer.tool_call:
            message["tool_calls"] = [_openai_tool_call(self.answer.tool_call)]
        body = {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "choices": [{"index": 0, "message": message,
                                                  "logprobs": None,
                                                  "finish_reason": self.answer.finish}],
                "system_fingerprint": "fp_fake", "service_tier": "default"}
        if self.reports_usage:
            body["usage"] = _openai_usage(self.answer, self.behavior)
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
            arguments = json.dumps(tool.arguments)
            half = len(arguments) // 2
            events.append(self._chunk({"tool_calls": [{"index": 0, "id": tool.id,
                                                       "type": "function", "function": {
                                                           "name": tool.name,
                                                           "arguments": ""}}]}))
            for piece in (arguments[:half], arguments[half:]):
                events.append(self._chunk({"tool_calls": [{"index": 0, "function": {
                    "arguments": piece}}]}))
        events.append(self._chunk({}, self.answer.finish))
        if self.include_usage and self.reports_usage:
            events.append(b"data: " + json.dumps({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "system_fingerprint": "fp_fake", "choices": [],
                "usage": _openai_usage(self.answer, self.behavior)}).encode() + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events


# --- Anthropic Messages -----------------------------------------------------------------------
_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _sse(name: str, payload: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()


class AnthropicFormat:
    path = "/v1/messages"
    wire = "anthropic"

    def __init__(self, body: dict, behavior: Behavior, meter: WordMeter | BillingMeter):
        self.model = body.get("model", "")
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        system = body.get("system")
        texts = [_message_text(system)] if system else []
        texts += [_message_text(m.get("content")) for m in body.get("messages") or []]
        self.answer = _answer(behavior, texts, body.get("max_tokens"), meter=meter,
                              prompt_tokens=meter.prompt_tokens(body, wire=self.wire, texts=texts))
        self.behavior = behavior
        self.reports_usage = behavior.usage and behavior.lie != "missing"

    def _usage(self, output_tokens: int) -> dict:
        cached, written = self.answer.cached_tokens, self.behavior.cache_creation_tokens
        # Anthropic's input_tokens exclude cache reads and writes.
        fresh, output = _reported(self.behavior, max(0, self.answer.prompt_tokens - cached
                                                     - written), output_tokens)
        return {"input_tokens": fresh, "cache_creation_input_tokens": written,
                "cache_read_input_tokens": cached, "output_tokens": output}

    def error_body(self, status: int) -> dict:
        kind = {400: "invalid_request_error", 401: "authentication_error",
                403: "permission_error", 404: "not_found_error", 429: "rate_limit_error",
                529: "overloaded_error"}.get(status, "api_error")
        return {"type": "error", "error": {"type": kind,
                                           "message": f"fake provider error {status}"}}

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
                "content": self._blocks(), "stop_reason": _ANTHROPIC_STOP[self.answer.finish],
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
            arguments = json.dumps(tool.arguments)
            half = len(arguments) // 2
            events.append(_sse("content_block_start", {
                "type": "content_block_start", "index": 1,
                "content_block": {"type": "tool_use", "id": tool.id, "name": tool.name,
                                  "input": {}}}))
            for piece in (arguments[:half], arguments[half:]):
                events.append(_sse("content_block_delta", {
                    "type": "content_block_delta", "index": 1,
                    "delta": {"type": "input_json_delta", "partial_json": piece}}))
            events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 1}))
        delta = {"type": "message_delta", "delta": {
            "stop_reason": _ANTHROPIC_STOP[self.answer.finish], "stop_sequence": None}}
        if self.reports_usage:
            delta["usage"] = {"output_tokens": self._usage(self.answer.completion_tokens)[
                "output_tokens"]}
        events.append(_sse("message_delta", delta))
        events.append(_sse("message_stop", {"type": "message_stop"}))
        return events


_FORMATS = {OpenAIFormat.path: OpenAIFormat, AnthropicFormat.path: AnthropicFormat}


# --- The server -------------------------------------------------------------------------------
class _Aborted(Exception):
    """The behaviour closed the socket; the connection is finished."""


@dataclass
class InvoiceLine:
    """What the provider bills one request id: every call that carried it, summed."""

    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cut: bool = False  # an answer was not delivered whole (the client left, or the fake cut it)
    calls: int = 0


@dataclass
class _Bill:
    """One call being answered: its invoice line and the answer tokens it was billed so far."""

    line: InvoiceLine
    completion_tokens: int = 0
    delivered: bool = False


def _client_gone(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Return True once the client closed its end (a client sends nothing more while waiting
    for its answer, so end-of-stream or a reset here means it left)."""
    return (reader.at_eof() or reader.exception() is not None
            or writer.transport.is_closing())


class FakeProvider:
    """The server. Start with `start()` (or `run_fake_provider()`), stop with `stop()`."""

    def __init__(self, *, billing: bool = False) -> None:
        self.requests: list[RecordedRequest] = []
        self.meter: WordMeter | BillingMeter = BillingMeter() if billing else WordMeter()
        self._invoice: dict[str, InvoiceLine] = {}
        self._answering = 0  # calls accepted and not finished
        self._queue: deque[Behavior] = deque()
        self._lock = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.base_events.Server | None = None
        self._thread: threading.Thread | None = None
        self._refusing: socket.socket | None = None
        self._connections: set[asyncio.Task] = set()
        self.port = 0

    # --- what tests use ------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """Base URL for both adapters (`/chat/completions` and `/messages` hang off it)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def refused_url(self) -> str:
        """A base URL whose port is bound but not listening: every connect is refused."""
        assert self._refusing is not None, "start() the server first"
        return f"http://127.0.0.1:{self._refusing.getsockname()[1]}/v1"

    def enqueue(self, *behaviors: Behavior) -> None:
        """Script the next requests (FIFO); model-name rules apply once the queue is empty."""
        with self._lock:
            self._queue.extend(behaviors)

    def reset(self) -> None:
        """Forget queued behaviours, recorded requests and the invoice."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self._invoice.clear()

    @property
    def invoice(self) -> dict[str, InvoiceLine]:
        """Return what was billed so far, by request id (a copy).

        A call is billed its prompt once accepted (not for an error answer, a dropped connection
        or a replay), and the answer tokens as it sends them (billed before the bytes leave, so
        a client never holds tokens the invoice lacks): all of them, or those sent before the
        client left or the behaviour cut the answer (`cut`, set when the call ends). Calls
        without an `X-Request-ID` are billed under the provider's own response id.
        """
        with self._lock:
            return {request_id: replace(line) for request_id, line in self._invoice.items()}

    def wait_until_idle(self, timeout: float = 10.0) -> None:
        """Block until no accepted call is still being answered (the invoice is final)."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._answering == 0, timeout):
                raise TimeoutError(f"{self._answering} calls still answering after {timeout}s")

    def _bill_open(self, request_id: str, model: str, prompt_tokens: int) -> _Bill:
        with self._lock:
            line = self._invoice.setdefault(request_id, InvoiceLine(model=model))
            line.prompt_tokens += prompt_tokens
            line.calls += 1
            self._answering += 1
            return _Bill(line=line)

    def _bill_answer(self, bill: _Bill, tokens: int) -> None:
        """Bill the call's answer up to `tokens` in all (before sending what brings it there)."""
        with self._lock:
            bill.line.completion_tokens += tokens - bill.completion_tokens
            bill.completion_tokens = tokens

    def _bill_close(self, bill: _Bill) -> None:
        with self._lock:
            bill.line.cut = bill.line.cut or not bill.delivered
            self._answering -= 1
            self._lock.notify_all()

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least `count` requests were received; return them."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} of {count} requests after {timeout}s")
            return list(self.requests)

    @property
    def last_request(self) -> RecordedRequest:
        with self._lock:
            return self.requests[-1]

    # --- lifecycle -----------------------------------------------------------------------
    def start(self) -> "FakeProvider":
        self._refusing = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._refusing.bind(("127.0.0.1", 0))  # bound, never listen(): connects are refused
        ready = threading.Event()
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(asyncio.start_server(
                self._connection, "127.0.0.1", 0, backlog=2048, limit=2**22))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-provider", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fake provider did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._loop = None
        if self._refusing is not None:
            self._refusing.close()

    async def _shutdown(self) -> None:
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    # --- HTTP ----------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self._connections.add(task)
        try:
            while await self._exchange(reader, writer):
                pass
        except (_Aborted, ConnectionError, ValueError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError):
            pass
        finally:
            self._connections.discard(task)
            writer.transport.abort()

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; return whether the connection stays open for another."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False  # the client closed an idle keep-alive connection
        request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
        method, path, _ = request_line.split(" ", 2)
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        raw = await _read_body(reader, headers)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        fmt_class = _FORMATS.get(path.split("?")[0])
        behavior = self._next_behavior(body, headers)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, _redact(headers),
                                                 body if isinstance(body, dict) else None,
                                                 behavior))
            self._lock.notify_all()
        if fmt_class is None or method != "POST":
            await _send(writer, 404, {"error": {"message": f"no route {method} {path}",
                                                "type": "invalid_request_error"}})
            return True
        if not isinstance(body, dict):
            await _send(writer, 400, {"error": {"message": "body is not a JSON object",
                                                "type": "invalid_request_error"}})
            return True
        fmt = fmt_class(body, behavior, self.meter)
        if behavior.drop:
            raise _Aborted
        if behavior.status >= 400 or behavior.replay is not None:
            if behavior.delay_ms:
                await asyncio.sleep(behavior.delay_ms / 1000)
            if behavior.replay is not None:
                await _replay(writer, behavior.replay, stream=bool(body.get("stream")))
                return True
            extra = {"Retry-After": behavior.retry_after} if behavior.retry_after else {}
            await _send(writer, behavior.status, fmt.error_body(behavior.status), extra)
            return True
        # Accepted: from here the prompt is billed, whether or not the client waits for the answer.
        bill = self._bill_open(headers.get("x-request-id") or fmt.id, fmt.model,
                               fmt.answer.prompt_tokens)
        try:
            await self._answer(reader, writer, fmt, behavior, bill,
                               stream=bool(body.get("stream")) and not behavior.ignore_stream)
        finally:
            self._bill_close(bill)
        return True

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fmt,
                      behavior: Behavior, bill: _Bill, *, stream: bool) -> None:
        if behavior.delay_ms:
            await asyncio.sleep(behavior.delay_ms / 1000)
        if _client_gone(reader, writer):
            raise _Aborted  # left before the first byte: the prompt alone is billed
        if stream:
            await self._stream(reader, writer, fmt, behavior, bill)
            return
        if behavior.cut_after is not None or behavior.stall_after is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{\"id\":")
            await writer.drain()
            if behavior.stall_after is not None:
                await asyncio.sleep(behavior.stall_seconds)
            raise _Aborted
        if behavior.malformed:
            await _send(writer, 200, b"{\"id\": \"chatcmpl-oops\", \"choices\": [")
        else:
            if not behavior.missing_fields:  # else the body carries no answer
                self._bill_answer(bill, fmt.answer.completion_tokens)
            await _send(writer, 200, fmt.completion())
        bill.delivered = True

    def _next_behavior(self, body: object, headers: dict[str, str]) -> Behavior:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        if headers.get("x-fake-behavior"):
            return behavior_for_model(f"fake-{headers['x-fake-behavior']}")
        model = body.get("model", "") if isinstance(body, dict) else ""
        return behavior_for_model(str(model))

    async def _stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, fmt,
                      behavior: Behavior, bill: _Bill) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
        if behavior.malformed:
            await _chunk(writer, b"data: {\"id\": \"chatcmpl-oops\", \"choices\": [\n\n")
            await _chunk(writer, b"")
            bill.delivered = True
            return
        self._bill_answer(bill, fmt.answer.tokens_sent(0))
        for event in fmt.opening():
            await _chunk(writer, event)
        for index, piece in enumerate(fmt.answer.chunks):
            if behavior.cut_after is not None and index >= behavior.cut_after:
                raise _Aborted  # mid-chunked-body: the client sees an incomplete message
            if behavior.stall_after is not None and index >= behavior.stall_after:
                await asyncio.sleep(behavior.stall_seconds)
                raise _Aborted
            if behavior.interval_ms and index:
                await asyncio.sleep(behavior.interval_ms / 1000)
            if _client_gone(reader, writer):
                raise _Aborted  # a provider stops generating once the stream's client left
            self._bill_answer(bill, fmt.answer.tokens_sent(index + 1))
            await _chunk(writer, fmt.content(piece))
        self._bill_answer(bill, fmt.answer.completion_tokens)  # and the tool call, if any
        for event in fmt.closing():
            await _chunk(writer, event)
        await _chunk(writer, b"")  # the terminating zero-length chunk
        bill.delivered = True


async def _read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                return b"".join(parts)
            parts.append(data[:-2])
    length = int(headers.get("content-length") or 0)
    return await reader.readexactly(length) if length else b""


async def _send(writer: asyncio.StreamWriter, status: int, body: dict | bytes,
                extra_headers: dict[str, str] | None = None) -> None:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}",
            "Content-Type: application/json", f"Content-Length: {len(data)}"]
    head += [f"{name}: {value}" for name, value in (extra_headers or {}).items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + data)
    await writer.drain()


async def _replay(writer: asyncio.StreamWriter, text: str, *, stream: bool) -> None:
    if not stream:
        await _send(writer, 200, text.encode())
        return
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 b"Transfer-Encoding: chunked\r\n\r\n")
    for event in text.encode().split(b"\n\n"):
        if event.strip():
            await _chunk(writer, event + b"\n\n")
    await _chunk(writer, b"")


async def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
    writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    await writer.drain()


@contextlib.contextmanager
def run_fake_provider(*, billing: bool = False) -> Iterator[FakeProvider]:
    """Run a fake provider for the duration of the block (`billing`: count tokens as a real
    provider bills them, see `BillingMeter`)."""
    server = FakeProvider(billing=billing).start()
    try:
        yield server
    finally:
        server.stop()
