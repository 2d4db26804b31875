"""Decide whether a near neighbour answers the query: adjusted similarity against a threshold.

adjusted = cosine - WEIGHTS . lexical_differences(query, stored prompt)

Hard guards (different numbers, a negation on one side only, swapped named entities) refuse
outright. The soft penalties were fitted by logistic regression on labelled question pairs (the
coefficients of the lexical features divided by the coefficient of the cosine, so the result
stays on the cosine scale and one threshold knob keeps its meaning); only the coefficients ship.
The threshold is CACHE_SIMILARITY_THRESHOLD, a team's policy, a request's override, plus what
feedback added to the namespace.
"""

from dataclasses import dataclass

from semcache.guards import compare
from semcache.index import Candidate
from semcache.namespaces import normalize_text

# Order: query-only words, stored-only words, 1 - jaccard, words swapped, entity differs,
# different question word. Fitted with `bench/semcache_fit_decision.py` (penalties >= 0).
WEIGHTS = (0.0, 0.0, 0.1364, 0.0, 0.0243, 0.0034)


@dataclass(frozen=True)
class Verdict:
    """The accepted candidate and its scores."""

    candidate: Candidate
    similarity: float   # cosine
    score: float        # adjusted similarity that passed the threshold


def adjusted_similarity(query: str, candidate: Candidate, *, guards: bool = True,
                        weights=WEIGHTS) -> float | None:
    """Return the candidate's adjusted similarity, or None when a hard guard refuses it."""
    if normalize_text(query) == normalize_text(candidate.prompt):
        return candidate.similarity if candidate.similarity > 0.99 else 1.0
    if not guards:
        return candidate.similarity
    features = compare(query, candidate.prompt)
    if features.refused:
        return None
    penalty = sum(w * f for w, f in zip(weights, features.vector(), strict=True))
    return candidate.similarity - penalty


def decide(query: str, candidates: list[Candidate], *, threshold: float, guards: bool = True,
           weights=WEIGHTS) -> Verdict | None:
    """Return the best candidate whose adjusted similarity reaches `threshold`, or None."""
    best = None
    for candidate in candidates:
        # Penalties are never negative: below the threshold in cosine means below it adjusted.
        if candidate.similarity < threshold and normalize_text(candidate.prompt) != \
                normalize_text(query):
            break
        score = adjusted_similarity(query, candidate, guards=guards, weights=weights)
        if score is not None and score >= threshold and (best is None or score > best.score):
            best = Verdict(candidate=candidate, similarity=candidate.similarity, score=score)
    return best
