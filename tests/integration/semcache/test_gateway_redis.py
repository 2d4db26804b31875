"""The seam on a real Redis: hits, isolation, feedback, and Redis going down mid-run."""

from decimal import Decimal

import pytest

from semcache import gateway
from semcache.gateway import (
    cache_feedback,
    cache_hit_served,
    cache_lookup,
    cache_store,
    wait_for_pending_writes,
)
from tests.unit.semcache.helpers import ANSWER, USAGE, make_ctx

pytestmark = pytest.mark.usefixtures("transactional_db")


async def remember(text, **kwargs):
    ctx = make_ctx(text, **kwargs)
    assert await cache_lookup(ctx) is None
    await cache_store(ctx, message=ANSWER, finish_reason="stop", model="m", usage=USAGE,
                      cost=Decimal("0.01"))
    await wait_for_pending_writes()
    return ctx


class TestOnRedis:
    async def test_exact_semantic_and_isolation(self, redis_engine):
        await remember("What is the capital city of France?", team_id=1)
        exact = make_ctx("What is the capital city of France?", team_id=1)
        assert (await cache_lookup(exact)).kind == "exact"
        para = make_ctx("What's the capital city of France?", team_id=1)
        assert (await cache_lookup(para)).kind == "semantic"
        other = make_ctx("What is the capital city of France?", team_id=2)
        assert await cache_lookup(other) is None and other.cache_status == "miss"

    async def test_feedback_evicts(self, redis_engine):
        await remember("Who wrote Hamlet?")
        ctx = make_ctx("Who wrote Hamlet?")
        hit = await cache_lookup(ctx)
        assert hit is not None
        cache_hit_served(ctx, hit)
        await wait_for_pending_writes()
        # Another team's request of the same id reaches nothing.
        assert not await cache_feedback(team_id=2, request_id=ctx.request_id, correct=False)
        assert await cache_lookup(make_ctx("Who wrote Hamlet?")) is not None
        assert await cache_feedback(team_id=1, request_id=ctx.request_id, correct=False)
        assert await cache_lookup(make_ctx("Who wrote Hamlet?")) is None

    async def test_redis_down_mid_run_bypasses_and_counts(self, redis_engine):
        import redis

        await remember("Who painted the Mona Lisa?")
        assert await cache_lookup(make_ctx("Who painted the Mona Lisa?")) is not None
        # Redis goes away: point the live store at a closed port.
        redis_engine.store.r = redis.Redis.from_url("redis://127.0.0.1:1/3",
                                                    socket_connect_timeout=0.2)
        errors = gateway.COUNTERS["error"]
        ctx = make_ctx("Who painted the Mona Lisa?")
        assert await cache_lookup(ctx) is None and ctx.cache_status == "error"
        ctx2 = make_ctx("Who painted the Starry Night?")
        assert await cache_lookup(ctx2) is None and ctx2.cache_status == "error"  # breaker
        assert gateway.COUNTERS["error"] == errors + 2
        await cache_store(ctx2, message=ANSWER, finish_reason="stop", model="m", usage=USAGE,
                          cost=Decimal(0))  # never raises
        await wait_for_pending_writes()
        assert not await cache_feedback(team_id=1, request_id=ctx.request_id, correct=False)

    async def test_unreachable_from_the_start(self, settings, redis_engine):
        from semcache.services import get_engine

        settings.SEMCACHE_REDIS_URL = "redis://127.0.0.1:1/3"
        get_engine.cache_clear()
        gateway.breaker.reset()
        ctx = make_ctx("Anything at all?")
        assert await cache_lookup(ctx) is None and ctx.cache_status == "error"
        gateway.warm_up()  # logs, never raises
