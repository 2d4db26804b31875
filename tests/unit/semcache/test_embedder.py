"""The embedder: offline model, unit vectors, async micro-batching off the event loop."""

import asyncio

import numpy as np

from semcache.embedder import get_embedder


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
        vectors = await asyncio.gather(*(embedder.embed(t) for t in texts))
        assert embedder.batches - before < len(texts)
        expected = embedder.embed_sync(texts)
        assert np.max(np.abs(np.stack(vectors) - expected)) < 1e-4

    async def test_unbatched_path(self):
        vector = await get_embedder().embed("plain", batching=False)
        assert vector.shape == (384,)
