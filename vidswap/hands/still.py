"""Hands in a still photo (a source portrait): the hand tracker's first sight of a frame -- palm detection, then the
pose landmarker's hand regions around the face when the palm detector finds none (a hand laid on a forehead or over
a mouth shows its back or its edge, which palm detection mostly misses) -- and the occlusion matte of what it finds
(:func:`~vidswap.hands.mask.hand_matte`, the same shape and colour-decided edge as on a plate).

A hand in front of a source face would otherwise be unwrapped as the person's skin: painted onto the plate as a
bright band of fingers across the forehead.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from vidswap.hands.landmarks import HandLandmarker
from vidswap.hands.mask import HandMaskParams, hand_matte
from vidswap.hands.palm import PalmDetector
from vidswap.hands.params import HandParams
from vidswap.hands.pose import PoseHands
from vidswap.hands.track import HandTracker

__all__ = ["photo_hands", "photo_hand_matte"]


def photo_hands(image: np.ndarray, faces: Sequence[np.ndarray], palms: PalmDetector, landmarker: HandLandmarker,
                pose: PoseHands | None = None, params: HandParams = HandParams()) -> np.ndarray:
    """(K, 21, 3) float32 landmarks (image pixels) of the hands in a still ``image`` (HxWx3 RGB uint8).

    ``faces``: (4,) x0, y0, x1, y1 boxes of the faces the pose landmarker looks for hands around. The tracker's
    acceptance rules are the plate's (a palm's hand must reach ``accept`` presence, a second landmarker pass from
    the first's landmarks); on one frame it detects at once and nothing is smoothed or carried.
    """
    once = dataclasses.replace(params, idle_detect_every=1, pose_every=1, min_frames=1)
    found = HandTracker(palms, landmarker, once, pose).push(0, image, list(faces))
    if not found:
        return np.zeros((0, 21, 3), np.float32)
    return np.stack([points for _, points, _ in found]).astype(np.float32)


def photo_hand_matte(image: np.ndarray, hands: np.ndarray,
                     params: HandMaskParams = HandMaskParams()) -> np.ndarray | None:
    """(H, W) float32 matte in [0, 1] (1 = hand) of ``hands`` (K, 21, 2+) over ``image`` (HxWx3 RGB uint8); None
    when there is no hand."""
    if not len(hands):
        return None
    return hand_matte(np.asarray(hands, np.float32), np.ascontiguousarray(image), params)
