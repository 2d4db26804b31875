"""What every front door does with a built RequestContext: run the one pipeline, and send a
stream as server-sent events. Each front door renders the answer in its own wire format."""

from collections.abc import AsyncIterator

from django.http import StreamingHttpResponse

from llmops.gateway.context import RequestContext
from llmops.gateway.pipeline import (
    CompletionResult,
    StreamResult,
    chat_completion_create,
    chat_completion_stream,
)


def server_timing(timings: dict[str, float]) -> str:
    """Return a `Server-Timing` header value: per-stage durations in ms, so regressions have
    an address (cache, route, admission, upstream, settle)."""
    return ", ".join(f"{name};dur={seconds * 1000:.2f}" for name, seconds in timings.items())


async def answer(ctx: RequestContext) -> CompletionResult | StreamResult:
    """Run the pipeline for `ctx` (streamed when `ctx.stream`); the result's headers include
    `Server-Timing`."""
    if ctx.stream:
        result: CompletionResult | StreamResult = await chat_completion_stream(ctx)
    else:
        result = await chat_completion_create(ctx)
    timing = server_timing(ctx.timings)
    if timing:
        result.headers["Server-Timing"] = timing
    return result


def event_stream_response(events: AsyncIterator[bytes],
                          headers: dict[str, str]) -> StreamingHttpResponse:
    """Return the streamed HTTP response for encoded server-sent `events`, unbuffered."""
    response = StreamingHttpResponse(events, content_type="text/event-stream")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    for name, value in headers.items():
        response[name] = value
    return response
