"""What the plate grain (``composite.grain``) costs: the analysis's noise reading and the render's re-graining.

    python benchmarks/bench_grain.py [--frames 90] [--pairs 2] [--sigma 7] [--work DIR]

1. End to end: the low-light clip (samples/noisy_plate.py: pexels_clip darkened, with fresh noise of ``--sigma``
   8-bit levels) swapped with grace_hopper by ``vidswap run`` with the default (``grain: auto``, which re-grains this
   clip's face) and with ``grain: false``, in alternating pairs after one ``analyze`` in a private, empty analysis
   cache (both runs reuse its analysis, so only the render differs). Prints the analysis's wall time, each run's,
   their medians, the ratio auto / off and what the analysis read (grain std, share).
2. The reading alone (:func:`vidswap.appearance.plate_noise.face_noise`) on frame pairs of the clip at 640x360 and
   upscaled to 1920x1080 and 3840x2160 (landmarks scaled): ms a face, and that times the faces a track reads (one
   every 5th analysed frame) against the analysis's wall time of part 1.
3. The re-graining alone (:func:`vidswap.composite.grain.apply_grain`, what a frame pays in the render): ms a face
   by the side of the pasted region.

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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

import fetch_media  # noqa: E402
import noisy_plate  # noqa: E402
from bench_analysis_stages import private_home  # noqa: E402
from paired_runs import alternating, print_ratio_table, vidswap_seconds  # noqa: E402

from vidswap.appearance.analysis import NOISE_EVERY  # noqa: E402
from vidswap.appearance.plate_noise import face_noise  # noqa: E402
from vidswap.faces.topology import load_topology  # noqa: E402
from vidswap.faces.tracksfile import ShotAnalysis  # noqa: E402


def end_to_end(work: Path, frames: int, pairs: int, sigma: float) -> tuple[Path, Path, float]:
    manifest = fetch_media.load_manifest()
    clip = noisy_plate.noisy_clip(fetch_media.fetch("pexels_clip", manifest), work / "noisy.mp4", frames, sigma)
    source = fetch_media.fetch("grace_hopper", manifest)
    off = work / "off.yaml"
    off.write_text("composite:\n  grain: false\n")
    env = dict(os.environ, VIDSWAP_HOME=str(private_home(work)))
    analysis = vidswap_seconds("analyze", clip, "-s", source, "-o", work / "analysed.mkv", "-q", env=env)
    shots = ShotAnalysis.load(work / "analysed.vidswap" / "tracks.npz")

    def run(name: str, p: int) -> float:
        extra = ["--config", off] if name == "off" else []
        return vidswap_seconds("run", clip, "-s", source, "-o", work / f"{name}{p}.mkv", "-q", *extra, env=env)

    times = alternating(("auto", "off"), pairs, run)
    print(f"low-light pexels_clip, {frames} frames 640x360, noise {sigma} levels; analysis {analysis:.1f} s")
    for t in shots.tracks:
        a = t.appearance
        print(f"track {t.id}: grain std {np.round(a['grain_std'] * 255, 2).tolist()} levels, share "
              f"{float(a['grain_share'][0]):.2f}, sigma {float(a['grain_sigma'][0]):.2f} px")
    print_ratio_table("grain", times, "off")
    return clip, work / "analysed.vidswap" / "tracks.npz", analysis


def reading_alone(clip: Path, tracks: Path, frames: int, analysis: float, repeat: int = 8) -> None:
    import av
    import cv2

    oval = np.asarray(load_topology().regions["face_oval"])
    track = ShotAnalysis.load(tracks).tracks[0]
    with av.open(str(clip)) as c:
        images = [f.to_ndarray(format="rgb24") for _, f in zip(range(repeat + 1), c.decode(video=0))]
    reads = frames // NOISE_EVERY
    print(f"\n| plate | ms a face (median of {repeat}) | x {reads} faces read (s) | over part 1's analysis (640x360) |")
    print("|---|---|---|---|")
    flow = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    for name, scale in (("640x360", 1), ("1920x1080", 3), ("3840x2160", 6)):
        big = [cv2.resize(im, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR) for im in images]
        runs = []
        for k in range(1, len(big)):
            points = track.smoothed[k] * np.array([scale, scale, 1.0], np.float32)
            t0 = time.perf_counter()
            face_noise(big[k - 1], big[k], points, oval, 1.0, flow)
            runs.append((time.perf_counter() - t0) * 1000)
        ms = statistics.median(runs)
        share = f"{ms * reads / 1000 / analysis:.1%}" if scale == 1 else "-"
        print(f"| {name} | {ms:.1f} | {ms * reads / 1000:.2f} | {share} |")


def regrain_alone(repeat: int = 20) -> None:
    import torch

    from vidswap.composite.grain import GrainStats, apply_grain

    grain = GrainStats(torch.full((1, 3), 0.026), torch.full((1, 3, 3), 0.98) + 0.02 * torch.eye(3)[None],
                       torch.tensor([0.27]), torch.tensor([True]))
    print("\n| pasted region | ms a face (median) |")
    print("|---|---|")
    for side in (256, 512, 1024):
        image, alpha = torch.rand(1, 3, side, side), torch.ones(1, 1, side, side)
        apply_grain(image, alpha, grain, [0])
        runs = []
        for i in range(repeat):
            t0 = time.perf_counter()
            apply_grain(image, alpha, grain, [i])
            runs.append((time.perf_counter() - t0) * 1000)
        print(f"| {side} x {side} | {statistics.median(runs):.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=90)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--sigma", type=float, default=7.0)
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    print(f"load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clip, tracks, analysis = end_to_end(work, args.frames, args.pairs, args.sigma)
        reading_alone(clip, tracks, args.frames, analysis)
    regrain_alone()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
