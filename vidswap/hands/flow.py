"""A hand's landmarks moved by the plate's optical flow, and the decision to hold that shape instead of a new
reading that departs from it (the landmarker flipping a partly seen hand: on the sample clip cut at its bottom, the
hand across the mouth read fingers-up over the nose, the fingertips turning ~25 deg a frame while the plate's flow
moves them 1-3 px).

Pure functions over numpy arrays (OpenCV's DIS flow, as :mod:`vidswap.faces.motion` uses). Points are (21, 2+)
frame pixels in MediaPipe's hand order.
"""

from __future__ import annotations

import cv2
import numpy as np

from vidswap.faces.motion import gray8
from vidswap.hands.mask import hand_size

TIPS = (4, 8, 12, 16, 20)


def flow_region(points: np.ndarray, width: int, height: int, margin: float = 0.5) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) the frame region the flow is measured on: the bounds of (21, 2+) ``points`` grown by
    ``margin`` hand sizes, clipped to the ``width`` x ``height`` frame (may be empty)."""
    pts = np.asarray(points, np.float64)
    grow = margin * hand_size(pts)
    x0, y0 = np.floor(pts[:, :2].min(0) - grow).astype(int)
    x1, y1 = np.ceil(pts[:, :2].max(0) + grow).astype(int) + 1
    return max(int(x0), 0), max(int(y0), 0), min(int(x1), width), min(int(y1), height)


def _luma(region: np.ndarray) -> np.ndarray:
    """(h, w) uint8 luma of an (h, w) luma or (h, w, 3) RGB uint8 region (:func:`vidswap.faces.motion.gray8`)."""
    return np.ascontiguousarray(region) if region.ndim == 2 else gray8(region)


#: OpenCV's DIS optical flow presets by name.
PRESETS = {"ultrafast": cv2.DISOPTICAL_FLOW_PRESET_ULTRAFAST, "fast": cv2.DISOPTICAL_FLOW_PRESET_FAST,
           "medium": cv2.DISOPTICAL_FLOW_PRESET_MEDIUM}


def flow_moved(prev: np.ndarray, cur: np.ndarray, points: np.ndarray, margin: float = 0.5, size: int = 0,
               preset: str = "medium") -> np.ndarray:
    """(21, 3) ``points`` (the previous frame's landmarks) moved by the DIS optical flow (``preset``) from
    ``prev`` to ``cur``, measured over the hand's region only (:func:`flow_region`) and sampled bilinearly at each
    point (points outside the region take the nearest border flow). The third column (depth) is kept. Returns
    ``points`` unchanged when the region is empty.

    With ``size`` > 0 the region is first shrunk (area interpolation, never enlarged) so its long side is at most
    ``size`` px: the flow's cost is then bounded whatever the plate's resolution (the landmarker, too, sees the hand
    in a fixed 224-px crop); the flow is scaled back to frame pixels.

    Args:
        prev, cur: (H, W) uint8 luma or (H, W, 3) uint8 RGB of the previous and the current frame.
        points: (21, 2+) the previous frame's landmarks.
    """
    pts = np.asarray(points, np.float64)
    h, w = prev.shape[:2]
    x0, y0, x1, y1 = flow_region(pts, w, h, margin)
    out = pts.copy()
    if x1 - x0 < 8 or y1 - y0 < 8:
        return out
    a, b = _luma(prev[y0:y1, x0:x1]), _luma(cur[y0:y1, x0:x1])
    scale = 1.0 if size <= 0 else min(1.0, size / max(x1 - x0, y1 - y0))
    if scale < 1.0:
        dsize = (max(8, int(round((x1 - x0) * scale))), max(8, int(round((y1 - y0) * scale))))
        a, b = (cv2.resize(im, dsize, interpolation=cv2.INTER_AREA) for im in (a, b))
    sx, sy = a.shape[1] / (x1 - x0), a.shape[0] / (y1 - y0)  # the exact scales after rounding
    flow = cv2.DISOpticalFlow_create(PRESETS[preset]).calc(a, b, None)
    # pixel centres: a shrunk pixel's centre (u + 0.5) / s - 0.5 in the region
    qx = ((pts[:, 0] - x0 + 0.5) * sx - 0.5).astype(np.float32)[:, None]
    qy = ((pts[:, 1] - y0 + 0.5) * sy - 0.5).astype(np.float32)[:, None]
    f = np.stack([cv2.remap(flow[..., c], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)[:, 0]
                  for c in range(2)], 1)
    out[:, :2] += f / [sx, sy]
    return out


def departure(reading: np.ndarray, moved: np.ndarray) -> float:
    """How far a new reading departs from the flow-moved shape, in hand sizes (of ``moved``): the larger of the
    worst fingertip distance and the RMS distance over all 21 points, both after removing the mean offset (a hand
    that moved more than the flow says is not a flip)."""
    r, m = np.asarray(reading, np.float64)[:, :2], np.asarray(moved, np.float64)[:, :2]
    d = (r - r.mean(0)) - (m - m.mean(0))
    dist = np.linalg.norm(d, axis=1)
    size = max(hand_size(m), 1e-6)
    return max(float(dist[list(TIPS)].max()), float(np.sqrt((dist ** 2).mean()))) / size


def moved_by(before: np.ndarray, after: np.ndarray) -> float:
    """How far a hand moved between two readings, in hand sizes (of ``before``): its change of shape
    (:func:`departure`) plus the shift of its mean point."""
    b, a = np.asarray(before, np.float64)[:, :2], np.asarray(after, np.float64)[:, :2]
    return departure(a, b) + float(np.linalg.norm(a.mean(0) - b.mean(0))) / max(hand_size(b), 1e-6)


def flow_motion(previous: np.ndarray, moved: np.ndarray) -> float:
    """How far the plate's flow moved the hand: the largest point displacement from ``previous`` (21, 2+) to
    ``moved``, in hand sizes (of ``previous``)."""
    d = np.asarray(moved, np.float64)[:, :2] - np.asarray(previous, np.float64)[:, :2]
    return float(np.linalg.norm(d, axis=1).max()) / max(hand_size(previous), 1e-6)


def hold(reading: np.ndarray, moved: np.ndarray, threshold: float, held: int, max_held: int,
         previous: np.ndarray | None = None, still: float = 0.0) -> bool:
    """Whether to keep the flow-moved shape instead of ``reading`` this frame: its :func:`departure` exceeds
    ``threshold`` and fewer than ``max_held`` frames in a row were held already (``threshold`` <= 0: never); with
    ``still`` > 0, also only while the flow moved ``previous`` (the shape it moved) by at most ``still`` hand sizes
    (:func:`flow_motion`): a flip is the reading changing over a hand the plate shows nearly at rest, while over a
    fast-moving (blurred) hand the flow lags and the reading is the better one."""
    if threshold <= 0 or held >= max_held:
        return False
    if still > 0 and previous is not None and flow_motion(previous, moved) > still:
        return False
    return departure(reading, moved) > threshold
