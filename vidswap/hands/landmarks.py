"""MediaPipe's 21-point hand landmarker (``hand_landmark_full.tflite``) on rotated hand crops, and the hand ROIs
it wants: from a palm detection (first sight) or from the previous frame's landmarks (tracking).

Landmark order (MediaPipe): 0 wrist; thumb 1-4; index 5-8; middle 9-12; ring 13-16; pinky 17-20 (MCP ... tip).
The crop is 224x224, rotated so the fingers point up (the wrist -> middle-finger direction is the crop's -y).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from vidswap.faces.landmarks import Rois, crop_matrices, crop_to_frame, extract_crops
from vidswap.models.runtime import TFLiteRunner

HAND_SIZE = 224
#: Landmarks that bound the tracking ROI: wrist, thumb base, the MCP and PIP joints of the fingers.
ROI_POINTS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)


def fingers_up_angle(wrist: np.ndarray, towards: np.ndarray) -> np.ndarray:
    """(N,) crop x-axis angles (radians, :class:`Rois` convention) that put ``towards`` straight above ``wrist``.

    Args:
        wrist, towards: (N, 2) frame pixels.
    """
    d = wrist - towards  # the crop's +y axis (downwards, towards the wrist)
    return np.arctan2(-d[:, 0], d[:, 1])


def _axes(angle: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, 2) crop x and y axes in the frame."""
    c, s = np.cos(angle), np.sin(angle)
    return np.stack([c, s], -1), np.stack([-s, c], -1)


def rois_from_palms(boxes: np.ndarray, keypoints: np.ndarray, scale: float = 2.6, shift: float = -0.5) -> Rois:
    """Hand ROIs from palm detections: rotated by wrist (kp 0) -> middle MCP (kp 2), shifted ``shift`` x the box
    height along the crop's y axis (towards the fingers), side ``scale`` x the box's long side.

    Args:
        boxes: (N, 4) centre x, y, width, height (frame px); keypoints: (N, 7, 2) frame px.
    """
    boxes = np.asarray(boxes, np.float64)
    angle = fingers_up_angle(keypoints[:, 0].astype(np.float64), keypoints[:, 2].astype(np.float64))
    _, ay = _axes(angle)
    centre = boxes[:, :2] + shift * boxes[:, 3:4] * ay
    return Rois(centre, boxes[:, 2:4].max(1) * scale, angle)


def rois_from_hand_landmarks(points: np.ndarray, scale: float = 2.0, shift: float = -0.1) -> Rois:
    """Tracking ROIs from the previous frame's landmarks (N, 21, 2+): rotation wrist -> mean of the index / middle /
    ring MCPs (MediaPipe's mix), the rotated bounds of :data:`ROI_POINTS`, scaled by ``scale`` (square on the
    long side) and shifted by ``shift`` x its height along the crop's y axis."""
    pts = np.asarray(points, np.float64)[..., :2]
    mid = ((pts[:, 5] + pts[:, 13]) / 2 + pts[:, 9]) / 2
    angle = fingers_up_angle(pts[:, 0], mid)
    ax, ay = _axes(angle)
    sub = pts[:, ROI_POINTS]
    u = (sub * ax[:, None]).sum(-1)
    v = (sub * ay[:, None]).sum(-1)
    cu, cv = (u.min(1) + u.max(1)) / 2, (v.min(1) + v.max(1)) / 2
    w, h = u.max(1) - u.min(1), v.max(1) - v.min(1)
    centre = cu[:, None] * ax + cv[:, None] * ay + shift * h[:, None] * ay
    return Rois(centre, np.maximum(w, h) * scale, angle)


@dataclass(frozen=True)
class HandLandmarks:
    """Landmarks of N hands: ``points`` (N, 21, 3) frame px (z in the same scale), ``presence`` (N,) in [0, 1],
    ``right`` (N,) the model's handedness score (probability of a right hand)."""

    points: np.ndarray
    presence: np.ndarray
    right: np.ndarray

    def __len__(self) -> int:
        return len(self.presence)


def _sigmoid_if_logit(x: np.ndarray) -> np.ndarray:
    """The model's presence / handedness heads are already probabilities; guard against a logit build."""
    x = x.reshape(-1).astype(np.float64)
    return x if ((x >= 0) & (x <= 1)).all() else 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


@dataclass
class HandLandmarker:
    """21 points per hand crop. Build with ``HandLandmarker.from_path(model_path('hand_landmark'))``."""

    runner: TFLiteRunner

    @classmethod
    def from_path(cls, path: Path | bytes, num_threads: int | None = None) -> "HandLandmarker":
        return cls(TFLiteRunner.from_path(path, num_threads, max_batch=4))

    def __call__(self, frames: Sequence[np.ndarray], frame_index: Sequence[int], rois: Rois,
                 black_border: bool = False) -> HandLandmarks:
        """Landmarks for ``rois`` of ``frames[frame_index[i]]`` (HxWx3 RGB uint8); the crop beyond the frame's edge
        is the edge replicated, or black with ``black_border`` (see :class:`~vidswap.hands.track.HandParams`)."""
        if len(rois) == 0:
            return HandLandmarks(np.zeros((0, 21, 3), np.float32), np.zeros(0, np.float32), np.zeros(0, np.float32))
        crops = extract_crops(frames, frame_index, crop_matrices(rois, HAND_SIZE), HAND_SIZE, black_border)
        raw, presence, right, _world = self.runner(crops)
        pts = crop_to_frame(raw.reshape(-1, 21, 3), rois, HAND_SIZE)
        return HandLandmarks(pts, _sigmoid_if_logit(presence).astype(np.float32),
                             _sigmoid_if_logit(right).astype(np.float32))
