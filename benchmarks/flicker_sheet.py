"""Per-frame flicker pictures of the face: each frame next to its motion-compensated change, plate and results.

    python benchmarks/flicker_sheet.py --tracks TRACKS.npz --frames 94,98,130 --out sheet.jpg \
        main=out_main/f.####.png branch=out_branch/f.####.png [--clip pexels_clip] [--gain 8]

For each frame n the face's box (the first track's smoothed landmarks, 10 px margin) is cut from the plate and from
every result; next to each cut, ``vidswap eval``'s flicker picture: |frame n - frame n-1 moved by the *plate's* DIS
flow| (mean over the channels, times ``--gain``, white = change the plate's motion does not explain). A result
that flickers more than the plate shows light where the plate's own picture is dark. Written as JPEG (quality 88).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
sys.path.insert(0, str(ROOT / "tests"))

import fetch_media  # noqa: E402
from media_helpers import read_frames  # noqa: E402

from vidswap.eval import frame_metrics as FM  # noqa: E402
from vidswap.faces.tracksfile import ShotAnalysis  # noqa: E402

ROW = 200  # picture height of a row


def change_picture(prev: np.ndarray, cur: np.ndarray, flow: np.ndarray, gain: float) -> np.ndarray:
    """(h, w, 3) uint8: |cur - prev moved by flow| (channel mean) x gain, grey, clipped."""
    moved = FM.warp_with_flow(prev, flow).astype(np.float32)
    level = np.abs(cur.astype(np.float32) - moved).mean(2) * gain
    return np.repeat(np.clip(level, 0, 255).astype(np.uint8)[..., None], 3, 2)


def sheet_row(n: int, plates: list[np.ndarray], results: dict[str, str], box: tuple[slice, slice],
              gain: float) -> np.ndarray:
    """One frame: plate, its change, then every result and its change, at ROW px high, labelled."""
    ys, xs = box
    flow = FM.dis_flow(plates[n - 1][ys, xs], plates[n][ys, xs])
    cells = [plates[n][ys, xs], change_picture(plates[n - 1][ys, xs], plates[n][ys, xs], flow, gain)]
    for pattern in results.values():
        cur, prev = (cv2.cvtColor(cv2.imread(pattern.replace("####", f"{m:04d}")), cv2.COLOR_BGR2RGB)
                     for m in (n, n - 1))
        cells += [cur[ys, xs], change_picture(prev[ys, xs], cur[ys, xs], flow, gain)]
    scale = ROW / cells[0].shape[0]
    cells = [cv2.resize(c, (round(c.shape[1] * scale), ROW), interpolation=cv2.INTER_AREA) for c in cells]
    for k, name in enumerate(["plate", *results]):
        cv2.putText(cells[2 * k], f"{name} {n}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1)
    return np.concatenate(cells, 1)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", nargs="+", help="NAME=PATTERN of a result sequence (f.####.png, plate numbering)")
    ap.add_argument("--tracks", type=Path, required=True, help="the analysis whose first track gives the face box")
    ap.add_argument("--frames", required=True, help="comma-separated frame numbers (each needs frame n-1)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--clip", default="pexels_clip")
    ap.add_argument("--gain", type=float, default=8.0)
    args = ap.parse_args()
    results = dict(spec.split("=", 1) for spec in args.results)
    track = ShotAnalysis.load(args.tracks).tracks[0]
    plates = read_frames(fetch_media.fetch(args.clip, fetch_media.load_manifest()))
    rows = []
    for n in (int(v) for v in args.frames.split(",")):
        row = np.flatnonzero(track.frames == n)
        if not len(row) or n < 1:
            raise SystemExit(f"frame {n} is not in the track (or has no previous frame)")
        lm = track.smoothed[row[0], :, :2]
        (x0, y0), (x1, y1) = np.floor(lm.min(0)).astype(int) - 10, np.ceil(lm.max(0)).astype(int) + 10
        h, w = plates[n].shape[:2]
        rows.append(sheet_row(n, plates, results, (slice(max(y0, 0), min(y1, h)), slice(max(x0, 0), min(x1, w))),
                              args.gain))
    width = max(r.shape[1] for r in rows)
    picture = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print("written", args.out, picture.shape)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
