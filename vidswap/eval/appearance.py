"""Measures of how a swapped face takes the plate's light and motion (the photoreal-swap measures).

* :func:`lighting_correlation` -- inside the face, the Pearson correlation between the result's low-frequency
  luminance and the plate's: 1 when the result is lit like the plate (bright where the plate is bright, shadowed
  where it is shadowed), whatever the two faces' detail. The low-pass (a Gaussian of ``sigma`` x the face size)
  keeps the light and drops identity detail.
* :func:`series_correlation` -- the correlation over a clip of two per-frame series (mouth opening, eye opening of
  the result vs the plate): expression fidelity. NaN when the plate's series does not move (a still mouth has
  no correlation to follow).

Pure functions over arrays (conventions of :mod:`vidswap.eval.metrics`), each with an exact test.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidswap.eval.frame_metrics import _gray, _mask
from vidswap.eval.metrics import face_size

__all__ = ["LIGHTING_SIGMA", "lowpass_luminance", "lighting_correlation", "series_correlation"]

#: low-pass of the lighting measure, as a fraction of the face size (sqrt of the face mask's area)
LIGHTING_SIGMA = 0.08


def lowpass_luminance(image: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian low-pass of the luma inside ``mask`` only (normalised convolution: pixels outside the face do not
    bleed in): (H, W[, 3]) -> (H, W) float32 in 8-bit levels."""
    m = _mask(mask).astype(np.float32)
    g = _gray(image)
    num = cv2.GaussianBlur(g * m, (0, 0), sigma)
    den = cv2.GaussianBlur(m, (0, 0), sigma)
    return num / np.maximum(den, 1e-6)


def lighting_correlation(result: np.ndarray, target: np.ndarray, mask: np.ndarray,
                         sigma: float = LIGHTING_SIGMA) -> float:
    """Pearson correlation, over the face ``mask``, of the low-pass luminance of ``result`` and ``target`` (the
    plate). NaN for an empty mask or a flat plate face."""
    m = _mask(mask)
    if m.sum() < 16:
        return float("nan")
    s = max(1.0, sigma * face_size(m))
    a = lowpass_luminance(result, m, s)[m].astype(np.float64)
    b = lowpass_luminance(target, m, s)[m].astype(np.float64)
    if a.std() < 1e-3 or b.std() < 1e-3:  # a flat face (in 8-bit levels): no light to follow
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def series_correlation(result: np.ndarray, target: np.ndarray, min_range: float = 0.05) -> float:
    """Pearson correlation of two per-frame series (NaN frames dropped); NaN when the target's series moves less
    than ``min_range`` (max - min) or fewer than 3 frames remain."""
    r, t = np.asarray(result, np.float64), np.asarray(target, np.float64)
    ok = np.isfinite(r) & np.isfinite(t)
    r, t = r[ok], t[ok]
    if len(t) < 3 or float(t.max() - t.min()) < min_range:
        return float("nan")
    if r.std() < 1e-12:
        return float("nan")
    return float(np.corrcoef(r, t)[0, 1])
