"""Run a Responses API request through the gateway pipeline and keep the response it makes.

The request runs as the chat completion it translates to (llmops/gateway/pipeline.py: cache,
routing, reservation, the upstream call with retries and fallbacks, settlement, metrics), with
`ctx.endpoint` saying which API it came through; this module only renders the answer and, with
`store`, keeps it for `GET /v1/responses/{id}` and follow-ups.
"""

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from django.db import DatabaseError

from budgets.models import Endpoint
from llmops.db import run_db
from llmops.gateway.context import RequestContext
from llmops.gateway.pipeline import (
    CompletionResult,
    chat_completion_create,
    chat_completion_stream,
)
from llmops.responses.render import Event, ResponseEvents, ResponseShell, response_from_completion
from llmops.responses.services import stored_response_save

logger = logging.getLogger("llmops.responses")


@dataclass
class ResponseStreamResult:
    """A started response stream: headers now, `(event name, data)` pairs as they come."""

    headers: dict[str, str]
    events: AsyncIterator[Event]


def prepare(ctx: RequestContext) -> RequestContext:
    """Mark `ctx` as a Responses request: its ledger row records the endpoint, and a stream
    asks the pipeline for its usage (response.completed carries it)."""
    ctx.endpoint = Endpoint.RESPONSES.value
    ctx.include_usage = True
    return ctx


async def _keep(ctx: RequestContext, shell: ResponseShell, conversation: list[dict],
                rendered: ResponseEvents) -> None:
    """Store the response (store=true): its object, and the conversation with its answer.

    The answer is already paid for and delivered: a database that fails here costs the
    follow-up, not the answer, so it is logged rather than raised."""
    if not shell.request.get("store", True):
        return
    try:
        await run_db(stored_response_save, response_id=shell.id,
                     team_id=ctx.principal.team_id, request_id=ctx.request_id,
                     body=rendered.response, conversation=[*conversation, rendered.message])
    except DatabaseError:
        logger.exception("could not store response %s", shell.id)


async def response_create(ctx: RequestContext, shell: ResponseShell,
                          conversation: list[dict]) -> CompletionResult:
    """Answer a non-streamed Responses request."""
    result = await chat_completion_create(prepare(ctx))
    rendered = response_from_completion(shell, result.body)
    await _keep(ctx, shell, conversation, rendered)
    return CompletionResult(body=rendered.response, headers=result.headers)


async def response_stream(ctx: RequestContext, shell: ResponseShell,
                          conversation: list[dict]) -> ResponseStreamResult:
    """Start a streamed Responses request (failures before the first upstream byte raise,
    as for chat completions, and are answered as HTTP errors)."""
    ctx = prepare(ctx)
    result = await chat_completion_stream(ctx)
    return ResponseStreamResult(
        headers=result.headers,
        events=_events(ctx, shell, conversation, result.events,
                       model=result.headers.get("X-LLMOps-Model", ctx.requested_model)))


async def _events(ctx: RequestContext, shell: ResponseShell, conversation: list[dict],
                  chunks: AsyncIterator[dict], *, model: str) -> AsyncIterator[Event]:
    rendered = ResponseEvents(shell, model=model)
    try:
        for event in rendered.opening():
            yield event
        async for chunk in chunks:
            for event in rendered.feed(chunk):
                yield event
            if rendered.response is not None:  # failed: the pipeline ended the stream
                return
        closing = rendered.closing()
        await _keep(ctx, shell, conversation, rendered)
        for event in closing:
            yield event
    finally:
        # A client that leaves closes this generator: close the pipeline's too, which settles
        # the call at what was relayed (llmops/gateway/streaming.py).
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()
