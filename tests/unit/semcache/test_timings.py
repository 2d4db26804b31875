"""Server-Timing: the embedding is a stage of its own, separate from the cache lookup."""

import time

import pytest

from llmops.api.views import _server_timing
from llmops.gateway import pipeline
from semcache import embedder as embedder_module
from tests.unit.semcache.helpers import make_ctx

pytestmark = pytest.mark.usefixtures("transactional_db")


class SlowEmbedder:
    """Wraps the real embedder, adding a known delay, so the split is measurable."""

    def __init__(self, inner, delay):
        self.inner, self.delay = inner, delay

    async def embed(self, text, **kwargs):
        time.sleep(self.delay)
        return await self.inner.embed(text, **kwargs)


class TestStages:
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
        header = _server_timing(ctx.timings)
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
