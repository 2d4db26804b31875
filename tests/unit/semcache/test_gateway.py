"""The seam the pipeline calls, on the in-process store with the real embedder."""

from decimal import Decimal

import numpy as np
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


async def store(ctx, message=ANSWER, cost="0.0042"):
    await cache_store(ctx, message=message, finish_reason="stop", model="simulated-standard",
                      usage=USAGE, cost=Decimal(cost))
    await wait_for_pending_writes()


async def remember(text, **kwargs):
    ctx = make_ctx(text, **kwargs)
    assert await cache_lookup(ctx) is None
    await store(ctx)
    return ctx


class TestLookup:
    async def test_exact_repeat_hits_without_embedding(self, memory_engine):
        await remember("What is the capital of France?")
        ctx = make_ctx("What is the capital of France?")
        hit = await cache_lookup(ctx)
        assert hit.kind == "exact" and hit.similarity is None
        assert ctx.cache_status == "hit_exact" and ctx.embedding is None
        assert hit.message == ANSWER and hit.model == "simulated-standard"
        assert hit.usage == USAGE and hit.cost == Decimal("0.0042")

    async def test_paraphrase_hits_semantically_and_shares_the_embedding(self, memory_engine):
        await remember("What is the capital city of France?")
        ctx = make_ctx("What's the capital city of France?")
        hit = await cache_lookup(ctx)
        assert hit is not None and hit.kind == "semantic"
        assert ctx.cache_status == "hit_semantic" and ctx.cache_similarity > 0.9
        assert ctx.embedding.dtype == np.float32
        assert abs(float(np.linalg.norm(ctx.embedding)) - 1) < 1e-4

    async def test_miss_sets_the_embedding(self, memory_engine):
        ctx = make_ctx("How tall is Mount Everest?")
        assert await cache_lookup(ctx) is None
        assert ctx.cache_status == "miss" and ctx.embedding.shape == (384,)

    async def test_the_embedding_pass_also_sets_the_pooled_layers(self, memory_engine):
        from semcache.embedder import get_embedder

        ctx = make_ctx("How deep is the Mariana Trench?")
        assert await cache_lookup(ctx) is None
        vectors, layers = get_embedder().embed_layers_sync(["How deep is the Mariana Trench?"])
        assert sorted(ctx.embedding_layers) == list(get_embedder().layers) == [1, 2, 3, 4, 5]
        assert float(np.max(np.abs(ctx.embedding - vectors[0]))) < 1e-5
        for column, layer in enumerate(get_embedder().layers):
            assert float(np.max(np.abs(ctx.embedding_layers[layer] - layers[0, column]))) < 1e-5

    async def test_an_embedder_without_layers_leaves_them_unset(self, memory_engine,
                                                                 monkeypatch):
        from semcache.embedder import get_embedder

        class VectorsOnly:
            async def embed(self, text, **kwargs):
                return await get_embedder().embed(text, **kwargs)

        monkeypatch.setattr(gateway, "get_embedder", lambda: VectorsOnly())
        ctx = make_ctx("How long is the river Nile?")
        assert await cache_lookup(ctx) is None
        assert ctx.embedding.shape == (384,) and ctx.embedding_layers is None

    async def test_tenants_never_see_each_other(self, memory_engine):
        await remember("What is the capital of France?", team_id=1)
        ctx = make_ctx("What is the capital of France?", team_id=2)
        assert await cache_lookup(ctx) is None and ctx.cache_status == "miss"

    async def test_model_and_params_separate(self, memory_engine):
        await remember("Summarize the French revolution.", model="gpt-4o")
        assert await cache_lookup(make_ctx("Summarize the French revolution.")) is None
        assert await cache_lookup(make_ctx("Summarize the French revolution.", model="gpt-4o",
                                           params={"temperature": 1.2})) is None

    @pytest.mark.parametrize("stored,query", [
        ("Is it safe to take ibuprofen with alcohol?",
         "Is it not safe to take ibuprofen with alcohol?"),
        ("What is 15 percent of 240?", "What is 15 percent of 420?"),
        ("How many calories are in 2 eggs?", "How many calories are in 3 eggs?"),
        ("What is the population of Germany?", "What is the population of Austria?"),
        ("Who is the CEO of Microsoft?", "Who is the CEO of Google?"),
        ("Should I learn Python before Java?", "Should I learn Java before Python?"),
        ("Can I bring liquids on a plane?", "Can I never bring liquids on a plane?"),
    ])
    async def test_near_misses_are_refused(self, memory_engine, stored, query):
        await remember(stored)
        ctx = make_ctx(query)
        assert await cache_lookup(ctx) is None, ctx.cache_similarity
        assert ctx.cache_status == "miss"

    async def test_bypass_and_no_store(self, memory_engine):
        await remember("What is the capital of France?")
        ctx = make_ctx("What is the capital of France?", no_cache=True)
        assert await cache_lookup(ctx) is None and ctx.cache_status == "bypass"
        ctx = make_ctx("What is the boiling point of water?", no_store=True)
        await cache_lookup(ctx)
        await store(ctx)
        assert await cache_lookup(make_ctx("What is the boiling point of water?")) is None

    async def test_the_guarded_cosine_decides(self, memory_engine, settings):
        settings.CACHE_SIMILARITY_THRESHOLD = 0.968
        await remember("What are the symptoms of iron deficiency?")
        ctx = make_ctx("What are the signs of iron deficiency?")  # cosine 0.983, no guard fires
        assert await cache_lookup(ctx) is not None
        assert ctx.cache_status == "hit_semantic"

    async def test_disabled(self, memory_engine, settings):
        settings.ENABLE_SEMANTIC_CACHE = False
        ctx = make_ctx("What is the capital of France?")
        assert await cache_lookup(ctx) is None and ctx.cache_status == "disabled"

    async def test_request_threshold_override(self, memory_engine):
        await remember("What is the capital city of France?")
        strict = make_ctx("What's the capital city of France?",
                          headers={"x-llmops-cache-threshold": "0.9999"})
        assert await cache_lookup(strict) is None
        loose = make_ctx("What's the capital city of France?",
                         metadata={"cache_similarity_threshold": 0.6})
        assert await cache_lookup(loose) is not None

    async def test_truncated_answers_are_not_stored(self, memory_engine):
        ctx = make_ctx("Write a long poem.")
        await cache_lookup(ctx)
        await cache_store(ctx, message=ANSWER, finish_reason="length", model="m", usage=USAGE,
                          cost=Decimal(0))
        await wait_for_pending_writes()
        assert await cache_lookup(make_ctx("Write a long poem.")) is None


async def served(ctx, hit) -> None:
    """What the pipeline does once a hit's ledger row is written."""
    cache_hit_served(ctx, hit)
    await wait_for_pending_writes()


class TestFeedback:
    async def test_wrong_answer_is_evicted_and_threshold_tightens(self, memory_engine):
        await remember("What is the capital city of France?")
        ctx = make_ctx("What's the capital city of France?")
        hit = await cache_lookup(ctx)
        assert hit is not None
        await served(ctx, hit)
        namespace = memory_engine.store.namespaces().popitem()[0]
        assert await cache_feedback(team_id=1, request_id=ctx.request_id, correct=False)
        assert memory_engine.store.threshold_delta(namespace) > 0
        assert await cache_lookup(make_ctx("What is the capital city of France?")) is None

    async def test_feedback_on_a_stored_answer_and_unknown_request(self, memory_engine):
        ctx = await remember("Name three primary colors.")
        assert await cache_feedback(team_id=1, request_id=ctx.request_id, correct=True)
        assert await cache_lookup(make_ctx("Name three primary colors.")) is not None
        assert not await cache_feedback(team_id=1, request_id="nope", correct=False)

    async def test_a_hit_counts_and_is_remembered_only_once_served(self, memory_engine):
        await remember("Who discovered penicillin?")
        ctx = make_ctx("Who discovered penicillin?")
        hit = await cache_lookup(ctx)
        namespace = hit.found.entry.namespace
        # Looked up, not served (the gateway refused it): no trace.
        assert memory_engine.store.stats(namespace)["hits"] == 0
        assert not await cache_feedback(team_id=1, request_id=ctx.request_id, correct=False)
        await served(ctx, hit)
        stats = memory_engine.store.stats(namespace)
        assert stats["hits"] == 1 and stats["saved_cost"] == Decimal("0.0042")
        assert await cache_feedback(team_id=1, request_id=ctx.request_id, correct=True)

    async def test_the_same_request_id_in_two_teams_reaches_each_teams_own_entry(
            self, memory_engine):
        """Request ids are the client's: team 2 using team 1's id neither sees nor evicts team
        1's entry, nor tightens its threshold."""
        await remember("What is the boiling point of water?", team_id=1)
        await remember("What is the freezing point of water?", team_id=2)
        mine = make_ctx("What is the boiling point of water?", team_id=1)
        theirs = make_ctx("What is the freezing point of water?", team_id=2)
        theirs.request_id = mine.request_id
        hit_mine, hit_theirs = await cache_lookup(mine), await cache_lookup(theirs)
        await served(mine, hit_mine)
        await served(theirs, hit_theirs)
        namespace = hit_mine.found.entry.namespace

        assert await cache_feedback(team_id=2, request_id=mine.request_id, correct=False)
        assert await cache_lookup(make_ctx("What is the freezing point of water?",
                                           team_id=2)) is None
        assert memory_engine.store.threshold_delta(namespace) == 0
        again = await cache_lookup(make_ctx("What is the boiling point of water?", team_id=1))
        assert again is not None and again.entry_id == hit_mine.entry_id


class TestTeamPolicy:
    async def test_sharing_is_opt_in_for_both_sides(self, memory_engine):
        from asgiref.sync import sync_to_async

        from llmops.models import Team
        from semcache.models import TeamCachePolicy

        @sync_to_async
        def setup():
            teams = [Team.objects.create(name=f"policy-team-{i}") for i in range(3)]
            for team in teams[:2]:
                TeamCachePolicy.objects.create(team=team, share_across_teams=True)
            return [t.pk for t in teams]

        a, b, c = await setup()
        gateway.clear_policy_cache()
        await remember("What is the speed of light?", team_id=a)
        assert await cache_lookup(make_ctx("What is the speed of light?", team_id=b))
        assert await cache_lookup(make_ctx("What is the speed of light?", team_id=c)) is None

    async def test_team_threshold_and_disable(self, memory_engine):
        from asgiref.sync import sync_to_async

        from llmops.models import Team
        from semcache.models import TeamCachePolicy

        @sync_to_async
        def setup():
            strict = Team.objects.create(name="strict-team")
            off = Team.objects.create(name="off-team")
            TeamCachePolicy.objects.create(team=strict, similarity_threshold=0.9999)
            TeamCachePolicy.objects.create(team=off, enabled=False)
            return strict.pk, off.pk

        strict, off = await setup()
        gateway.clear_policy_cache()
        await remember("What is the capital city of France?", team_id=strict)
        assert await cache_lookup(make_ctx("What's the capital city of France?",
                                           team_id=strict)) is None
        ctx = make_ctx("What is the capital city of France?", team_id=off)
        assert await cache_lookup(ctx) is None and ctx.cache_status == "disabled"
