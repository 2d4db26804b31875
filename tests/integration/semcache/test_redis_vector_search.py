"""Vector search in Redis' query engine (semcache/store/redis_search.py) on a real server with
one: the choice, the namespace filter inside the KNN query, TTL, purge, feedback, and processes
that hold no index."""

import time
import uuid

import numpy as np
import pytest

from semcache.namespaces import build_scope
from semcache.services import CacheEngine
from semcache.store import RedisStore
from semcache.store.redis_search import RedisVectorSearch
from tests.unit.semcache.helpers import random_unit

pytestmark = pytest.mark.redis


def scope(team=1, text="q"):
    return build_scope(team_id=team, requested_model="auto", answer_params={},
                       messages=[{"role": "user", "content": text}])


def put(engine, vector, *, team=1, text="q", ttl=60, request_id=None):
    return engine.put(scope(team, text), vector=vector,
                      message={"role": "assistant", "content": f"answer to {text}"},
                      finish_reason="stop", model="m", usage={}, cost=0, ttl_seconds=ttl,
                      request_id=request_id)


def near(vector, rng, noise=0.05):
    """A unit vector close to `vector` (cosine ~0.99)."""
    out = np.asarray(vector, np.float32) + rng.normal(0, noise / np.sqrt(len(vector)),
                                                      len(vector)).astype(np.float32)
    return out / np.linalg.norm(out)


@pytest.fixture
def prefix():
    return f"vs-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def engines(search_redis, prefix):
    """Two engines ("processes") on the search server under one fresh prefix."""
    made = [CacheEngine(RedisStore(url=search_redis.url, prefix=prefix), vector_index="auto")
            for _ in range(2)]
    yield made
    # The index first: unindexing thousands of graph entries one by one outlasts the store's
    # 0.25 s timeout.
    made[0].store.r.execute_command("FT.DROPINDEX", f"{prefix}:idx")
    made[0].store.flush()


class TestChoice:
    def test_a_server_with_a_query_engine_searches_in_redis(self, engines, prefix):
        engine = engines[0]
        assert isinstance(engine.search, RedisVectorSearch)
        assert engine.search_fallback_reason == ""
        assert prefix.encode() + b":idx" in engine.store.r.execute_command("FT._LIST")

    def test_a_server_without_one_keeps_the_in_process_index(self, redis_url, prefix):
        engine = CacheEngine(RedisStore(url=redis_url, prefix=prefix), vector_index="auto")
        if engine.store.r.execute_command("MODULE", "LIST"):
            pytest.skip("the shared Redis has modules loaded")
        assert engine.search is engine.registry
        assert "no query engine" in engine.search_fallback_reason

    def test_a_database_other_than_0_keeps_the_in_process_index(self, search_redis, prefix):
        url = search_redis.url.rsplit("/", 1)[0] + "/2"
        engine = CacheEngine(RedisStore(url=url, prefix=prefix), vector_index="auto")
        assert engine.search is engine.registry
        assert "database 0 only" in engine.search_fallback_reason

    def test_process_forces_the_in_process_index(self, search_redis, prefix):
        engine = CacheEngine(RedisStore(url=search_redis.url, prefix=prefix),
                             vector_index="process")
        assert engine.search is engine.registry


class TestSearch:
    def test_an_entry_is_found_by_another_process_at_once_and_no_process_holds_an_index(
            self, engines):
        a, b = engines
        rng = np.random.default_rng(0)
        v = random_unit(rng, 1)[0]
        entry = put(a, v, text="first")
        found = b.find_semantic(scope(text="other words"), near(v, rng), threshold=0.9,
                                guards=False)
        assert found.entry.id == entry.id and found.similarity > 0.95
        assert found.entry.message["content"] == "answer to first"
        assert a.registry.loaded() == {} and b.registry.loaded() == {}
        # Nothing follows the event stream any more, so nothing is written to it.
        assert not a.store.r.exists(a.store._k("events"))

    def test_the_namespace_filter_runs_inside_the_knn_query(self, engines):
        a, b = engines
        rng = np.random.default_rng(1)
        query = random_unit(rng, 1)[0]
        # Team 2's namespace holds 40 entries nearer the query than team 1's only entry: a
        # filter applied after a global top-k would find none of team 1's.
        for i in range(40):
            put(a, near(query, rng, noise=0.01), team=2, text=f"t2 {i}")
        mine = put(a, near(query, rng, noise=0.3), team=1, text="mine")
        found = b.find_semantic(scope(1, "x"), query, threshold=0.5, guards=False)
        assert found is not None and found.entry.id == mine.id
        candidates = b.search.search(scope(1).namespace, query, 4)
        assert [c.entry_id for c in candidates] == [mine.id]

    def test_matches_exact_search_most_similar_first(self, engines):
        a, _ = engines
        rng = np.random.default_rng(2)
        vectors = random_unit(rng, 200)
        ids = [put(a, v, text=f"e{i}").id for i, v in enumerate(vectors)]
        for query in random_unit(rng, 10):
            exact = np.argsort(-(vectors @ query))[:4]
            got = a.search.search(scope().namespace, query, 4)
            assert [c.entry_id for c in got] == [ids[i] for i in exact]
            assert [round(c.similarity, 4) for c in got] == \
                [round(float(vectors[i] @ query), 4) for i in exact]

    def test_the_policy_follows_the_namespace_size_and_every_policy_finds_the_same(
            self, engines, monkeypatch):
        from semcache.store import redis_search

        monkeypatch.setattr(redis_search, "ADHOC_MAX_ENTRIES", 5)
        monkeypatch.setattr(redis_search, "BATCHES_MIN_SHARE", 0.5)
        monkeypatch.setattr(redis_search, "SIZE_REFRESH_SECONDS", 0.0)
        a, _ = engines
        rng = np.random.default_rng(10)
        big, small = random_unit(rng, 30), random_unit(rng, 3)
        big_ids = [put(a, v, team=1, text=f"b{i}").id for i, v in enumerate(big)]
        for i, v in enumerate(small):
            put(a, v, team=2, text=f"s{i}")
        assert a.search.policy(scope(2).namespace) == "ADHOC_BF"
        assert a.search.policy(scope(1).namespace) == "BATCHES"  # 30 of 33
        for i, v in enumerate(random_unit(rng, 60)):
            put(a, v, team=3, text=f"o{i}")
        assert a.search.policy(scope(1).namespace) == ""  # 30 of 93: the engine decides
        query = random_unit(rng, 1)[0]
        expected = [big_ids[i] for i in np.argsort(-(big @ query))[:4]]
        for policy in ("ADHOC_BF", "BATCHES", ""):
            monkeypatch.setattr(a.search, "policy", lambda namespace, p=policy: p)
            assert [c.entry_id for c in a.search.search(scope(1).namespace, query, 4)] == \
                expected, policy

    def test_an_entry_with_many_paraphrases_leaves_each_of_them_reachable(self, engines):
        # Hubs, each with 100 stored neighbours nearer to it (cosine ~0.82) than to each other
        # (~0.67): more than the 32 bottom-layer links an M 16 graph keeps per entry, which cut
        # off some of them (93% found), fewer than the 128 of the index's M 64.
        a, _ = engines
        rng = np.random.default_rng(11)
        hubs = random_unit(rng, 20)
        around = hubs[np.repeat(np.arange(20), 100)]
        around = around + rng.standard_normal(around.shape).astype(np.float32) * 0.035
        around /= np.linalg.norm(around, axis=1, keepdims=True)
        for i, v in enumerate(np.concatenate([hubs, around])):
            put(a, v, text=f"e{i}")
        assert a.search.policy(scope().namespace) == "BATCHES"  # the graph, not every entry
        for i in rng.choice(len(around), 150, replace=False):
            query = near(around[i], rng, noise=0.3)  # cosine ~0.95
            best = float(np.max(np.concatenate([hubs, around]) @ query))
            found = a.find_semantic(scope(), query, threshold=0.0, guards=False)
            assert found.similarity == pytest.approx(best, abs=1e-4)

    def test_the_index_is_made_with_its_own_graph_parameters(self, engines):
        from semcache.store import redis_search

        assert engines[0].search.graph_parameters() == {
            "M": redis_search.HNSW_M, "EF_CONSTRUCTION": redis_search.HNSW_EF_CONSTRUCTION}

    def test_an_index_made_with_other_graph_parameters_is_used_and_named(
            self, search_redis, prefix, caplog):
        store = RedisStore(url=search_redis.url, prefix=prefix)
        RedisVectorSearch(store, connectivity=16)
        try:
            with caplog.at_level("WARNING", logger="semcache.store.redis_search"):
                search = RedisVectorSearch(store)
            assert search.graph_parameters()["M"] == 16
            assert f"FT.DROPINDEX {prefix}:idx" in caplog.text
        finally:
            store.r.execute_command("FT.DROPINDEX", f"{prefix}:idx")

    def test_exact_only_entries_are_never_neighbours(self, engines):
        a, _ = engines
        put(a, None, text="exact only")
        assert a.search.search(scope().namespace, random_unit(np.random.default_rng(3), 1)[0],
                               4) == []
        assert a.find_exact(scope(text="exact only")) is not None

    def test_expired_entries_are_never_served_and_leave_the_index(self, engines, prefix):
        a, b = engines
        v = random_unit(np.random.default_rng(4), 1)[0]
        put(a, v, ttl=1)
        assert b.find_semantic(scope(), v, threshold=0.9, guards=False) is not None
        # Past its expiry time the query's own filter refuses it, whatever Redis has done yet.
        assert b.search.search(scope().namespace, v, 4, now=time.time() + 2) == []
        time.sleep(1.3)
        assert b.find_semantic(scope(), v, threshold=0.9, guards=False) is None
        deadline = time.monotonic() + 5
        while a.store.r.ft(f"{prefix}:idx").info()["num_docs"] not in (0, "0"):
            assert time.monotonic() < deadline, "the expired hash stayed in the index"
            time.sleep(0.1)
        assert a.expire() == 1 and a.store.namespaces() == {}

    def test_a_purge_through_one_process_is_seen_by_the_other(self, engines):
        a, b = engines
        rng = np.random.default_rng(5)
        v1, v2 = random_unit(rng, 2)
        put(a, v1, team=1, text="one")
        put(a, v2, team=2, text="two")
        assert b.purge(tenant="team:1") == 1
        assert a.find_semantic(scope(1), v1, threshold=0.9, guards=False) is None
        assert a.find_semantic(scope(2), v2, threshold=0.9, guards=False) is not None

    def test_feedback_evicts_the_entry_and_tightens_its_namespace(self, engines):
        a, b = engines
        v = random_unit(np.random.default_rng(6), 1)[0]
        put(a, v, text="wrong", request_id="req-1")
        assert b.feedback(team_id=1, request_id="req-1", correct=False)
        assert a.find_semantic(scope(), v, threshold=0.9, guards=False) is None
        assert a.threshold_for(scope().namespace, 0.9) == pytest.approx(0.91)

    def test_a_dropped_index_is_made_again(self, engines, prefix):
        a, _ = engines
        v = random_unit(np.random.default_rng(7), 1)[0]
        a.search.search(scope().namespace, v, 4)
        a.store.r.execute_command("FT.DROPINDEX", f"{prefix}:idx")
        entry = put(a, v, text="after")
        deadline = time.monotonic() + 5
        while not a.search.search(scope().namespace, v, 4):
            assert time.monotonic() < deadline, "the re-made index never indexed the entry"
            time.sleep(0.05)
        assert a.search.search(scope().namespace, v, 4)[0].entry_id == entry.id


class TestCommandsOnTheServersStore:
    """`manage.py cache_stats` / `purge_cache` act on the Redis store the server uses."""

    @pytest.mark.django_db  # cache_stats also reads the teams' thresholds
    def test_stats_and_purge_from_the_command_line(self, search_redis, prefix, settings,
                                                   capsys):
        from django.core.management import load_command_class

        from tests.toolkit.cache_engine import fresh_cache_engine

        with fresh_cache_engine(settings, redis_url=search_redis.url, prefix=prefix):
            server = CacheEngine(RedisStore(url=search_redis.url, prefix=prefix),
                                 vector_index="auto")
            v = random_unit(np.random.default_rng(8), 1)[0]
            put(server, v, text="served")
            load_command_class("semcache", "cache_stats").run_from_argv(
                ["manage.py", "cache_stats", "--json"])
            assert '"entries": 1' in capsys.readouterr().out
            load_command_class("semcache", "purge_cache").run_from_argv(
                ["manage.py", "purge_cache", "--all"])
            assert "Purged 1 entries" in capsys.readouterr().out
            assert server.find_semantic(scope(), v, threshold=0.9, guards=False) is None
            server.store.r.execute_command("FT.DROPINDEX", f"{prefix}:idx")


class TestFailSafe:
    def test_a_dead_server_bypasses_and_a_restarted_one_searches_again(self, prefix):
        from semcache.store import StoreUnavailable
        from tests.toolkit.redis_server import PrivateRedis

        with PrivateRedis(search=True) as server:
            engine = CacheEngine(RedisStore(url=server.url, prefix=prefix, timeout=0.2),
                                 vector_index="auto")
            v = random_unit(np.random.default_rng(9), 1)[0]
            put(engine, v)
            server.kill()
            with pytest.raises(StoreUnavailable):
                engine.find_semantic(scope(), v, threshold=0.9, guards=False)
            server.start()  # empty, without the index: the next search makes it again
            assert engine.find_semantic(scope(), v, threshold=0.9, guards=False) is None
            entry = put(engine, v, text="again")
            deadline = time.monotonic() + 5
            while engine.find_semantic(scope(), v, threshold=0.9, guards=False) is None:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert engine.find_semantic(scope(), v, threshold=0.9,
                                        guards=False).entry.id == entry.id


class TestReadiness:
    """/readyz says, in one word, where this process searches vectors."""

    @pytest.mark.django_db
    def test_redis_with_a_query_engine(self, client, search_redis, prefix, settings):
        from tests.toolkit.cache_engine import fresh_cache_engine

        settings.ENABLE_SEMANTIC_CACHE = True
        with fresh_cache_engine(settings, redis_url=search_redis.url, prefix=prefix) as engine:
            assert client.get("/readyz").json()["cache_vector_search"] == "redis"
            engine.store.r.execute_command("FT.DROPINDEX", f"{prefix}:idx")

    @pytest.mark.django_db
    def test_the_embedded_store(self, client, settings):
        from tests.toolkit.cache_engine import fresh_cache_engine

        settings.ENABLE_SEMANTIC_CACHE = True
        with fresh_cache_engine(settings):
            assert client.get("/readyz").json()["cache_vector_search"] == "process"
