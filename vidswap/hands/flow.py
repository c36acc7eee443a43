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

TIPS = (4, 8, 12, 16, 20)


def hand_size(points: np.ndarray) -> float:
    """The wrist to middle-finger knuckle distance of (21, 2+) points (px)."""
    return float(np.linalg.norm(points[9, :2] - points[0, :2]))


def flow_moved(prev: np.ndarray, cur: np.ndarray, points: np.ndarray, margin: float = 0.5) -> np.ndarray:
    """(21, 3) ``points`` (the previous frame's landmarks) moved by the DIS optical flow (medium preset) from
    ``prev`` to ``cur``, measured over the hand's region only (its bounds grown by ``margin`` hand sizes, clipped
    to the frame) and sampled bilinearly at each point (points outside the region take the nearest border flow).
    The third column (depth) is kept. Returns ``points`` unchanged when the region is empty.

    Args:
        prev, cur: (H, W) uint8 luma of the previous and the current frame.
        points: (21, 2+) the previous frame's landmarks.
    """
    pts = np.asarray(points, np.float64)
    h, w = prev.shape[:2]
    grow = margin * hand_size(pts)
    x0, y0 = np.floor(pts[:, :2].min(0) - grow).astype(int)
    x1, y1 = np.ceil(pts[:, :2].max(0) + grow).astype(int) + 1
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    out = pts.copy()
    if x1 - x0 < 8 or y1 - y0 < 8:
        return out
    a = np.ascontiguousarray(prev[y0:y1, x0:x1])
    b = np.ascontiguousarray(cur[y0:y1, x0:x1])
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM).calc(a, b, None)
    q = (pts[:, :2] - [x0, y0]).astype(np.float32)[:, None, :]
    f = np.stack([cv2.remap(flow[..., c], q[..., 0], q[..., 1], cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)[:, 0] for c in range(2)], 1)
    out[:, :2] += f
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


def hold(reading: np.ndarray, moved: np.ndarray, threshold: float, held: int, max_held: int) -> bool:
    """Whether to keep the flow-moved shape instead of ``reading`` this frame: its :func:`departure` exceeds
    ``threshold`` and fewer than ``max_held`` frames in a row were held already (``threshold`` <= 0: never)."""
    return threshold > 0 and held < max_held and departure(reading, moved) > threshold
