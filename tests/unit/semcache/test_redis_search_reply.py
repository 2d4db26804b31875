"""FT.SEARCH replies become candidates in either protocol the client speaks (RESP2 or RESP3)."""

import pytest

from semcache.index import Candidate
from semcache.store.redis_search import _candidates, query_attributes

EXPECTED = [Candidate("a1", pytest.approx(0.99), "first"),
            Candidate("b2", pytest.approx(0.75), "second")]


def test_resp3_map():
    reply = {b"total_results": 2, b"results": [
        {b"id": b"p:e:a1", b"extra_attributes": {b"dist": b"0.01", b"prompt": b"first",
                                                  b"expires": b"200.0"}},
        {b"id": b"p:e:b2", b"extra_attributes": {b"dist": b"0.25", b"prompt": b"second",
                                                  b"expires": b"200.0"}},
    ]}
    assert _candidates(reply, "p:e:", now=100.0) == EXPECTED


def test_resp2_list():
    reply = [2, b"p:e:a1", [b"prompt", b"first", b"dist", b"0.01", b"expires", b"200.0"],
             b"p:e:b2", [b"dist", b"0.25", b"expires", b"200.0", b"prompt", b"second"]]
    assert _candidates(reply, "p:e:", now=100.0) == EXPECTED


def test_entries_past_their_expiry_are_skipped():
    reply = [2, b"p:e:a1", [b"prompt", b"first", b"dist", b"0.01", b"expires", b"100.0"],
             b"p:e:b2", [b"dist", b"0.25", b"expires", b"200.0", b"prompt", b"second"]]
    assert _candidates(reply, "p:e:", now=100.0) == EXPECTED[1:]


def test_no_results():
    assert _candidates([0], "p:e:", now=0) == [] == _candidates({b"results": []}, "p:e:", now=0)


@pytest.mark.parametrize("gone", [None, []])
def test_an_entry_that_expired_during_the_search_is_skipped(gone):
    """Redis found the entry, then its hash expired before its fields were read."""
    reply = [2, b"p:e:a1", gone,
             b"p:e:b2", [b"dist", b"0.25", b"expires", b"200.0", b"prompt", b"second"]]
    assert _candidates(reply, "p:e:", now=100.0) == EXPECTED[1:]
    resp3 = {b"results": [{b"id": b"p:e:a1", b"extra_attributes": {}},
                          {b"id": b"p:e:b2", b"extra_attributes": {
                              b"dist": b"0.25", b"prompt": b"second", b"expires": b"200.0"}}]}
    assert _candidates(resp3, "p:e:", now=100.0) == EXPECTED[1:]


def test_graph_queries_carry_their_ef_runtime_and_exact_ones_none():
    # RediSearch refuses EF_RUNTIME with ADHOC_BF ("irrelevant for 'ADHOC_BF' policy").
    assert query_attributes("ADHOC_BF", 128) == "$HYBRID_POLICY: ADHOC_BF"
    assert query_attributes("BATCHES", 128) == "$HYBRID_POLICY: BATCHES; $EF_RUNTIME: 128"
    assert query_attributes("", 64) == "$EF_RUNTIME: 64"
