"""Photoreal-swap measures: lighting correlation and expression-series correlation, exact answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vidswap.eval.appearance import lighting_correlation, series_correlation


def _face(shape=(120, 120)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    mask = (yy - 60) ** 2 + (xx - 60) ** 2 < 45 ** 2
    return yy, xx, mask


def test_lighting_correlation_ignores_detail_and_follows_light():
    yy, xx, mask = _face()
    light = 0.3 + 0.6 * xx / 120.0  # key light from the right
    rng = np.random.default_rng(0)
    plate = np.clip(light * 0.8 + rng.normal(0, 0.03, light.shape), 0, 1)
    detail = 1 + 0.15 * np.sin(xx * 1.7) * np.sin(yy * 1.3)  # another face's fine detail, same light
    relit = np.clip(light * 0.7 * detail, 0, 1)
    pasted = np.clip((1.0 - 0.6 * xx / 120.0) * 0.7 * detail, 0, 1)  # lit from the other side
    assert lighting_correlation(plate, plate, mask) == pytest.approx(1.0, abs=1e-9)
    assert lighting_correlation(relit, plate, mask) > 0.98
    assert lighting_correlation(pasted, plate, mask) < -0.9
    flat = np.full_like(plate, 0.5)
    assert math.isnan(lighting_correlation(plate, flat, mask))
    assert math.isnan(lighting_correlation(plate, plate, np.zeros_like(mask)))


def test_lighting_correlation_ignores_what_is_outside_the_face():
    _, xx, mask = _face()
    plate = 0.3 + 0.4 * xx / 120.0
    result = plate.copy()
    result[~mask] = 1.0  # a white wall beside the face does not bleed into the face's low-pass
    assert lighting_correlation(result, plate, mask) == pytest.approx(1.0, abs=1e-6)


def test_series_correlation():
    t = np.sin(np.linspace(0, 6, 50)) * 0.2 + 0.3
    assert series_correlation(t, t) == pytest.approx(1.0)
    assert series_correlation(2 * t + 1, t) == pytest.approx(1.0)
    assert series_correlation(-t, t) == pytest.approx(-1.0)
    with_nan = t.copy()
    with_nan[3] = np.nan
    assert series_correlation(with_nan, t) == pytest.approx(1.0)
    assert math.isnan(series_correlation(t, np.full(50, 0.3)))  # a still mouth: nothing to follow
    assert math.isnan(series_correlation(t[:2], t[:2]))
