"""The namespace vector index: exact mode, HNSW mode, removal, expiry."""

import numpy as np
import pytest

from semcache.index import _HNSW, NamespaceIndex
from tests.unit.semcache.helpers import random_unit


class TestIndex:
    def _filled(self, n, **options):
        rng = np.random.default_rng(0)
        vectors = random_unit(rng, n)
        index = NamespaceIndex(**options)
        index.add_many([f"e{i}" for i in range(n)], vectors, [f"p{i}" for i in range(n)],
                       [1e12] * n)
        return index, vectors

    def test_exact_mode_finds_itself(self):
        index, vectors = self._filled(500)
        assert index.mode == "exact"
        found = index.search(vectors[42], 3)
        assert found[0].entry_id == "e42" and found[0].prompt == "p42"
        assert found[0].similarity > 0.999
        assert found[0].similarity >= found[1].similarity

    @pytest.mark.skipif(not _HNSW, reason="usearch not installed")
    def test_switches_to_hnsw_and_agrees_with_exact_search(self):
        index, vectors = self._filled(3000, ann_min_entries=1000)
        assert index.mode == "hnsw"
        rng = np.random.default_rng(1)
        queries = vectors[:200] + 0.03 * rng.standard_normal((200, 384)).astype(np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        agree = sum(index.search(q, 1)[0].entry_id == f"e{i}" for i, q in enumerate(queries))
        assert agree >= 198

    def test_remove_in_both_modes(self):
        for options in ({}, {"ann_min_entries": 100} if _HNSW else {}):
            index, vectors = self._filled(300, **options)
            assert index.remove("e7") and not index.remove("e7")
            assert "e7" not in index and len(index) == 299
            assert index.search(vectors[7], 1)[0].entry_id != "e7"
            # the last row moved into the hole: still found
            assert index.search(vectors[299], 1)[0].entry_id == "e299"
            index.add("e7", vectors[7], "p7", 1e12)
            assert index.search(vectors[7], 1)[0].entry_id == "e7"

    def test_save_and_restore_in_both_modes(self, tmp_path):
        for options in ({}, {"ann_min_entries": 100} if _HNSW else {}):
            index, vectors = self._filled(300, **options)
            index.remove("e5")
            path = str(tmp_path / f"index-{index.mode}")
            index.save(path)
            restored = NamespaceIndex.restore(path)
            assert restored.mode == index.mode and len(restored) == 299
            assert "e5" not in restored and restored.search(vectors[5], 1)[0].entry_id != "e5"
            found = restored.search(vectors[42], 1)[0]
            assert (found.entry_id, found.prompt) == ("e42", "p42")
            restored.add("new", vectors[5], "p-new", 1e12)  # reuses the freed slot
            assert restored.search(vectors[5], 1)[0].entry_id == "new"

    def test_expired_entries_are_skipped_and_listed(self):
        index = NamespaceIndex()
        rng = np.random.default_rng(2)
        vectors = random_unit(rng, 2)
        index.add("old", vectors[0], "old", expires=100.0)
        index.add("new", vectors[1], "new", expires=300.0)
        assert [c.entry_id for c in index.search(vectors[0], 2, now=200.0)] == ["new"]
        assert index.expired(200.0) == ["old"]


class TestRegistry:
    def test_loaded_namespaces_are_bounded_and_reload(self):
        from semcache.namespaces import build_scope
        from semcache.registry import IndexRegistry
        from semcache.services import CacheEngine
        from semcache.store import MemoryStore

        engine = CacheEngine(MemoryStore())
        engine.registry = IndexRegistry(engine.store, max_loaded=2)
        vectors = random_unit(np.random.default_rng(5), 3)
        scopes = [build_scope(team_id=i, messages=[{"role": "user", "content": "q"}],
                              requested_model="auto", answer_params={}) for i in range(3)]
        for scope, vector in zip(scopes, vectors, strict=True):
            engine.put(scope, vector=vector, message={}, finish_reason="stop", model="m",
                       usage={}, cost=0, ttl_seconds=60)
            assert engine.find_semantic(scope, vector, threshold=0.9) is not None
        assert len(engine.registry.loaded()) == 2
        assert engine.find_semantic(scopes[0], vectors[0], threshold=0.9) is not None

    def test_sync_interval_reads_own_writes_at_once_and_others_within_it(self, monkeypatch):
        from semcache import registry as registry_module
        from semcache.namespaces import build_scope
        from semcache.services import CacheEngine
        from semcache.store import MemoryStore

        clock = [1000.0]
        monkeypatch.setattr(registry_module.time, "monotonic", lambda: clock[0])
        store = MemoryStore()
        here = CacheEngine(store, min_sync_interval=0.05)
        there = CacheEngine(store, min_sync_interval=0.05)  # another process, same store
        mine, theirs = random_unit(np.random.default_rng(6), 2)
        scope = build_scope(team_id=1, messages=[{"role": "user", "content": "q"}],
                            requested_model="auto", answer_params={})
        other = build_scope(team_id=1, messages=[{"role": "user", "content": "other q"}],
                            requested_model="auto", answer_params={})
        assert here.find_semantic(scope, mine, threshold=0.9) is None  # loads the namespace
        here.put(scope, vector=mine, message={}, finish_reason="stop", model="m", usage={},
                 cost=0, ttl_seconds=60)
        assert here.find_semantic(scope, mine, threshold=0.9) is not None  # own write: at once
        there.put(other, vector=theirs, message={}, finish_reason="stop", model="m", usage={},
                  cost=0, ttl_seconds=60)
        assert here.find_semantic(other, theirs, threshold=0.9) is None  # log not read yet
        clock[0] += 0.06
        assert here.find_semantic(other, theirs, threshold=0.9) is not None

    def test_put_remembers_the_request_in_the_same_call(self):
        from semcache.namespaces import build_scope
        from semcache.services import CacheEngine, request_key
        from semcache.store import MemoryStore

        engine = CacheEngine(MemoryStore())
        scope = build_scope(team_id=1, messages=[{"role": "user", "content": "q"}],
                            requested_model="auto", answer_params={})
        entry = engine.put(scope, vector=random_unit(np.random.default_rng(7), 1)[0],
                           message={}, finish_reason="stop", model="m", usage={}, cost=0,
                           ttl_seconds=60, request_id="req-1")
        assert engine.feedback(team_id=1, request_id="req-1", correct=True)
        assert engine.store.entry_for_request(
            request_key(team_id=1, request_id="req-1")) == entry.id
        assert not engine.feedback(team_id=2, request_id="req-1", correct=False)

    def test_feedback_threshold_is_seen_at_once_here_and_within_the_interval_elsewhere(
            self, monkeypatch):
        from semcache import services
        from semcache.namespaces import build_scope
        from semcache.services import CacheEngine
        from semcache.store import MemoryStore

        clock = [1000.0]
        monkeypatch.setattr(services.time, "monotonic", lambda: clock[0])
        store = MemoryStore()
        here = CacheEngine(store, min_sync_interval=0.05)
        there = CacheEngine(store, min_sync_interval=0.05)
        scope = build_scope(team_id=1, messages=[{"role": "user", "content": "q"}],
                            requested_model="auto", answer_params={})
        assert here.threshold_for(scope.namespace, 0.9) == there.threshold_for(
            scope.namespace, 0.9) == 0.9
        here.put(scope, vector=random_unit(np.random.default_rng(8), 1)[0], message={},
                 finish_reason="stop", model="m", usage={}, cost=0, ttl_seconds=60,
                 request_id="req-wrong")
        assert here.feedback(team_id=1, request_id="req-wrong", correct=False)
        tightened = here.threshold_for(scope.namespace, 0.9)
        assert tightened > 0.9  # this process: at once
        assert there.threshold_for(scope.namespace, 0.9) == 0.9  # not read yet
        clock[0] += 0.06
        assert there.threshold_for(scope.namespace, 0.9) == tightened
