"""The fake provider's server: a real HTTP/1.1 server on 127.0.0.1 with its queue and invoice."""

import asyncio
import contextlib
import json
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import replace

from tests.toolkit.fakeprovider.answers import BillingMeter, WordMeter
from tests.toolkit.fakeprovider.anthropic_format import AnthropicFormat
from tests.toolkit.fakeprovider.behaviors import Behavior, behavior_for_model
from tests.toolkit.fakeprovider.embeddings_format import EmbeddingsFormat
from tests.toolkit.fakeprovider.openai_format import OpenAIFormat
from tests.toolkit.fakeprovider.records import Bill, InvoiceLine, RecordedRequest, raw_key, redact
from tests.toolkit.fakeprovider.responses_format import ResponsesFormat
from tests.toolkit.fakeprovider.transport import (
    Aborted,
    chunk,
    client_gone,
    read_body,
    replay,
    send,
)

_FORMATS = {OpenAIFormat.path: OpenAIFormat, AnthropicFormat.path: AnthropicFormat,
            EmbeddingsFormat.path: EmbeddingsFormat, ResponsesFormat.path: ResponsesFormat}


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

    def _bill_open(self, request_id: str, model: str, prompt_tokens: int) -> Bill:
        with self._lock:
            line = self._invoice.setdefault(request_id, InvoiceLine(model=model))
            line.prompt_tokens += prompt_tokens
            line.calls += 1
            self._answering += 1
            return Bill(line=line)

    def _bill_answer(self, bill: Bill, tokens: int) -> None:
        """Bill the call's answer up to `tokens` in all (before sending what brings it there)."""
        with self._lock:
            bill.line.completion_tokens += tokens - bill.completion_tokens
            bill.completion_tokens = tokens

    def _bill_close(self, bill: Bill) -> None:
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
        except (Aborted, ConnectionError, ValueError, asyncio.IncompleteReadError,
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
        raw = await read_body(reader, headers)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        fmt_class = _FORMATS.get(path.split("?")[0])
        behavior = self._next_behavior(body, headers)
        with self._lock:
            self.requests.append(RecordedRequest(method, path, redact(headers),
                                                 body if isinstance(body, dict) else None,
                                                 behavior))
            self._lock.notify_all()
        if fmt_class is None or method != "POST":
            await send(writer, 404, {"error": {"message": f"no route {method} {path}",
                                                "type": "invalid_request_error"}})
            return True
        if not isinstance(body, dict):
            await send(writer, 400, {"error": {"message": "body is not a JSON object",
                                                "type": "invalid_request_error"}})
            return True
        fmt = fmt_class(body, behavior, self.meter)
        if behavior.drop:
            raise Aborted
        if behavior.status >= 400 or behavior.replay is not None:
            if behavior.delay_ms:
                await asyncio.sleep(behavior.delay_ms / 1000)
            if behavior.replay is not None:
                await replay(writer, behavior.replay, stream=bool(body.get("stream")))
                return True
            extra = {"Retry-After": behavior.retry_after} if behavior.retry_after else {}
            quoted = raw_key(headers) if behavior.echo_key else None
            await send(writer, behavior.status, fmt.error_body(behavior.status, quoted), extra)
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
                      behavior: Behavior, bill: Bill, *, stream: bool) -> None:
        if behavior.delay_ms:
            await asyncio.sleep(behavior.delay_ms / 1000)
        if client_gone(reader, writer):
            raise Aborted  # left before the first byte: the prompt alone is billed
        if stream:
            await self._stream(reader, writer, fmt, behavior, bill)
            return
        if behavior.cut_after is not None or behavior.stall_after is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n{\"id\":")
            await writer.drain()
            if behavior.stall_after is not None:
                await asyncio.sleep(behavior.stall_seconds)
            raise Aborted
        if behavior.malformed:
            await send(writer, 200, b"{\"id\": \"chatcmpl-oops\", \"choices\": [")
        else:
            if not behavior.missing_fields:  # else the body carries no answer
                self._bill_answer(bill, fmt.answer.completion_tokens)
            await send(writer, 200, fmt.completion())
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
                      behavior: Behavior, bill: Bill) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n")
        if behavior.malformed:
            await chunk(writer, b"data: {\"id\": \"chatcmpl-oops\", \"choices\": [\n\n")
            await chunk(writer, b"")
            bill.delivered = True
            return
        self._bill_answer(bill, fmt.answer.tokens_sent(0))
        for event in fmt.opening():
            await chunk(writer, event)
        for index, piece in enumerate(fmt.answer.chunks):
            if behavior.cut_after is not None and index >= behavior.cut_after:
                raise Aborted  # mid-chunked-body: the client sees an incomplete message
            if behavior.stall_after is not None and index >= behavior.stall_after:
                await asyncio.sleep(behavior.stall_seconds)
                raise Aborted
            if behavior.interval_ms and index:
                await asyncio.sleep(behavior.interval_ms / 1000)
            if client_gone(reader, writer):
                raise Aborted  # a provider stops generating once the stream's client left
            self._bill_answer(bill, fmt.answer.tokens_sent(index + 1))
            await chunk(writer, fmt.content(piece))
        self._bill_answer(bill, fmt.answer.completion_tokens)  # and the tool call, if any
        for event in fmt.closing():
            await chunk(writer, event)
        await chunk(writer, b"")  # the terminating zero-length chunk
        bill.delivered = True



@contextlib.contextmanager
def run_fake_provider(*, billing: bool = False) -> Iterator[FakeProvider]:
    """Run a fake provider for the duration of the block (`billing`: count tokens as a real
    provider bills them, see `BillingMeter`)."""
    server = FakeProvider(billing=billing).start()
    try:
        yield server
    finally:
        server.stop()
