"""A real HTTP fake of OpenAI Chat Completions and Anthropic Messages, scripted per request.

It listens on 127.0.0.1 (ephemeral port) in a background thread running its own asyncio loop,
so thousands of concurrent and slow connections cost little. Each request's behaviour comes from
the server's FIFO queue (`server.enqueue(Behavior(...))`) or, when the queue is empty, from the
upstream model name (`fake-error-429-ra-3`, `fake-slow-2000-pace-10`, `fake-cut-3`, ... see
`behavior_for_model`). Every request is recorded with its keys redacted to a fingerprint.

    with run_fake_provider() as server:
        server.enqueue(Behavior(status=500))
        ... ProviderCall(base_url=server.base_url, upstream_model="gpt-4o-mini", ...)
        assert server.requests[-1].body["model"] == "gpt-4o-mini"
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


def behavior_for_model(model: str) -> Behavior:
    """Return the behaviour a model name asks for (`fake-<rule>[-<value>]...`, else normal).

    Rules: error-<status>, ra-<seconds> (Retry-After), slow-<ms> (before first byte),
    pace-<ms> (between chunks), cut-<n>, stall-<n>, malformed, missing, nousage, tool,
    cached-<n>, reasoning-<n>, words-<n>, drop. E.g. `fake-error-429-ra-3`, `fake-slow-200-cut-2`.
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


@dataclass
class Answer:
    words: list[str]
    finish: str  # "stop" | "length" | "tool_calls"
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    reasoning_tokens: int
    tool_call: ToolCall | None

    @property
    def chunks(self) -> list[str]:
        return [w if i == 0 else " " + w for i, w in enumerate(self.words)]

    @property
    def text(self) -> str:
        return " ".join(self.words)


def _answer(behavior: Behavior, prompt_texts: list[str], max_tokens: int | None) -> Answer:
    last = prompt_texts[-1] if prompt_texts else ""
    if behavior.text is not None:
        words = behavior.text.split(" ") if behavior.text else []
    else:
        words = ["Echo:", *last.split()[:6]]
        while len(words) < behavior.words:
            words.append(_FILLER[len(words) % len(_FILLER)])
        words = words[:behavior.words]
    finish = "stop"
    if max_tokens is not None and len(words) > max_tokens:
        words, finish = words[:max_tokens], "length"
    if behavior.tool_call is not None:
        finish = "tool_calls"
    prompt = 3 + sum(_TOKENS_PER_MESSAGE + len(t.split()) for t in prompt_texts)
    return Answer(words=words, finish=finish, prompt_tokens=prompt,
                  completion_tokens=len(words) + behavior.reasoning_tokens,
                  cached_tokens=min(behavior.cached_tokens, prompt),
                  reasoning_tokens=behavior.reasoning_tokens, tool_call=behavior.tool_call)


# --- OpenAI Chat Completions ------------------------------------------------------------------
def _openai_usage(answer: Answer) -> dict:
    return {
        "prompt_tokens": answer.prompt_tokens,
        "completion_tokens": answer.completion_tokens,
        "total_tokens": answer.prompt_tokens + answer.completion_tokens,
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

    def __init__(self, body: dict, behavior: Behavior):
        self.model = body.get("model", "")
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        texts = [_message_text(m.get("content")) for m in body.get("messages") or []]
        max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
        self.answer = _answer(behavior, texts, max_tokens)
        self.behavior = behavior

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
        if self.behavior.usage:
            body["usage"] = _openai_usage(self.answer)
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
        if self.include_usage and self.behavior.usage:
            events.append(b"data: " + json.dumps({
                "id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "system_fingerprint": "fp_fake", "choices": [],
                "usage": _openai_usage(self.answer)}).encode() + b"\n\n")
        events.append(b"data: [DONE]\n\n")
        return events


# --- Anthropic Messages -----------------------------------------------------------------------
_ANTHROPIC_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}


def _sse(name: str, payload: dict) -> bytes:
    return f"event: {name}\ndata: {json.dumps(payload)}\n\n".encode()


class AnthropicFormat:
    path = "/v1/messages"

    def __init__(self, body: dict, behavior: Behavior):
        self.model = body.get("model", "")
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        system = body.get("system")
        texts = [_message_text(system)] if system else []
        texts += [_message_text(m.get("content")) for m in body.get("messages") or []]
        self.answer = _answer(behavior, texts, body.get("max_tokens"))
        self.behavior = behavior

    def _input_usage(self) -> dict:
        cached, written = self.answer.cached_tokens, self.behavior.cache_creation_tokens
        # Anthropic's input_tokens exclude cache reads and writes.
        return {"input_tokens": max(0, self.answer.prompt_tokens - cached - written),
                "cache_creation_input_tokens": written, "cache_read_input_tokens": cached}

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
        if self.behavior.usage:
            body["usage"] = {**self._input_usage(), "output_tokens": self.answer.completion_tokens}
        return body

    def opening(self) -> list[bytes]:
        message = {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                   "content": [], "stop_reason": None, "stop_sequence": None}
        if self.behavior.usage:
            message["usage"] = {**self._input_usage(), "output_tokens": 1}
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
        if self.behavior.usage:
            delta["usage"] = {"output_tokens": self.answer.completion_tokens}
        events.append(_sse("message_delta", delta))
        events.append(_sse("message_stop", {"type": "message_stop"}))
        return events


_FORMATS = {OpenAIFormat.path: OpenAIFormat, AnthropicFormat.path: AnthropicFormat}


# --- The server -------------------------------------------------------------------------------
class _Aborted(Exception):
    """The behaviour closed the socket; the connection is finished."""


class FakeProvider:
    """The server. Start with `start()` (or `run_fake_provider()`), stop with `stop()`."""

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
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
        """Forget queued behaviours and recorded requests."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()

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
        behavior = self._next_behavior(body)
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
        fmt = fmt_class(body, behavior)
        if behavior.drop:
            raise _Aborted
        if behavior.delay_ms:
            await asyncio.sleep(behavior.delay_ms / 1000)
        if behavior.status >= 400:
            extra = {"Retry-After": behavior.retry_after} if behavior.retry_after else {}
            await _send(writer, behavior.status, fmt.error_body(behavior.status), extra)
            return True
        if behavior.replay is not None:
            await _replay(writer, behavior.replay, stream=bool(body.get("stream")))
            return True
        if body.get("stream") and not behavior.ignore_stream:
            await self._stream(writer, fmt, behavior)
            return True
        if behavior.cut_after is not None or behavior.stall_after is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{\"id\":")
            await writer.drain()
            if behavior.stall_after is not None:
                await asyncio.sleep(behavior.stall_seconds)
            raise _Aborted
        if behavior.malformed:
            await _send(writer, 200, b"{\"id\": \"chatcmpl-oops\", \"choices\": [")
            return True
        await _send(writer, 200, fmt.completion())
        return True

    def _next_behavior(self, body: object) -> Behavior:
        with self._lock:
            if self._queue:
                return self._queue.popleft()
        model = body.get("model", "") if isinstance(body, dict) else ""
        return behavior_for_model(str(model))

    async def _stream(self, writer: asyncio.StreamWriter, fmt, behavior: Behavior) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
        if behavior.malformed:
            await _chunk(writer, b"data: {\"id\": \"chatcmpl-oops\", \"choices\": [\n\n")
            await _chunk(writer, b"")
            return
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
            await _chunk(writer, fmt.content(piece))
        for event in fmt.closing():
            await _chunk(writer, event)
        await _chunk(writer, b"")  # the terminating zero-length chunk


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
def run_fake_provider() -> Iterator[FakeProvider]:
    """Run a fake provider for the duration of the block."""
    server = FakeProvider().start()
    try:
        yield server
    finally:
        server.stop()
