"""The decision on a held-out judged set written for the project (none of it from QQP or
../shared): data/heldout_judged_pairs.jsonl, 153 (stored, query) pairs across domains, each
judged SAME (the stored question's answer fully answers the query) or DIFFERENT, with the
error kind. Each pair is a lone candidate with its real MiniLM cosine, at the configured
threshold."""

import json
from pathlib import Path

import pytest

from semcache.judged import KINDS

PAIRS = [json.loads(line) for line in (Path(__file__).parent / "data"
                                        / "heldout_judged_pairs.jsonl").read_text().splitlines()
         if line]
# Measured: the shipped decision serves 6 of the 80 SAME pairs (the rest sit below the
# threshold: a synonym, a reordering); a regression below that is a lost hit.
MIN_SAME_HITS = 6


@pytest.fixture(scope="module")
def outcomes():
    from django.conf import settings

    from semcache.decision import decide
    from semcache.embedder import get_embedder
    from semcache.index import Candidate

    vectors = get_embedder().embed_sync([t for p in PAIRS for t in (p["text_a"], p["text_b"])])
    return [decide(p["text_b"], [Candidate("x", float(vectors[2 * i] @ vectors[2 * i + 1]),
                                           p["text_a"])],
                   threshold=settings.CACHE_SIMILARITY_THRESHOLD) is not None
            for i, p in enumerate(PAIRS)]


def test_the_file_is_well_formed():
    assert len(PAIRS) >= 150
    assert len({(p["text_a"], p["text_b"]) for p in PAIRS}) == len(PAIRS)
    for p in PAIRS:
        assert p["verdict"] in ("SAME", "DIFFERENT") and p["kind"] in KINDS
        assert (p["verdict"] == "SAME") == (p["kind"] == "paraphrase")
    kinds = {p["kind"] for p in PAIRS}
    assert kinds == set(KINDS)


def test_no_different_pair_is_served(outcomes):
    served = [p["text_b"] for p, hit in zip(PAIRS, outcomes, strict=True)
              if hit and p["verdict"] == "DIFFERENT"]
    assert served == []


def test_the_clear_paraphrases_are_served(outcomes):
    same_hits = sum(hit for p, hit in zip(PAIRS, outcomes, strict=True)
                    if p["verdict"] == "SAME")
    assert same_hits >= MIN_SAME_HITS
