"""Where along the boundary a swap's seam ratio comes from, and whether it is tone or detail.

    python benchmarks/seam_sectors.py OUT.json eval RESULT --target PLATE -s SOURCE [--frames A-B] -o DIR -q

Runs `vidswap eval` (the arguments after OUT.json are its command line) with the eval's own seam measure
(`frame_metrics.seam_ratio` on the changed region's boundary ring) wrapped: on every frame the ring is split into
four sectors around the changed region's centre (image right side, jaw (down), image left side, forehead (up);
90 degrees each) and the result is split into the plate plus the low band of the difference (Gaussian, sigma 0.03
of the face size: "tone") or plus the rest ("detail"). Printed and written to OUT.json: the gradient ratio result /
plate pooled over the clip for the whole ring, its inner and outer halves, each sector, each of those for tone and
detail alone, and each sector's share of the excess gradient (result - plate) over the whole ring.
"""

from __future__ import annotations

import json
import sys

import cv2
import numpy as np

import vidswap.eval.frame_metrics as FM
import vidswap.eval.report as report
from vidswap.eval.metrics import face_size

SECTORS = (("right_side", -45.0), ("jaw", 45.0), ("left_side", 135.0), ("forehead", 225.0))  # start, 90 deg each


def sector_sums(result: np.ndarray, target: np.ndarray, mask: np.ndarray, width: int) -> dict[str, list[float]]:
    """Per-frame sums of the result's and plate's gradient magnitudes over the ring's parts: {key: [result, plate]}."""
    m = FM._mask(mask)
    ring = FM.boundary_ring(m, width)
    ys, xs = np.nonzero(m)
    yy, xx = np.mgrid[:m.shape[0], :m.shape[1]]
    angle = (np.degrees(np.arctan2(yy - ys.mean(), xx - xs.mean())) + 360.0) % 360.0  # 90 = down
    r, t = FM._as_float(result), FM._as_float(target)
    low = cv2.GaussianBlur(r - t, (0, 0), max(1.0, 0.03 * face_size(m)))
    g = {"": FM.gradient_magnitude(r), "_tone": FM.gradient_magnitude(t + low),
         "_detail": FM.gradient_magnitude(r - low)}
    g_t = FM.gradient_magnitude(t)
    parts = {"all": ring, "inner": ring & m, "outer": ring & ~m}
    parts.update({name: ring & (((angle - start) % 360.0) < 90.0) for name, start in SECTORS})
    out = {}
    for name, sel in parts.items():
        for suffix, grad in g.items():
            if suffix and name in ("inner", "outer"):
                continue
            out[name + suffix] = [float(grad[sel].sum()), float(g_t[sel].sum())]
    return out


def main(argv: list[str]) -> int:
    out_json, args = argv[0], argv[1:]
    totals: dict[str, list[float]] = {}
    measure = FM.seam_ratio

    def wrapped(result, target, mask, width=None):
        value = measure(result, target, mask, width)
        if FM._mask(mask).any() and width is not None:
            for key, (a, b) in sector_sums(result, target, mask, width).items():
                acc = totals.setdefault(key, [0.0, 0.0])
                acc[0] += a
                acc[1] += b
        return value

    report.FM.seam_ratio = wrapped
    from vidswap.cli import main as cli

    try:
        cli(args, standalone_mode=False)
    finally:
        res = {k: a / b for k, (a, b) in totals.items() if b > 0}
        excess = totals["all"][0] - totals["all"][1] if "all" in totals else 0.0
        for name, _ in SECTORS:
            if name in totals and excess:
                res[name + "_excess_share"] = (totals[name][0] - totals[name][1]) / excess
        with open(out_json, "w") as f:
            json.dump(res, f, indent=1)
        print("| part | result / plate |\n|---|---|")
        for key, value in res.items():
            print(f"| {key} | {value:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
