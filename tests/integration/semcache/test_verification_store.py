"""Verified hits in the store, in memory and on a real Redis: verdict counts, the window a move
is decided on, and threshold moves kept within bounds."""

import pytest

from semcache.services import CacheEngine
from semcache.store import MemoryStore, RedisStore
from semcache.verification import Precision, threshold_step

BASE = 0.9


@pytest.fixture(params=["memory", "redis"])
def engine(request, settings):
    settings.SEMCACHE_VERIFY_MIN_SAMPLES = 5
    settings.SEMCACHE_PRECISION_TARGET = 0.5
    settings.SEMCACHE_PRECISION_MARGIN = 0.0
    settings.SEMCACHE_THRESHOLD_STEP = 0.01
    settings.SEMCACHE_THRESHOLD_MIN = 0.88
    settings.SEMCACHE_THRESHOLD_MAX = 0.93
    if request.param == "memory":
        yield CacheEngine(MemoryStore())
        return
    url, prefix = request.getfixturevalue("redis_url"), request.getfixturevalue("redis_prefix")
    store = RedisStore(url=url, prefix=prefix)
    yield CacheEngine(store)
    store.flush()


def test_verdicts_are_counted_and_a_window_of_disagreements_tightens(engine):
    moves = [engine.verification_record("ns", agreed=False, base=BASE) for _ in range(5)]
    assert moves[:4] == [None] * 4  # not before SEMCACHE_VERIFY_MIN_SAMPLES verdicts
    move = moves[4]
    assert (move.old, move.window) == (BASE, Precision(0, 5))
    assert move.new == pytest.approx(0.91) == engine.threshold_for("ns", BASE)
    stats = engine.store.stats("ns")
    assert (stats["verified_agree"], stats["verified_disagree"]) == (0, 5)
    # A new window starts after a move: one more verdict decides nothing.
    assert engine.verification_record("ns", agreed=True, base=BASE) is None
    assert engine.store.stats("ns")["verified_agree"] == 1


def test_moves_stay_within_bounds_both_ways(engine):
    for _ in range(10 * 5):
        engine.verification_record("up", agreed=False, base=BASE)
        engine.verification_record("down", agreed=True, base=BASE)
    assert engine.threshold_for("up", BASE) == pytest.approx(0.93)
    assert engine.threshold_for("down", BASE) == pytest.approx(0.88)
    # A team whose own threshold is already outside the bounds is not moved further out.
    for _ in range(10):
        engine.verification_record("low-team", agreed=True, base=0.8)
    assert engine.threshold_for("low-team", 0.8) == 0.8


def test_a_mixed_window_moves_nothing(settings):
    settings.SEMCACHE_VERIFY_MIN_SAMPLES = 5
    settings.SEMCACHE_PRECISION_TARGET = 0.5
    settings.SEMCACHE_PRECISION_MARGIN = 0.0
    assert threshold_step(Precision(3, 2)) == 0.0
    assert threshold_step(Precision(0, 4)) == 0.0  # too few verdicts
    assert threshold_step(Precision(0, 5)) > 0 > threshold_step(Precision(5, 0))


def test_concurrent_moves_each_count_within_bounds(redis_url, redis_prefix):
    """Many processes' moves at once (threads here, one script each on Redis): the add and the
    clamp are one step, so no move overwrites another's (an increment followed by a separate
    clamped write could put back a value from before the other's increment)."""
    from concurrent.futures import ThreadPoolExecutor

    store = RedisStore(url=redis_url, prefix=redis_prefix)
    try:
        steps = [0.01] * 60 + [-0.01] * 60  # never near the bounds: the moves must sum to 0
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda s: store.shift_threshold("race", step=s, low=-1.0, high=1.0),
                          steps))
        assert store.threshold_delta("race") == pytest.approx(0.0, abs=1e-9)
        assert store.shift_threshold("race", step=0.5, low=-0.05, high=0.05) == 0.05
        assert store.tighten("race", step=0.5, ceiling=0.07) == pytest.approx(0.07)
    finally:
        store.flush()
