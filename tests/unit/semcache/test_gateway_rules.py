"""The cache's rules live in the seam (semcache.gateway): whether to look up, what is stored.

The pipeline only calls the seam; these tests pin each rule at the seam (that the pipeline's
cache steps obey it is in tests/unit/gateway/test_pipeline.py).
"""

from decimal import Decimal

import pytest

from llmops.gateway import pipeline
from semcache import gateway
from semcache.gateway import (
    CACHEABLE_FINISH,
    answer_cacheable,
    cache_store,
    cache_store_behind,
    wait_for_pending_writes,
)
from tests.unit.semcache.helpers import ANSWER, TOOL_CALL, USAGE, looked_up, make_ctx, stored

pytestmark = pytest.mark.usefixtures("transactional_db")


class TestFinishReason:
    @pytest.mark.parametrize("finish_reason", ["stop", "tool_calls"])
    def test_complete_answers_may_be_stored(self, memory_engine, finish_reason):
        ctx = make_ctx("What is the capital of Norway?")
        ctx.cache_status = "miss"
        message = TOOL_CALL if finish_reason == "tool_calls" else ANSWER
        assert answer_cacheable(ctx, message=message, finish_reason=finish_reason)

    # The pipeline stored only "stop" and "tool_calls"; the seam refused only length,
    # content_filter and error, so a reason an OpenAI-compatible server passes through as it is
    # (vLLM's "abort" of a cut generation, a legacy "function_call") got past it. One rule now:
    # only the reasons of a complete answer are stored.
    @pytest.mark.parametrize("finish_reason", ["length", "content_filter", "error", "abort",
                                               "function_call", "MAX_TOKENS", ""])
    async def test_any_other_finish_reason_is_not_stored(self, memory_engine, finish_reason):
        text = f"Write a long story ({finish_reason or 'none'})."
        ctx = await looked_up(text)
        assert not answer_cacheable(ctx, message=ANSWER, finish_reason=finish_reason)
        await cache_store(ctx, message=ANSWER, finish_reason=finish_reason, model="m",
                          usage=USAGE, cost=Decimal(0))
        assert not await stored(text)

    def test_the_cacheable_reasons_are_the_complete_ones(self):
        assert CACHEABLE_FINISH == ("stop", "tool_calls")

    async def test_an_empty_answer_is_not_stored(self, memory_engine):
        ctx = await looked_up("Say nothing.")
        assert not answer_cacheable(ctx, message={"role": "assistant", "content": ""},
                                    finish_reason="stop")


class TestClientWishes:
    async def test_no_store_is_looked_up_but_never_stored(self, memory_engine):
        ctx = await looked_up("What is the tallest tree?", no_store=True)
        assert ctx.cache_status == "miss"
        assert not answer_cacheable(ctx, message=ANSWER, finish_reason="stop")
        cache_store_behind(ctx, message=ANSWER, finish_reason="stop", model="m", usage=USAGE,
                           cost=Decimal(0))
        assert len(gateway._writes) == 0  # refused before any background work
        assert not await stored("What is the tallest tree?")

    async def test_no_cache_skips_the_lookup_and_still_stores(self, memory_engine):
        ctx = await looked_up("What is the deepest lake?", no_cache=True)
        assert ctx.cache_status == "bypass"
        cache_store_behind(ctx, message=ANSWER, finish_reason="stop", model="m", usage=USAGE,
                           cost=Decimal(0))
        assert await stored("What is the deepest lake?")

    async def test_an_answer_served_from_the_cache_is_not_stored_again(self, memory_engine):
        ctx = await looked_up("What is the longest river?")
        await cache_store(ctx, message=ANSWER, finish_reason="stop", model="m", usage=USAGE,
                          cost=Decimal(0))
        assert await stored("What is the longest river?")
        again = await looked_up("What is the longest river?")
        assert again.cache_status == "hit_exact"
        assert not answer_cacheable(again, message=ANSWER, finish_reason="stop")


class TestSwitch:
    async def test_switched_off_the_cache_is_no_stage_and_stores_nothing(self, memory_engine,
                                                                          settings):
        settings.ENABLE_SEMANTIC_CACHE = False
        ctx = make_ctx("What is the largest desert?")
        assert await pipeline._lookup_cache(ctx) is None
        assert ctx.cache_status == "disabled"
        assert "cache" not in ctx.timings and "cache_lookup" not in ctx.timings
        assert not answer_cacheable(ctx, message=ANSWER, finish_reason="stop")
        ctx.cache_status = "miss"  # even a request that had been looked up before the switch
        cache_store_behind(ctx, message=ANSWER, finish_reason="stop", model="m", usage=USAGE,
                           cost=Decimal(0))
        await wait_for_pending_writes()
        settings.ENABLE_SEMANTIC_CACHE = True
        assert not await stored("What is the largest desert?")

    async def test_switched_on_the_lookup_is_a_timed_stage(self, memory_engine):
        ctx = make_ctx("What is the smallest country?")
        assert await pipeline._lookup_cache(ctx) is None
        assert ctx.cache_status == "miss"
        assert "cache" in ctx.timings and "cache_lookup" in ctx.timings
