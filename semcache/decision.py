"""Decide whether a near neighbour answers the query: its cosine, after the hard guards.

The hard guards (semcache/guards.py: a pointer to content the text does not carry, different
unreadable characters, different numbers, a negation on one side only, swapped named entities,
reversed order or roles, opposite poles) refuse a candidate outright; of the rest, the most
similar one at or above the threshold wins. A query that points at content it does not carry
("this picture", "the code below") is never answered from the cache, not even by identical
text: nothing it could be answered from is in the cache. The decision looks at all candidates
(the index's nearest few), not just the first, so a true paraphrase ranked second beats a near
miss ranked first. The threshold is CACHE_SIMILARITY_THRESHOLD, a team's policy or a request's
override, plus what feedback added to the namespace.
"""

from collections.abc import Collection
from dataclasses import dataclass

from semcache.guards import compare, text_features
from semcache.index import Candidate
from semcache.namespaces import normalize_text


@dataclass(frozen=True)
class Verdict:
    """The accepted candidate and its scores."""

    candidate: Candidate
    similarity: float   # cosine
    score: float        # what passed the threshold: the cosine, 1.0 for identical text


def _identical(query: str, prompt: str) -> bool:
    return normalize_text(query) == normalize_text(prompt)


def decide(query: str, candidates: list[Candidate], *, threshold: float,
           guards: bool | Collection[str] = True) -> Verdict | None:
    """Return the most similar candidate reaching `threshold` that no hard guard refuses, or
    None. Identical text (after normalization) passes at any threshold, unless it points at
    unseen content. Without `guards`, the plain cosine of the nearest candidate decides (benches
    and store tests); a collection of guard names runs only those (benches)."""
    only = None if guards is True else guards
    if only is not None and not only:
        top = max(candidates, key=lambda c: c.similarity, default=None)
        if top is not None and (top.similarity >= threshold or _identical(query, top.prompt)):
            return Verdict(candidate=top, similarity=top.similarity, score=top.similarity)
        return None
    if (only is None or "deictic" in only) and text_features(query).deictic:
        return None
    best = None
    for candidate in candidates:
        if _identical(query, candidate.prompt):
            score = max(candidate.similarity, 1.0)
        elif candidate.similarity >= threshold and not compare(
                query, candidate.prompt, only=only).refused:
            score = candidate.similarity
        else:
            continue
        if best is None or score > best.score:
            best = Verdict(candidate=candidate, similarity=candidate.similarity, score=score)
    return best
