"""Hands in front of the face: what the hand tracking and mask cost, and what they change, on the sample clip.

    python benchmarks/bench_hands.py [--frames 56-231] [--out DIR] [--figures benchmarks/figures]

1. Components on every frame of the sample clip (640x360, 2 threads): the hand tracker in the analyze pass (palm
   detection while no hand is tracked, the landmarker on every tracked hand), and the render-side matte (raster,
   plate-space, then warped into the crop) on the frames with a hand.
2. End to end: `vidswap run` over the occluded stretch twice from a cold job folder: hands off
   (``analysis.hands: false``, ``composite.hands: false``) and the default (hands on), lossless PNG output;
   wall time per frame of each.
3. `vidswap eval` of both results over the stretch: flicker and landmark jitter relative to the plate.
4. A sheet plate | before (hands off) | after (hands on) at six frames of the stretch, face crops, written to
   --figures.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
sys.path.insert(0, str(ROOT / "tests"))

import fetch_media  # noqa: E402
from media_helpers import read_frames  # noqa: E402

from vidswap.hands.landmarks import HandLandmarker  # noqa: E402
from vidswap.hands.mask import HandMaskParams, hand_matte  # noqa: E402
from vidswap.hands.palm import PalmDetector  # noqa: E402
from vidswap.hands.track import HandTracker  # noqa: E402
from vidswap.models.registry import model_path  # noqa: E402
from vidswap.render import occluders_to_crop  # noqa: E402

VIDSWAP = [sys.executable, "-m", "vidswap.cli"]


def components(frames: list[np.ndarray]) -> dict:
    tracker = HandTracker(PalmDetector.from_path(model_path("palm_detection"), 2),
                          HandLandmarker.from_path(model_path("hand_landmark"), 2))
    per = []
    for n, im in enumerate(frames):
        t0 = time.perf_counter()
        found = tracker.push(n, im)
        per.append((time.perf_counter() - t0, len(found)))
    hands = tracker.finish()
    with_hand = [t for t, k in per if k]
    without = [t for t, k in per if not k]
    mattes = []
    eye = torch.tensor([[[1.6, 0.0, -200.0], [0.0, 1.6, -100.0]]])  # a face crop about this size
    for n in sorted(set(hands.frames.tolist())):
        t0 = time.perf_counter()
        m = hand_matte(hands.at(n), frames[n], HandMaskParams())
        occluders_to_crop([m], eye, (384, 384))
        mattes.append(time.perf_counter() - t0)
    return {"frames": len(frames), "track_ms": 1e3 * float(np.mean([t for t, _ in per])),
            "track_ms_hand": 1e3 * float(np.mean(with_hand)), "track_ms_no_hand": 1e3 * float(np.mean(without)),
            "matte_ms_hand": 1e3 * float(np.mean(mattes)), "hand_frames": len(mattes)}


def render(clip: Path, source: Path, frames: str, out: Path, hands: bool) -> float:
    shot = out.parent / f"{out.parent.name}.yaml"
    shot.write_text(f"analysis: {{hands: {str(hands).lower()}}}\ncomposite: {{hands: {str(hands).lower()}}}\n")
    t0 = time.perf_counter()
    subprocess.run([*VIDSWAP, "run", str(clip), "-s", str(source), "--frames", frames, "-o", str(out),
                    "--config", str(shot), "-q"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def evaluate(result: Path, clip: Path, source: Path, frames: str, report: Path) -> dict:
    subprocess.run([*VIDSWAP, "eval", str(result), "--target", str(clip), "-s", str(source), "--frames", frames,
                    "-o", str(report), "-q"], check=True, stdout=subprocess.DEVNULL)
    t = json.loads((report / "metrics.json").read_text())["temporal"]
    return {"flicker": t["flicker"]["ratio"], "jitter": t["jitter"]["ratio"]}


def sheet(plates: dict, before: Path, after: Path, numbers: list[int], out: Path) -> None:
    rows = []
    for n in numbers:
        b = cv2.imread(str(before).replace("####", f"{n:04d}"))
        a = cv2.imread(str(after).replace("####", f"{n:04d}"))
        p = cv2.cvtColor(plates[n], cv2.COLOR_RGB2BGR)
        crop = (slice(90, 360), slice(230, 500))
        row = np.concatenate([p[crop], b[crop], a[crop]], 1)
        cv2.putText(row, f"{n}", (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
        rows.append(row)
    head = np.zeros((28, rows[0].shape[1], 3), np.uint8)
    for k, label in enumerate(("plate", "before (no hands)", "after (hands)")):
        cv2.putText(head, label, (6 + 270 * k, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1, cv2.LINE_AA)
    out.parent.mkdir(parents=True, exist_ok=True)
    grid = [np.concatenate(rows[i:i + 2], 1) for i in range(0, len(rows), 2)]
    cv2.imwrite(str(out), np.concatenate([np.concatenate([head, head], 1), *grid], 0),
                [cv2.IMWRITE_JPEG_QUALITY, 90])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default="56-231")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--figures", type=Path, default=ROOT / "benchmarks" / "figures")
    args = ap.parse_args()
    manifest = fetch_media.load_manifest()
    clip, source = fetch_media.fetch("pexels_clip", manifest), fetch_media.fetch("grace_hopper", manifest)
    work = args.out or Path(tempfile.mkdtemp(prefix="bench_hands_"))
    frames = read_frames(clip)
    comp = components(frames)
    print(json.dumps(comp, indent=1))
    first, last = (int(v) for v in args.frames.split("-"))
    count = last - first + 1
    results = {}
    for name, hands in (("off", False), ("on", True)):
        out = work / name / "f.####.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        seconds = render(clip, source, args.frames, out, hands)
        results[name] = {"s_per_frame": seconds / count, **evaluate(out, clip, source, args.frames, work / f"{name}_eval")}
        print(name, json.dumps(results[name]))
    added = 1e3 * (results["on"]["s_per_frame"] - results["off"]["s_per_frame"])
    print(f"end to end: hands off {1e3 * results['off']['s_per_frame']:.1f} ms/frame, on "
          f"{1e3 * results['on']['s_per_frame']:.1f} ms/frame, added {added:.1f} ms/frame")
    step = max(1, count // 6)
    picks = [first + 6 + step * k for k in range(6)]
    sheet({n: frames[n] for n in picks}, work / "off" / "f.####.png", work / "on" / "f.####.png", picks,
          args.figures / "pexels_clip_hands_side_by_side.jpg")
    (work / "bench_hands.json").write_text(json.dumps({"components": comp, "runs": results}, indent=1))
    print("written", args.figures / "pexels_clip_hands_side_by_side.jpg", work / "bench_hands.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
