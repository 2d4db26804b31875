"""The Redis store with two gateway processes: shared entries, purges, expiry, isolation."""

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from semcache.namespaces import build_scope
from semcache.services import CacheEngine, request_key
from semcache.store import RedisStore, StoreUnavailable
from tests.unit.semcache.helpers import random_unit

ROOT = Path(__file__).resolve().parents[3]


class Worker:
    def __init__(self, url, prefix):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.semcache.worker", url, prefix],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        assert json.loads(self.proc.stdout.readline())["ready"]

    def __call__(self, op, **kwargs):
        if "vector" in kwargs:
            kwargs["vector"] = [float(x) for x in kwargs["vector"]]
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture
def worker(redis_url, redis_prefix):
    w = Worker(redis_url, redis_prefix)
    yield w
    w.close()


def scope(team=1, text="q"):
    return build_scope(team_id=team, requested_model="auto", answer_params={},
                       messages=[{"role": "user", "content": text}])


def put(engine, vector, *, team=1, text="q", ttl=60):
    return engine.put(scope(team, text), vector=vector, message={"role": "assistant",
                                                                 "content": "a"},
                      finish_reason="stop", model="m", usage={}, cost=0, ttl_seconds=ttl)


@pytest.fixture
def engine(redis_url, redis_prefix):
    store = RedisStore(url=redis_url, prefix=redis_prefix)
    yield CacheEngine(store)
    store.flush()


class TestTwoProcesses:
    def test_processes_see_each_others_entries_and_purges(self, engine, worker):
        a, b = random_unit(np.random.default_rng(0), 2)
        first = worker("put", vector=a, text="first")["id"]
        found = engine.find_semantic(scope(text="q1"), a, threshold=0.9, guards=False)
        assert found.entry.id == first
        assert worker("find", vector=a)["id"] == first   # the worker loads the namespace
        second = put(engine, b, text="second").id
        assert worker("find", vector=b)["id"] == second  # reached it through the event log
        assert worker("purge")["purged"] == 2
        assert engine.find_semantic(scope(), a, threshold=0.9, guards=False) is None
        assert len(engine.registry.index_for(scope().namespace)) == 0
        assert worker("find", vector=b) == {"id": None, "indexed": 0}

    def test_expiry_reaches_every_index(self, engine, worker, redis_url, redis_prefix):
        v = random_unit(np.random.default_rng(1), 1)[0]
        entry = worker("put", vector=v, ttl=1)["id"]
        assert engine.find_semantic(scope(), v, threshold=0.9, guards=False).entry.id == entry
        time.sleep(1.3)
        assert engine.find_semantic(scope(), v, threshold=0.9, guards=False) is None
        # Redis dropped the entry itself (TTL) ...
        assert not engine.store.r.exists(f"{redis_prefix}:e:{entry}")
        # ... and the expiry job drops it from every process's index.
        assert worker("expire")["expired"] == 1
        engine.registry.sync()
        assert len(engine.registry.index_for(scope().namespace)) == 0
        assert engine.store.namespaces() == {}

    def test_tenant_isolation_for_identical_prompts(self, engine, worker):
        v = random_unit(np.random.default_rng(2), 1)[0]
        worker("put", vector=v, team=1, text="same prompt")
        assert engine.find_exact(scope(1, "same prompt")) is not None
        assert engine.find_exact(scope(2, "same prompt")) is None
        assert engine.find_semantic(scope(2, "same prompt"), v, threshold=0.5,
                                    guards=False) is None

    def test_stream_trim_triggers_a_reload(self, redis_url, redis_prefix):
        store = RedisStore(url=redis_url, prefix=redis_prefix, max_events=1)
        engine = CacheEngine(store)
        vectors = random_unit(np.random.default_rng(3), 300)
        put(engine, vectors[0], text="t0")
        engine.registry.index_for(scope().namespace)
        other = CacheEngine(RedisStore(url=redis_url, prefix=redis_prefix, max_events=1))
        for i in range(1, 300):
            put(other, vectors[i], text=f"t{i}")
        found = engine.find_semantic(scope(), vectors[250], threshold=0.9, guards=False)
        assert found is not None and found.entry.prompt == "t250"
        store.flush()


class TestStoreDetails:
    def test_replacing_an_exact_key_removes_the_old_entry(self, engine):
        v = random_unit(np.random.default_rng(4), 1)[0]
        old = put(engine, v, text="same").id
        new = put(engine, v, text="same").id
        assert engine.find_exact(scope(text="same")).entry.id == new
        assert engine.store.get(old) is None
        assert len(engine.registry.index_for(scope().namespace)) == 1

    def test_stats_and_older_than_purge(self, engine):
        v = random_unit(np.random.default_rng(5), 1)[0]
        entry = put(engine, v, text="x")
        found = engine.find_exact(scope(text="x"))
        engine.record(found, entry.namespace, team_id=1, request_id="r1")
        engine.record(None, entry.namespace)
        stats = engine.store.stats(entry.namespace)
        assert stats["hits"] == 1 and stats["misses"] == 1 and stats["top"] == [(entry.id, 1)]
        assert engine.store.entry_for_request(request_key(team_id=1, request_id="r1")) == entry.id
        assert engine.store.entry_for_request(request_key(team_id=2, request_id="r1")) is None
        assert engine.purge(older_than=time.time() - 3600) == 0
        assert engine.purge(older_than=time.time() + 1, dry_run=True) == 1
        assert engine.purge(older_than=time.time() + 1) == 1


class TestBatchedMisses:
    """A miss costs no Redis round trip of its own: counts ride on the process's next write."""

    @pytest.fixture
    def batching(self, redis_url, redis_prefix):
        store = RedisStore(url=redis_url, prefix=redis_prefix, miss_flush_interval=3600)
        yield CacheEngine(store)
        store.flush()

    def test_misses_are_written_with_the_next_store_or_hit_and_always_in_stats(
            self, batching, redis_url, redis_prefix):
        other = RedisStore(url=redis_url, prefix=redis_prefix)
        namespace = scope().namespace
        batching.record(None, namespace)
        batching.record(None, namespace)
        assert other.stats(namespace)["misses"] == 0  # pending in the counting process
        entry = put(batching, random_unit(np.random.default_rng(8), 1)[0])
        assert other.stats(namespace)["misses"] == 2  # carried by the put's pipeline
        batching.record(None, namespace)
        batching.record(batching.find_exact(scope()), namespace, team_id=1, request_id="r9")
        assert other.stats(namespace)["misses"] == 3  # carried by the hit's pipeline
        assert other.entry_for_request(request_key(team_id=1, request_id="r9")) == entry.id
        batching.record(None, namespace)
        assert batching.store.stats(namespace)["misses"] == 4  # its own stats flush first

    def test_misses_survive_a_failed_write(self, redis_url, redis_prefix):
        down = RedisStore(url="redis://127.0.0.1:1/0", prefix=redis_prefix, timeout=0.05,
                          miss_flush_interval=3600)
        down.record_miss("ns")
        with pytest.raises(StoreUnavailable):
            down.flush_misses()
        assert down._misses == {"ns": 1}

    def test_without_an_interval_every_miss_is_written_at_once(self, engine, redis_url,
                                                                redis_prefix):
        engine.record(None, scope().namespace)
        other = RedisStore(url=redis_url, prefix=redis_prefix)
        assert other.stats(scope().namespace)["misses"] == 1
