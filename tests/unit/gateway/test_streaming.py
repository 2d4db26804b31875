"""A cached answer replayed as a stream: OpenAI's chunk sequence, usage last when asked for."""

import json
from decimal import Decimal
from types import SimpleNamespace

from budgets.services import UsageEntry
from llmops.gateway.streaming import replay_stream
from llmops.providers.base import Usage
from tests.unit.gateway.factories import CALLER, request


def hit(message: dict) -> SimpleNamespace:
    return SimpleNamespace(model="cached-model", message=message, finish_reason="stop")


ORIGINAL = Usage(prompt_tokens=7, completion_tokens=3)  # what the cached answer once used


async def events(ctx, cached) -> list:
    entry = UsageEntry(request_id=ctx.request_id, principal=CALLER, requested_model="m",
                       served_model="cached-model", cost_saved=Decimal("0.002"))
    raw = [chunk async for chunk in replay_stream(ctx, cached, ORIGINAL, entry)]
    assert all(chunk.startswith(b"data: ") and chunk.endswith(b"\n\n") for chunk in raw)
    payloads = [chunk[6:-2].decode() for chunk in raw]
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


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
