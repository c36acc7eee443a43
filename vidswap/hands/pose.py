"""Hands seen by the body, for hands the palm detector misses (a hand entering from the frame edge, its wrist
outside the picture; the back of a hand): MediaPipe's pose landmarker (``pose_landmark_full.tflite``) finds the
wrists and the index / pinky knuckles near a face, and the region around them seeds the hand landmarker.

Pose landmarks (MediaPipe's 33-point body): 15 / 16 left / right wrist, 17 / 18 pinky, 19 / 20 index, 21 / 22 thumb.
The model's output is 39 x (x, y, z, visibility, presence) in 256-px crop units (the last six are its auxiliary
ROI points), visibility and presence as logits, plus a pose-presence score.

The pose model is run on a region built from the face (no person detector ships in a registry package): head,
shoulders and raised hands. The hand re-crop model (``hand_recrop.tflite``, MediaPipe's refinement of the region
around a pose wrist) is not used: on the sample clip's hand over the face, cropped so the wrist is out of frame, its
regions seeded the landmarker (presence >= 0.8) on 0 of 57 frames, the face-sized region around the pose knuckles
on 27 of 57.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidswap.faces.landmarks import Rois, crop_matrices, crop_to_frame
from vidswap.hands.landmarks import fingers_up_angle
from vidswap.models.runtime import TFLiteRunner

POSE_SIZE = 256
#: (wrist, pinky, index) pose landmarks of the left and the right hand.
HAND_KEYPOINTS = ((15, 17, 19), (16, 18, 20))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(np.asarray(x, np.float64), -60, 60)))


@dataclass(frozen=True)
class BodyHands:
    """The hand keypoints of one pose: ``points (2, 3, 2)`` frame px of (wrist, pinky, index) for the left and the
    right hand, ``visible (2, 3)`` visibility probabilities, ``score`` the pose presence."""

    points: np.ndarray
    visible: np.ndarray
    score: float


def person_roi(face_box: np.ndarray, down: float = 1.0, scale: float = 4.0) -> Rois:
    """The upright square region the pose model looks at, from a face's (4,) x0, y0, x1, y1 box (frame px): side
    ``scale`` face heights, centred ``down`` face heights below the face's centre (head, shoulders and the hands
    raised towards the face; parts outside the frame are black)."""
    box = np.asarray(face_box, np.float64)
    fh = box[3] - box[1]
    centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2 + down * fh])
    return Rois(centre[None], np.array([scale * fh]), np.zeros(1))


def rois_from_body_keypoints(points: np.ndarray, side: float) -> Rois:
    """Hand regions for the landmarker from (N, 3, 2) (wrist, pinky, index) frame px: centred on the middle
    knuckle estimated as ``(2 index + pinky) / 3`` (MediaPipe's holistic recipe), rotated so the wrist -> knuckle
    direction points up, ``side`` px square.

    The side comes from the face, not from the keypoints: on a close shot the pose model places the wrist and
    knuckles of a hand raised to the face roughly, but too close together to size the hand; a hand is about as
    long as a face is high.
    """
    pts = np.asarray(points, np.float64)
    middle = (2 * pts[:, 2] + pts[:, 1]) / 3
    return Rois(middle, np.full(len(pts), float(side)), fingers_up_angle(pts[:, 0], middle))


@dataclass
class PoseHands:
    """Hand regions from the pose landmarker, near a face. Build with
    ``PoseHands.from_path(model_path('pose_landmark'))``.

    Attributes:
        runner: the pose landmarker.
        down, scale: the person region from the face (:func:`person_roi`).
        hand_scale: the hand region's side in face heights (:func:`rois_from_body_keypoints`).
    """

    runner: TFLiteRunner
    down: float = 1.0
    scale: float = 4.0
    hand_scale: float = 1.0

    @classmethod
    def from_path(cls, path: Path | bytes, num_threads: int | None = None, **kwargs) -> "PoseHands":
        return cls(TFLiteRunner.from_path(path, num_threads, max_batch=1), **kwargs)

    def body(self, frame: np.ndarray, roi: Rois) -> BodyHands:
        """The hand keypoints of the pose in region ``roi`` of an HxWx3 RGB uint8 frame."""
        m = crop_matrices(roi, POSE_SIZE)[0]
        crop = cv2.warpAffine(frame, m, (POSE_SIZE, POSE_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        outs = self.runner((crop.astype(np.float32) / 255.0)[None])
        raw = outs[0].reshape(1, -1, 5)
        xy = crop_to_frame(np.concatenate([raw[..., :2], np.zeros_like(raw[..., :1])], -1), roi, POSE_SIZE)[0]
        idx = np.asarray(HAND_KEYPOINTS)
        return BodyHands(xy[idx, :2], _sigmoid(raw[0, :, 3])[idx], _sigmoid_if_logit(outs[1]))

    def hand_rois(self, frame: np.ndarray, face_box: np.ndarray) -> Rois:
        """(2,) candidate hand regions (left, right) near the face with box ``face_box`` (x0, y0, x1, y1)."""
        body = self.body(frame, person_roi(face_box, self.down, self.scale))
        return rois_from_body_keypoints(body.points, self.hand_scale * float(face_box[3] - face_box[1]))


def _sigmoid_if_logit(x: np.ndarray) -> float:
    v = float(np.asarray(x).reshape(-1)[0])
    return v if 0.0 <= v <= 1.0 else float(_sigmoid(v))
