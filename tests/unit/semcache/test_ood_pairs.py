"""The decision on hand-written pairs from other domains (tech support, medicine, shopping,
code): data/ood_pairs.jsonl, none of it from QQP. Each pair is a lone candidate with its real
MiniLM cosine, at the configured threshold."""

import json
from pathlib import Path

import pytest

PAIRS = [json.loads(line) for line in
         (Path(__file__).parent / "data" / "ood_pairs.jsonl").read_text().splitlines() if line]
# Paraphrases the decision must accept: near-verbatim rewordings (measured: 6 of the 20
# paraphrases in the file; the rest, with a synonym or a reordering, are misses, not errors).
CLEAR_PARAPHRASES = {
    "How do I clear the cache in Chrome?",
    "What are the symptoms of iron deficiency?",
    "How much water should an adult drink per day?",
    "Can I take ibuprofen on an empty stomach?",
    "How do I reverse a list in Python?",
    "How do I read a file line by line in Python?",
}


@pytest.fixture(scope="module")
def embedder():
    from semcache.embedder import get_embedder

    return get_embedder()


def _verdict(embedder, pair):
    from django.conf import settings

    from semcache.decision import decide
    from semcache.index import Candidate

    a, b = embedder.embed_sync([pair["text_a"], pair["text_b"]])
    return decide(pair["text_b"], [Candidate("x", float(a @ b), pair["text_a"])],
                  threshold=settings.CACHE_SIMILARITY_THRESHOLD)


@pytest.mark.parametrize("pair", [p for p in PAIRS if not p["label"]],
                         ids=lambda p: p["text_b"][:40])
def test_a_different_question_is_never_a_hit(embedder, pair):
    assert _verdict(embedder, pair) is None


@pytest.mark.parametrize("pair", [p for p in PAIRS if p["label"] and p["text_a"] in
                                  CLEAR_PARAPHRASES], ids=lambda p: p["text_b"][:40])
def test_a_clear_paraphrase_is_a_hit(embedder, pair):
    assert _verdict(embedder, pair) is not None
