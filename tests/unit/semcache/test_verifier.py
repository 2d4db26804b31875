"""The pair verifier's numpy inference: shape, symmetry, padding, non-negative penalty."""

import numpy as np
import pytest

from bench.semcache_verifier import MAX_TOKENS, Verifier, _pad, scalar_inputs


def _random_verifier(seed: int = 0, proj: int = 8, hidden: int = 6, n_scalar: int = 13):
    rng = np.random.default_rng(seed)
    return Verifier({
        "proj": rng.standard_normal((384, proj)), "compare_w": rng.standard_normal((4 * proj,
                                                                                     hidden)),
        "compare_b": rng.standard_normal(hidden), "mix_w": rng.standard_normal(
            (3 * hidden + n_scalar, hidden)), "mix_b": rng.standard_normal(hidden),
        "out_w": rng.standard_normal(hidden), "out_b": rng.standard_normal(1),
    })


def _text(rng, n):
    return rng.standard_normal((n, 384)).astype(np.float32), rng.random(n).astype(np.float32)


class TestVerifier:
    def test_penalty_is_non_negative_one_per_prompt(self):
        rng = np.random.default_rng(1)
        verifier = _random_verifier()
        q, qw = _text(rng, 5)
        prompts = [_text(rng, n) for n in (3, 7, 1)]
        scalars = scalar_inputs([0.95, 0.9, 0.97], np.zeros((3, 6)), np.ones((3, 6)))
        penalties = verifier.penalties(q, qw, [p for p, _ in prompts],
                                       [w for _, w in prompts], scalars)
        assert penalties.shape == (3,) and (penalties >= 0).all()

    def test_swapping_query_and_prompt_gives_the_same_penalty(self):
        rng = np.random.default_rng(2)
        verifier = _random_verifier()
        (a, aw), (b, bw) = _text(rng, 4), _text(rng, 9)
        scalars = scalar_inputs([0.93], np.zeros((1, 6)), np.ones((1, 6)))
        one = verifier.penalties(a, aw, [b], [bw], scalars)
        other = verifier.penalties(b, bw, [a], [aw], scalars)
        assert one == pytest.approx(other, rel=1e-5)

    def test_padding_a_batch_does_not_change_a_pair(self):
        rng = np.random.default_rng(3)
        verifier = _random_verifier()
        q, qw = _text(rng, 4)
        short, long_ = _text(rng, 2), _text(rng, 20)
        scalars = scalar_inputs([0.9, 0.9], np.zeros((2, 6)), np.ones((2, 6)))
        alone = verifier.penalties(q, qw, [short[0]], [short[1]], scalars[:1])
        padded = verifier.penalties(q, qw, [short[0], long_[0]], [short[1], long_[1]], scalars)
        assert padded[0] == pytest.approx(alone[0], rel=1e-5)

    def test_long_texts_are_cut(self):
        rng = np.random.default_rng(4)
        x, m, w = _pad([_text(rng, MAX_TOKENS + 30)[0]], [np.ones(MAX_TOKENS + 30)])
        assert x.shape == (1, MAX_TOKENS, 384) and m.all()

    def test_scalar_inputs_put_identical_alignment_at_zero(self):
        from semcache.alignment import IDENTICAL

        row = scalar_inputs([0.9], np.zeros((1, 6)), np.asarray([IDENTICAL]))
        assert row.shape == (1, 13) and np.allclose(row, 0.0)
