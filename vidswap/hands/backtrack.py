"""Hands that were there before they were found: the frames before a late-starting hand, read again.

Palm detection and the pose landmarker can miss a hand for many frames where the landmarker, once it has the hand,
follows it without trouble: a hand lying over a face, its back to the camera and its wrist out of frame, found
at frame 130-135 of the sample clip's stretch that opens at frame 120 (``HandParams.backtrack``). The tracker
walks each new hand back through the few frames it keeps (``HandParams.backfill``); where the hand is still held
at the oldest of them, this module reads the analysed frames before it again, in short runs from the nearest
back, and lets the tracker follow the hand through them (:meth:`~vidswap.hands.track.HandTracker.backtrack`)
until it lets go, meets another hand, or reaches the shot's start.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from vidswap.hands.track import HandTracker

__all__ = ["backtrack_hands"]


def backtrack_hands(tracker: HandTracker, read: Callable[[list[int]], Iterable[tuple[int, np.ndarray]]],
                    run: int = 8) -> int:
    """Follow every late-starting hand of ``tracker`` back through the frames before it.

    Args:
        tracker: the shot's hand tracker, every frame pushed, not yet finished.
        read: the analysed frames ``numbers`` (ascending) as ``(number, HxWx3 RGB uint8)``, as the analysis saw them.
        run: frames read at once (held in memory together).

    Returns:
        the number of frames read again.
    """
    read_again = 0
    for hid, numbers in tracker.late_starts():  # nearest first
        for k in range(0, len(numbers), max(1, run)):
            frames = sorted(read(sorted(numbers[k:k + run])), key=lambda f: -f[0])
            read_again += len(frames)
            if not tracker.backtrack(hid, frames):
                break
    return read_again
