"""Hands in a still photo (a source portrait): the hand tracker's first sight of a frame -- palm detection, then the
pose landmarker's hand regions around the face when the palm detector finds none (a hand laid on a forehead or over
a mouth shows its back or its edge, which palm detection mostly misses) -- and the occlusion matte of what it finds
(:func:`~vidswap.hands.mask.hand_matte`: the plate's landmark shape and colour-decided edge, grown).

A hand in front of a source face would otherwise be unwrapped as the person's skin: painted onto the plate as a
bright band of fingers across the forehead. On a photo the matte is wider than on a plate and adds the forearm (the
plate's stops at the wrist): a hand laid on a forehead brings the heel of the hand and the wrist across the brows.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from vidswap.hands.colour import ColourSplitParams
from vidswap.hands.landmarks import HandLandmarker
from vidswap.hands.mask import HandMaskParams, hand_matte, hand_size, segment_distance
from vidswap.hands.palm import PalmDetector
from vidswap.hands.params import HandParams
from vidswap.hands.pose import PoseHands
from vidswap.hands.track import HandTracker

__all__ = ["PHOTO_MASK", "photo_hands", "forearm_matte", "photo_hand_matte"]

#: The matte's shape on a photo: grown by 0.12 of the hand's size (the plate's 0.02) and its edge decided by colour
#: up to 0.2 outside that (the plate's 0.04). On a plate the face left unswapped around a hand shows; on a photo
#: what is left out is filled from the mirrored side or left to the plate, while a sliver of hand left in is
#: painted on every frame. hand_on_forehead: the landmarker's palm stops short of the heel of the hand lying across
#: the brows, which the plate's shape left in.
PHOTO_MASK = HandMaskParams(grow=0.12, colour=ColourSplitParams(outer=0.2))


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


def forearm_matte(hands: np.ndarray, height: int, width: int, length: float = 1.5) -> np.ndarray:
    """(H, W) float32 coverage of the forearms of ``hands`` (K, 21, 2+): per hand a capsule from the palm's middle
    (between the wrist, point 0, and the middle finger's base, point 9) through the wrist and on for ``length`` x
    the wrist -> middle-base distance, as wide as the palm (the index to pinky bases, points 5 and 17), its edge
    anti-aliased over a pixel."""
    out = np.zeros((height, width), np.float32)
    for points in np.asarray(hands, np.float64)[..., :2]:
        size = hand_size(points)
        if size < 1.0:
            continue
        start = (points[0] + points[9]) / 2  # from the palm's middle: its heel is as wide as the palm
        end = points[0] + (points[0] - points[9]) * length
        radius = 0.5 * float(np.linalg.norm(points[5] - points[17]))
        lo = np.floor(np.minimum(start, end) - radius - 1).astype(int).clip(0, [width, height])
        hi = np.ceil(np.maximum(start, end) + radius + 2).astype(int).clip(0, [width, height])
        if (hi <= lo).any():
            continue
        ys, xs = np.mgrid[lo[1]:hi[1], lo[0]:hi[0]]
        d = segment_distance(np.stack([xs, ys], -1).astype(np.float64), start, end)
        cover = np.clip(radius - d + 0.5, 0.0, 1.0).astype(np.float32)
        out[lo[1]:hi[1], lo[0]:hi[0]] = np.maximum(out[lo[1]:hi[1], lo[0]:hi[0]], cover)
    return out


def photo_hand_matte(image: np.ndarray, hands: np.ndarray, params: HandMaskParams = PHOTO_MASK) -> np.ndarray | None:
    """(H, W) float32 matte in [0, 1] (1 = hand) of ``hands`` (K, 21, 2+) over ``image`` (HxWx3 RGB uint8): the
    hand's matte as on a plate (:func:`~vidswap.hands.mask.hand_matte`, shaped by ``params``: :data:`PHOTO_MASK`)
    and its forearm (:func:`forearm_matte`); None when there is no hand."""
    if not len(hands):
        return None
    hand = hand_matte(np.asarray(hands, np.float32), np.ascontiguousarray(image), params)
    return np.maximum(hand, forearm_matte(hands, *image.shape[:2]))
