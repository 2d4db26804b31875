"""The embedder: offline model, unit vectors, async micro-batching off the event loop."""

import asyncio

import numpy as np
from prometheus_client import REGISTRY

from semcache.embedder import get_embedder


def _batch_sizes() -> tuple[float, float]:
    """Return the embed batch-size histogram's (count, sum)."""
    return tuple(REGISTRY.get_sample_value(f"semantic_cache_embed_batch_size_{part}") or 0.0
                 for part in ("count", "sum"))


class TestEmbedder:
    def test_unit_vectors(self):
        vectors = get_embedder().embed_sync(["hello world", "the cat sat"])
        assert vectors.shape == (2, 384) and vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-4)

    async def test_concurrent_requests_are_batched_and_identical(self):
        embedder = get_embedder()
        embedder.warm_up()
        texts = [f"question number {i} about the weather in town {i % 7}" for i in range(32)]
        before = embedder.batches
        observed = _batch_sizes()
        vectors = await asyncio.gather(*(embedder.embed(t) for t in texts))
        assert embedder.batches - before < len(texts)
        count, total = _batch_sizes()
        # Every batch is observed with its size: the metric sums to the texts embedded.
        assert (count - observed[0], total - observed[1]) == (embedder.batches - before,
                                                               len(texts))
        expected = embedder.embed_sync(texts)
        assert np.max(np.abs(np.stack(vectors) - expected)) < 1e-4

    async def test_unbatched_path(self):
        vector = await get_embedder().embed("plain", batching=False)
        assert vector.shape == (384,)



class _ArrivingQueue:
    """A queue whose texts arrive at given times of a fake clock; records every wait."""

    def __init__(self, clock: list[float], arrivals: list[tuple[float, str]]):
        self.clock, self.arrivals, self.waits = clock, list(arrivals), []

    def get(self, timeout: float):
        import queue

        self.waits.append(timeout)
        if self.arrivals and self.arrivals[0][0] <= self.clock[0] + timeout:
            at, text = self.arrivals.pop(0)
            self.clock[0] = max(self.clock[0], at)
            return text
        self.clock[0] += timeout
        raise queue.Empty


def _batcher(monkeypatch, *, load: int, arrivals=(), wait_s: float = 0.05, target: int = 3):
    """An Embedder with only what `_fill` reads (no model: the batching policy alone)."""
    from semcache import embedder as module

    clock = [100.0]
    monkeypatch.setattr(module.time, "monotonic", lambda: clock[0])
    embedder = object.__new__(module.Embedder)
    embedder.max_wait, embedder.batch_target, embedder.busy_at = wait_s, target, 16
    embedder.load = lambda: load
    embedder._queue = _ArrivingQueue(clock, list(arrivals))
    return embedder


class TestBusyBatching:
    def test_light_load_never_waits(self, monkeypatch):
        embedder = _batcher(monkeypatch, load=3, arrivals=[(100.01, "b")])
        batch = ["a"]
        embedder._fill(batch)
        assert batch == ["a"] and embedder._queue.waits == []

    def test_under_load_the_texts_on_their_way_join_the_batch(self, monkeypatch):
        embedder = _batcher(monkeypatch, load=40,
                            arrivals=[(100.01, "b"), (100.02, "c"), (100.03, "d")])
        batch = ["a"]
        embedder._fill(batch)
        assert batch == ["a", "b", "c"]  # the target reached: it stops waiting there
        assert len(embedder._queue.waits) == 2

    def test_the_wait_is_bounded(self, monkeypatch):
        embedder = _batcher(monkeypatch, load=40, arrivals=[(100.01, "b"), (100.2, "late")])
        batch = ["a"]
        embedder._fill(batch)
        assert batch == ["a", "b"]  # "late" comes after the 50 ms window
        assert embedder._queue.clock[0] <= 100.05 + 1e-9  # it gave up at the deadline
