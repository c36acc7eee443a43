"""The hands' CPU savings that must not change a result (handcost-s12): the colour split's Gaussian and mixture
log-likelihoods and covariance computed in place equal the plain formulas bit for bit; the hand models give the same
outputs on one thread (the analysis's default for them) as on two."""

from __future__ import annotations

import numpy as np

from vidswap.hands.colour import Gaussian, Mixture, _cov


def _reference_gaussian(g: Gaussian, x: np.ndarray) -> np.ndarray:
    d = x - g.mean
    return -0.5 * (((d @ g.inv) * d).sum(-1) + g.logdet)


def test_loglik_and_cov_equal_the_plain_formulas_bit_for_bit():
    rng = np.random.default_rng(3)
    for n in (2, 5, 57, 1000, 4321):
        s = (rng.random((n, 3)) * [100, 60, 60] - [0, 30, 30]).astype(np.float64)
        assert np.array_equal(_cov(s), np.cov(s, rowvar=False))
    samples = (rng.random((3000, 3)) * [100, 60, 60] - [0, 30, 30]).astype(np.float32)
    mix = Mixture.fit(samples, 3, (2.0, 1.0, 1.0), 1000)
    assert len(mix.parts) == 3
    x = (rng.random((5000, 3)) * [100, 60, 60] - [0, 30, 30]).astype(np.float32)
    for g in mix.parts:
        assert np.array_equal(g.loglik(x), _reference_gaussian(g, x))
    ll = np.stack([_reference_gaussian(g, x) + w for g, w in zip(mix.parts, mix.logw)])
    top = ll.max(0)
    assert np.array_equal(mix.loglik(x), top + np.log(np.exp(ll - top).sum(0)))
    grid = x.reshape(50, 100, 3)  # any leading shape
    assert np.array_equal(mix.parts[0].loglik(grid), _reference_gaussian(mix.parts[0], grid))


def test_hand_models_one_thread_equal_two(model):
    from vidswap.models.runtime import TFLiteRunner

    rng = np.random.default_rng(0)
    for name in ("palm_detection", "hand_landmark"):
        one, two = (TFLiteRunner.from_path(model(name), t) for t in (1, 2))
        x = rng.random((1, *one.input_shape), dtype=np.float32)
        for a, b in zip(one(x), two(x)):
            assert a.shape == b.shape and np.array_equal(a, b)
