"""The learned quality model of one target (a model or a tier): P(good answer | prompt).

Two logistic regressions, averaged, each measured on router_outcomes_dev to beat the plain
nearest-neighbour vote: one over word n-grams (TF-IDF) plus structural features, one stacked on
nearest-neighbour outcome rates in the shared embedding plus the same structural features.
Graded scores in [0, 1] train as weighted positive and negative copies of a row.
"""

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from routing.features import feature_matrix

CHUNK = 1024  # rows per similarity block: bounds memory to CHUNK × n floats


def neighbour_rates(index_vectors: np.ndarray, index_scores: np.ndarray, vectors: np.ndarray,
                    *, k: int, exclude_self: bool = False) -> np.ndarray:
    """Return, per row of `vectors`, [similarity-weighted mean score of its k nearest indexed
    neighbours, their mean similarity]. With `exclude_self`, row i is never its own neighbour
    (the vectors are the index itself: leave-one-out rates for training)."""
    k = max(1, min(k, len(index_vectors) - (1 if exclude_self else 0)))
    out = np.empty((len(vectors), 2), dtype=np.float64)
    for start in range(0, len(vectors), CHUNK):
        sims = vectors[start:start + CHUNK] @ index_vectors.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, rows + start] = -np.inf
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        weights = np.clip(top_sims, 1e-6, 1.0)
        out[start:start + CHUNK, 0] = (weights * index_scores[top]).sum(1) / weights.sum(1)
        out[start:start + CHUNK, 1] = top_sims.mean(1)
    return out


def _weighted_binary(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (row index, label, weight): each row as a positive copy weighted by its score and
    a negative copy weighted by 1 - score (copies of weight 0 dropped)."""
    n = len(scores)
    rows = np.concatenate([np.arange(n), np.arange(n)])
    labels = np.concatenate([np.ones(n), np.zeros(n)])
    weights = np.concatenate([scores, 1.0 - scores])
    keep = weights > 0
    return rows[keep], labels[keep], weights[keep]


class OutcomeModel:
    """P(good answer) for one target, learned from (prompt, embedding, score) examples."""

    def __init__(self, *, k: int = 80, text_c: float = 0.3, stack_c: float = 1.0):
        self.k = k
        self.text_c = text_c
        self.stack_c = stack_c

    @staticmethod
    def can_fit(scores: np.ndarray, *, min_examples: int) -> bool:
        """Return whether there are enough examples, with both outcomes present, to fit."""
        scores = np.asarray(scores)
        return len(scores) >= min_examples and scores.min() < 0.5 <= scores.max()

    def fit(self, texts: list[str], vectors: np.ndarray, scores: np.ndarray) -> "OutcomeModel":
        """Fit both regressions on the examples."""
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._scores = np.asarray(scores, dtype=np.float64)
        features = feature_matrix(texts)
        self._scaler = StandardScaler().fit(features)
        scaled = self._scaler.transform(features)
        self._tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=min(3, len(texts)),
                                      max_features=50000, sublinear_tf=True)
        try:
            words = self._tfidf.fit_transform(texts)
        except ValueError:  # no word occurs often enough: structural features only
            self._tfidf = None
            words = sparse.csr_matrix((len(texts), 0))
        text_x = sparse.hstack([words, sparse.csr_matrix(scaled)]).tocsr()
        stack_x = np.hstack([neighbour_rates(self._vectors, self._scores, self._vectors,
                                             k=self.k, exclude_self=True), scaled])
        rows, labels, weights = _weighted_binary(self._scores)
        self._text = LogisticRegression(C=self.text_c, max_iter=3000).fit(
            text_x[rows], labels, sample_weight=weights)
        self._stack = LogisticRegression(C=self.stack_c, max_iter=3000).fit(
            stack_x[rows], labels, sample_weight=weights)
        return self

    @property
    def size(self) -> int:
        """Return how many examples the model was fitted on."""
        return len(self._scores)

    def predict(self, texts: list[str], vectors: np.ndarray) -> np.ndarray:
        """Return P(good answer) for each prompt."""
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
        scaled = self._scaler.transform(feature_matrix(texts))
        words = (self._tfidf.transform(texts) if self._tfidf is not None
                 else sparse.csr_matrix((len(texts), 0)))
        text_x = sparse.hstack([words, sparse.csr_matrix(scaled)]).tocsr()
        stack_x = np.hstack([neighbour_rates(self._vectors, self._scores, vectors, k=self.k),
                             scaled])
        return (self._text.predict_proba(text_x)[:, 1]
                + self._stack.predict_proba(stack_x)[:, 1]) / 2
