"""FT.SEARCH replies become candidates in either protocol the client speaks (RESP2 or RESP3)."""

import pytest

from semcache.index import Candidate
from semcache.store.redis_search import _candidates

EXPECTED = [Candidate("a1", pytest.approx(0.99), "first"),
            Candidate("b2", pytest.approx(0.75), "second")]


def test_resp3_map():
    reply = {b"total_results": 2, b"results": [
        {b"id": b"p:e:a1", b"extra_attributes": {b"dist": b"0.01", b"prompt": b"first"}},
        {b"id": b"p:e:b2", b"extra_attributes": {b"dist": b"0.25", b"prompt": b"second"}},
    ]}
    assert _candidates(reply, "p:e:") == EXPECTED


def test_resp2_list():
    reply = [2, b"p:e:a1", [b"prompt", b"first", b"dist", b"0.01"],
             b"p:e:b2", [b"dist", b"0.25", b"prompt", b"second"]]
    assert _candidates(reply, "p:e:") == EXPECTED


def test_no_results():
    assert _candidates([0], "p:e:") == [] and _candidates({b"results": []}, "p:e:") == []
