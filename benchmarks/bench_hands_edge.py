"""A hand raised from below the frame's edge: the sample clip's occluded stretch with the bottom rows cut off, where
the hand's palm and wrist are outside the picture (frames 79-153: about half the hand below the cut).

    python benchmarks/bench_hands_edge.py [--cut 300] [--figure benchmarks/figures/pexels_clip_hands_edge.png]

The analyze pass (faces, hands: palm detection, pose near the faces, the landmarker) runs over frames 56-231 of the
cut clip twice, on the same batches of 8 frames, alternating which runs first: "before" with the tracker's former
behaviour (``HandParams(relock_frames=0, motion=MotionParams(bridge=0, coast=0))``),
"after" with the defaults but no flow hold (``flow_hold=0``), and "hold<T>" with the defaults and ``flow_hold=T``
(``--holds``), and "size<N>" with the defaults and ``flow_size=N`` (``--flow-sizes``). The reference hand is the one tracked on the uncut frames (defaults, no flow hold), drawn as the
landmark shape and cut like the frame. Reported per setting, on frames 79-153:

- frames with a hand mask;
- frames whose mask (the render's ``hand_matte``, swept, colour-decided; >= 0.5) covers at least half of the
  reference hand inside the face oval, and the median share covered;
- the share of the face oval away from the reference hand (beyond 7 px of it) under the mask (>= 0.5): mean and
  worst frame (a mask in the wrong place);
- on the hand-annotated frames among them (tests/data/hand_occluders.json, cut likewise; 3-px band left out):
  hand pixels inside the face under a full mask (>= 0.99: the plate is kept there) and visible face pixels under
  any mask (>= 0.01: wrongly kept as the plate). A matte-only proxy of the render measures of
  tests/test_occlusion_hands.py (the swap itself is not run on the cut clip);
- cost: the analyze pass (ms/frame, paired) and ``hand_matte`` per frame with a hand.

The figure: frames 80, 92, 100, 120, 150 of the cut clip, the mask overlaid in green and the face oval in yellow;
top row before, bottom row after.
"""

from __future__ import annotations

import argparse
import ast
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

from vidswap.faces.analyze import AnalysisConfig, AnalysisModels, FrameAnalyzer, SmoothingConfig  # noqa: E402
from vidswap.faces.topology import load_topology  # noqa: E402
from vidswap.hands.mask import hand_matte, rasterize_hands  # noqa: E402
from vidswap.hands.motion import MotionParams  # noqa: E402
from vidswap.hands.track import HandParams  # noqa: E402

STRETCH = range(56, 232)
EDGE = range(79, 154)
SHOWN = (80, 92, 100, 120, 150)
BEFORE = HandParams(relock_frames=0, motion=MotionParams(bridge=0, coast=0))


def analyze(models, frames: dict[int, np.ndarray], settings: dict[str, HandParams]) -> tuple[dict, dict]:
    """Per setting the whole-shot analysis of ``frames`` and the analyze pass's seconds per frame, the settings run
    batch by batch in alternating order."""
    cfg = AnalysisConfig()
    runs = {}
    for name, params in settings.items():
        an = FrameAnalyzer(models, cfg)
        an._hands.params = params
        runs[name] = an
    seconds = {name: 0.0 for name in settings}
    numbers = sorted(frames)
    for s in range(0, len(numbers), 8):
        batch = numbers[s:s + 8]
        order = list(runs.items()) if (s // 8) % 2 == 0 else list(runs.items())[::-1]
        for name, an in order:
            t0 = time.perf_counter()
            an.push(batch, [frames[n] for n in batch])
            seconds[name] += time.perf_counter() - t0
    out = {name: an.finish(25.0, SmoothingConfig(), {}) for name, an in runs.items()}
    return out, {name: 1000 * t / len(numbers) for name, t in seconds.items()}


def fill(polys, shape) -> np.ndarray:
    m = np.zeros(shape, np.uint8)
    cv2.fillPoly(m, [np.round(np.asarray(p) * 16).astype(np.int32) for p in polys], 1, cv2.LINE_8, 4)
    return m > 0


def measure(hands, reference, ovals: dict, cut: dict, ann: dict, sweep: float = 0.5) -> tuple[dict, dict]:
    """The measures of the module docstring for one setting; also the mattes of :data:`SHOWN`."""
    h, w = next(iter(cut.values())).shape[:2]
    kernel = np.ones((7, 7), np.uint8)
    cover, wrong, ms, shown = [], [], [], {}
    a_n = a_ok = v_n = v_bad = 0
    for n in EDGE:
        m = np.zeros((h, w), np.float32)
        if len(hands.at(n)):
            t0 = time.perf_counter()
            m = hand_matte(hands.swept(n, sweep), cut[n])
            ms.append(time.perf_counter() - t0)
        if n in SHOWN:
            shown[n] = m
        face = fill([ovals[n]], (h, w)) if n in ovals else np.zeros((h, w), bool)
        ref = (rasterize_hands(reference.at(n), h + 400, w)[:h] > 0.5) & face
        if ref.sum() > 200:
            cover.append(float((m[ref] >= 0.5).mean()))
        away = face & ~(cv2.dilate(ref.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0)
        if away.any():
            wrong.append((n, float((m[away] >= 0.5).mean())))
        if n in ann:
            drawn = fill(ann[n], (h, w)).astype(np.uint8)
            inner, outer = cv2.erode(drawn, kernel) > 0, cv2.dilate(drawn, kernel) > 0
            occ, vis = face & inner, face & ~outer
            a_n, a_ok = a_n + occ.sum(), a_ok + (m[occ] >= 0.99).sum()
            v_n, v_bad = v_n + vis.sum(), v_bad + (m[vis] >= 0.01).sum()
    cover = np.asarray(cover)
    return {"frames_with_mask": sum(len(hands.at(n)) > 0 for n in EDGE), "frames": len(EDGE),
            "covered_half": int((cover >= 0.5).sum()), "reference_frames": len(cover),
            "median_cover": float(np.median(cover)) if len(cover) else 0.0,
            "wrong_face_mean_pct": 100 * float(np.mean([v for _, v in wrong])),
            "wrong_face_max_pct": 100 * max(v for _, v in wrong),
            "wrong_face_max_at": max(wrong, key=lambda x: x[1])[0],
            "annotated": sorted(n for n in ann if n in EDGE),
            "hand_kept_pct": 100.0 * a_ok / max(a_n, 1), "face_touched_pct": 100.0 * v_bad / max(v_n, 1),
            "matte_ms": 1000 * float(np.mean(ms)) if ms else 0.0}, shown


def strip(cut: dict, ovals: dict, shown: dict[str, dict], out: Path) -> None:
    rows = []
    for name, mattes in shown.items():
        tiles = []
        for n in SHOWN:
            im = cut[n].astype(np.float32)
            m = mattes[n][..., None]
            im = im * (1 - 0.5 * m) + 0.5 * m * np.array([0, 255, 0], np.float32)
            if n in ovals:
                cv2.polylines(im, [np.round(ovals[n]).astype(np.int32)], True, (255, 255, 0), 1)
            im = np.clip(im, 0, 255).astype(np.uint8)
            cv2.putText(im, f"{name} {n}", (208, 64), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (255, 255, 255), 2)
            tiles.append(im[40:, 200:560])
        rows.append(np.concatenate(tiles, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(rows, 0), cv2.COLOR_RGB2BGR))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cut", type=int, default=300, help="rows kept from the top of each frame")
    ap.add_argument("--holds", default="0.35", help="flow_hold thresholds run as 'hold<T>' (comma separated)")
    ap.add_argument("--flow-sizes", default="",
                    help="flow_size values run as 'size<N>' (comma separated; the defaults otherwise; 0: the plate's "
                         "resolution)")
    ap.add_argument("--params", nargs="*", default=[],
                    help="NAME=field:value,field:value: HandParams settings run as NAME (the defaults otherwise)")
    ap.add_argument("--figure", type=Path, default=ROOT / "benchmarks" / "figures" / "pexels_clip_hands_edge.png")
    args = ap.parse_args()
    frames = read_frames(fetch_media.fetch("pexels_clip", fetch_media.load_manifest()), limit=STRETCH.stop)
    full = {n: frames[n] for n in STRETCH}
    cut = {n: np.ascontiguousarray(frames[n][:args.cut]) for n in STRETCH}
    ann = {int(n): e["polygons"] for n, e in json.loads((ROOT / "tests" / "data" / "hand_occluders.json")
                                                        .read_text())["clips"]["pexels_clip"]["frames"].items()}
    models = AnalysisModels.load(AnalysisConfig(), 2)
    ref, _ = analyze(models, full, {"after": HandParams(flow_hold=0)})
    settings = {"before": BEFORE, "after": HandParams(flow_hold=0)}
    settings.update({f"hold{t}": HandParams(flow_hold=float(t)) for t in args.holds.split(",") if t})
    settings.update({f"size{n}": HandParams(flow_size=int(n)) for n in args.flow_sizes.split(",") if n})
    for spec in args.params:
        name, fields = spec.split("=", 1)
        settings[name] = HandParams(**{k: ast.literal_eval(v) for k, v in (f.split(":", 1) for f in fields.split(",")
                                                                          if f)})
    runs, ms = analyze(models, cut, settings)
    track = ref["after"].tracks[0]
    oval = np.asarray(load_topology().regions["face_oval"])
    ovals = {n: track.smoothed[track.index_of(n)][oval, :2] for n in STRETCH if track.index_of(n) is not None}
    shown = {}
    for name, analysis in runs.items():
        result, shown[name] = measure(analysis.hands, ref["after"].hands, ovals, cut, ann)
        result["analyze_ms"] = ms[name]
        print(name, json.dumps(result))
    strip(cut, ovals, shown, args.figure)
    print("figure", args.figure)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
