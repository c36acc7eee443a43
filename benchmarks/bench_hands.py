"""Hands in front of the face: what the hand tracking and mask cost, and what they change, on the sample clip.

    python benchmarks/bench_hands.py [--frames 56-231] [--out DIR] [--figures benchmarks/figures]

1. Paired cost on every frame of the sample clip (640x360, 2 threads): the analyze pass with and without hands on
   the same batches of 8 frames, alternating which runs first, so both see the same load; added = the difference,
   on the occluded stretch and outside it. Plus the render-side matte (raster in the hand's box, colour split,
   warp into the crop) on every frame with a hand.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
sys.path.insert(0, str(ROOT / "tests"))

import fetch_media  # noqa: E402
from media_helpers import read_frames  # noqa: E402

from vidswap.composite.compositor import CompositeParams  # noqa: E402
from vidswap.composite.occlusion import mattes_to_crop  # noqa: E402
from vidswap.faces.analyze import AnalysisConfig, AnalysisModels, FrameAnalyzer  # noqa: E402
from vidswap.hands.mask import hand_matte  # noqa: E402

VIDSWAP = [sys.executable, "-m", "vidswap.cli"]


def components(frames: list[np.ndarray], stretch: tuple[int, int]) -> tuple[object, dict]:
    """Paired cost of the hands: the analyze pass with and without hand tracking on the same batches, alternating
    batch by batch (so both see the same machine load), and the render-side matte of every frame with a hand.
    Returns the tracked hands (:class:`~vidswap.hands.types.HandTracks`) and the costs."""
    cfg_on, cfg_off = AnalysisConfig(hands=True), AnalysisConfig(hands=False)
    on = FrameAnalyzer(AnalysisModels.load(cfg_on, 2), cfg_on)
    off = FrameAnalyzer(AnalysisModels.load(cfg_off, 2), cfg_off)
    seconds = {"on": np.zeros(len(frames)), "off": np.zeros(len(frames))}
    for s in range(0, len(frames), 8):
        batch = list(range(s, min(s + 8, len(frames))))
        for name, analyzer in (("off", off), ("on", on)) if (s // 8) % 2 else (("on", on), ("off", off)):
            t0 = time.perf_counter()
            analyzer.push(batch, [frames[n] for n in batch])
            seconds[name][batch] = (time.perf_counter() - t0) / len(batch)
    hands = on._hands.finish()
    with_hand = sorted(set(hands.frames.tolist()))
    matte = []
    params = CompositeParams().hands
    eye = np.array([[[1.6, 0.0, -200.0], [0.0, 1.6, -100.0]]] * 1)  # a face crop about this size
    for n in with_hand:
        t0 = time.perf_counter()
        m = hand_matte(hands.swept(n, params.sweep), frames[n], params)
        mattes_to_crop([m], eye, (384, 384))
        matte.append(time.perf_counter() - t0)
    first, last = stretch
    inside = np.zeros(len(frames), bool)
    inside[first:last + 1] = True
    added = 1e3 * (seconds["on"] - seconds["off"])
    return hands, {"frames": len(frames), "hand_frames": len(with_hand),
            "analysis_ms_off": 1e3 * float(seconds["off"].mean()), "analysis_ms_on": 1e3 * float(seconds["on"].mean()),
            "analysis_added_ms_stretch": float(added[inside].mean()),
            "analysis_added_ms_outside": float(added[~inside].mean()),
            "tracker_ms_stretch": 1e3 * on.stage_seconds.get("hands", 0.0) / len(frames),
            "matte_ms_hand": 1e3 * float(np.mean(matte)) if matte else 0.0,
            "added_ms_stretch": float(added[inside].mean()) + (1e3 * float(np.mean(matte)) if matte else 0.0)}


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


def hand_series(hands, frames: dict[int, np.ndarray], params: dict[str, object]) -> dict:
    """Per frame of ``frames`` (number -> RGB plate): the tracked hands' presence (max over hands), the speed of
    their landmarks' centroid (px/frame, from the previous frame) and, per named :class:`HandMaskParams`, the
    matte's area (px at >= 0.5) as the render builds it (``swept`` / ``around`` shapes, colour split)."""
    numbers = sorted(frames)
    out = {"number": numbers, "presence": [], "speed": [], **{f"area {k}": [] for k in params}}
    prev = None
    for n in numbers:
        pts = hands.at(n)
        out["presence"].append(float(hands.presence[hands.frames == n].max()) if len(pts) else 0.0)
        c = pts[:, :, :2].mean((0, 1)) if len(pts) else None
        out["speed"].append(float(np.linalg.norm(c - prev)) if c is not None and prev is not None else np.nan)
        prev = c
        for k, p in params.items():
            shapes = hands.around(n, p.time_reach) if p.time_reach else hands.swept(n, p.sweep)
            area = float((hand_matte(shapes, frames[n], p) >= 0.5).sum()) if len(shapes) else 0.0
            out[f"area {k}"].append(area)
    return out


def plot_temporal(reports: dict[str, Path], out: Path, series: dict | None = None) -> None:
    """Per-frame flicker and landmark jitter of the plate and each result (``vidswap eval`` metrics.json), their
    excess over the plate, and (``series`` from :func:`hand_series`) the hands' presence, speed and matte area."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = 4 if series is not None else 2
    fig, axes = plt.subplots(rows, 1, figsize=(11, 2.6 * rows), sharex=True)
    plate_done = False
    for name, report in reports.items():
        per = json.loads((report / "metrics.json").read_text())["per_frame"]
        x = per["number"]
        for ax, key in zip(axes[-2:], ("flicker", "jitter")):
            if not plate_done:
                ax.plot(x, per[f"{key}_target"], "k--", lw=1, label="plate")
            ax.plot(x, [np.nan if v is None else v for v in per[f"{key}_result"]], lw=1, label=name)
        plate_done = True
    axes[-2].set_ylabel("flicker (8-bit levels)")
    axes[-1].set_ylabel("jitter (px / frame^2)")
    axes[-1].set_xlabel("frame")
    if series is not None:
        ax = axes[0]
        ax.plot(series["number"], series["speed"], "C3", lw=1, label="hand speed (px/frame)")
        ax.set_ylabel("hand speed (px/frame)")
        tw = ax.twinx()
        tw.plot(series["number"], series["presence"], "C7", lw=1, label="presence")
        tw.set_ylim(0, 1.05)
        tw.set_ylabel("landmarker presence")
        ax.legend(loc="upper left")
        tw.legend(loc="upper right")
        for k in series:
            if k.startswith("area "):
                axes[1].plot(series["number"], series[k], lw=1, label=f"matte {k[5:]}")
        axes[1].set_ylabel("hand matte area (px)")
    for ax in axes[1:] if series is not None else axes:
        ax.legend(loc="upper right")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


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
    first, last = (int(v) for v in args.frames.split("-"))
    tracked, comp = components(frames, (first, last))
    with open("/proc/loadavg") as f:
        comp["loadavg"] = f.read().split()[:3]
    print(json.dumps(comp, indent=1))
    count = last - first + 1
    results = {}
    for name, hands in (("off", False), ("on", True)):
        out = work / name / "f.####.png"
        out.parent.mkdir(parents=True, exist_ok=True)
        seconds = render(clip, source, args.frames, out, hands)
        results[name] = {"s_per_frame": seconds / count, **evaluate(out, clip, source, args.frames, work / f"{name}_eval")}
        print(name, json.dumps(results[name]))
    added = 1e3 * (results["on"]["s_per_frame"] - results["off"]["s_per_frame"])
    print(f"end to end (not paired: minutes apart): hands off {1e3 * results['off']['s_per_frame']:.1f} ms/frame, on "
          f"{1e3 * results['on']['s_per_frame']:.1f} ms/frame, difference {added:.1f} ms/frame")
    args.figures.mkdir(parents=True, exist_ok=True)
    series = hand_series(tracked, {n: frames[n] for n in range(first, last + 1)}, {"on": CompositeParams().hands})
    plot_temporal({"hands off": work / "off_eval", "hands on": work / "on_eval"},
                  args.figures / "pexels_clip_hands_temporal.png", series)
    step = max(1, count // 6)
    picks = [first + 6 + step * k for k in range(6)]
    sheet({n: frames[n] for n in picks}, work / "off" / "f.####.png", work / "on" / "f.####.png", picks,
          args.figures / "pexels_clip_hands_side_by_side.jpg")
    (work / "bench_hands.json").write_text(json.dumps({"components": comp, "runs": results}, indent=1))
    print("written", args.figures / "pexels_clip_hands_side_by_side.jpg", work / "bench_hands.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
