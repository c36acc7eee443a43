"""What the hands cost in CPU time, at 640x360 and as the plate grows.

    python benchmarks/bench_hands_speed.py [--frames 472] [--big-frames 56-151] [--scale 3]

1. The sample clip (640x360) at its own size, the first ``--frames`` frames: the analyze pass without hands
   (``AnalysisConfig(hands=False)``) and with them, once per hand-tracker setting (main b1c5cc5's: the full
   landmarker, palm detection every 2nd frame without a hand, pose every 4th, re-detection every 6th with a hand;
   the defaults; ``--params``; with ``--two-threads`` the defaults with the hand models on two LiteRT threads as
   well as on one, the analysis's default), on the same batches of 8 frames, the order turning batch by batch;
   CPU time of the process (``time.process_time``: both threads, whatever else the machine runs) and wall time per
   batch. Added = the difference, over all frames, on the occluded stretch 56-231 and outside it, plus the
   render-side matte (``hand_matte`` of the swept shapes with the faces' lips, as the render passes them, and its
   warp into a face crop; the settings' mattes interleaved frame by frame; on one OpenCV thread, as the render's
   ``plate_occluders`` runs them) per frame of that part (0 on frames without a hand); the total of the two is the
   issue's "added cost". Also the hand tracker's own CPU time (its ``push``) per part, and each setting's tracks
   against main's: frames with a hand in one only, and the largest landmark difference on the others. With
   ``--matte-pool`` also the defaults' mattes on OpenCV's default pool (one thread per core, main 34e8007's render)
   against one thread, whole passes alternating.
2. The same frames scaled ``--scale`` x (1920x1080 for 3) over ``--big-frames``, and at 640x360 over the same
   frames: the hand tracker's CPU time per frame with the flow hold's optical flow at the plate's resolution on
   every tracked frame (``flow_size=0, flow_skip=0``, hands2-s8's behaviour), on the hand's region shrunk to
   ``HandParams().flow_size`` px on every frame, and shrunk and skipped where the reading agrees with the previous
   landmarks (the defaults), interleaved batch by batch; with the flow hold off as the floor.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import sys
import time
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
from vidswap.faces.topology import load_topology  # noqa: E402
from vidswap.hands.mask import hand_matte  # noqa: E402
from vidswap.hands.landmarks import HandLandmarker  # noqa: E402
from vidswap.hands.track import HandParams  # noqa: E402
from vidswap.models.registry import model_bytes  # noqa: E402
from vidswap.opencv_threads import opencv_threads  # noqa: E402

# filterpy (and scipy.stats, 1-5 s of CPU) is imported by the analysis once per process: by the hand tracker's first
# hand, or else by the landmark smoothing in ``finish``. Imported here so that a one-off import is not counted as
# the first hand's frames' cost (it was: 4.7 s CPU at load 10 in one profile, ~25 ms/frame over the stretch).
import filterpy.kalman  # noqa: E402,F401

STRETCH = (56, 231)


def timed_hands(analyzer: FrameAnalyzer) -> list[float]:
    """Wrap the analyzer's hand tracker so each ``push`` adds its CPU seconds to the returned list's first entry,
    and to entry ``1 + frame number`` (the list grows as needed)."""
    spent = [0.0]
    tracker = analyzer._hands
    push = tracker.push

    def timed(number, *a, **k):
        t0 = time.process_time()
        try:
            return push(number, *a, **k)
        finally:
            dt = time.process_time() - t0
            spent[0] += dt
            spent.extend([0.0] * (int(number) + 2 - len(spent)))
            spent[int(number) + 1] += dt

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


def matte_times(tracks: dict, runs: dict[str, FrameAnalyzer], frames: list[np.ndarray], count: int
                ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, list[np.ndarray]]]:
    """The render-side matte of each setting's ``tracks`` (``hand_matte`` of the swept shapes with the faces' lips,
    as the render passes them, and its warp into a face crop), the settings interleaved frame by frame: per setting
    the CPU and wall seconds per frame (0 on frames without a hand) and the crop mattes."""
    mparams = CompositeParams().hands
    lips_loop = np.asarray(load_topology().regions["lips_outer"])  # the faces' lips, as the render passes them
    crop = np.array([[[1.6, 0.0, -200.0], [0.0, 1.6, -100.0]]])
    cpu = {name: np.zeros(count) for name in tracks}
    wall = {name: np.zeros(count) for name in tracks}
    made: dict[str, list[np.ndarray]] = {name: [] for name in tracks}
    for k, n in enumerate(sorted(set().union(*(t.frames.tolist() for t in tracks.values())))):
        if n >= count:
            continue
        order = list(tracks) if k % 2 == 0 else list(tracks)[::-1]
        for name in order:
            if not len(tracks[name].at(n)):
                continue
            t0, w0 = time.process_time(), time.perf_counter()
            lips = [o.landmarks[lips_loop] for o in runs[name].observations[n] if o.landmarks is not None]
            made[name].append(mattes_to_crop([hand_matte(tracks[name].swept(n, mparams.sweep), frames[n], mparams,
                                                         lips)], crop, (384, 384)))
            cpu[name][n], wall[name][n] = time.process_time() - t0, time.perf_counter() - w0
    return cpu, wall, made


def matte_pool_ab(tracks: dict, runs: dict[str, FrameAnalyzer], frames: list[np.ndarray], count: int,
                  rounds: int = 6) -> dict:
    """The first setting's mattes on OpenCV's one thread (the render's ``opencv_threads(1)``) and on its default
    pool, whole passes alternating (ABBA...; re-sizing the pool per frame would cost more than it measures): CPU and
    wall ms per hand frame, and whether the mattes are equal."""
    name = next(iter(tracks))
    one = {name: tracks[name]}
    spent = {1: [0.0, 0.0], "pool": [0.0, 0.0]}
    made = {}
    for r in range(rounds):
        for mode in ((1, "pool") if r % 2 == 0 else ("pool", 1)):
            with opencv_threads(1) if mode == 1 else contextlib.nullcontext():
                c, w, m = matte_times(one, runs, frames, count)
            spent[mode][0] += c[name].sum()
            spent[mode][1] += w[name].sum()
            made[mode] = m[name]
    hand = max(1, int((c[name] > 0).sum()))
    return {"pool_threads": cv2.getNumThreads(), "hand_frames": hand,
            **{f"{'one' if mode == 1 else 'pool'}_{kind}_ms": 1e3 * spent[mode][i] / rounds / hand
               for mode in spent for i, kind in enumerate(("cpu", "wall"))},
            "equal": all(np.array_equal(a, b) for a, b in zip(made[1], made["pool"]))}


MAIN = {"landmark_model": "hand_landmark", "idle_detect_every": 2, "pose_every": 4, "backfill": 6}


def at_size(frames: list[np.ndarray], count: int, settings: dict[str, HandParams],
            threads: dict[str, int] | None = None, pool_ab: bool = False) -> dict:
    """Part 1: the analyze pass without hands and with each of ``settings`` (the hand tracker's parameters,
    interleaved batch by batch), and the render-side matte of each one's tracks, at the clip's size. ``threads``:
    per setting the hand models' LiteRT threads (default ``AnalysisModels.load``'s, 1). ``pool_ab``: also
    :func:`matte_pool_ab` of the defaults' tracks."""
    cfg_on, cfg_off = AnalysisConfig(hands=True), AnalysisConfig(hands=False)
    threads = threads or {}
    loaded: dict[int, AnalysisModels] = {}
    landmarkers = {}
    runs, spent = {"off": FrameAnalyzer(AnalysisModels.load(cfg_off, 2), cfg_off)}, {}
    for name, params in settings.items():
        t = threads.get(name, 1)
        if t not in loaded:
            loaded[t] = AnalysisModels.load(cfg_on, 2, hand_threads=t)
        if (params.landmark_model, t) not in landmarkers:
            landmarkers[params.landmark_model, t] = HandLandmarker.from_path(model_bytes(params.landmark_model), t)
        an = FrameAnalyzer(loaded[t], cfg_on)
        an._hands.params = params
        an._hands.landmarker = landmarkers[params.landmark_model, t]
        spent[name] = timed_hands(an)
        runs[name] = an
    numbers = list(range(count))
    wall: dict = {}
    cpu = interleaved(runs, frames[:count], numbers, wall)
    inside = np.zeros(count, bool)
    inside[STRETCH[0]:STRETCH[1] + 1] = True
    out = {"frames": count, "analysis_cpu_ms_off": 1e3 * float(cpu["off"].mean())}
    tracks = {name: runs[name]._hands.finish() for name in settings}
    first = tracks[next(iter(settings))]
    with opencv_threads(1):  # as the render's plate_occluders runs them
        mattes_cpu, mattes_wall, _ = matte_times(tracks, runs, frames, count)
    if pool_ab:
        out["matte_pool_ab"] = matte_pool_ab({"default": tracks["default"]}, runs, frames, count)
    for name in settings:
        hands = tracks[name]
        m_cpu, m_wall = mattes_cpu[name], mattes_wall[name]
        added = 1e3 * (cpu[name] - cpu["off"])
        added_wall = 1e3 * (wall[name] - wall["off"])
        row = {"tracker_cpu_ms": 1e3 * spent[name][0] / count, "hand_frames": int((m_cpu > 0).sum())}
        # the tracks against the first setting's: the frames with a hand in one only, the largest landmark difference
        a, b = set(first.frames.tolist()), set(hands.frames.tolist())
        row["frames_only_here_vs_first"] = sorted(b - a)
        row["frames_only_in_first"] = sorted(a - b)
        row["max_landmark_diff_px_vs_first"] = max(
            (float(np.abs(first.at(n)[:, :, :2] - hands.at(n)[:, :, :2]).max()) for n in a & b
             if len(first.at(n)) == len(hands.at(n))), default=0.0)
        for part, sel in (("all", np.ones(count, bool)), ("stretch", inside), ("outside", ~inside)):
            if not sel.any():
                continue
            tracker = np.zeros(count)
            per_frame = np.asarray(spent[name][1:count + 1])
            tracker[:len(per_frame)] = per_frame
            row[f"tracker_cpu_{part}"] = 1e3 * float(tracker[sel].mean())  # the hand tracker's push alone
            row[f"analysis_cpu_{part}"] = float(added[sel].mean())
            row[f"analysis_wall_{part}"] = float(added_wall[sel].mean())
            row[f"matte_cpu_{part}"] = 1e3 * float(m_cpu[sel].mean())
            row[f"matte_wall_{part}"] = 1e3 * float(m_wall[sel].mean())
            row[f"total_cpu_{part}"] = row[f"analysis_cpu_{part}"] + row[f"matte_cpu_{part}"]
            row[f"total_wall_{part}"] = row[f"analysis_wall_{part}"] + row[f"matte_wall_{part}"]
        out[name] = row
    return out


def table(result: dict) -> str:
    """Markdown table of part 1: per setting the added ms per frame (analysis + matte = total), CPU and wall, the
    hand tracker's own CPU time (its ``push``, not a difference of two runs: less noisy) + the matte's, and the
    total CPU as a ratio of the same run's analysis without hands (the baseline: this VM's speed drifts by up to
    ~30 % within minutes, which moves both)."""
    base = result["analysis_cpu_ms_off"]
    lines = [f"analysis without hands (the baseline, this run): {base:.1f} ms CPU a frame",
             "| setting | part | analysis CPU / wall | matte CPU / wall | **total CPU / wall** | tracker + matte CPU "
             "| total CPU / baseline |",
             "|---|---|---|---|---|---|---|"]
    for name, row in result.items():
        if not isinstance(row, dict):
            continue
        for part in ("all", "stretch", "outside"):
            if f"total_cpu_{part}" in row:
                lines.append(f"| {name} | {part} | {row[f'analysis_cpu_{part}']:.1f}"
                             f" / {row[f'analysis_wall_{part}']:.1f}"
                             f" | {row[f'matte_cpu_{part}']:.1f} / {row[f'matte_wall_{part}']:.1f}"
                             f" | **{row[f'total_cpu_{part}']:.1f} / {row[f'total_wall_{part}']:.1f}** |"
                             f" {row[f'tracker_cpu_{part}'] + row[f'matte_cpu_{part}']:.1f} |"
                             f" {row[f'total_cpu_{part}'] / base:.3f} |")
    return "\n".join(lines)


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
    ap.add_argument("--params", nargs="*", default=[],
                    help="NAME=field:value,...: more HandParams settings for part 1 (main's and the defaults always)")
    ap.add_argument("--only-size", action="store_true", help="part 2 only")
    ap.add_argument("--two-threads", action="store_true",
                    help="part 1 also runs the defaults with the hand models on two LiteRT threads (main 9a66328's)")
    ap.add_argument("--matte-pool", action="store_true",
                    help="part 1 also times the defaults' mattes on OpenCV's default pool against one thread")
    args = ap.parse_args()
    cv2.setNumThreads(2)
    frames = read_frames(fetch_media.fetch("pexels_clip", fetch_media.load_manifest()), limit=args.frames)
    load = open("/proc/loadavg").read().split()[:3]
    result = {"load_start": load}
    if not args.only_size:
        settings = {"main b1c5cc5": HandParams(**MAIN), "default": HandParams()}
        for spec in args.params:
            name, fields = spec.split("=", 1)
            settings[name] = HandParams(**{k: ast.literal_eval(v) for k, v in (f.split(":", 1)
                                                                             for f in fields.split(",") if f)})
        threads = {}
        if args.two_threads:
            settings["default, 2 threads"] = HandParams()
            threads["default, 2 threads"] = 2
        result["at_360p"] = at_size(frames, min(args.frames, len(frames)), settings, threads,
                                    args.matte_pool)
        print(json.dumps(result["at_360p"], indent=1))
        print(table(result["at_360p"]))
        if args.matte_pool:
            ab = result["at_360p"]["matte_pool_ab"]
            print(f"defaults' matte, ms a hand frame CPU / wall: one OpenCV thread {ab['one_cpu_ms']:.2f} / "
                  f"{ab['one_wall_ms']:.2f}, OpenCV's pool of {ab['pool_threads']} {ab['pool_cpu_ms']:.2f} / "
                  f"{ab['pool_wall_ms']:.2f}; equal mattes: {ab['equal']}")
    if not args.skip_size:
        first, last = (int(v) for v in args.big_frames.split("-"))
        result["tracker_cpu_ms_by_plate"] = by_plate_size(frames, list(range(first, last + 1)), args.scale)
        print(json.dumps(result["tracker_cpu_ms_by_plate"], indent=1))
    result["load_end"] = open("/proc/loadavg").read().split()[:3]
    print("load", result["load_start"], "->", result["load_end"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
