"""Streams (llmops/gateway/streaming.py): a cached answer replayed as OpenAI's chunk sequence, and
an upstream stream relayed and settled exactly once however it ends."""

import asyncio
from decimal import Decimal
from types import SimpleNamespace

import pytest

from budgets.models import BudgetReservation, UsageRecord
from budgets.services import UsageEntry, request_admit
from llmops.gateway.admission import Prepared
from llmops.gateway.settlement import Outcome
from llmops.gateway.streaming import Relay, replay_stream
from llmops.gateway.upstream import open_stream_with_fallbacks
from llmops.providers.base import Usage
from tests.unit.budgets.factories import principal_of
from tests.unit.gateway.factories import CALLER, profile, request


def hit(message: dict) -> SimpleNamespace:
    return SimpleNamespace(model="cached-model", message=message, finish_reason="stop")


ORIGINAL = Usage(prompt_tokens=7, completion_tokens=3)  # what the cached answer once used


async def events(ctx, cached) -> list:
    entry = UsageEntry(request_id=ctx.request_id, principal=CALLER, requested_model="m",
                       served_model="cached-model", cost_saved=Decimal("0.002"))
    chunks = [chunk async for chunk in replay_stream(ctx, cached, ORIGINAL, entry)]
    assert {chunk["object"] for chunk in chunks} == {"chat.completion.chunk"}
    return chunks


class TestReplayStream:
    async def test_role_content_finish_in_order(self):
        chunks = await events(request(), hit({"role": "assistant", "content": "Paris."}))
        deltas = [c["choices"][0]["delta"] for c in chunks]
        assert deltas == [{"role": "assistant", "content": ""}, {"content": "Paris."}, {}]
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        assert {c["model"] for c in chunks} == {"cached-model"}

    async def test_tool_calls_are_indexed(self):
        call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        chunks = await events(request(), hit({"role": "assistant", "content": None,
                                              "tool_calls": [call]}))
        assert chunks[1]["choices"][0]["delta"] == {"tool_calls": [dict(call, index=0)]}

    async def test_usage_comes_last_when_the_client_asked_for_it(self):
        chunks = await events(request(include_usage=True),
                              hit({"role": "assistant", "content": "Paris."}))
        usage = chunks[-1]["usage"]
        assert chunks[-1]["choices"] == []
        assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cost"]) == (7, 3, 0)
        assert usage["llmops"]["cost_saved"] == 0.002


@pytest.mark.usefixtures("transactional_db")
class TestRelay:
    @pytest.fixture
    async def relay(self, api_key, fake_provider):
        """Return relay(upstream_model, **ctx fields): an admitted request's stream, opened on
        the fake provider and ready to relay; what reached `on_answer` is in `relay.answers`."""
        from asgiref.sync import sync_to_async

        answers: list = []

        async def on_answer(ctx, completion, served, usage, cost):
            answers.append(completion)

        async def make(upstream_model: str, **fields) -> Relay:
            ctx = request(principal=principal_of(api_key.api_key), stream=True, **fields)
            ctx.prompt_bounds, ctx.estimated_prompt_tokens = {"m": 20}, 20  # as routing does
            admission = await sync_to_async(request_admit)(
                principal=ctx.principal, request_id=ctx.request_id,
                estimated_cost=Decimal("0.5"))
            chain = [profile("m", provider="openai_compatible", base_url=fake_provider.base_url,
                             upstream_model=upstream_model)]
            outcome = Outcome.of(ctx, reason="explicit")
            opened = await open_stream_with_fallbacks(ctx, chain, outcome)
            made = Relay(ctx, Prepared(ctx=ctx, chain=chain, admission=admission,
                                       reason="explicit"), outcome, opened, on_answer=on_answer)
            made.answers = answers
            return made

        return make

    @staticmethod
    async def ledger() -> list[UsageRecord]:
        assert not await BudgetReservation.objects.aexists()
        return [row async for row in UsageRecord.objects.all()]

    async def test_a_whole_stream_is_relayed_settled_and_handed_on(self, relay):
        streaming = await relay("fake-words-4", include_usage=True)
        events = [chunk async for chunk in streaming.events()]
        text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
        assert len(text.split()) == 4
        assert events[-1]["usage"]["completion_tokens"] == 4
        [row] = await self.ledger()
        assert (row.status, row.completion_tokens, row.served_model) == ("ok", 4, "m")
        assert [a.message["content"] for a in streaming.answers] == [text]

    async def test_a_stream_that_breaks_ends_with_an_error_event_and_is_charged(self, relay):
        streaming = await relay("fake-words-10-cut-3")
        events = [chunk async for chunk in streaming.events()]
        assert events[-1]["error"]["type"] == "api_error"
        [row] = await self.ledger()
        assert row.status == "upstream_error" and row.http_status == 502
        assert row.completion_tokens >= 1 and row.cost > 0
        assert streaming.answers == []

    async def test_a_client_that_leaves_mid_stream_is_charged_what_was_relayed(self, relay):
        streaming = await relay("fake-words-40-pace-20")
        events = streaming.events()
        for _ in range(3):
            await anext(events)
        await events.aclose()
        [row] = await self.ledger()
        assert (row.status, row.http_status) == ("client_disconnected", 499)
        assert 1 <= row.completion_tokens < 40 and row.prompt_tokens == 20
        assert streaming.answers == []

    async def test_what_the_provider_sent_while_the_relay_stalled_is_charged(self, relay):
        streaming = await relay("fake-words-40-pace-10")
        events = streaming.events()
        for _ in range(3):
            await anext(events)
        # A loaded event loop: the provider goes on sending (and billing) while nobody reads.
        await asyncio.sleep(0.25)
        await events.aclose()
        [row] = await self.ledger()
        assert row.status == "client_disconnected"
        # 3 relayed + the ~20 sent during the stall, read from the socket before closing it.
        assert 15 <= row.completion_tokens < 40

    @staticmethod
    async def settled_row() -> UsageRecord:
        """Return the one ledger row once a background settlement wrote it."""
        for _ in range(100):
            if await UsageRecord.objects.aexists():
                break
            await asyncio.sleep(0.05)
        [row] = await TestRelay.ledger()
        return row

    async def test_a_stream_never_started_is_settled_once_and_relays_nothing(self, relay):
        streaming = await relay("fake-words-4")
        streaming.settle_if_abandoned()
        streaming.settle_if_abandoned()  # the done-callback may fire more than once
        assert [chunk async for chunk in streaming.events()] == []
        row = await self.settled_row()
        assert row.status == "client_disconnected" and row.prompt_tokens == 20

    async def test_a_stream_the_server_stopped_reading_without_closing_is_settled(self, relay):
        """The serving task ended between two chunks and nobody closed the relay (Django's
        handler closes only its own wrapper): the done-callback closes it, which settles."""
        streaming = await relay("fake-words-40-pace-20")
        events = streaming.events()
        for _ in range(3):
            await anext(events)
        streaming.settle_if_abandoned()
        row = await self.settled_row()
        assert (row.status, row.http_status) == ("client_disconnected", 499)
        assert 1 <= row.completion_tokens < 40 and row.prompt_tokens == 20
        assert streaming.answers == []
