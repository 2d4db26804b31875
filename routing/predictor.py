"""Learned quality prediction: k nearest labeled prompts, per model or tier, over embeddings.

For a prompt vector and a target (a profile name, or a tier), the prediction is the similarity-
weighted mean score of the k most similar labeled prompts for that target, shrunk toward a prior
(the profile's static quality score) by `prior_weight` pseudo-examples, so a target with few or
distant neighbours falls back to its prior instead of trusting noise.
"""

from dataclasses import dataclass

import numpy as np

from routing.features import feature_matrix

MODEL = "model"
TIER = "tier"
_FEATURES = ("", "features")  # memo key of the prompt's structural features


@dataclass(frozen=True)
class Prediction:
    """Predicted chance of a good answer, and the evidence (labeled neighbours) behind it."""

    quality: float
    support: float  # sum of neighbour weights: 0 means the prior alone


class KnnPredictor:
    """Nearest-neighbour predictor over unit vectors, one index per target."""

    def __init__(self, *, k: int = 40, prior_weight: float = 4.0, power: float = 4.0):
        self.k = k
        self.prior_weight = prior_weight
        # Weights are similarity**power: near neighbours count much more than the k-th one.
        self.power = power
        self._index: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}

    def fit(self, targets: list[tuple[str, str]], vectors: np.ndarray,
            scores: np.ndarray) -> "KnnPredictor":
        """Index labeled examples: `targets[i]` is (MODEL|TIER, name) for row i."""
        vectors = np.asarray(vectors, dtype=np.float32)
        scores = np.asarray(scores, dtype=np.float32)
        groups: dict[tuple[str, str], list[int]] = {}
        for row, target in enumerate(targets):
            groups.setdefault(target, []).append(row)
        self._index = {t: (vectors[rows], scores[rows]) for t, rows in groups.items()}
        return self

    def __len__(self) -> int:
        return sum(len(s) for _, s in self._index.values())

    def has(self, target: tuple[str, str]) -> bool:
        return target in self._index

    def predict(self, target: tuple[str, str], vector: np.ndarray, *, prior: float) -> Prediction:
        """Return the prediction for one prompt `vector` and one target."""
        return self.predict_many(target, np.asarray(vector)[None, :], prior=prior)[0]

    def predict_many(self, target: tuple[str, str], vectors: np.ndarray, *,
                     prior: float) -> list[Prediction]:
        """Return predictions for a batch of prompt vectors `(n, d)`."""
        entry = self._index.get(target)
        if entry is None:
            return [Prediction(quality=prior, support=0.0)] * len(vectors)
        index_vectors, index_scores = entry
        sims = np.asarray(vectors, dtype=np.float32) @ index_vectors.T
        k = min(self.k, sims.shape[1])
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        top_sims = np.take_along_axis(sims, top, axis=1)
        weights = np.clip(top_sims, 0.0, 1.0) ** self.power
        weighted = (weights * index_scores[top]).sum(axis=1)
        support = weights.sum(axis=1)
        quality = (weighted + self.prior_weight * prior) / (support + self.prior_weight)
        return [Prediction(quality=float(q), support=float(s))
                for q, s in zip(quality, support, strict=True)]


def profile_targets(profile) -> list[tuple[str, str]]:
    """Return the targets that describe `profile`, most specific first."""
    return [(MODEL, profile.name), (TIER, profile.tier)]


def predict_profile(predictor: KnnPredictor, profile, vector: np.ndarray | None) -> Prediction:
    """Return the predicted quality of `profile` for a prompt: its own labels, else its tier's,
    else its static quality score."""
    prior = float(profile.quality_score)
    if vector is None:
        return Prediction(quality=prior, support=0.0)
    for target in profile_targets(profile):
        if predictor.has(target):
            return predictor.predict(target, vector, prior=prior)
    return Prediction(quality=prior, support=0.0)


class RoutingPredictor:
    """Learned models for well-labeled targets, the kNN vote for sparse ones, priors otherwise.

    `defaults` ({(TIER, name): OutcomeModel}, routing.default_predictor) are the shipped
    models: where they cover a profile's tier, their prediction for the prompt is the profile's
    prior instead of its static quality score.
    """

    def __init__(self, knn: KnnPredictor, learned: dict | None = None,
                 defaults: dict | None = None):
        self.knn = knn
        self.learned = learned or {}  # target → routing.learned.OutcomeModel
        self.defaults = defaults or {}

    def __len__(self) -> int:
        return len(self.knn)

    @property
    def predicts(self) -> bool:
        """Return whether any prediction depends on the prompt (else priors alone decide)."""
        return bool(len(self.knn) or self.defaults)

    def _learned(self, model, target, text: str, vector: np.ndarray,
                 layers: dict[int, np.ndarray] | None, memo: dict) -> Prediction:
        """Return `model`'s prediction for the prompt, memoised per target in `memo`."""
        if target not in memo:
            if _FEATURES not in memo:  # the prompt's structural features: once
                memo[_FEATURES] = feature_matrix([text])
            batch = None if layers is None else {
                x: np.asarray(v, dtype=np.float32)[None, :] for x, v in layers.items()}
            memo[target] = Prediction(
                quality=float(model.predict([text], vector[None, :], layers=batch,
                                            features=memo[_FEATURES])[0]),
                support=float(model.size))
        return memo[target]

    def predict(self, profile, text: str, vector: np.ndarray | None, *,
                layers: dict[int, np.ndarray] | None = None,
                memo: dict | None = None) -> Prediction:
        """Return the predicted quality of `profile` for a prompt: the learned model of its own
        labels, else of its tier's, else the kNN vote, else its prior — the shipped default
        model of its tier where there is one, else its static quality score. The kNN vote
        shrinks toward that same prior, so a deployment's first few labels adjust the default
        near the prompts they label, and a learned model of its own replaces it.

        `layers` ({layer: vector}, the embedder's pooled intermediate layers of the prompt, or
        None) lets a learned model fitted with layers use them. `memo` (one dict per prompt)
        shares a learned prediction between profiles of one tier, and the prompt's structural
        features between all learned models.
        """
        prior = float(profile.quality_score)
        if vector is None:
            return Prediction(quality=prior, support=0.0)
        vector = np.asarray(vector, dtype=np.float32)
        memo = {} if memo is None else memo
        default = self.defaults.get((TIER, profile.tier))
        if default is not None:  # memoised apart from a learned model of the tier's own labels
            prior_of = lambda: self._learned(  # noqa: E731 - only when no own model answers
                default, ("default", profile.tier), text, vector, layers, memo).quality
        else:
            prior_of = lambda: prior  # noqa: E731
        for target in profile_targets(profile):
            model = self.learned.get(target)
            if model is not None:
                return self._learned(model, target, text, vector, layers, memo)
            if self.knn.has(target):
                return self.knn.predict(target, vector, prior=prior_of())
        return Prediction(quality=prior_of(), support=0.0)
