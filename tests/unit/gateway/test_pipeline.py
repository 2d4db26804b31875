"""The pipeline's own steps (llmops/gateway/pipeline.py): the cache lookup as timed stages, the
answer handed to the cache seam, and the headers that describe an answer."""

import time
from decimal import Decimal
from types import SimpleNamespace

import pytest

from llmops.api.answering import server_timing
from llmops.gateway import pipeline
from llmops.providers.base import Completion, Usage
from routing.models import ModelProfile
from semcache import embedder as embedder_module
from semcache.gateway import cache_lookup, wait_for_pending_writes
from tests.unit.gateway.factories import request
from tests.unit.semcache.helpers import ANSWER, TOOL_CALL, looked_up, make_ctx, stored

pytestmark = pytest.mark.usefixtures("transactional_db")


class SlowEmbedder:
    """Wraps the real embedder, adding a known delay, so the split is measurable."""

    def __init__(self, inner, delay):
        self.inner, self.delay = inner, delay

    async def embed(self, text, **kwargs):
        time.sleep(self.delay)
        return await self.inner.embed(text, **kwargs)


class TestCacheStage:
    async def test_semantic_lookup_reports_embed_and_cache_separately(self, memory_engine,
                                                                       monkeypatch):
        from semcache import gateway

        slow = SlowEmbedder(embedder_module.get_embedder(), 0.05)
        monkeypatch.setattr(gateway, "get_embedder", lambda: slow)
        ctx = make_ctx("How far is the Moon from the Earth?")
        started = time.perf_counter()
        assert await pipeline._lookup_cache(ctx) is None
        total = time.perf_counter() - started
        assert ctx.cache_status == "miss"
        assert ctx.timings["embed"] >= 0.05
        assert 0 < ctx.timings["cache"] < total - 0.05
        assert ctx.timings["cache_lookup"] <= ctx.timings["cache"]
        header = server_timing(ctx.timings)
        assert header.index("embed;dur=") < header.index("cache;dur=")

    async def test_exact_hit_has_no_embed_stage(self, memory_engine):
        from decimal import Decimal

        from semcache.gateway import cache_store, wait_for_pending_writes

        first = make_ctx("What is the boiling point of water?")
        await pipeline._lookup_cache(first)
        await cache_store(first, message={"role": "assistant", "content": "100 C"},
                          finish_reason="stop", model="m", usage={}, cost=Decimal(0))
        await wait_for_pending_writes()
        again = make_ctx("What is the boiling point of water?")
        assert (await pipeline._lookup_cache(again)).kind == "exact"
        assert "embed" not in again.timings and "cache" in again.timings


class TestPipelineObeysTheSeam:
    PROFILE = ModelProfile(name="simulated-standard", provider="simulated",
                           upstream_model="standard")

    def _store(self, ctx, finish_reason: str, message: dict = ANSWER) -> None:
        pipeline._store_in_cache(ctx, Completion(message=message, finish_reason=finish_reason),
                                 self.PROFILE, Usage(prompt_tokens=12, completion_tokens=3),
                                 Decimal("0.0042"))

    async def test_a_complete_answer_is_stored_behind_the_response(self, memory_engine):
        ctx = await looked_up("What is the capital of Peru?")
        self._store(ctx, "stop")
        # The whole write, the team policy read included, is awaited by wait_for_pending_writes.
        await wait_for_pending_writes()
        hit = await cache_lookup(make_ctx("What is the capital of Peru?"))
        assert hit is not None and hit.model == "simulated-standard"
        assert hit.cost == Decimal("0.0042") and hit.usage["completion_tokens"] == 3

    async def test_a_tool_call_is_stored(self, memory_engine):
        ctx = await looked_up("What is the weather in Oslo?")
        self._store(ctx, "tool_calls", TOOL_CALL)
        assert await stored("What is the weather in Oslo?")

    @pytest.mark.parametrize("finish_reason", ["length", "abort"])
    async def test_an_incomplete_answer_is_not(self, memory_engine, finish_reason):
        text = f"Tell me everything about Peru ({finish_reason})."
        ctx = await looked_up(text)
        self._store(ctx, finish_reason)
        assert not await stored(text)

    async def test_no_store_is_obeyed(self, memory_engine):
        ctx = await looked_up("What is the capital of Chile?", no_store=True)
        self._store(ctx, "stop")
        assert not await stored("What is the capital of Chile?")


class TestHeaders:
    def test_an_answer_names_its_model_cache_status_request_and_cost(self):
        ctx = request()
        ctx.cache_status = "miss"
        entry = SimpleNamespace(cost=Decimal("0.00123"))
        assert pipeline.response_headers(ctx, model="m", entry=entry) == {
            "X-LLMOps-Cache": "miss", "X-LLMOps-Model": "m", "X-Request-ID": "req-1",
            "X-LLMOps-Cost": "0.0012300000"}

    def test_routing_and_similarity_are_said_when_known(self):
        ctx = request(cache_similarity=0.91234)
        ctx.route = SimpleNamespace(reason="auto")
        headers = pipeline.response_headers(ctx, model="m")
        assert headers["X-LLMOps-Route-Reason"] == "auto"
        assert headers["X-LLMOps-Similarity"] == "0.9123"
        assert "X-LLMOps-Cost" not in headers  # a stream's cost is known only at its end
