"""Token-alignment features of a query and a stored prompt (BERTScore-style, same MiniLM model).

A sentence vector is a mean over tokens, so one swapped word barely moves it: "How do I learn
Python?" and "How do I learn Java?" have a cosine near 0.9. The token vectors (the model's last
hidden state, before pooling) keep the word: each token of one text is matched with its most
similar token of the other (greedy alignment), and the content token with the weakest match is
the word that has no counterpart. Tokens are weighted by rarity, taken from the tokenizer's own
vocabulary order (BERT's WordPiece vocabulary is roughly sorted by corpus frequency after its
special and single-character entries), so nothing here depends on the data the decision was fitted
on. Cost: one forward pass over the query and its gray-zone candidates, plus a few (n x m) dot
products of 384-d vectors.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import numpy as np

from semcache.guards import _STOPWORDS

# Feature names in the order of `AlignmentFeatures.vector()`.
NAMES = ("precision", "recall", "min_query", "min_stored", "missing_query", "missing_stored")
# The values of an identical pair: every token matched by itself.
IDENTICAL = (1.0, 1.0, 1.0, 1.0, 0.0, 0.0)

_FIRST_WORD_ID = 1996        # "the": first whole-word entry of the BERT uncased vocabulary
_VOCAB_SIZE = 30522
_STOPWORD_WEIGHT = 0.1       # function words count, a little (they rarely decide the question)


class TokenEmbedder(Protocol):
    """What the alignment needs from an embedder."""

    def embed_tokens_sync(self, texts: list[str]) -> list[np.ndarray]:
        """Return per-text (tokens, 384) last-hidden-state vectors without [CLS]/[SEP]/padding."""


@cache
def _tokenizer():
    from tokenizers import Tokenizer

    from semcache.embedder import model_path

    tokenizer = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


@cache
def _weight_of_id(token_id: int) -> float:
    token = _tokenizer().id_to_token(token_id) or ""
    word = token[2:] if token.startswith("##") else token
    if not any(ch.isalnum() for ch in word):
        return 0.0                    # punctuation carries no meaning of its own
    if token_id < _FIRST_WORD_ID:
        rarity = 0.5                  # single characters and digits (digits: the guards' job)
    else:
        rarity = math.log(token_id - _FIRST_WORD_ID + 2) / math.log(_VOCAB_SIZE - _FIRST_WORD_ID)
    return rarity * (_STOPWORD_WEIGHT if word in _STOPWORDS and not token.startswith("##")
                     else 1.0)


def token_weights(text: str) -> np.ndarray:
    """Return the rarity weight of each WordPiece token of `text` (special tokens excluded)."""
    ids = _tokenizer().encode(text, add_special_tokens=False).ids
    return np.array([_weight_of_id(i) for i in ids], dtype=np.float32)


@dataclass(frozen=True)
class AlignmentFeatures:
    """How well the tokens of two texts find counterparts in each other."""

    precision: float        # weighted mean best-match similarity of the stored prompt's tokens
    recall: float           # ... of the query's tokens
    min_query: float        # weakest match among the query's content tokens
    min_stored: float       # weakest match among the stored prompt's content tokens
    missing_query: float    # weighted sum of (1 - best match) over the query's content tokens
    missing_stored: float   # ... over the stored prompt's

    def vector(self) -> list[float]:
        """Return the features in the order of NAMES."""
        return [self.precision, self.recall, self.min_query, self.min_stored,
                self.missing_query, self.missing_stored]


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)


def _side(best: np.ndarray, weights: np.ndarray) -> tuple[float, float, float]:
    """Return (weighted mean, content minimum, content missing mass) of one side's matches."""
    total = float(weights.sum())
    mean = float(best @ weights / total) if total > 0 else 1.0
    content = weights > _STOPWORD_WEIGHT  # not function words, not punctuation
    if not content.any():
        return mean, 1.0, 0.0
    return mean, float(best[content].min()), float(((1.0 - best) * weights)[content].sum())


def align(query_tokens: np.ndarray, query_weights: np.ndarray, stored_tokens: np.ndarray,
          stored_weights: np.ndarray) -> AlignmentFeatures:
    """Return the alignment features of two texts' token vectors and weights."""
    n = min(len(query_tokens), len(query_weights))
    m = min(len(stored_tokens), len(stored_weights))
    if n == 0 or m == 0:
        return AlignmentFeatures(0.0, 0.0, 0.0, 0.0, 1.0, 1.0)
    q, s = _unit_rows(query_tokens[:n]), _unit_rows(stored_tokens[:m])
    sims = np.clip(q @ s.T, -1.0, 1.0)
    recall, min_q, missing_q = _side(sims.max(axis=1), query_weights[:n])
    precision, min_s, missing_s = _side(sims.max(axis=0), stored_weights[:m])
    return AlignmentFeatures(precision, recall, min_q, min_s, missing_q, missing_s)


def align_texts(embedder: TokenEmbedder, query: str,
                prompts: Sequence[str]) -> list[AlignmentFeatures]:
    """Return the alignment features of `query` with each prompt (one forward pass for all)."""
    if not prompts:
        return []
    tokens = embedder.embed_tokens_sync([query, *prompts])
    query_weights = token_weights(query)
    return [align(tokens[0], query_weights, vectors, token_weights(prompt))
            for prompt, vectors in zip(prompts, tokens[1:], strict=True)]


def token_embedder_for(embedder) -> TokenEmbedder | None:
    """Return `embedder` when it gives token vectors (`embed_tokens_sync`), else None."""
    return embedder if callable(getattr(embedder, "embed_tokens_sync", None)) else None
