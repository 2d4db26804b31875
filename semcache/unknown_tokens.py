"""Text the embedder cannot read: characters its tokenizer maps to [UNK].

MiniLM's WordPiece vocabulary has no tokens for many scripts (Chinese, Japanese kanji, Korean)
nor for emoji: each such character becomes [UNK]. Two texts made mostly of [UNK] embed almost
identically whatever they say ("What does 💔 mean?" / "What does 😂 mean?", cosine ≈ 1). The
guard (semcache/guards.py) refuses a candidate when the unreadable parts of the two texts differ
and they weigh: both texts have some, or one text is at least UNREADABLE_SHARE [UNK] tokens. An
emoji added to an otherwise readable question on one side only does not refuse.

Uses the embedder's own tokenizer (semcache.embedder.tokenizer); ASCII text cannot hold an
unknown character and is not tokenized at all.
"""

from dataclasses import dataclass

UNREADABLE_SHARE = 0.3


@dataclass(frozen=True)
class Unreadable:
    """The parts of a text the tokenizer maps to [UNK], and their share of its tokens."""

    parts: frozenset
    share: float


NONE = Unreadable(parts=frozenset(), share=0.0)


def unreadable(text: str) -> Unreadable:
    """Return what of `text` the embedder reads as [UNK]."""
    if text.isascii():
        return NONE
    from semcache.embedder import tokenizer

    tok = tokenizer()
    unknown = tok.token_to_id("[UNK]")
    encoding = tok.encode(text, add_special_tokens=False)
    parts = [text[start:end] for token, (start, end) in zip(encoding.ids, encoding.offsets,
                                                            strict=True) if token == unknown]
    if not parts:
        return NONE
    return Unreadable(parts=frozenset(parts), share=len(parts) / len(encoding.ids))


def unreadable_differs(a: Unreadable, b: Unreadable) -> bool:
    """Return whether two texts differ in what the embedder cannot read, enough to matter."""
    if a.parts == b.parts:
        return False
    return bool(a.parts and b.parts) or max(a.share, b.share) >= UNREADABLE_SHARE
