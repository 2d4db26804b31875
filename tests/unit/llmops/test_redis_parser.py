"""The Redis clients parse replies in C (hiredis): the pure-Python parser cost ~10% of the
cache-miss path's CPU at concurrency 64."""

from redis.utils import HIREDIS_AVAILABLE


def test_hiredis_is_installed_and_used():
    from redis._parsers import _HiredisParser
    from redis.connection import DefaultParser

    assert HIREDIS_AVAILABLE
    assert DefaultParser is _HiredisParser
