"""Under WSGI a request runs on the gateway loop, and its stream outlives the view's own loop."""

import asyncio
import contextvars
import threading
import time

import pytest
from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponse, StreamingHttpResponse
from django.test import RequestFactory

from llmops.api.bridge import gateway_loop, needs_gateway_loop, serve_on_gateway_loop


def _serve(dispatch):
    """Call the bridge as Django's WSGI handler runs an async view: in a loop of its own,
    closed as soon as the view returned."""
    return asyncio.run(serve_on_gateway_loop(dispatch))


def test_a_plain_response_is_made_on_the_gateway_loop():
    seen = {}

    async def dispatch():
        seen["loop"] = asyncio.get_running_loop()
        seen["thread"] = threading.current_thread().name
        return HttpResponse(b"done")

    response = _serve(dispatch)
    assert response.content == b"done"
    assert seen == {"loop": gateway_loop(), "thread": "llmops-gateway-loop"}


_CALLER = contextvars.ContextVar("caller", default="none")


def test_the_request_starts_in_a_fresh_context():
    """As under ASGI: nothing of the WSGI thread's context (asgiref's link to that thread, which
    stops serving sync work once the view returned) follows the request."""
    seen = {}

    async def dispatch():
        seen["caller"] = _CALLER.get()
        return HttpResponse(b"")

    async def view():
        _CALLER.set("wsgi thread")
        return await serve_on_gateway_loop(dispatch)

    asyncio.run(view())
    assert seen == {"caller": "none"}


def test_a_stream_is_relayed_after_the_view_returned_by_the_task_that_served_it():
    """What a stream holds belongs to the loop that made it, and the task serving the request
    (whose end settles a relay never started) lasts until the stream is relayed whole."""
    events = []

    async def dispatch():
        gate = asyncio.Event()  # bound to the loop that runs the view
        serving = asyncio.current_task()
        serving.add_done_callback(lambda task: events.append("served"))

        async def chunks():
            for n in range(3):
                gate.set()
                await gate.wait()
                await asyncio.sleep(0.01)
                events.append(f"sent {n}")
                yield f"chunk {n};".encode()

        return StreamingHttpResponse(chunks())

    response = _serve(dispatch)
    assert not response.is_async
    assert b"".join(response) == b"chunk 0;chunk 1;chunk 2;"
    response.close()
    _wait_for(lambda: "served" in events)
    assert events == ["sent 0", "sent 1", "sent 2", "served"]


def test_closing_mid_stream_cancels_the_relay_where_it_waits():
    ended = threading.Event()
    outcome = {}

    async def dispatch():
        async def chunks():
            try:
                yield b"first"
                await asyncio.sleep(30)  # the upstream, slow
                yield b"never"
            except asyncio.CancelledError:
                outcome["cancelled"] = True
                raise
            finally:
                await asyncio.sleep(0)  # a relay may await its clean-up
                ended.set()

        return StreamingHttpResponse(chunks())

    response = _serve(dispatch)
    iterator = iter(response)
    assert next(iterator) == b"first"
    started = time.monotonic()
    response.close()  # what the WSGI server does when the client left
    assert ended.wait(5) and time.monotonic() - started < 5
    assert outcome == {"cancelled": True}


def test_a_stream_that_fails_ends_the_response_with_its_error():
    async def dispatch():
        async def chunks():
            yield b"part"
            raise ValueError("broken")

        return StreamingHttpResponse(chunks())

    iterator = iter(_serve(dispatch))
    assert next(iterator) == b"part"
    with pytest.raises(ValueError, match="broken"):
        next(iterator)
    assert next(iterator, None) is None


def test_an_error_before_the_response_is_raised_to_the_caller():
    async def dispatch():
        raise LookupError("no view")

    with pytest.raises(LookupError, match="no view"):
        _serve(dispatch)


def test_only_requests_off_the_gateway_loop_under_wsgi_are_moved():
    wsgi = RequestFactory().get("/v1/models")
    assert needs_gateway_loop(wsgi)
    asgi = ASGIRequest({"type": "http", "method": "GET", "path": "/v1/models",
                        "headers": [], "query_string": b""}, body_file=None)
    assert not needs_gateway_loop(asgi)

    async def on_gateway_loop():
        return needs_gateway_loop(wsgi)

    assert asyncio.run_coroutine_threadsafe(on_gateway_loop(), gateway_loop()).result(5) is False


def _wait_for(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
