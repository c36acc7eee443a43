"""Where the hand landmarker looks besides a hand's own landmarks: on the frame's edge for a dropped hand that
reached it (:func:`edge_roi`), and over a face for a hand that neither palm detection nor the pose landmarker finds
(:func:`face_search_rois`, ``HandParams.face_search``), where a hand found there is read again (``search_follow``).

A hand over a face with its back to the camera and its arm below the frame, or over a face cut by the frame's
edge with its palm and wrist outside, is seen by the landmarker only in regions placed from the face: read from its
own landmarks (the tracking region, :func:`~vidswap.hands.landmarks.rois_from_hand_landmarks`) a hand whose palm
and wrist are out of the picture reads 0.03-0.3 where these regions read 0.8-0.97 (lead s31).

Shapes: boxes (4,) x0, y0, x1, y1 and landmarks (21, 3), frame pixels.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from vidswap.faces.landmarks import Rois
from vidswap.hands.landmarks import fingers_up_angle
from vidswap.hands.motion import centroid

__all__ = ["edge_roi", "face_search_rois", "nearest_face", "bounds", "box_iou", "past_edge", "read_over_face"]


def edge_roi(points: np.ndarray, width: int, height: int, side: float, grow: float) -> Rois | None:
    """The region where a hand that reached the frame's edge is looked for again: ``side`` px square, centred on
    the edge it crossed (the side its grown bounds leave the frame by most; ``grow`` hand sizes) at its landmark
    centroid, rotated so the fingers point into the picture; None when the grown bounds stay inside.

    Args:
        points: (21, 2+) the hand's landmarks (frame px), where it is predicted to be.
    """
    size = float(np.linalg.norm(points[9, :2] - points[0, :2]))
    lo, hi = points[:, :2].min(0) - grow * size, points[:, :2].max(0) + grow * size
    past = {"left": -lo[0], "top": -lo[1], "right": hi[0] - (width - 1), "bottom": hi[1] - (height - 1)}
    edge = max(past, key=past.get)
    if past[edge] <= 0:
        return None
    c = np.clip(centroid(points), 0, [width - 1, height - 1])
    inward = {"left": (1.0, 0.0), "top": (0.0, 1.0), "right": (-1.0, 0.0), "bottom": (0.0, -1.0)}[edge]
    c = {"left": (0.0, c[1]), "top": (c[0], 0.0), "right": (width - 1.0, c[1]), "bottom": (c[0], height - 1.0)}[edge]
    c = np.asarray(c, np.float64)
    return Rois(c[None], np.array([float(side)]), fingers_up_angle(c[None] - inward, c[None] + inward))


def face_search_rois(box: np.ndarray, down: float, size: float) -> Rois:
    """Where a hand over a face is looked for (``HandParams.face_search``): three square regions ``size`` x the
    face box's height, centred ``down`` x that height below the box's centre, upright and turned by +-0.5 rad.
    (4,) x0, y0, x1, y1 -> :class:`Rois` of 3."""
    h = float(box[3] - box[1])
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2 + down * h])
    return Rois(np.repeat(centre[None], 3, 0), np.full(3, size * h), np.array([0.0, 0.5, -0.5]))


def nearest_face(faces: Sequence[np.ndarray], points: np.ndarray) -> np.ndarray:
    """The face box (of one or more (4,) boxes) whose centre is nearest the landmarks' centroid."""
    boxes = np.asarray(faces, np.float64).reshape(-1, 4)
    mid = (boxes[:, :2] + boxes[:, 2:]) / 2
    return boxes[int(np.argmin(np.linalg.norm(mid - centroid(points), axis=1)))]


def bounds(points: np.ndarray) -> np.ndarray:
    """(4,) x0, y0, x1, y1 of (21, 2+) points."""
    return np.concatenate([points[:, :2].min(0), points[:, :2].max(0)])


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    lo, hi = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(hi - lo, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0


def past_edge(points: np.ndarray, width: int, height: int) -> bool:
    """Whether (21, 2+) landmarks reach outside the ``width`` x ``height`` frame."""
    lo, hi = points[:, :2].min(0), points[:, :2].max(0)
    return bool(lo[0] < 0 or lo[1] < 0 or hi[0] > width - 1 or hi[1] > height - 1)


def read_over_face(read: Callable[[Rois], tuple[np.ndarray, np.ndarray]], shape: tuple[int, ...],
                   faces: Sequence[np.ndarray], last: np.ndarray, down: float, size: float, keep: float,
                   keep_edge: float, overlap: float = 0.1) -> tuple[np.ndarray, float] | None:
    """A hand (last seen at landmarks ``last``) read again in the search's regions over the face nearest it:
    ``read(rois)`` -> (points (R, 21, 3), presence (R,)); the best region's reading ``(points, presence)`` if it holds
    as a tracked hand must (``keep``; ``keep_edge`` where it reaches past the edge of the frame of ``shape``) and its
    bounds overlap the last ones (IoU above ``overlap``: the same hand), else None."""
    if not len(faces):
        return None
    points, presence = read(face_search_rois(nearest_face(faces, last), down, size))
    k = int(np.argmax(presence))
    pts, pr = points[k], float(presence[k])
    h, w = shape[:2]
    if pr >= (keep_edge if past_edge(pts, w, h) else keep) and box_iou(bounds(pts), bounds(last)) > overlap:
        return pts, pr
    return None
