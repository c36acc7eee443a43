"""What the swapped face's motion blur (``composite.motion_blur``) costs.

    python benchmarks/bench_motion_blur.py [--frames 90] [--pairs 2] [--shutter 1.0] [--work DIR]

1. End to end: the whip-pan clip (samples/whip_pan.py, the Pexels woman under a fast pan, every frame moving,
   motion-blurred over ``--shutter``) swapped with grace_hopper by ``vidswap run`` with the default
   (``motion_blur: auto``, the measured shutter) and with ``motion_blur: 0``, in alternating pairs after one
   ``analyze`` (both reuse its analysis, so only the render differs). Prints each run's wall time, their medians and
   the ratio auto / off, and the shutter the analysis measured.
2. The smear alone (``vidswap.composite.motion_blur.motion_blur``) on batches of 8 faces: ms a face by crop side and
   smear length, the face covering the middle three quarters of the crop.

Record the tables in benchmarks/RESULTS.md with the machine, date and load.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

import fetch_media  # noqa: E402
import whip_pan  # noqa: E402
from paired_runs import alternating, print_ratio_table, vidswap_seconds  # noqa: E402

from vidswap.composite.motion_blur import motion_blur  # noqa: E402
from vidswap.faces.tracksfile import ShotAnalysis  # noqa: E402


def end_to_end(work: Path, frames: int, pairs: int, shutter: float) -> None:
    manifest = fetch_media.load_manifest()
    clip = whip_pan.whip_pan_clip(fetch_media.fetch("pexels_clip", manifest), work / "pan.mp4", frames, shutter)
    source = fetch_media.fetch("grace_hopper", manifest)
    off = work / "off.yaml"
    off.write_text("composite:\n  motion_blur: 0\n")
    vidswap_seconds("analyze", clip, "-s", source, "-o", work / "analysed.mkv", "-q")
    shots = ShotAnalysis.load(work / "analysed.vidswap" / "tracks.npz")
    measured = [float(t.appearance.get("shutter", [np.nan])[0]) for t in shots.tracks]

    def run(name: str, p: int) -> float:
        extra = ["--config", off] if name == "off" else []
        return vidswap_seconds("run", clip, "-s", source, "-o", work / f"{name}{p}.mkv", "-q", *extra)

    times = alternating(("auto", "off"), pairs, run)
    print(f"whip pan {frames} frames 640x360, shutter {shutter} (measured: {', '.join(f'{m:.2f}' for m in measured)})")
    print_ratio_table("motion_blur", times, "off")


def smear_alone(repeat: int = 5) -> None:
    print("\n| crop side | smear px | ms a face (median of batches of 8) |")
    print("|---|---|---|")
    for side, length in ((256, 3.0), (256, 8.0), (512, 6.0), (512, 16.0), (768, 12.0)):
        image = torch.rand(8, 3, side, side)
        alpha = torch.zeros(8, 1, side, side)
        alpha[..., side // 8:-side // 8, side // 8:-side // 8] = 1.0
        motion = torch.zeros(8, 2, 3)
        motion[:, 0, 2] = length
        motion_blur(image, alpha, motion, 1.0)
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            motion_blur(image, alpha, motion, 1.0)
            runs.append((time.perf_counter() - t0) / 8 * 1000)
        print(f"| {side} | {length:g} | {statistics.median(runs):.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--shutter", type=float, default=1.0)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.2f}, torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        end_to_end(work, args.frames, args.pairs, args.shutter)
    smear_alone()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
