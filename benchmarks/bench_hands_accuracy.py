"""The hand matte's accuracy on the 16 hand-annotated frames, for variants of the render's hand mask settings.

    python benchmarks/bench_hands_accuracy.py [--variants NAME=field:value,field:value ...] [--maps DIR]

The measures of ``tests/test_occlusion_hands.py`` (the same analysis: the sample clip's occluded stretch, every
frame of 56-230 by default, as a real run; the same render): hand pixels inside the face untouched (within 2 code
values of the plate; target >= 95%) and visible face pixels the swap changes (> 8 without the hand mask) but the
matte leaves as the plate (within 2), as a share of every visible face pixel (target <= 3%; also printed: of the
visible pixels the swap changes, the test's share before lead s40), both leaving out a 3-px band around the drawn
outline. The
render without hands is done once; each variant renders the 16 frames with its
:class:`~vidswap.hands.mask.HandMaskParams` (fields of ``HandMaskParams`` or, prefixed ``colour.``, of its
``ColourSplitParams``). Per frame the two counts, so the frames that carry the misses are seen; ``--maps`` writes
per frame the plate with the missed hand pixels in red and the wrongly kept face pixels in blue. ``--analysis`` sets
the hand tracker's settings for the analysis.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
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
from test_occlusion_hands import annotations, cached_job, face_oval_mask, frame_masks  # noqa: E402

from vidswap.config import load_config  # noqa: E402
from vidswap.io import probe, read_frames  # noqa: E402
from vidswap.pipeline import StageTimer, build_render  # noqa: E402


def variant(base, spec: str):
    """``base`` HandMaskParams with ``field:value,...`` replaced (``colour.field`` for the colour split's; a value
    may be a tuple in parentheses, e.g. ``finger_radius:(0.2,0.2,0.2,0.2,0.2)``)."""
    hands, colour = {}, {}
    for item in filter(None, re.split(r",(?![^()]*\))", spec)):
        key, value = item.split(":", 1)
        value = ast.literal_eval(value)
        if key.startswith("colour."):
            colour[key[7:]] = value
        else:
            hands[key] = value
    if colour:
        hands["colour"] = replace(base.colour, **colour)
    return replace(base, **hands)


def measure(ann, analysis, plates, on, off, maps: Path | None = None, name: str = "") -> dict:
    """The two measures over the annotated frames, and per frame (number -> (missed hand px, hand px, wrongly kept
    face px, visible face px))."""
    track = analysis.tracks[0]
    per = {}
    for n, polys in ann.items():
        m = frame_masks(polys, face_oval_mask(track, n, plates[n].shape[:2]), plates[n], on[n], off[n])
        occluder, visible, kept, swapped = m["occluder"], m["visible"], m["kept"], m["swapped"]
        per[n] = (int((occluder & ~kept).sum()), int(occluder.sum()), int((visible & swapped & kept).sum()),
                  int(visible.sum()), int((visible & swapped).sum()))
        if maps is not None:
            im = plates[n].copy()
            im[occluder & ~kept] = (255, 0, 0)
            im[visible & swapped & kept] = (0, 80, 255)
            maps.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(maps / f"{name}_{n:04d}.png"), cv2.cvtColor(im[60:360, 200:520], cv2.COLOR_RGB2BGR))
    t = np.asarray(list(per.values()), np.float64).sum(0)
    return {"untouched_pct": 100 * (1 - t[0] / t[1]), "unswapped_pct": 100 * t[2] / t[3],
            "unswapped_of_changed_pct": 100 * t[2] / t[4], "per_frame": per}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variants", nargs="*", default=[], help="NAME=field:value,field:value (HandMaskParams)")
    ap.add_argument("--maps", type=Path, default=None, help="write per-frame error maps here")
    ap.add_argument("--analysis", default="", help="field:value,...: the hand tracker's HandParams for the analysis "
                    "(the code defaults otherwise; in the analysis cache key like them)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_hands_accuracy"))
    ap.add_argument("--every", type=int, default=1, help="analyse every N-th frame of 56-230 (1: every frame, "
                    "as a full run and the test do; 2: every other frame, the test's before lead s15)")
    args = ap.parse_args()
    manifest = fetch_media.load_manifest()
    clip, source = fetch_media.fetch("pexels_clip", manifest), fetch_media.fetch("grace_hopper", manifest)
    ann = annotations()
    if args.analysis:
        import functools

        import vidswap.faces.analyze as analyze
        from vidswap.hands.track import HandParams
        analyze.HandParams = functools.partial(HandParams, **{k: ast.literal_eval(v) for k, v in (
            f.split(":", 1) for f in args.analysis.split(","))})
    cfg = load_config(overrides={"input": str(clip), "sources": [str(source)], "frames": f"56-230x{args.every}",
                                 "output": {"path": str(args.out / "out.####.png")}})
    plan, cache = cached_job(cfg, f"hands_pexels_56-230x{args.every}.npz")
    setup = build_render(cfg, plan, StageTimer(), None, [])
    numbers = sorted(ann)
    with read_frames(probe(clip), range(numbers[0], numbers[-1] + 1, args.every)) as stream:
        frames = [f for f in stream if f.number in ann]
    stage = setup.stage
    base = stage.params.hands
    plates = {f.number: f.image for f in frames}
    stage.params = replace(stage.params, hands=None)
    off = {f.number: f.image for f in stage(list(frames))}
    results = {}
    for spec in ["default=", *args.variants]:
        name, fields = spec.split("=", 1)
        stage.params = replace(stage.params, hands=variant(base, fields))
        t0 = time.perf_counter()
        on = {f.number: f.image for f in stage(list(frames))}
        r = measure(ann, setup.analysis, plates, on, off, args.maps, name)
        r["render_s"] = time.perf_counter() - t0
        results[name] = r
        print(f"{name:24s} untouched {r['untouched_pct']:.2f}%  unswapped {r['unswapped_pct']:.2f}% "
              f"({r['unswapped_of_changed_pct']:.2f}% of the changed)  "
              + " ".join(f"{n}:{a}/{c}" for n, (a, b, c, d, e) in sorted(r["per_frame"].items())))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.json").write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
