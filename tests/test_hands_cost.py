"""The hands' CPU savings that must not change a result (handcost-s12): the colour split's Gaussian and mixture
log-likelihoods and covariance computed in place equal the plain formulas bit for bit, and the mixture's clusters
fitted at once equal one Gaussian fit each; the hand models give the same outputs on one thread (the analysis's
default for them) as on two; a fit's regular subsample keeps at most ``max_samples``."""

from __future__ import annotations

import numpy as np

from vidswap.hands.colour import Gaussian, Mixture, _cov, _step, _subsample


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


def test_mixture_fits_its_clusters_at_once_as_one_gaussian_each():
    """The mixture's clusters fitted in one pass (one-hot sums) equal :meth:`Gaussian.fit` on each cluster's
    samples, to rounding; clusters under 4 samples are dropped and the weights are the kept clusters' shares."""
    import cv2

    rng = np.random.default_rng(5)
    x = np.concatenate([rng.normal(c, s, (n, 3)) for c, s, n in (((30, 0, 0), 2.0, 400), ((60, 20, 10), 3.0, 300),
                                                              ((80, -10, 30), 1.5, 200))]).astype(np.float32)
    mix = Mixture.fit(x, 3, (2.0, 1.0, 1.0), 1000)
    cv2.setRNGSeed(0)
    _, labels, _ = cv2.kmeans(x, 3, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 10, 0.1), 1,
                              cv2.KMEANS_PP_CENTERS)
    labels = labels.ravel()
    assert len(mix.parts) == 3
    for j, g in enumerate(mix.parts):
        ref = Gaussian.fit(x[labels == j], (2.0, 1.0, 1.0), 1000)
        np.testing.assert_allclose(g.mean, ref.mean, rtol=1e-12)
        np.testing.assert_allclose(g.inv, ref.inv, rtol=1e-9, atol=1e-15)
        assert abs(g.logdet - ref.logdet) < 1e-9
    np.testing.assert_allclose(np.exp(mix.logw), np.bincount(labels) / len(x), rtol=1e-12)
    tiny = np.concatenate([x[:200], x[-3:] + 500])  # a 3-sample cluster far away is dropped
    kept = Mixture.fit(tiny, 2, (2.0, 1.0, 1.0), 1000)
    assert len(kept.parts) == 1 and kept.logw[0] == 0.0
    for n in (1, 3, 39):  # too few for two clusters: one floored Gaussian of them all, even under 4 samples
        few = Mixture.fit(x[:n], 3, (2.0, 1.0, 1.0), 1000)
        ref = Gaussian.fit(x[:n], (2.0, 1.0, 1.0), 1000)
        assert len(few.parts) == 1 and few.logw[0] == 0.0
        assert np.array_equal(few.parts[0].mean, ref.mean) and np.array_equal(few.parts[0].inv, ref.inv)
        assert np.isfinite(few.loglik(x[:5])).all()


def test_fit_subsample_keeps_at_most_max_samples_evenly():
    for n, most in ((999, 1000), (1000, 1000), (1001, 1000), (1999, 1000), (2000, 1000), (2001, 1000), (5, 2)):
        kept = _subsample(np.arange(n), most)
        assert len(kept) <= most and len(kept) == len(range(0, n, _step(n, most)))
        assert len(kept) > most // 2 or n < most  # not thinned more than it must be
        assert kept[0] == 0 and (np.diff(kept) == _step(n, most)).all()
