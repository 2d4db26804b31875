"""Streams: relay an upstream stream to the client and settle it exactly once however it ends,
and replay a cached answer as a stream.

Both yield `chat.completion.chunk` objects (dicts; a stream that broke mid-way ends with an
`{"error": ...}` object): each front door encodes them in its own wire format (Chat Completions'
SSE in llmops/api/sse.py), so every API relays, settles and caches through this one path."""

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from decimal import Decimal

from budgets.services import UsageEntry
from llmops import metrics
from llmops.background import spawn
from llmops.gateway import upstream
from llmops.gateway.admission import Prepared
from llmops.gateway.context import RequestContext
from llmops.gateway.responses import chunk_body, usage_body
from llmops.gateway.settlement import DISCONNECTED, Outcome, settle
from llmops.gateway.usage import billed_usage
from llmops.providers.base import Completion, Usage
from llmops.providers.errors import ProviderError
from routing.models import ModelProfile

# What happens to a whole answer once it is settled (the pipeline stores it in the cache).
OnAnswer = Callable[[RequestContext, Completion, ModelProfile, Usage, Decimal], Awaitable[None]]


async def replay_stream(ctx: RequestContext, hit, usage: Usage,
                        entry: UsageEntry) -> AsyncIterator[dict]:
    """Yield a cached answer (`hit`) as the chunks of a stream."""
    yield chunk_body(ctx, model=hit.model, delta={"role": "assistant", "content": ""})
    content = hit.message.get("content") or ""
    if content:
        yield chunk_body(ctx, model=hit.model, delta={"content": content})
    if hit.message.get("tool_calls"):
        calls = [dict(c, index=i) for i, c in enumerate(hit.message["tool_calls"])]
        yield chunk_body(ctx, model=hit.model, delta={"tool_calls": calls})
    yield chunk_body(ctx, model=hit.model, delta={}, finish_reason=hit.finish_reason)
    if ctx.include_usage:
        yield chunk_body(ctx, model=hit.model, usage=usage_body(ctx, usage, entry))


async def close_opening(ctx: RequestContext, prepared: Prepared, outcome: Outcome,
                        opening: asyncio.Task) -> None:
    """The client of a stream left before its first token: close the upstream stream now (no
    more tokens are generated for nobody) and charge the prompt the provider already took in,
    plus whatever it had sent."""
    opening.cancel()
    try:
        opened = await opening
    except BaseException:
        opened = None
    text = ""
    if opened is not None:
        text = opened.first.content or ""
        await opened.aclose()
    elif outcome.profile is None and outcome.entry.attempted_models:
        # Cut while a profile was being tried: that one holds the prompt.
        tried = outcome.entry.attempted_models[-1]
        outcome.profile = next((p for p in prepared.chain if p.name == tried), None)
    outcome.fail(*DISCONNECTED)
    if outcome.profile is not None:
        outcome.usage = billed_usage(ctx, outcome.profile, None, text)
    await settle(ctx, prepared.admission, outcome)


# When the client leaves mid-stream, the deltas already sent are read before upstream is closed:
# each read waits at most DRAIN_WAIT_SECONDS (a delta already in the socket arrives within a
# loop turn; providers pace tokens 10-50 ms apart) and the whole read DRAIN_MAX_SECONDS.
DRAIN_WAIT_SECONDS = 0.005
DRAIN_MAX_SECONDS = 0.1


class Relay:
    """Relays one upstream stream to the client and settles it exactly once, however it ends;
    a whole answer then goes to `on_answer`."""

    def __init__(self, ctx: RequestContext, prepared: Prepared, outcome: Outcome,
                 opened: upstream.OpenedStream, *, on_answer: OnAnswer):
        self.ctx, self.prepared, self.outcome, self.opened = ctx, prepared, outcome, opened
        self.on_answer = on_answer
        self.started = False
        self.settled = False
        self.text_parts: list[str] = []
        self.reported: Usage | None = None
        self._events: AsyncGenerator[dict, None] | None = None

    def _usage(self) -> Usage:
        return billed_usage(self.ctx, self.outcome.profile, self.reported,
                            "".join(self.text_parts))

    async def _settle(self) -> UsageEntry:
        self.settled = True
        return await settle(self.ctx, self.prepared.admission, self.outcome)

    def settle_if_abandoned(self, _task: asyncio.Task | None = None) -> None:
        """Settle the stream if the task serving the request ended before the relay did (a
        task done-callback): the server never started relaying it, or stopped between two
        chunks without closing it (Django's ASGI handler closes its own wrapper generator, and
        a wrapper closed at its `yield` leaves ours suspended, to be closed only when collected).
        """
        if self.settled:
            return
        if not self.started:
            self.settled = True
            spawn(self._close_unstarted())
        elif self._events is not None:
            spawn(self._events.aclose())  # runs the relay's `finally`: close upstream, settle

    async def _close_unstarted(self) -> None:
        await self.opened.aclose()
        self.text_parts.append(self.opened.first.content or "")
        self.outcome.fail(*DISCONNECTED)
        self.outcome.usage = self._usage()
        await settle(self.ctx, self.prepared.admission, self.outcome)

    async def _read_what_was_sent(self) -> None:
        """The client left: before closing upstream, read the deltas the provider already sent
        (they are billed) without waiting for new ones. A loaded event loop can leave many
        chunks unread in the socket; counting them keeps the charge at the bill."""
        deadline = asyncio.get_running_loop().time() + DRAIN_MAX_SECONDS
        try:
            while asyncio.get_running_loop().time() < deadline:
                delta = await asyncio.wait_for(anext(self.opened.rest), DRAIN_WAIT_SECONDS)
                if delta.usage is not None:
                    self.reported = delta.usage
                if delta.content:
                    self.text_parts.append(delta.content)
        except BaseException:  # noqa: BLE001
            # Timed out, ended, broken, or cancelled again: what was read counts, and closing
            # upstream and settling must still follow.
            return

    def events(self) -> AsyncIterator[dict]:
        """Return the stream's chunks as the upstream deltas arrive; it settles at the end."""
        self._events = self._relay()
        return self._events

    async def _relay(self) -> AsyncIterator[dict]:
        if self.settled:
            return  # settled as abandoned before the server asked for the first chunk
        self.started = True
        ctx, outcome = self.ctx, self.outcome
        model = outcome.profile.name
        tool_calls: dict[int, dict] = {}
        finish_reason: str | None = None
        try:
            async for delta in self.opened.deltas():
                if delta.usage is not None:
                    self.reported = delta.usage
                piece: dict = {}
                if delta.role:
                    piece["role"] = delta.role
                if delta.content:
                    piece["content"] = delta.content
                    self.text_parts.append(delta.content)
                if delta.tool_calls:
                    piece["tool_calls"] = delta.tool_calls
                    upstream.merge_tool_call_deltas(tool_calls, delta.tool_calls)
                if delta.finish_reason:
                    finish_reason = delta.finish_reason
                if piece or delta.finish_reason:
                    yield chunk_body(ctx, model=model, delta=piece,
                                     finish_reason=delta.finish_reason)
            outcome.usage = self._usage()
            entry = await self._settle()
            if ctx.include_usage:
                yield chunk_body(ctx, model=model, usage=usage_body(ctx, outcome.usage, entry))
            message: dict = {"role": "assistant", "content": "".join(self.text_parts)}
            if tool_calls:
                message["tool_calls"] = [tool_calls[i] for i in sorted(tool_calls)]
                message["content"] = message["content"] or None
            await self.on_answer(ctx, Completion(message=message,
                                                 finish_reason=finish_reason or "stop",
                                                 usage=outcome.usage),
                                 outcome.profile, outcome.usage, entry.cost)
        except ProviderError as exc:
            # The stream broke after bytes were relayed: never retried (the client has them).
            # Charge what was relayed, tell the client in-band, and end the stream properly.
            metrics.observe_upstream_error(model=model, kind=exc.kind)
            outcome.fail("upstream_error", exc.kind, 502)
            outcome.usage = self._usage()
            await self._settle()
            yield {"error": {"message": "The model provider's stream broke mid-way.",
                             "type": "api_error", "code": exc.kind, "param": None}}
        finally:
            if not self.settled:
                await self._read_what_was_sent()
            await self.opened.aclose()
            if not self.settled:
                # The client went away (task cancelled / generator closed): the upstream stream
                # is closed above, so the provider bills the prompt and what it had sent.
                outcome.fail(*DISCONNECTED)
                outcome.usage = self._usage()
                try:
                    await self._settle()
                except (asyncio.CancelledError, GeneratorExit):
                    pass  # the settlement runs on in its own task (see `settle`)
