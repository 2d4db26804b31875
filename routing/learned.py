"""The learned quality model of one target (a model or a tier): P(good answer | prompt).

Logistic regressions ("members"), their probabilities averaged, each measured on
router_outcomes_dev to beat the plain nearest-neighbour vote: one over word n-grams (TF-IDF) plus
structural features, and neighbour members, each stacked on nearest-neighbour outcome rates at
several neighbourhood sizes (fine topic to broad domain) in one vector space, plus the same
structural features. The spaces are the sentence embedding and, when the examples and the
request carry them, the embedder's mean-pooled intermediate MiniLM layers (`layers`): neighbours
there route better than in the final embedding (docs/routing.md). Without a request's layers
the model predicts as it did before them: the words member and the final-embedding member.
Graded scores in [0, 1] train as weighted positive and negative copies of a row.

sklearn fits the regressions; prediction is plain numpy and Python over the fitted weights (a
vocabulary lookup, one similarity product, two dot products): well under a millisecond per
prompt, where sklearn's per-call validation cost several.
"""

import math
from collections import Counter

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from threadpoolctl import ThreadpoolController

from routing.features import PROMPT_FORMATS, feature_matrix, prompt_formats

CHUNK = 1024  # rows per similarity block: bounds memory to CHUNK × n floats
# Neighbourhood sizes as multiples of `k`: with k=80, 10, 27, 80 and 320 neighbours. Measured on
# router_outcomes_dev (5-fold) the ladder beats any single k: near neighbours say "this kind of
# question", far ones "this domain".
K_LADDER = (1 / 8, 1 / 3, 1.0, 4.0)
NEAREST = 10  # the mean similarity of this many nearest neighbours is a feature (novelty)
# A request predicts one prompt: its similarity product is a few hundred microseconds on one
# core, but multi-threaded BLAS first wakes its worker threads, which on a loaded machine took
# 5-10 ms per call (measured with bench/routing_predict.py). Batches up to this size run with
# one BLAS thread.
SINGLE_THREAD_ROWS = 8

# The model the gateway fits (routing.selectors) and `eval_router` evaluates by default, each
# value measured on router_outcomes_dev (docs/routing.md).
MIN_EXAMPLES = 200   # labels a target (and a prompt format) needs for learned members
K = 80               # neighbourhood scale: outcome rates at k/8, k/3, k and 4k neighbours
LAYERS = (3, 5)      # intermediate MiniLM layers that get a neighbour member each
TEMPERATURE = 1.5    # logit scale of the layered members
FORMATS = True       # members of its own per prompt format (multiple-choice, open)
MAX_TRAIN = 20_000   # most recent labels per target it trains on (bounds refit time and memory)
_threadpools: ThreadpoolController | None = None


def _one_blas_thread():
    """Return a context manager limiting BLAS to one thread (the controller is built once)."""
    global _threadpools
    if _threadpools is None:
        _threadpools = ThreadpoolController()
    return _threadpools.limit(limits=1, user_api="blas")


def neighbour_ladder(k: int) -> tuple[int, ...]:
    """Return the neighbourhood sizes used for `k`."""
    return tuple(sorted({max(1, round(k * f)) for f in K_LADDER}))


def neighbour_rates(index_vectors: np.ndarray, index_scores: np.ndarray, vectors: np.ndarray,
                    *, ks: tuple[int, ...], exclude_self: bool = False) -> np.ndarray:
    """Return, per row of `vectors`, the similarity-weighted mean score of its k nearest indexed
    neighbours for each k in `ks`, then the mean similarity of its NEAREST nearest and its top
    similarity. With `exclude_self`, row i is never its own neighbour (the vectors are the index
    itself: leave-one-out rates for training). One similarity product serves every k."""
    available = len(index_vectors) - (1 if exclude_self else 0)
    ks = tuple(max(1, min(k, available)) for k in ks)
    kmax = max(max(ks), min(NEAREST, available))
    out = np.empty((len(vectors), len(ks) + 2), dtype=np.float64)
    for start in range(0, len(vectors), CHUNK):
        sims = vectors[start:start + CHUNK] @ index_vectors.T
        if exclude_self:
            rows = np.arange(sims.shape[0])
            sims[rows, rows + start] = -np.inf
        if kmax < sims.shape[1]:
            top = np.argpartition(-sims, kmax - 1, axis=1)[:, :kmax]
        else:
            top = np.broadcast_to(np.arange(sims.shape[1]), sims.shape)
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.argsort(-top_sims, axis=1)
        top_sims = np.take_along_axis(top_sims, order, axis=1).astype(np.float64)
        top_scores = index_scores[np.take_along_axis(top, order, axis=1)]
        weights = np.clip(top_sims, 1e-6, 1.0)
        weighted = np.cumsum(weights * top_scores, axis=1)
        total = np.cumsum(weights, axis=1)
        block = out[start:start + CHUNK]
        for column, k in enumerate(ks):
            block[:, column] = weighted[:, k - 1] / total[:, k - 1]
        block[:, len(ks)] = top_sims[:, :min(NEAREST, kmax)].mean(1)
        block[:, len(ks) + 1] = top_sims[:, 0]
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


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40.0, 40.0)))


class _Standardizer:
    """Column means and scales (StandardScaler's arithmetic, without its per-call checks)."""

    def __init__(self, matrix: np.ndarray):
        self.mean = matrix.mean(0)
        scale = matrix.std(0)
        self.scale = np.where(scale > 0, scale, 1.0)

    def __call__(self, matrix: np.ndarray) -> np.ndarray:
        return (matrix - self.mean) / self.scale


class _WordScorer:
    """A fitted TF-IDF vocabulary and the regression's word weights, applied without sparse
    matrices: the n-grams of a prompt, sublinear counts × idf, l2-normalised, dotted with the
    weights (what TfidfVectorizer.transform and a dot product compute, at a fraction of the
    overhead for one prompt)."""

    def __init__(self, vectorizer: TfidfVectorizer, weights: np.ndarray):
        self._analyze = vectorizer.build_analyzer()
        idf = vectorizer.idf_
        self._terms = {term: (float(idf[j]), float(weights[j]))
                       for term, j in vectorizer.vocabulary_.items()}

    def logits(self, texts: list[str]) -> np.ndarray:
        out = np.zeros(len(texts))
        for row, text in enumerate(texts):
            squares = dot = 0.0
            for term, count in Counter(self._analyze(text)).items():
                entry = self._terms.get(term)
                if entry is None:
                    continue
                value = (1.0 + math.log(count)) * entry[0]
                squares += value * value
                dot += value * entry[1]
            out[row] = dot / math.sqrt(squares) if squares else 0.0
        return out


class _NeighbourMember:
    """A logistic regression on neighbour outcome rates in one vector space (leave-one-out on
    the training rows) and the structural features."""

    def __init__(self, vectors: np.ndarray, scores: np.ndarray, features: np.ndarray, *,
                 ks: tuple[int, ...], c: float):
        self._vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self._scores = scores
        self._ks = ks
        raw = np.hstack([neighbour_rates(self._vectors, scores, self._vectors, ks=ks,
                                         exclude_self=True), features])
        self._scale = _Standardizer(raw)
        rows, labels, weights = _weighted_binary(scores)
        fitted = LogisticRegression(C=c, max_iter=3000).fit(
            self._scale(raw)[rows], labels, sample_weight=weights)
        self._coef = fitted.coef_[0]
        self._bias = float(fitted.intercept_[0])

    def logits(self, vectors: np.ndarray, features: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32).reshape(len(features), -1)
        if len(vectors) <= SINGLE_THREAD_ROWS:
            with _one_blas_thread():
                rates = neighbour_rates(self._vectors, self._scores, vectors, ks=self._ks)
        else:
            rates = neighbour_rates(self._vectors, self._scores, vectors, ks=self._ks)
        return self._scale(np.hstack([rates, features])) @ self._coef + self._bias


class _Members:
    """The fitted members of one model: words, the final-embedding neighbour member and (with
    the examples' layers) one neighbour member per layer. `OutcomeModel` holds one per prompt
    format."""

    def __init__(self, texts: list[str], vectors: np.ndarray, scores: np.ndarray,
                 features: np.ndarray, *, k: int, text_c: float, stack_c: float,
                 layers: tuple[int, ...], layer_states: dict[int, np.ndarray] | None):
        self.size = len(scores)
        ks = neighbour_ladder(k)
        self._feature_scale = _Standardizer(features)
        vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=min(3, len(texts)),
                                     max_features=50000, sublinear_tf=True)
        try:
            words = vectorizer.fit_transform(texts)
        except ValueError:  # no word occurs often enough: structural features only
            vectorizer = None
            words = sparse.csr_matrix((len(texts), 0))
        text_x = sparse.hstack([words, sparse.csr_matrix(self._feature_scale(features))]).tocsr()
        rows, labels, weights = _weighted_binary(scores)
        text = LogisticRegression(C=text_c, max_iter=3000).fit(
            text_x[rows], labels, sample_weight=weights)
        n_words = words.shape[1]
        self._words = _WordScorer(vectorizer, text.coef_[0, :n_words]) if vectorizer else None
        self._text_feature_coef = text.coef_[0, n_words:]
        self._text_bias = float(text.intercept_[0])
        member = {"ks": ks, "c": stack_c}
        self._final = _NeighbourMember(vectors, scores, features, **member)
        self.layer_members: dict[int, _NeighbourMember] = {}
        if layers and layer_states is not None and all(x in layer_states for x in layers):
            self.layer_members = {x: _NeighbourMember(layer_states[x], scores, features,
                                                      **member) for x in layers}

    def word_logits(self, texts: list[str], features: np.ndarray) -> np.ndarray:
        text_logit = self._feature_scale(features) @ self._text_feature_coef + self._text_bias
        if self._words is not None:
            text_logit = text_logit + self._words.logits(texts)
        return text_logit

    def final_logits(self, vectors: np.ndarray, features: np.ndarray) -> np.ndarray:
        return self._final.logits(vectors, features)


class OutcomeModel:
    """P(good answer) for one target, learned from (prompt, embedding, score) examples.

    With `formats`, each prompt format (`routing.features.prompt_formats`: multiple-choice
    or open) that has at least `min_format_examples` examples, both outcomes present, gets
    members of its own: what makes a multiple-choice question hard for a model is not what makes
    an open problem hard, and one regression over both mixes them (measured: +0.005 APGR,
    docs/routing.md). A format without enough examples, and every prompt when `formats` is off,
    is predicted by members fitted on all the examples.

    With `layers` (intermediate MiniLM layers, e.g. (3, 5)) and the examples' pooled states of
    them, it also fits a neighbour member per layer; a request that brings those layers is
    predicted by the words member and the layer members (`layered_members`), each logit scaled
    by `temperature` before its sigmoid; a request without them, as before.
    """

    def __init__(self, *, k: int = 80, text_c: float = 1.0, stack_c: float = 0.1,
                 layers: tuple[int, ...] = (), temperature: float = 1.0,
                 formats: bool = True, min_format_examples: int = 200):
        self.k = k
        self.text_c = text_c
        self.stack_c = stack_c
        self.layers = tuple(layers)
        self.temperature = temperature
        self.formats = formats
        self.min_format_examples = min_format_examples

    @staticmethod
    def can_fit(scores: np.ndarray, *, min_examples: int) -> bool:
        """Return whether there are enough examples, with both outcomes present, to fit."""
        scores = np.asarray(scores)
        return len(scores) >= min_examples and scores.min() < 0.5 <= scores.max()

    def fit(self, texts: list[str], vectors: np.ndarray, scores: np.ndarray, *,
            layers: dict[int, np.ndarray] | None = None) -> "OutcomeModel":
        """Fit the members on the examples. `layers` maps a layer to the examples' `(n, d)`
        pooled states; the layer members are fitted when it has every one of `self.layers`."""
        self._scores = np.asarray(scores, dtype=np.float64)
        features = feature_matrix(texts)
        kinds = prompt_formats(features)

        def fit_rows(rows: np.ndarray) -> _Members:
            return _Members([texts[i] for i in rows], vectors[rows], self._scores[rows],
                            features[rows], k=self.k, text_c=self.text_c,
                            stack_c=self.stack_c, layers=self.layers,
                            layer_states=None if layers is None
                            else {x: v[rows] for x, v in layers.items()})

        everything = np.arange(len(texts))
        self._by_format: dict[str, _Members] = {}
        if self.formats:
            for kind in PROMPT_FORMATS:
                rows = everything[kinds == kind]
                if self.can_fit(self._scores[rows], min_examples=self.min_format_examples):
                    self._by_format[kind] = fit_rows(rows)
        fitted = set(self._by_format)
        if fitted >= set(PROMPT_FORMATS):
            self._fallback = None  # every format has its own members
        elif len(fitted) == 1 and np.all(kinds == next(iter(fitted))):
            self._fallback = self._by_format[next(iter(fitted))]  # one format: the same fit
        else:
            self._fallback = fit_rows(everything)
        return self

    @property
    def size(self) -> int:
        """Return how many examples the model was fitted on."""
        return len(self._scores)

    @property
    def format_sizes(self) -> dict[str, int]:
        """Return how many examples each format with members of its own was fitted on."""
        return {kind: members.size for kind, members in self._by_format.items()}

    def _fits(self) -> list[_Members]:
        return list(self._by_format.values()) + ([self._fallback] if self._fallback else [])

    @property
    def layered(self) -> bool:
        """Return whether the model has layer members (it was fitted with the layers)."""
        return all(members.layer_members for members in self._fits())

    def predict(self, texts: list[str], vectors: np.ndarray, *,
                layers: dict[int, np.ndarray] | None = None,
                features: np.ndarray | None = None) -> np.ndarray:
        """Return P(good answer) for each prompt. `layers` maps a layer to the prompts' `(n, d)`
        pooled states: with all of the model's layers, the layered members predict; else the
        words and final-embedding members. `features` (feature_matrix(texts)) may be passed in
        when several models judge the same prompts."""
        if not texts:
            return np.zeros(0)
        features = feature_matrix(texts) if features is None else features
        if self.uses_layers(layers):
            logits = self.layered_members(texts, layers, features=features)
            t = self.temperature
        else:
            logits = self.member_logits(texts, vectors, features=features)
            t = 1.0
        return sum(_sigmoid(t * z) for z in logits) / len(logits)

    def uses_layers(self, layers: dict | None) -> bool:
        """Return whether a request with these `layers` is predicted by the layered members."""
        return self.layered and layers is not None and all(x in layers for x in self.layers)

    def _per_format(self, features: np.ndarray, count: int, logits) -> list[np.ndarray]:
        """Return `count` logit arrays, one per member, each prompt's from its format's members:
        `logits(members, rows)` gives them for those rows."""
        kinds = prompt_formats(features)
        if len(kinds) == 1:  # one prompt, as a request brings: no grouping
            return logits(self._by_format.get(str(kinds[0]), self._fallback), np.arange(1))
        out = [np.zeros(len(kinds)) for _ in range(count)]
        for kind in np.unique(kinds):
            rows = np.nonzero(kinds == kind)[0]
            part = logits(self._by_format.get(str(kind), self._fallback), rows)
            for column, values in zip(out, part, strict=True):
                column[rows] = values
        return out

    def member_logits(self, texts: list[str], vectors: np.ndarray, *,
                      features: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Return the two logits of the prediction without layers (words, neighbour rates in
        the final embedding) per prompt: `predict` averages their probabilities."""
        features = feature_matrix(texts) if features is None else features
        vectors = np.asarray(vectors).reshape(len(texts), -1)
        words, final = self._per_format(features, 2, lambda members, rows: [
            members.word_logits([texts[i] for i in rows], features[rows]),
            members.final_logits(vectors[rows], features[rows])])
        return words, final

    def layered_members(self, texts: list[str], layers: dict[int, np.ndarray], *,
                        features: np.ndarray | None = None) -> list[np.ndarray]:
        """Return the logits of the layered prediction per prompt: words, then one member per
        layer."""
        features = feature_matrix(texts) if features is None else features

        def logits(members: _Members, rows: np.ndarray) -> list[np.ndarray]:
            out = [members.word_logits([texts[i] for i in rows], features[rows])]
            out.extend(members.layer_members[x].logits(
                np.asarray(layers[x]).reshape(len(texts), -1)[rows], features[rows])
                for x in self.layers)
            return out

        count = 1 + len(self.layers)
        return self._per_format(features, count, logits)
