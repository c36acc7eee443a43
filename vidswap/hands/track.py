"""Hand tracking through a shot: palm detection finds hands, the landmarker follows each from its previous
landmarks (palm detection alone misses most hands over a face: the back of the hand to the camera, the wrist out of
frame), and a hand is dropped when the landmarker's presence falls. ``finish`` smooths each hand over time
(zero-phase) and drops hands seen for too few frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from vidswap.hands.landmarks import HandLandmarker, rois_from_hand_landmarks, rois_from_palms
from vidswap.hands.palm import PalmDetector
from vidswap.hands.types import HandTracks


@dataclass(frozen=True)
class HandParams:
    """Hand tracking parameters.

    Attributes:
        max_hands: hands followed at once.
        accept: landmarker presence a new hand (from a palm) must reach.
        keep: presence under which a tracked hand is dropped (and re-detected).
        redetect_every: with a hand tracked, palm detection runs only every N frames (looking for a second hand);
            with none tracked it runs on every frame.
        min_frames: hands seen for fewer frames are dropped (a spurious detection does not last).
        smooth_sigma: zero-phase Gaussian smoothing of each hand's landmarks over time (frames).
        overlap: a palm whose centre falls inside a tracked hand's bounds (scaled by this) is that hand.
    """

    max_hands: int = 2
    accept: float = 0.8
    keep: float = 0.5
    redetect_every: int = 6
    min_frames: int = 3
    smooth_sigma: float = 1.0
    overlap: float = 1.0


def _bounds(points: np.ndarray) -> np.ndarray:
    """(4,) x0, y0, x1, y1 of (21, 2+) points."""
    return np.concatenate([points[:, :2].min(0), points[:, :2].max(0)])


def _inside(xy: np.ndarray, box: np.ndarray, scale: float) -> bool:
    c, half = (box[:2] + box[2:]) / 2, (box[2:] - box[:2]) / 2 * scale
    return bool((np.abs(xy - c) <= half).all())


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


def smooth_series(points: np.ndarray, sigma: float) -> np.ndarray:
    """Zero-phase Gaussian smoothing of (T, ...) along T with edge renormalisation (the ends are not pulled in)."""
    if sigma <= 0 or len(points) < 2:
        return points.copy()
    r = int(np.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    t = len(points)
    flat = points.reshape(t, -1).astype(np.float64)
    out = np.zeros_like(flat)
    norm = np.zeros(t)
    for j, w in zip(range(-r, r + 1), k):
        lo, hi = max(0, -j), min(t, t - j)
        out[lo:hi] += w * flat[lo + j:hi + j]
        norm[lo:hi] += w
    return (out / norm[:, None]).reshape(points.shape).astype(points.dtype)


@dataclass
class HandTracker:
    """Streaming hand tracking: ``push`` frames in order, then ``finish``."""

    palms: PalmDetector
    landmarker: HandLandmarker
    params: HandParams = field(default_factory=HandParams)
    rows: list[tuple[int, int, np.ndarray, float]] = field(default_factory=list)
    _active: list[tuple[int, np.ndarray]] = field(default_factory=list)
    _next_id: int = 0
    _since_detect: int = 0

    def reset(self) -> None:
        """Forget the tracked hands (a shot cut)."""
        self._active = []

    def push(self, number: int, frame: np.ndarray) -> list[tuple[int, np.ndarray, float]]:
        """Track the hands into frame ``number`` (HxWx3 RGB uint8); returns its ``(id, (21, 3) points, presence)``."""
        p = self.params
        found: list[tuple[int, np.ndarray, float]] = []
        if self._active:
            lm = self.landmarker([frame], [0] * len(self._active),
                                 rois_from_hand_landmarks(np.stack([pts for _, pts in self._active])))
            found = [(hid, pts, float(pr)) for (hid, _), pts, pr in zip(self._active, lm.points, lm.presence)
                     if pr >= p.keep]
            found = self._dedupe(found)
        self._since_detect += 1
        if len(found) < p.max_hands and (not found or self._since_detect >= p.redetect_every):
            self._since_detect = 0
            found += self._detect(frame, found)
        self._active = [(hid, pts) for hid, pts, _ in found]
        for hid, pts, pr in found:
            self.rows.append((int(number), hid, pts, pr))
        return found

    def _dedupe(self, hands: list[tuple[int, np.ndarray, float]]) -> list[tuple[int, np.ndarray, float]]:
        """Two tracks that converged on one hand: keep the more confident."""
        keep: list[tuple[int, np.ndarray, float]] = []
        for h in sorted(hands, key=lambda h: -h[2]):
            if all(_box_iou(_bounds(h[1]), _bounds(k[1])) < 0.5 for k in keep):
                keep.append(h)
        return keep

    def _detect(self, frame: np.ndarray, tracked: list) -> list[tuple[int, np.ndarray, float]]:
        p = self.params
        palms = self.palms(frame)
        if not len(palms):
            return []
        boxes = [_bounds(pts) for _, pts, _ in tracked]
        new = [i for i in range(len(palms)) if not any(_inside(palms.boxes[i, :2], b, p.overlap) for b in boxes)]
        new = new[:p.max_hands - len(tracked)]
        if not new:
            return []
        lm = self.landmarker([frame], [0] * len(new), rois_from_palms(palms.boxes[new], palms.keypoints[new]))
        good = [k for k in range(len(new)) if lm.presence[k] >= p.accept]
        if not good:
            return []
        # a second pass from the first pass's landmarks: the tracking ROI fits the hand better than the palm's
        lm2 = self.landmarker([frame], [0] * len(good), rois_from_hand_landmarks(lm.points[good]))
        out = []
        for j, k in enumerate(good):
            pts, pr = (lm2.points[j], lm2.presence[j]) if lm2.presence[j] >= p.keep else (lm.points[k], lm.presence[k])
            out.append((self._next_id, pts, float(pr)))
            self._next_id += 1
        return self._dedupe(tracked + out)[len(tracked):] if tracked else self._dedupe(out)

    def finish(self) -> HandTracks:
        """Per hand: dropped if seen for fewer than ``min_frames`` frames, else smoothed over its run of frames."""
        if not self.rows:
            return HandTracks.empty()
        out = []
        for hid in sorted({r[1] for r in self.rows}):
            mine = [r for r in self.rows if r[1] == hid]
            if len(mine) < self.params.min_frames:
                continue
            pts = smooth_series(np.stack([r[2] for r in mine]).astype(np.float32), self.params.smooth_sigma)
            out += [(r[0], hid, q, r[3]) for r, q in zip(mine, pts)]
        if not out:
            return HandTracks.empty()
        out.sort(key=lambda r: (r[0], r[1]))
        return HandTracks(np.array([r[0] for r in out], np.int64), np.array([r[1] for r in out], np.int32),
                          np.stack([r[2] for r in out]).astype(np.float32), np.array([r[3] for r in out], np.float32))
