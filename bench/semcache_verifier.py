"""The gray-zone pair verifier: a small learned interaction head over MiniLM token vectors.

Cosine of mean-pooled sentence vectors cannot tell "How should I study?" from "How should I study
for exams?" well enough; the token vectors the alignment features already use can, if a model
trained on labelled pairs compares them. This is a decomposable-attention head (Parikh et al.,
2016), deliberately small: each side's unit-normalized token vectors are projected (384 -> p),
soft-aligned to the other side, every (token, aligned counterpart) pair is compared through one
ReLU layer over [h, h~, h - h~, h * h~], the comparisons are pooled (rarity-weighted mean and max,
combined symmetrically, so swapping query and prompt gives the same answer), and one hidden layer
over the pooled vector plus the scalar features (cosine, the lexical and alignment penalties)
gives a penalty >= 0 (softplus):

    score = cosine - penalty        (so the score never exceeds the cosine: raising the threshold
                                     is always stricter, and below-threshold cosines skip it)

Trained by bench/semcache_fit_verifier.py (torch, CPU); here it is plain numpy (what the gateway
would run: no torch at request time), ~0.3 ms for a query and 4 candidates. NOT wired into the
decision: cross-validated on the QQP dev pairs it ties plain cosine + the hard guards (0.353 vs
0.354 hit rate at precision 0.95, docs/semantic-cache.md "Pair-trained verifier"), so no weights
ship. It stays as the inference half of that experiment, which the bench scores through, so that a
better-trained head could ship by moving this module into semcache/ with its weights
(semcache/verifier.npz) and calling `load_verifier` from the decision.
"""

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np

from semcache.alignment import IDENTICAL

WEIGHTS_PATH = Path(__file__).with_name("verifier.npz")
MAX_TOKENS = 64          # tokens per text the verifier looks at (questions are shorter)
_IDENTICAL = np.asarray(IDENTICAL, dtype=np.float32)


def scalar_inputs(cosine, lexical, alignment) -> np.ndarray:
    """Return the verifier's scalar inputs of rows of (cosine, 6 lexical, 6 alignment)."""
    cosine = np.asarray(cosine, dtype=np.float32).reshape(-1, 1)
    lexical = np.asarray(lexical, dtype=np.float32).reshape(len(cosine), -1)
    alignment = np.asarray(alignment, dtype=np.float32).reshape(len(cosine), -1)
    # Centred so that the head starts near a neutral point; alignment as penalties (0 = same).
    return np.hstack([(cosine - 0.9) * 10.0, lexical, np.abs(alignment - _IDENTICAL)])


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    np.exp(x, out=x)
    return x / x.sum(axis=-1, keepdims=True)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


class Verifier:
    """Numpy inference of the head trained by bench/semcache_fit_verifier.py."""

    def __init__(self, weights):
        self.w = {k: np.asarray(weights[k], dtype=np.float32) for k in (
            "proj", "compare_w", "compare_b", "mix_w", "mix_b", "out_w", "out_b")}

    def _side(self, h, hm, other, om, weights):
        w = self.w
        e = h @ other.transpose(0, 2, 1) / np.sqrt(h.shape[-1])
        e = np.where(om[:, None, :], e, -1e4)
        aligned = _softmax(e) @ other
        c = np.concatenate([h, aligned, h - aligned, h * aligned], axis=-1)
        c = np.maximum(c @ w["compare_w"] + w["compare_b"], 0.0)
        wm = (weights * hm)[..., None]
        mean = (c * wm).sum(1) / np.maximum(wm.sum(1), 1e-6)
        mx = np.where(hm[..., None], c, 0.0).max(1)
        return mean, mx

    def penalty_batch(self, a, am, wa, b, bm, wb, scalars) -> np.ndarray:
        """Return the penalty of each padded pair: tokens (n, T, 384), masks (n, T) bool,
        rarity weights (n, T), scalar inputs (n, k)."""
        w = self.w
        a = a / np.maximum(np.linalg.norm(a, axis=-1, keepdims=True), 1e-12)
        b = b / np.maximum(np.linalg.norm(b, axis=-1, keepdims=True), 1e-12)
        ha, hb = a @ w["proj"], b @ w["proj"]
        mean_a, max_a = self._side(ha, am, hb, bm, wa)
        mean_b, max_b = self._side(hb, bm, ha, am, wb)
        pooled = np.concatenate([mean_a + mean_b, np.abs(mean_a - mean_b), max_a + max_b,
                                 np.asarray(scalars, dtype=np.float32)], axis=-1)
        x = np.maximum(pooled @ w["mix_w"] + w["mix_b"], 0.0)
        return _softplus(x @ w["out_w"] + w["out_b"][0]).astype(np.float32)

    def penalties(self, query_tokens: np.ndarray, query_weights: np.ndarray,
                  prompts_tokens: Sequence[np.ndarray], prompts_weights: Sequence[np.ndarray],
                  scalars: np.ndarray) -> np.ndarray:
        """Return the penalty of the query against each prompt (unpadded token arrays)."""
        n = len(prompts_tokens)
        a, am, wa = _pad([query_tokens] * n, [query_weights] * n)
        b, bm, wb = _pad(prompts_tokens, prompts_weights)
        return self.penalty_batch(a, am, wa, b, bm, wb, scalars)


def _pad(tokens: Sequence[np.ndarray], weights: Sequence[np.ndarray]):
    """Return (n, T, d) tokens, (n, T) mask and (n, T) weights, cut at MAX_TOKENS."""
    cut = [(t[:MAX_TOKENS], w[:MAX_TOKENS]) for t, w in zip(tokens, weights, strict=True)]
    width = max(1, max(min(len(t), len(w)) for t, w in cut))
    dim = next((t.shape[1] for t, _ in cut if t.ndim == 2 and len(t)), 384)
    x = np.zeros((len(cut), width, dim), dtype=np.float32)
    m = np.zeros((len(cut), width), dtype=bool)
    wt = np.zeros((len(cut), width), dtype=np.float32)
    for r, (t, w) in enumerate(cut):
        k = min(len(t), len(w))
        x[r, :k], m[r, :k], wt[r, :k] = t[:k], True, w[:k]
    return x, m, wt


@cache
def load_verifier(path: Path = WEIGHTS_PATH) -> Verifier | None:
    """Return the shipped verifier, or None when its weights are absent."""
    if not path.exists():
        return None
    with np.load(path) as data:
        return Verifier({k: data[k] for k in data.files})
