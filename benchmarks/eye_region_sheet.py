"""Zoomed eye-region sheet: plate | result(s), with the eval judge's eye and brow points and its eye ratios.

    python benchmarks/eye_region_sheet.py OUT.png PLATE RESULT [RESULT ...] --frames 10,26,39,57
        [--first 0] [--labels relit variant]

For every listed frame (numbered from the result's first frame; the plate is read from ``--first`` on, as
``vidswap run --frames`` cut it), the eval's judges (``vidswap eval``: YuNet box on the plate, InsightFace
2d106 points) are run on the plate and on each result with the plate's box, and a crop around the brows and
eyes is drawn 4-5x zoomed: eye points green, brow points magenta, and the judge's eye aspect ratio (image-left,
image-right) printed per cell. It shows what the eval's eye-opening error measures: where the judge puts the
lids on the result against where the plate's lids are.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import cv2
import numpy as np

from vidswap.eval import judges as J
from vidswap.eval.metrics import eye_aspect_ratio
from vidswap.eval.report import Judges

EYE_POINTS = list(J.LEFT_EYE_UPPER + J.LEFT_EYE_LOWER + J.LEFT_EYE_CORNERS + J.RIGHT_EYE_UPPER
                  + J.RIGHT_EYE_LOWER + J.RIGHT_EYE_CORNERS)


def read(path: Path, wanted: list[int], offset: int) -> dict[int, np.ndarray]:
    """Frames ``offset + n`` for n in ``wanted`` of a video, RGB (as the eval reads them), keyed by n."""
    out: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i - offset in wanted:
                out[i - offset] = frame.to_ndarray(format="rgb24")
            if i - offset >= max(wanted):
                break
    return out


def cell(img: np.ndarray, pts: np.ndarray, box: tuple[int, int, int, int], label: str, width: int = 480
         ) -> np.ndarray:
    x0, y0, x1, y1 = box
    s = width / (x1 - x0)
    out = cv2.resize(cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_RGB2BGR), None, fx=s, fy=s, interpolation=cv2.INTER_CUBIC)
    for idx, colour in ((EYE_POINTS, (0, 255, 0)), (J.BROWS, (255, 0, 255))):
        for i in idx:
            cv2.circle(out, (int((pts[i, 0] - x0) * s), int((pts[i, 1] - y0) * s)), 3, colour, -1)
    ear = eye_aspect_ratio(pts)
    text = f"{label} eye ratio {ear[0]:.2f} {ear[1]:.2f}"
    cv2.putText(out, text, (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(out, text, (4, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 255, 255), 1, cv2.LINE_AA)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("plate", type=Path)
    ap.add_argument("results", type=Path, nargs="+")
    ap.add_argument("--frames", required=True, help="comma-separated frame numbers (of the result)")
    ap.add_argument("--first", type=int, default=0, help="the plate frame of the result's frame 0")
    ap.add_argument("--labels", nargs="*", default=None)
    args = ap.parse_args()
    frames = [int(v) for v in args.frames.split(",")]
    labels = ["plate"] + (args.labels or [p.stem for p in args.results])
    videos = [read(args.plate, frames, args.first)] + [read(p, frames, 0) for p in args.results]
    judges = Judges()
    rows = []
    for n in frames:
        images = [v[n] for v in videos]
        dets = judges.detector([images[0]])[0]
        if not dets:
            print(f"frame {n}: no face on the plate", file=sys.stderr)
            continue
        face = max(dets, key=lambda d: d.area)
        pts = judges.landmarks(images, np.stack([face.box] * len(images)), list(range(len(images))))
        p = pts[0]
        brows = p[list(J.BROWS)]
        eyes = p[EYE_POINTS]
        box = (int(brows[:, 0].min() - 10), int(brows[:, 1].min() - 8), int(brows[:, 0].max() + 10),
               int(eyes[:, 1].max() + 12))
        cells = [cell(img, q, box, f"{n} {lab}") for img, q, lab in zip(images, pts, labels)]
        rows.append(np.concatenate(cells, 1))
    h = min(r.shape[0] for r in rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), np.concatenate([r[:h] for r in rows], 0),
                [cv2.IMWRITE_JPEG_QUALITY, 88] if args.out.suffix.lower() in (".jpg", ".jpeg") else [])
    print("written", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
