"""Per-frame picture of a swap's temporal behaviour against the plate, for several runs of the same shot.

    python benchmarks/plot_temporal.py --clip pexels_clip --frames 0-59 \\
        --run before=WORK_BEFORE/pexels_clip_grace_hopper_relit --run after=WORK_AFTER/pexels_clip_grace_hopper_relit \\
        --out benchmarks/figures/temporal_pexels_clip_grace_hopper.png

A run is the stem of `bench_relit.py`'s (or any) outputs: ``STEM.vidswap/tracks.npz`` (the job's analysis) and
``STEM_eval/metrics.json`` (`vidswap eval` of the result). Panels, one column per frame:

1. the head's speed on the plate (the analysed landmarks' mean step) and, per run, how far its smoothed landmarks
   move otherwise than the plate's optical flow (:func:`vidswap.eval.frame_metrics.flow_miss`: the swap is
   drawn on them, so this is how far it slides against the plate's face);
2. flicker per frame (`vidswap eval`: motion-compensated change in the face, 8-bit levels), plate and runs;
3. landmark jitter per frame (the judge's 106 points, px/frame^2), plate and runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

import fetch_media  # noqa: E402

from vidswap.eval.frame_metrics import flow_miss  # noqa: E402
from vidswap.faces.tracksfile import ShotAnalysis  # noqa: E402
from vidswap.io import probe, read_frames  # noqa: E402


def series(values) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def run_curves(stem: Path, images: dict[int, np.ndarray]) -> dict:
    track = max(ShotAnalysis.load(Path(f"{stem}.vidswap") / "tracks.npz").tracks, key=lambda t: len(t.frames))
    frames = [int(n) for n in track.frames if int(n) in images]
    miss, speed = {}, {}
    for a, b in zip(frames, frames[1:]):
        i, j = track.index_of(a), track.index_of(b)
        p0, p1 = track.smoothed[i, :468, :2], track.smoothed[j, :468, :2]
        miss[b] = flow_miss(images[a], images[b], p0, p1)
        speed[b] = float(np.linalg.norm(track.raw[j, :468, :2] - track.raw[i, :468, :2], axis=1).mean())
    pf = json.loads((Path(f"{stem}_eval") / "metrics.json").read_text())["per_frame"]
    return {"miss": miss, "speed": speed, "number": pf["number"],
            "flicker_result": series(pf["flicker_result"]), "flicker_target": series(pf["flicker_target"]),
            "jitter_result": series(pf["jitter_result"]), "jitter_target": series(pf["jitter_target"])}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default="pexels_clip")
    ap.add_argument("--frames", default="0-59", help="FIRST-LAST of the plate the runs rendered")
    ap.add_argument("--run", action="append", required=True, help="LABEL=STEM (repeatable)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    first, last = (int(x) for x in args.frames.split("-"))
    with read_frames(probe(fetch_media.fetch(args.clip, fetch_media.load_manifest())), range(first, last + 1)) as fr:
        images = {int(f.number): f.image for f in fr}
    runs = {label: run_curves(Path(stem), images) for label, stem in (r.split("=", 1) for r in args.run)}

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(11, 8.5), sharex=True)
    ref = next(iter(runs.values()))
    xs = sorted(ref["speed"])
    axes[0].plot(xs, [ref["speed"][x] for x in xs], color="0.6", lw=2, label="head speed on the plate (px/frame)")
    for label, r in runs.items():
        xm = sorted(r["miss"])
        axes[0].plot(xm, [r["miss"][x] for x in xm], marker=".", label=f"{label}: landmarks' miss vs the plate's flow")
    axes[0].set_ylabel("px / frame")
    axes[0].set_title("What the swap is drawn on: smoothed landmarks' motion against the plate's optical flow")
    n = ref["number"]
    axes[1].plot(n, ref["flicker_target"], color="k", lw=2, label="plate")
    axes[2].plot(n, ref["jitter_target"], color="k", lw=2, label="plate")
    for label, r in runs.items():
        ratio = np.nansum(r["flicker_result"]) / np.nansum(r["flicker_target"])
        axes[1].plot(r["number"], r["flicker_result"], marker=".", label=f"{label} (x{ratio:.3f} the plate)")
        ok = np.isfinite(r["jitter_result"]) & np.isfinite(r["jitter_target"])
        jr = np.sqrt(np.mean(r["jitter_result"][ok] ** 2) / np.mean(r["jitter_target"][ok] ** 2))
        axes[2].plot(r["number"], r["jitter_result"], marker=".", label=f"{label} (x{jr:.3f})")
    axes[1].set_ylabel("8-bit levels")
    axes[1].set_title("Flicker: |frame - motion-compensated previous| in the face (vidswap eval)")
    axes[2].set_ylabel("px / frame²")
    axes[2].set_title("Landmark jitter of the judge's 106 points")
    axes[2].set_xlabel("frame")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    if args.title:
        fig.suptitle(args.title, fontsize=10)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
