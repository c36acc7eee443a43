"""The hand landmarker's tracking loop on a still frame: where does a cut-off hand's size settle?

    python benchmarks/bench_hand_fixed_point.py [--frames 62 70 76] [--scales 0.6 0.8 1.0 1.2] [--steps 12]

The sample clip's hand rises into the picture from the bottom edge (frames 58-90, the wrist below the frame). The
tracker (:class:`~vidswap.hands.track.HandTracker`, defaults but ``skip_still`` off, no faces so no pose landmarker)
reads it every frame from frame 56 to each frame N; its reading at N is scaled about its centroid by each factor,
and the landmarker is then run again and again on frame N alone, each time from the region of its previous reading
(:func:`~vidswap.hands.landmarks.rois_from_hand_landmarks`, as tracking does). Printed per start: the hand size
(wrist -> middle-MCP px) and presence after each step. Starts that meet at one size show that size is the
landmarker's own reading of the frame, and a track that reads the hand smaller there has not reached it yet.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

import fetch_media  # noqa: E402

from vidswap.faces.align import as_rgb8  # noqa: E402
from vidswap.hands.landmarks import HandLandmarker, rois_from_hand_landmarks  # noqa: E402
from vidswap.hands.mask import hand_size  # noqa: E402
from vidswap.hands.palm import PalmDetector  # noqa: E402
from vidswap.hands.params import HandParams  # noqa: E402
from vidswap.hands.track import HandTracker  # noqa: E402
from vidswap.io import probe, read_frames  # noqa: E402
from vidswap.models.registry import load_manifest, model_bytes  # noqa: E402


def settle(landmarker: HandLandmarker, frame: np.ndarray, points: np.ndarray, steps: int) -> list[tuple[float, float]]:
    """(size px, presence) after each of ``steps`` landmarker readings of ``frame`` (H, W, 3 RGB uint8), each from
    the tracking region of the previous reading, starting from ``points`` (21, 3)."""
    out = []
    for _ in range(steps):
        lm = landmarker([frame], [0], rois_from_hand_landmarks(points[None]))
        points = lm.points[0]
        out.append((hand_size(points), float(lm.presence[0])))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, nargs="+", default=[62, 70, 76])
    ap.add_argument("--scales", type=float, nargs="+", default=[0.6, 0.8, 1.0, 1.2])
    ap.add_argument("--steps", type=int, default=12)
    args = ap.parse_args()
    clip = fetch_media.fetch("pexels_clip", fetch_media.load_manifest())
    manifest = load_manifest()
    params = HandParams(skip_still=0.0)
    landmarker = HandLandmarker.from_path(model_bytes(params.landmark_model, manifest), 2)
    tracker = HandTracker(PalmDetector.from_path(model_bytes("palm_detection", manifest), 2), landmarker, params)
    last = max(args.frames)
    readings: dict[int, np.ndarray] = {}
    frames: dict[int, np.ndarray] = {}
    with read_frames(probe(clip), range(56, last + 1)) as stream:
        for f in stream:
            image = as_rgb8(f.image)
            found = tracker.push(f.number, image)
            if f.number in args.frames and found:
                readings[f.number], frames[f.number] = found[0][1], image
    print(f"{'frame':>5} {'start':>6} {'tracked size':>12}  size / presence after each step")
    for n in args.frames:
        if n not in readings:
            print(f"{n:5d}  no hand tracked")
            continue
        base = readings[n].astype(np.float64)
        c = base[:, :2].mean(0)
        for s in args.scales:
            start = base.copy()
            start[:, :2] = c + s * (base[:, :2] - c)
            steps = settle(landmarker, frames[n], start, args.steps)
            print(f"{n:5d} {s:6.2f} {hand_size(base):12.0f}  " + " ".join(f"{z:.0f}/{p:.2f}" for z, p in steps))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
