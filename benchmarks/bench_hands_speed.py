"""What the hands cost in CPU time, at 640x360 and as the plate grows.

    python benchmarks/bench_hands_speed.py [--frames 472] [--big-frames 56-151] [--scale 3]

1. The sample clip (640x360) at its own size, the first ``--frames`` frames: the analyze pass with hands (the
   defaults) and without (``AnalysisConfig(hands=False)``) on the same batches of 8 frames, alternating which runs
   first; CPU time of the process (``time.process_time``: both threads, whatever else the machine runs) per batch.
   Added = the difference, over all frames, on the occluded stretch 56-231 and outside it; also the hand tracker's
   own CPU time (its ``push`` calls) and the render-side matte (``hand_matte`` of the swept shapes and its warp into
   a face crop) on every frame with a hand. The wall-clock times of the same calls are reported too.
2. The same frames scaled ``--scale`` x (1920x1080 for 3) over ``--big-frames``, and at 640x360 over the same
   frames: the hand tracker's CPU time per frame with the flow hold's optical flow at the plate's resolution on
   every tracked frame (``flow_size=0, flow_skip=0``, hands2-s8's behaviour), on the hand's region shrunk to
   ``HandParams().flow_size`` px on every frame, and shrunk and skipped where the reading agrees with the previous
   landmarks (the defaults), interleaved batch by batch; with the flow hold off as the floor.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
sys.path.insert(0, str(ROOT / "tests"))

import fetch_media  # noqa: E402
from media_helpers import read_frames  # noqa: E402

from vidswap.composite.compositor import CompositeParams  # noqa: E402
from vidswap.composite.occlusion import mattes_to_crop  # noqa: E402
from vidswap.faces.analyze import AnalysisConfig, AnalysisModels, FrameAnalyzer  # noqa: E402
from vidswap.hands.mask import hand_matte  # noqa: E402
from vidswap.hands.track import HandParams  # noqa: E402

STRETCH = (56, 231)


def timed_hands(analyzer: FrameAnalyzer) -> list[float]:
    """Wrap the analyzer's hand tracker so each ``push`` adds its CPU seconds to the returned list's one entry."""
    spent = [0.0]
    tracker = analyzer._hands
    push = tracker.push

    def timed(*a, **k):
        t0 = time.process_time()
        try:
            return push(*a, **k)
        finally:
            spent[0] += time.process_time() - t0

    tracker.push = timed
    return spent


def interleaved(runs: dict[str, FrameAnalyzer], frames: list[np.ndarray], numbers: list[int], wall: dict | None = None
                ) -> dict[str, np.ndarray]:
    """Per run the CPU seconds per frame of its analyze pass (per batch of 8, divided evenly), the runs alternating
    which goes first batch by batch; the wall seconds likewise into ``wall`` when given."""
    cpu = {name: np.zeros(len(numbers)) for name in runs}
    if wall is not None:
        wall.update({name: np.zeros(len(numbers)) for name in runs})
    for s in range(0, len(numbers), 8):
        idx = list(range(s, min(s + 8, len(numbers))))
        order = list(runs.items()) if (s // 8) % 2 == 0 else list(runs.items())[::-1]
        for name, an in order:
            t0, w0 = time.process_time(), time.perf_counter()
            an.push([numbers[i] for i in idx], [frames[i] for i in idx])
            cpu[name][idx] = (time.process_time() - t0) / len(idx)
            if wall is not None:
                wall[name][idx] = (time.perf_counter() - w0) / len(idx)
    return cpu


def at_size(frames: list[np.ndarray], count: int) -> dict:
    """Part 1: the analyze pass with and without hands, and the render-side matte, at the clip's size."""
    cfg_on, cfg_off = AnalysisConfig(hands=True), AnalysisConfig(hands=False)
    on = FrameAnalyzer(AnalysisModels.load(cfg_on, 2), cfg_on)
    off = FrameAnalyzer(AnalysisModels.load(cfg_off, 2), cfg_off)
    spent = timed_hands(on)
    numbers = list(range(count))
    wall: dict = {}
    cpu = interleaved({"on": on, "off": off}, frames[:count], numbers, wall)
    hands = on._hands.finish()
    params = CompositeParams().hands
    crop = np.array([[[1.6, 0.0, -200.0], [0.0, 1.6, -100.0]]])
    matte, matte_wall = [], []
    for n in sorted(set(hands.frames.tolist())):
        t0, w0 = time.process_time(), time.perf_counter()
        mattes_to_crop([hand_matte(hands.swept(n, params.sweep), frames[n], params)], crop, (384, 384))
        matte.append(time.process_time() - t0)
        matte_wall.append(time.perf_counter() - w0)
    inside = np.zeros(count, bool)
    inside[STRETCH[0]:STRETCH[1] + 1] = True
    added = 1e3 * (cpu["on"] - cpu["off"])
    added_wall = 1e3 * (wall["on"] - wall["off"])
    return {"wall_added_ms_stretch": float(added_wall[inside].mean()),
            "wall_added_ms_outside": float(added_wall[~inside].mean()) if (~inside).any() else None,
            "wall_matte_ms_per_hand_frame": 1e3 * float(np.mean(matte_wall)) if matte_wall else 0.0,
            "frames": count, "hand_frames": len(matte),
            "analysis_cpu_ms_off": 1e3 * float(cpu["off"].mean()), "analysis_cpu_ms_on": 1e3 * float(cpu["on"].mean()),
            "added_cpu_ms_all": float(added.mean()), "added_cpu_ms_stretch": float(added[inside].mean()),
            "added_cpu_ms_outside": float(added[~inside].mean()) if (~inside).any() else None,
            "tracker_cpu_ms": 1e3 * spent[0] / count,
            "matte_cpu_ms_per_hand_frame": 1e3 * float(np.mean(matte)) if matte else 0.0,
            "added_cpu_ms_stretch_with_matte": float(added[inside].mean()) + (1e3 * float(np.mean(matte))
                                                                               if matte else 0.0)}


def by_plate_size(frames: list[np.ndarray], numbers: list[int], scale: int) -> dict:
    """Part 2: the hand tracker's CPU time per frame, flow at the plate's resolution vs shrunk, at two sizes."""
    cfg = AnalysisConfig()
    models = AnalysisModels.load(cfg, 2)
    out = {}
    for s in (1, scale):
        imgs = [cv2.resize(frames[n], None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC) if s != 1 else frames[n]
                for n in numbers]
        settings = {"flow at plate, every frame (main)": HandParams(flow_size=0, flow_skip=0),
                    "flow shrunk, every frame": HandParams(flow_skip=0), "flow shrunk, skipped (default)": HandParams(),
                    "no flow hold": HandParams(flow_hold=0)}
        runs, spent = {}, {}
        for name, params in settings.items():
            an = FrameAnalyzer(models, cfg)
            an._hands.params = params
            spent[name] = timed_hands(an)
            runs[name] = an
        interleaved(runs, imgs, numbers)
        h, w = imgs[0].shape[:2]
        out[f"{w}x{h}"] = {name: 1e3 * spent[name][0] / len(numbers) for name in settings}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=472)
    ap.add_argument("--big-frames", default="56-151")
    ap.add_argument("--scale", type=int, default=3)
    ap.add_argument("--skip-size", action="store_true", help="part 1 only")
    ap.add_argument("--only-size", action="store_true", help="part 2 only")
    args = ap.parse_args()
    cv2.setNumThreads(2)
    frames = read_frames(fetch_media.fetch("pexels_clip", fetch_media.load_manifest()), limit=args.frames)
    load = open("/proc/loadavg").read().split()[:3]
    result = {"load_start": load}
    if not args.only_size:
        result["at_360p"] = at_size(frames, min(args.frames, len(frames)))
        print(json.dumps(result["at_360p"], indent=1))
    if not args.skip_size:
        first, last = (int(v) for v in args.big_frames.split("-"))
        result["tracker_cpu_ms_by_plate"] = by_plate_size(frames, list(range(first, last + 1)), args.scale)
        print(json.dumps(result["tracker_cpu_ms_by_plate"], indent=1))
    result["load_end"] = open("/proc/loadavg").read().split()[:3]
    print("load", result["load_start"], "->", result["load_end"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
