"""Decide whether a near neighbour answers the query: a similarity against a threshold.

Two decisions (SEMCACHE_DECISION). **guards**, the default: the cosine of the candidates that no
hard guard refuses. **alignment**: an adjusted similarity,

adjusted = cosine - sum_i w_i * penalty_i(query, stored prompt)

Every penalty is 0 for an identical pair and grows as the texts differ: lexical ones (content
words on one side only, a swapped word, an entity on one side, a different question word;
semcache/guards.py) and token-alignment ones (how well each text's tokens find a counterpart in
the other, in the MiniLM model's token vectors; semcache/alignment.py). The weights come from a
logistic regression constrained to non-negative penalties, divided by its cosine coefficient, so
the score stays on the cosine scale, never exceeds the cosine, and one threshold knob keeps its
meaning (fitted by `bench/semcache_fit_alignment.py`, shipped in decision_params.json).

Hard guards (different numbers, a negation on one side only, swapped named entities, reversed
order) refuse outright, in both decisions. On the QQP dev pairs the penalties cost hits at the
same precision (0.336 vs 0.354 at 0.95 with guards alone) and accept no more paraphrases from
other domains, so guards alone are the default and need no token pass. The decision looks at
all candidates (the index's nearest few), not just the first: the best score wins, so a true
paraphrase ranked second beats a near miss ranked first. Candidates whose cosine is below the
threshold cannot pass (penalties are >= 0), so the alignment decision's token forward pass runs
only for the gray zone: cosine >= threshold, text not identical.

Without a token embedder (or if it fails), the lexical-only model decides, at the threshold
shifted by the fitted offset between the two models' operating points. The threshold is
CACHE_SIMILARITY_THRESHOLD, a team's policy, a request's override, plus what feedback added to the
namespace.
"""

import json
import logging
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from semcache.alignment import IDENTICAL, AlignmentFeatures, TokenEmbedder, align_texts
from semcache.guards import compare
from semcache.index import Candidate
from semcache.namespaces import normalize_text

logger = logging.getLogger(__name__)
PARAMS_PATH = Path(__file__).with_name("decision_params.json")


@dataclass(frozen=True)
class Params:
    """Fitted penalty weights of the two models and the offset between their thresholds."""

    lexical: tuple[float, ...]      # weights of PairFeatures.vector() (lexical-only model)
    full_lexical: tuple[float, ...]  # the full model's weights of the same features
    full_alignment: tuple[float, ...]  # ... and of the alignment penalties
    fallback_offset: float          # lexical-only threshold minus the full model's threshold


@cache
def load_params(path: Path = PARAMS_PATH) -> Params:
    """Return the shipped decision parameters."""
    raw = json.loads(path.read_text())
    n = len(raw["lexical_names"])
    full = raw["full"]["weights"]
    return Params(
        lexical=tuple(raw["lexical"]["weights"]), full_lexical=tuple(full[:n]),
        full_alignment=tuple(full[n:]),
        fallback_offset=raw["lexical"]["threshold"] - raw["full"]["threshold"],
    )


@dataclass(frozen=True)
class Verdict:
    """The accepted candidate and its scores."""

    candidate: Candidate
    similarity: float   # cosine
    score: float        # adjusted similarity that passed the threshold


def _penalty(weights, features) -> float:
    return sum(w * f for w, f in zip(weights, features, strict=True))


def _identical(query: str, prompt: str) -> bool:
    return normalize_text(query) == normalize_text(prompt)


def adjusted_similarity(query: str, candidate: Candidate, *,
                        alignment: AlignmentFeatures | None = None,
                        params: Params | None = None) -> float | None:
    """Return the candidate's adjusted similarity, or None when a hard guard refuses it.

    With `alignment` the full model scores; without, the lexical-only model (whose threshold
    is higher by `params.fallback_offset`, which `decide` applies).
    """
    if _identical(query, candidate.prompt):
        return max(candidate.similarity, 1.0)
    features = compare(query, candidate.prompt)
    if features.refused:
        return None
    params = params or load_params()
    lexical = features.vector()
    if alignment is None:
        return candidate.similarity - _penalty(params.lexical, lexical)
    penalty = _penalty(params.full_lexical, lexical)
    penalty += sum(w * abs(f - ident) for w, f, ident in zip(
        params.full_alignment, alignment.vector(), IDENTICAL, strict=True))
    return candidate.similarity - penalty


def _alignments(query: str, prompts: list[str],
                token_embedder: TokenEmbedder | None) -> list[AlignmentFeatures] | None:
    if token_embedder is None or not prompts:
        return None
    try:
        return align_texts(token_embedder, query, prompts)
    except Exception:  # noqa: BLE001 - the lexical model still decides, a little stricter
        logger.warning("semcache: token alignment failed, lexical decision", exc_info=True)
        return None


def decide(query: str, candidates: list[Candidate], *, threshold: float, guards: bool = True,
           penalties: bool = True, token_embedder: TokenEmbedder | None = None,
           params: Params | None = None) -> Verdict | None:
    """Return the candidate with the best adjusted similarity reaching `threshold`, or None.

    `token_embedder` (anything with `embed_tokens_sync`) enables the token-alignment model; it
    is called once, for the query and the gray-zone candidates together. Without `penalties`
    the score is the cosine of the candidates no hard guard refuses (no token pass); without
    `guards`, the plain cosine of the nearest candidate.
    """
    if not guards:
        top = max(candidates, key=lambda c: c.similarity, default=None)
        if top is not None and (top.similarity >= threshold or _identical(query, top.prompt)):
            return Verdict(candidate=top, similarity=top.similarity, score=top.similarity)
        return None
    if not penalties:
        return _guarded_cosine(query, candidates, threshold)
    params = params or load_params()
    best = None
    gray = []
    for candidate in candidates:
        if _identical(query, candidate.prompt):
            score = max(candidate.similarity, 1.0)
            if best is None or score > best.score:
                best = Verdict(candidate=candidate, similarity=candidate.similarity, score=score)
        # Penalties are never negative: below the threshold in cosine is below it adjusted,
        # and so is a candidate whose lexical penalties alone already sink it. Only the rest
        # (the gray zone) needs the token forward pass.
        elif candidate.similarity >= threshold:
            features = compare(query, candidate.prompt)
            if features.refused:
                continue
            lexical = features.vector()
            if (candidate.similarity - _penalty(params.full_lexical, lexical) >= threshold
                    or candidate.similarity - _penalty(params.lexical, lexical)
                    >= threshold + params.fallback_offset):
                gray.append(candidate)
    if best is not None or not gray:
        return best
    alignments = _alignments(query, [c.prompt for c in gray], token_embedder)
    needed = threshold if alignments is not None else threshold + params.fallback_offset
    for i, candidate in enumerate(gray):
        score = adjusted_similarity(query, candidate, params=params,
                                    alignment=None if alignments is None else alignments[i])
        if score is not None and score >= needed and (best is None or score > best.score):
            best = Verdict(candidate=candidate, similarity=candidate.similarity, score=score)
    return best


def _guarded_cosine(query: str, candidates: list[Candidate], threshold: float) -> Verdict | None:
    """Return the most similar candidate reaching `threshold` that no hard guard refuses."""
    best = None
    for candidate in candidates:
        if _identical(query, candidate.prompt):
            score = max(candidate.similarity, 1.0)
        elif candidate.similarity >= threshold and not compare(query, candidate.prompt).refused:
            score = candidate.similarity
        else:
            continue
        if best is None or score > best.score:
            best = Verdict(candidate=candidate, similarity=candidate.similarity, score=score)
    return best


def decision_options(decision: str, embedder) -> dict:
    """Return the `decide` keywords of a decision by name: "guards" (guards alone),
    "alignment" (the penalties with the embedder's token vectors) or "lexical" (the penalties
    without them: alignment's fallback)."""
    from semcache.alignment import token_embedder_for

    if decision == "guards":
        return {"penalties": False, "token_embedder": None}
    if decision == "alignment":
        return {"penalties": True, "token_embedder": token_embedder_for(embedder)}
    if decision == "lexical":
        return {"penalties": True, "token_embedder": None}
    raise ValueError(f"Unknown cache decision {decision!r}.")


def configured_options(embedder) -> dict:
    """Return the `decide` keywords of the configured decision (SEMCACHE_DECISION)."""
    from django.conf import settings

    return decision_options(settings.SEMCACHE_DECISION, embedder)
