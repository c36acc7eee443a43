"""Shot cuts: a frame difference from small thumbnails and colour histograms, and a detector that marks a cut where
the difference jumps far above its local median. A cut closes every face track (:mod:`vidswap.faces.track`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import cv2
import numpy as np


THUMB_WIDTH = 64
HIST_BINS = 16


def _descriptor(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame (H, W, C) or (H, W); uint8, uint16 or float in [0, 1] -> (grey thumbnail (h, 64) in [0, 1],
    per-channel histograms (C, 16) each summing to 1)."""
    f = np.asarray(frame)
    if f.dtype != np.uint8:
        top = 65535.0 if f.dtype == np.uint16 else 1.0
        f = np.clip(f.astype(np.float32) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if f.ndim == 2:
        f = f[..., None]
    f = f[..., :3]
    h, w = f.shape[:2]
    if w > THUMB_WIDTH:
        f = cv2.resize(f, (THUMB_WIDTH, max(1, round(h * THUMB_WIDTH / w))), interpolation=cv2.INTER_AREA)
        f = f.reshape(f.shape[0], f.shape[1], -1)
    grey = f.astype(np.float32).mean(-1) / 255.0
    bins = (f.reshape(-1, f.shape[-1]).astype(np.int64) * HIST_BINS) >> 8
    hist = np.stack([np.bincount(bins[:, c], minlength=HIST_BINS) for c in range(bins.shape[1])])
    return grey, hist / hist.sum(1, keepdims=True)


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Difference of two frames in [0, 1]: the mean of the colour-histogram distance (half L1, 16 bins per
    channel, averaged over channels) and the mean absolute grey difference of 64-pixel-wide thumbnails."""
    import cv2

    ga, ha = _descriptor(a)
    gb, hb = _descriptor(b)
    if ga.shape != gb.shape:
        gb = cv2.resize(gb, (ga.shape[1], ga.shape[0]), interpolation=cv2.INTER_AREA)
    if ha.shape != hb.shape:
        ha, hb = ha.mean(0, keepdims=True), hb.mean(0, keepdims=True)
    hist = 0.5 * np.abs(ha - hb).sum(1).mean()
    return float(0.5 * hist + 0.5 * np.abs(ga - gb).mean())


@dataclass
class CutDetector:
    """Streaming shot-cut detector: :meth:`push` one frame (or thumbnail) at a time; True when it starts a new
    shot.

    A cut is a frame difference (:func:`frame_difference` to the previous frame) that is both above
    ``min_difference`` (absolute: ignores noise and flicker in static shots) and ``threshold`` times the median
    of the previous ``window`` differences of the same shot (relative: a pan or fast action raises the
    median, so only a jump far beyond the shot's usual motion counts). The median is floored at
    ``median_floor`` so that a perfectly static shot does not make every small change a cut.

    Defaults: ``threshold`` 6 (AnalysisConfig.cut_threshold), ``window`` 12 frames, ``min_difference`` 0.12,
    ``median_floor`` 0.01. On the sample clips a hard cut between two shots scores 0.3-0.6, consecutive frames
    of the same shot 0.002-0.04.
    """

    threshold: float = 6.0
    window: int = 12
    min_difference: float = 0.12
    median_floor: float = 0.01
    _prev: np.ndarray | None = field(default=None, repr=False)
    _history: list[float] = field(default_factory=list, repr=False)
    differences: list[float] = field(default_factory=list)

    def push(self, frame: np.ndarray) -> bool:
        f = np.asarray(frame)
        if self._prev is None:
            self._prev = f
            self.differences.append(0.0)
            return False
        d = frame_difference(self._prev, f)
        self._prev = f
        self.differences.append(d)
        med = float(np.median(self._history)) if self._history else 0.0
        is_cut = d > self.min_difference and d > self.threshold * max(med, self.median_floor)
        if is_cut:
            self._history = []
        else:
            self._history = (self._history + [d])[-self.window:]
        return is_cut


def detect_cuts(frames: Iterable[np.ndarray], threshold: float = 6.0, window: int = 12,
                min_difference: float = 0.12) -> list[int]:
    """Indices of the frames that start a new shot (never 0) in a sequence of frames or thumbnails (any size;
    (H, W, 3) or (H, W); uint8, uint16 or float in [0, 1]). See :class:`CutDetector` for the rule."""
    det = CutDetector(threshold=threshold, window=window, min_difference=min_difference)
    return [i for i, f in enumerate(frames) if det.push(f)]
