"""Which part of the face the eval's eye-opening judge reads: the plate pasted into the result, one region at a time.

    python benchmarks/eye_judge_regions.py PLATE RESULT --frames 5,20,30,39,45,59 [--first 0]

For each frame (numbered from the result's first frame; the plate is read from ``--first`` on), the eval's judges
(YuNet box, InsightFace 2d106 points, RGB as the eval reads frames) give the eye aspect ratio (mean of both eyes) of
the plate, of the result, and of the result with the plate's pixels pasted (feathered, sigma 2 px) into one region
at a time, all placed from the plate's judge points: ``ellN`` an ellipse around each eye (N x the eye's half-width
across, 0.6 N down); ``above`` the band from the eye's centre up to above the brows, ``below`` the band under the
eye, 1.6 half-widths either side; ``brows`` the judge's brow points' hulls grown 3 px; ``above-brows`` the band
above without the brows. Printed per frame, then the mean |ratio - plate's| per variant: a region whose paste
brings the error down is where the judge reads the result's eye opening from (issue 12, eyes-s12). The same for
the lid reader (``eye_lid_reader.py``, the iris model's lid points on crops at the 2d106 eye corners): a
valid eye-opening reader moves with the ``ell1.3`` paste (the opening and the lids), not with ``brows``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from vidswap.eval import judges as J
from vidswap.eval.metrics import eye_aspect_ratio
from vidswap.eval.report import Judges

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eye_lid_reader import EyeLidJudge  # noqa: E402 - the lid reader checked against the judge
from eye_region_sheet import read  # noqa: E402 - the same frames, RGB as the eval reads them

EYES = ((J.LEFT_EYE_CORNERS, J.LEFT_EYE_UPPER, J.LEFT_EYE_LOWER, range(43, 52)),
        (J.RIGHT_EYE_CORNERS, J.RIGHT_EYE_UPPER, J.RIGHT_EYE_LOWER, range(97, 106)))
VARIANTS = ("ell1.3", "ell2.5", "ell4", "above", "below", "brows", "above-brows")


def regions(pt: np.ndarray, shape: tuple[int, int]) -> dict[str, np.ndarray]:
    """(H, W) float masks of the variants from the plate's 106 judge points."""
    H, W = shape
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    out = {v: np.zeros((H, W), np.float32) for v in VARIANTS}
    for corners, upper, lower, brow in EYES:
        c = pt[list(corners)]
        cx, cy = pt[list(corners + upper + lower)].mean(0)
        hw = float(np.linalg.norm(c[0] - c[1])) / 2
        for f, name in ((1.3, "ell1.3"), (2.5, "ell2.5"), (4.0, "ell4")):
            inside = ((xx - cx) / (f * hw)) ** 2 + ((yy - cy) / (0.6 * f * hw)) ** 2 <= 1
            out[name] = np.maximum(out[name], inside.astype(np.float32))
        b = pt[list(brow)]
        near = np.abs(xx - cx) <= 1.6 * hw
        out["above"] = np.maximum(out["above"], (near & (yy >= b[:, 1].min() - 0.3 * hw) & (yy <= cy)).astype(np.float32))
        out["below"] = np.maximum(out["below"], (near & (yy > cy) & (yy <= cy + 1.3 * hw)).astype(np.float32))
        cv2.fillConvexPoly(out["brows"], cv2.convexHull(b.astype(np.int32)), 1.0)
    out["brows"] = cv2.dilate(out["brows"], np.ones((7, 7), np.uint8))
    out["above-brows"] = np.clip(out["above"] - out["brows"], 0.0, 1.0)
    return {k: cv2.GaussianBlur(v, (0, 0), 2.0) for k, v in out.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("plate", type=Path)
    ap.add_argument("result", type=Path)
    ap.add_argument("--frames", required=True, help="comma-separated frame numbers (of the result)")
    ap.add_argument("--first", type=int, default=0, help="the plate frame of the result's frame 0")
    args = ap.parse_args()
    frames = [int(v) for v in args.frames.split(",")]
    plate, result = read(args.plate, frames, args.first), read(args.result, frames, 0)
    judges = Judges()
    lids = EyeLidJudge.load()
    print("frame reader plate result " + " ".join(VARIANTS))
    err = np.zeros(len(VARIANTS) + 1)
    err_lids = np.zeros(len(VARIANTS) + 1)
    for n in frames:
        p, r = plate[n], result[n]
        face = max(judges.detector([p])[0], key=lambda d: d.area)
        pt = judges.landmarks([p], np.stack([face.box]), [0])[0]
        masks = regions(pt, p.shape[:2])
        images = [p, r] + [(r * (1 - masks[v][..., None]) + p * masks[v][..., None]).round().astype(np.uint8)
                           for v in VARIANTS]
        boxes = [face.box] + [max(judges.detector([im])[0], key=lambda d: d.area).box for im in images[1:]]
        pts = judges.landmarks(images, np.stack(boxes), list(range(len(images))))
        ratio = np.array([eye_aspect_ratio(q).mean() for q in pts])
        err += np.abs(ratio[1:] - ratio[0])
        lid = lids(images, pts, list(range(len(images)))).mean(1)
        err_lids += np.abs(lid[1:] - lid[0])
        print(n, "2d106", " ".join(f"{v:.3f}" for v in ratio), flush=True)
        print(n, "lids ", " ".join(f"{v:.3f}" for v in lid), flush=True)
    print("mean |err| 2d106", " ".join(f"{e / len(frames):.3f}" for e in err))
    print("mean |err| lids ", " ".join(f"{e / len(frames):.3f}" for e in err_lids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
