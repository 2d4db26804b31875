"""Serve the async API under WSGI as under ASGI: on one long-lived event loop per process.

Under WSGI (`manage.py runserver`, gunicorn's sync or threaded workers, Django's test client)
Django runs an async view through `async_to_sync`, in an event loop made for that one call and
closed as soon as the view returns. Nothing the gateway starts may live in such a loop: a stream
is relayed after the view returned, its upstream connection belongs to the loop that opened it,
the relay settles when the task serving the request ends, and settlements, cache stores and the
reservation heartbeat run as background tasks. So under WSGI each API request runs, from
authentication to the last byte of a stream, as one task on the process's gateway loop (a daemon
thread), exactly as it would under the ASGI server; the WSGI thread waits for the response and
then takes a stream's chunks from a queue as the relay produces them. A client that leaves
mid-stream (the WSGI server's write fails and it closes the response) cancels that task, as
the ASGI server would: the upstream stream is closed and the relay settles what it received.
"""

import asyncio
import concurrent.futures
import contextvars
import logging
import os
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpRequest, HttpResponseBase
from django.urls import get_script_prefix, set_script_prefix

from llmops.background import Background

logger = logging.getLogger("llmops.api")

_lock = threading.Lock()
# The requests being served on the gateway loop (each one's task, held until it ends).
_serving = Background()
_running: tuple[int, asyncio.AbstractEventLoop, threading.Thread] | None = None


def gateway_loop() -> asyncio.AbstractEventLoop:
    """Return this process's gateway loop, started on first use (and again after a fork:
    threads do not survive one)."""
    global _running
    with _lock:
        if _running is None or _running[0] != os.getpid() or not _running[2].is_alive():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=_run_forever, args=(loop,), daemon=True,
                                      name="llmops-gateway-loop")
            thread.start()
            _running = (os.getpid(), loop, thread)
        return _running[1]


def _run_forever(loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(loop)
    loop.run_forever()


def needs_gateway_loop(request: HttpRequest) -> bool:
    """Return whether `request` arrived through WSGI and is not yet on the gateway loop: the
    event loop it runs in now ends with its view."""
    if isinstance(request, ASGIRequest):
        return False
    try:
        return asyncio.get_running_loop() is not gateway_loop()
    except RuntimeError:
        return True


async def serve_on_gateway_loop(
        dispatch: Callable[[], Awaitable[HttpResponseBase]]) -> HttpResponseBase:
    """Run `dispatch()` as a task on the gateway loop and return its response; an async
    stream is handed back as a WSGI-iterable one that the same task goes on feeding."""
    loop = gateway_loop()
    head: concurrent.futures.Future = concurrent.futures.Future()
    prefix = get_script_prefix()  # the WSGI handler set it for this thread

    def start() -> None:
        _serving.spawn(_serve(dispatch, head, prefix))

    # A fresh context, as the ASGI server gives each request: the caller's carries asgiref's
    # link to the WSGI thread, which stops running sync work for it once the view returns.
    loop.call_soon_threadsafe(start, context=contextvars.Context())
    return await asyncio.wrap_future(head)


async def _serve(dispatch: Callable[[], Awaitable[HttpResponseBase]],
                 head: concurrent.futures.Future, prefix: str) -> None:
    if not head.set_running_or_notify_cancel():
        return  # the caller stopped waiting before the request started
    set_script_prefix(prefix)
    try:
        response = await dispatch()
    except BaseException as exc:
        head.set_exception(exc)
        if not isinstance(exc, Exception):
            raise
        return
    if not (response.streaming and response.is_async):
        head.set_result(response)
        return
    source = response.streaming_content
    stream = BridgedStream(asyncio.get_running_loop(), asyncio.current_task())
    response.streaming_content = stream
    head.set_result(response)
    await stream.feed(source)


_END = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class BridgedStream(Iterator[bytes]):
    """The WSGI side of a stream relayed on the gateway loop: an iterator of its chunks, whose
    `close()` (the WSGI server calls it when the client left, or when it is done) ends the
    relay the way an ASGI server ends it, by cancelling the task serving the request."""

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task) -> None:
        self._loop = loop
        self._task = task
        # Unbounded on purpose: the relay must only ever wait on its upstream, so that a
        # cancellation always lands inside it (where it closes the upstream and settles). An
        # answer is bounded by its max_tokens.
        self._chunks: queue.SimpleQueue = queue.SimpleQueue()
        self._finished = False

    async def feed(self, source: AsyncIterator[bytes]) -> None:
        """Relay `source` into the queue until it ends, fails or this task is cancelled."""
        try:
            async for chunk in source:
                self._chunks.put(chunk)
        except asyncio.CancelledError:
            self._chunks.put(_END)
            raise
        except Exception as exc:
            logger.exception("stream relay failed under WSGI")
            self._chunks.put(_Failed(exc))
        else:
            self._chunks.put(_END)

    def __iter__(self) -> "BridgedStream":
        return self

    def __next__(self) -> bytes:
        if self._finished:
            raise StopIteration
        item = self._chunks.get()
        if item is _END:
            self._finished = True
            raise StopIteration
        if isinstance(item, _Failed):
            self._finished = True
            raise item.exc
        return item

    def close(self) -> None:
        """End the relay if it is still running (the client left before the end)."""
        self._finished = True
        try:
            # A no-op when the relay already ended.
            self._loop.call_soon_threadsafe(self._task.cancel)
        except RuntimeError:  # the loop is gone (interpreter shutdown)
            pass

    def __del__(self) -> None:
        # A server that drops the response without closing it must not leave the upstream open.
        self.close()
