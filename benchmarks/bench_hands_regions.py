"""Where the flicker and jitter of the hands-on swap come from, per frame and per region of the face.

    python benchmarks/bench_hands_regions.py --tracks JOB/tracks.npz NAME=out/f.####.png [NAME=...]
        [--frames 56-231] [--png regions.png] [--json regions.json]

For each frame of the stretch (sample clip ``pexels_clip``), on the plate and on each result: the motion-compensated
change (``vidswap eval``'s flicker: |frame - previous frame moved by the *plate's* DIS flow|, 8-bit levels, summed
over pixels) inside the eval's face polygon, split into four regions: under the hand matte (the render's
``hand_matte`` of the stored hands, >= 0.5), a 4-px band around it, and the rest of the face above and below the
nose tip (the first track's smoothed landmark 1). The hand matte's own motion-compensated change (its change not
explained by the plate's flow, 255 x matte, summed over the face: the mask edge's flicker). And the eval judge's 106 landmarks' acceleration (px/frame^2),
split into points under the hand matte on the plate and visible points. Printed per part of the stretch as the
result's excess over the plate; plotted per frame (levels per pixel of the region).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
sys.path.insert(0, str(ROOT / "tests"))

import fetch_media  # noqa: E402
from media_helpers import read_frames  # noqa: E402

from vidswap.composite.compositor import CompositeParams  # noqa: E402
from vidswap.eval import frame_metrics as FM, metrics as M  # noqa: E402
from vidswap.eval.report import Judges, _iou, _roi  # noqa: E402
from vidswap.faces.tracksfile import ShotAnalysis  # noqa: E402
from vidswap.hands.mask import hand_matte  # noqa: E402

REGIONS = ("hand", "band", "upper", "lower")
PARTS = ((56, 87), (88, 103), (104, 145), (146, 231))


def accel(tracks: np.ndarray, select: np.ndarray) -> np.ndarray:
    """(T,) RMS second difference of the selected points of (T, P, 2) tracks ((T, P) bool), NaN at the ends."""
    out = np.full(len(tracks), np.nan)
    d2 = tracks[2:] - 2 * tracks[1:-1] + tracks[:-2]
    for j in range(len(d2)):
        s = select[j + 1] & np.isfinite(d2[j]).all(1)
        if s.any():
            out[j + 1] = float(np.sqrt((d2[j][s] ** 2).sum(-1).mean()))
    return out


def measure(plates: list[np.ndarray], results: dict[str, list[np.ndarray]], analysis: ShotAnalysis,
            numbers: list[int]) -> dict:
    judges = Judges((plates[0].shape[1], plates[0].shape[0]), 2)
    params = CompositeParams().hands
    rows = {name: {"flicker": {k: [] for k in REGIONS}, "pixels": {k: [] for k in REGIONS}, "lm": []}
            for name in ["plate", *results]}
    occluded, mattes, matte_change = [], [], []
    track = analysis.tracks[0]
    for k, n in enumerate(numbers):
        plate = plates[n]
        face = max(judges.detector([plate])[0], key=lambda d: (d.area, d.score))
        shapes = analysis.hands.swept(n, params.sweep)
        soft = hand_matte(shapes, plate, params) if len(shapes) else np.zeros(plate.shape[:2], np.float32)
        mattes.append(soft)
        hand = soft >= 0.5
        band = cv2.dilate(hand.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~hand
        pts = judges.landmarks([plate], face.box[None], [0])[0]
        h, w = hand.shape
        occluded.append(hand[np.clip(pts[:, 1].astype(int), 0, h - 1), np.clip(pts[:, 0].astype(int), 0, w - 1)])
        polygon = M.face_polygon(pts)
        ys, xs = _roi(polygon, plate.shape)
        mask = M.polygon_mask((ys.stop - ys.start, xs.stop - xs.start), polygon - [xs.start, ys.start])
        row = np.flatnonzero(track.frames == n)
        nose_y = float(track.smoothed[row[0], 1, 1]) if len(row) else (ys.start + ys.stop) / 2
        below = (np.arange(ys.start, ys.stop) >= nose_y)[:, None]
        rest = mask & ~hand[ys, xs] & ~band[ys, xs]
        region = {"hand": mask & hand[ys, xs], "band": mask & band[ys, xs], "upper": rest & ~below,
                  "lower": rest & below}
        flow = FM.dis_flow(plates[numbers[k - 1]][ys, xs], plate[ys, xs]) if k else None
        # the matte's own change not explained by the plate's motion (levels: 255 x matte), over the face polygon
        matte_change.append(np.nan if flow is None else float(np.abs(  # warp_with_flow gives 255 x a float image
            255 * soft[ys, xs] - FM.warp_with_flow(np.ascontiguousarray(mattes[k - 1][ys, xs]), flow))[mask].sum()))
        for name, frames in [("plate", [plates[m] for m in numbers]), *results.items()]:
            cur = frames[k]
            if name == "plate":
                rows[name]["lm"].append(pts)
            else:
                dets = judges.detector([cur])[0]
                iou, best = max(((_iou(face.box, d.box), d) for d in dets), key=lambda x: x[0], default=(0, None))
                rows[name]["lm"].append(judges.landmarks([cur], best.box[None], [0])[0] if iou >= 0.3
                                        else np.full((106, 2), np.nan, np.float32))
            for key in REGIONS:
                if flow is None:
                    rows[name]["flicker"][key].append(np.nan)
                else:
                    prev = FM.warp_with_flow(frames[k - 1][ys, xs], flow).astype(np.float32)
                    change = np.abs(cur[ys, xs].astype(np.float32) - prev).mean(2)
                    rows[name]["flicker"][key].append(float(change[region[key]].sum()))
                rows[name]["pixels"][key].append(int(region[key].sum()))
    occ = np.stack(occluded)
    for name in rows:
        lm = np.stack(rows[name].pop("lm")).astype(np.float64)
        rows[name]["jitter_visible"] = accel(lm, ~occ).tolist()
        rows[name]["jitter_hidden"] = accel(lm, occ).tolist()
    return {"numbers": numbers, "runs": rows, "matte_change": matte_change}


def report(data: dict) -> None:
    numbers = np.array(data["numbers"])
    plate = data["runs"]["plate"]
    print("flicker excess over the plate, k level-px per region; jitter of the judge's visible points, result/plate")
    for name, run in data["runs"].items():
        if name == "plate":
            continue
        for a, b in PARTS:
            sel = (numbers >= a) & (numbers <= b)
            ex = {k: round((np.nansum(np.array(run["flicker"][k])[sel]) - np.nansum(np.array(plate["flicker"][k])[sel]))
                           / 1e3) for k in REGIONS}
            jr, jp = np.nanmean(np.array(run["jitter_visible"])[sel]), np.nanmean(np.array(plate["jitter_visible"])[sel])
            print(f"{name:>10} {a}-{b}: {ex}  jitter {jr:.2f}/{jp:.2f}")
    change = np.array(data["matte_change"], float)
    print("the hand matte's motion-compensated change (k level-px over the face, 255 x matte) per part:",
          {f"{a}-{b}": round(float(np.nansum(change[(numbers >= a) & (numbers <= b)])) / 1e3) for a, b in PARTS})


def plot(data: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = data["numbers"]
    fig, axes = plt.subplots(len(REGIONS) + 1, 1, figsize=(11, 12), sharex=True)
    for ax, key in zip(axes, REGIONS):
        for name, run in data["runs"].items():
            px = np.maximum(np.array(run["pixels"][key], float), 1)
            ax.plot(x, np.array(run["flicker"][key]) / px, "k--" if name == "plate" else "-", lw=1, label=name)
        ax.set_ylabel(f"flicker: {key}\n(levels / px)")
    for name, run in data["runs"].items():
        axes[-1].plot(x, run["jitter_visible"], "k--" if name == "plate" else "-", lw=1, label=name)
    axes[-1].set_ylabel("judge jitter, visible\npoints (px/frame^2)")
    axes[-1].set_xlabel("frame")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="NAME=PATTERN of a result sequence over the stretch (f.####.png)")
    ap.add_argument("--tracks", type=Path, required=True, help="the tracks file whose hands make the regions")
    ap.add_argument("--frames", default="56-231")
    ap.add_argument("--png", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    first, last = (int(v) for v in args.frames.split("-"))
    numbers = list(range(first, last + 1))
    plates = read_frames(fetch_media.fetch("pexels_clip", fetch_media.load_manifest()))
    results = {}
    for spec in args.results:
        name, pattern = spec.split("=", 1)
        results[name] = [cv2.cvtColor(cv2.imread(pattern.replace("####", f"{n:04d}")), cv2.COLOR_BGR2RGB)
                         for n in numbers]
    data = measure(plates, results, ShotAnalysis.load(args.tracks), numbers)
    report(data)
    if args.json:
        args.json.write_text(json.dumps(data))
    if args.png:
        plot(data, args.png)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
