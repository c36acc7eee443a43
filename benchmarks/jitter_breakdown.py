"""Where a swap's landmark jitter comes from: the eval's judge (2d106) on plate and result, per landmark group and per
frame, against how the result's picture actually moves relative to the plate's (optical flow).

    python benchmarks/jitter_breakdown.py RESULT PLATE [--frames 0-71] [--plot out.png]

Printed: the jitter ratio (result / plate, as `vidswap eval` computes it) over all 106 points and per group (jaw,
eyes, brows, mouth, nose); the same with the result's points read from the plate's detector box (the judge's box
noise); the frames that add most to the excess (squared per-frame jitter, result - plate); and the RMS acceleration
of the result relative to the plate twice: from the judge's points and from the pictures' own optical flow at the
plate's points (DIS, the eval's flow). When the second is far below the first the result moves with the plate and
the excess is the judge's reading of the swapped face.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from vidswap.eval.frame_metrics import dis_flow, landmark_acceleration
from vidswap.eval.pairing import pair_frames
from vidswap.eval.report import Judges, _iou
from vidswap.faces.smooth_measures import jitter
from vidswap.io.media import probe
from vidswap.io.readers import read_frames

GROUPS = {"all": list(range(106)), "jaw": list(range(0, 33)), "eyes": list(range(33, 43)) + list(range(87, 97)),
          "brows": list(range(43, 52)) + list(range(97, 106)), "mouth": list(range(52, 72)),
          "nose": list(range(72, 87))}


def judge_tracks(result, target, frames):
    """(T, 106, 2) x3: plate points, result points (own box), result points from the plate's box; and (T, 106, 2)
    flow residual (result flow - plate flow at the plate's points, NaN where unknown)."""
    import cv2

    rinfo, tinfo = probe(result), probe(target)
    rnums, tnums = pair_frames(rinfo.frame_numbers, tinfo.frame_numbers, frames)
    judges = Judges((tinfo.width, tinfo.height), 2)
    nan = np.full((106, 2), np.nan)
    lt, lr, lrb, res = [], [], [], []
    prev = None
    with read_frames(tinfo, tnums) as tf, read_frames(rinfo, rnums) as rf:
        for ft, fr in zip(tf, rf):
            it, ir = ft.image, fr.image
            dt, dr = judges.detector([it, ir])
            t = max(dt, key=lambda d: (d.area, d.score)) if dt else None
            pt = pr = prb = flow_res = nan
            if t is not None:
                best = max(((_iou(t.box, d.box), d) for d in dr), key=lambda x: x[0], default=(0.0, None))
                boxes = [t.box, t.box] + ([best[1].box] if best[0] >= 0.3 else [])
                pts = judges.landmarks([it, ir, ir], np.stack(boxes), list(range(len(boxes)))).astype(np.float64)
                pt, prb = pts[0], pts[1]
                pr = pts[2] if len(pts) > 2 else nan
                if prev is not None:
                    lo = np.maximum(np.floor(pt.min(0) - 20).astype(int), 0)
                    hi = np.minimum(np.ceil(pt.max(0) + 20).astype(int), [it.shape[1], it.shape[0]])
                    ys, xs = slice(lo[1], hi[1]), slice(lo[0], hi[0])
                    q = (pt - lo).astype(np.float32)[:, None, :]
                    sample = [np.stack([cv2.remap(f[..., c], q[..., 0], q[..., 1], cv2.INTER_LINEAR,
                                                  borderMode=cv2.BORDER_REPLICATE)[:, 0] for c in range(2)], 1)
                              for f in (dis_flow(prev[0][ys, xs], it[ys, xs]), dis_flow(prev[1][ys, xs], ir[ys, xs]))]
                    flow_res = sample[1] - sample[0]
            lt.append(pt), lr.append(pr), lrb.append(prb), res.append(flow_res)
            prev = (it, ir)
    return np.stack(lt), np.stack(lr), np.stack(lrb), np.stack(res)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("result")
    ap.add_argument("plate")
    ap.add_argument("--frames", help="plate frame range the result covers, e.g. 0-59")
    ap.add_argument("--plot", help="PNG: per-frame jitter of plate and result, per group")
    args = ap.parse_args()
    frames = None
    if args.frames:
        a, b = (int(v) for v in args.frames.split("-"))
        frames = range(a, b + 1)
    lt, lr, lrb, res = judge_tracks(args.result, args.plate, frames)
    print(f"{'group':6s} {'plate':>7s} {'result':>7s} {'ratio':>6s} {'plate-box ratio':>16s}")
    for name, idx in GROUPS.items():
        t, r, rb = jitter(lt[:, idx]), jitter(lr[:, idx]), jitter(lrb[:, idx])
        print(f"{name:6s} {t:7.3f} {r:7.3f} {r / t:6.3f} {rb / t:16.3f}")
    at, ar = landmark_acceleration(lt), landmark_acceleration(lr)
    excess = ar ** 2 - at ** 2
    top = np.argsort(-np.nan_to_num(excess, nan=-np.inf))[:8]
    print("excess (sum of squared per-frame jitter, result - plate): %.2f of the plate's %.2f; top frames: %s" % (
        np.nansum(excess), np.nansum(at ** 2), ", ".join(f"{int(i)}: {excess[i]:.2f}" for i in top)))
    rel = lr - lt
    judge_rel = np.sqrt(np.nanmean((rel[2:] - 2 * rel[1:-1] + rel[:-2]) ** 2) * 2)
    flow_rel = np.sqrt(np.nanmean((res[2:] - res[1:-1]) ** 2) * 2)
    print(f"result vs plate acceleration (px/frame^2, RMS 2D): judge {judge_rel:.3f}, pictures' flow {flow_rel:.3f}")
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axs = plt.subplots(len(GROUPS), 1, figsize=(10, 2.2 * len(GROUPS)), sharex=True)
        for ax, (name, idx) in zip(axs, GROUPS.items()):
            ax.plot(landmark_acceleration(lt[:, idx]), "k-", lw=2, label="plate")
            ax.plot(landmark_acceleration(lr[:, idx]), label="result")
            ax.set_title(name)
            ax.set_ylabel("px/frame²")
            ax.grid(alpha=0.3)
        axs[0].legend()
        axs[-1].set_xlabel("frame (position in the range)")
        fig.tight_layout()
        fig.savefig(args.plot, dpi=70)
    return 0


if __name__ == "__main__":
    sys.exit(main())
