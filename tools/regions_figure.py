"""Per-region swap on a real clip: a figure (plate | full swap | eyes + brows only | mouth kept) and the numbers.

    python tools/regions_figure.py [--frames 0-11] [--out out/regions]

Runs ``vidswap run`` on the registry clip ``single_face_clip`` with the source ``grace_hopper`` three times
(``composite.regions``: all, ``[eyes, brows]``, ``[eyes, brows, nose, skin]``), lossless (FFV1), and measures per
frame, in the plate's own landmark regions (the analysis models on the original frame): the mean absolute change
against the plate inside the lips, inside the eye + brow contours, and the ArcFace cosine to the source; and the
region alpha's temporal jitter (:func:`alpha_jitter`). Writes ``regions.png`` (face crops of the middle frame) and
``regions.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

import fetch_media  # noqa: E402

from vidswap.composite.masks import region_mask  # noqa: E402
from vidswap.config import load_config  # noqa: E402
from vidswap.faces.analyze import AnalysisModels, analyze_image  # noqa: E402
from vidswap.faces.topology import load_topology  # noqa: E402
from PIL import Image  # noqa: E402

from vidswap.io import probe, read_frames, read_image  # noqa: E402

#: name -> composite.regions
VARIANTS = {"full": ["face"], "eyes_brows": ["eyes", "brows"], "mouth_kept": ["eyes", "brows", "nose", "skin"]}
AREAS = {"mouth": ("lips_outer",), "eyes_brows": ("left_eye", "right_eye", "left_brow", "right_brow")}


def decoded(path: Path) -> list[np.ndarray]:
    with read_frames(probe(path)) as frames:
        return [f.image for f in frames]


def swap(clip: Path, source: Path, regions: list[str], out: Path, frames: str, region_feather: float | None = None
         ) -> Path:
    """One lossless ``vidswap run`` with ``composite.regions`` (and ``region_feather``); returns the output video."""
    out.mkdir(parents=True, exist_ok=True)
    shot, video = out / "shot.yaml", out / "swapped.mkv"
    shot.write_text(json.dumps({"input": str(clip), "sources": [str(source)], "frames": frames,
                                "output": {"path": str(video), "codec": "ffv1"},
                                "composite": {"regions": regions, **({} if region_feather is None else
                                                                     {"region_feather": region_feather})}}))  # YAML
    proc = subprocess.run([sys.executable, "-m", "vidswap.cli", "run", "--config", str(shot), "-q"],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"vidswap run failed ({proc.returncode}): {proc.stderr}")
    return video


def area_masks(points: np.ndarray, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """(H, W) bool masks of the plate's own (ungrown) mouth and eye + brow contours from (478, 3) frame points."""
    loops = load_topology().regions
    lm = torch.from_numpy(np.asarray(points, np.float32))[None]
    out = {}
    for name, parts in AREAS.items():
        m = torch.zeros(1, 1, *size)
        for p in parts:
            m = torch.maximum(m, region_mask(lm, loops[p], size, antialias=False))
        out[name] = m[0, 0].numpy() > 0
    return out


def plate_areas(plates: list[np.ndarray], models: AnalysisModels) -> list[tuple[np.ndarray, dict]]:
    """Per plate frame: its face's ArcFace embedding and its :func:`area_masks`."""
    faces = [analyze_image(p, models)[0] for p in plates]
    return [(f.embedding, area_masks(f.landmarks.points, p.shape[:2])) for f, p in zip(faces, plates)]


def measure(plates: list[np.ndarray], results: dict[str, list[np.ndarray]], source_emb: np.ndarray,
            models: AnalysisModels, areas: list[tuple[np.ndarray, dict]] | None = None) -> dict:
    """Per variant: mean |result - plate| (0-1 units) in each area per frame, ArcFace cosine to the source per
    frame; ``plate`` is the unswapped frame's own cosine. ``areas``: :func:`plate_areas` (computed if None)."""
    rows: dict[str, dict[str, list[float]]] = {k: {"identity": [], **{a: [] for a in AREAS}}
                                              for k in ("plate", *results)}
    for i, (plate, (embedding, masks)) in enumerate(zip(plates, areas or plate_areas(plates, models))):
        scale = float(np.iinfo(plate.dtype).max) if plate.dtype.kind == "u" else 1.0
        rows["plate"]["identity"].append(float(embedding @ source_emb))
        for a in AREAS:
            rows["plate"][a].append(0.0)
        for name, frames in results.items():
            res = frames[i]
            diff = np.abs(res.astype(np.float64) - plate.astype(np.float64)).mean(-1) / scale
            for a, m in masks.items():
                rows[name][a].append(float(diff[m].mean()))
            rows[name]["identity"].append(float(analyze_image(res, models)[0].embedding @ source_emb))
    return rows


def alpha_jitter(tracks: Path, names: list[str], size: tuple[int, int]) -> dict[str, float]:
    """Temporal jitter of the region alpha in plate pixels, from the job's tracks file: mean over frames of
    ``sum |a[t+1] - 2 a[t] + a[t-1]| / sum a[t]`` (a second difference: steady motion gives ~0), with the raw and
    with the smoothed landmarks of the first track (the compositor uses the smoothed ones)."""
    from vidswap.composite.masks import MaskParams, face_regions
    from vidswap.composite.regions import region_alpha
    from vidswap.faces.tracksfile import ShotAnalysis

    track = ShotAnalysis.load(tracks).tracks[0]
    out = {}
    for kind in ("raw", "smoothed"):
        lm = torch.from_numpy(np.asarray(getattr(track, kind), np.float32))
        fr = face_regions(lm, load_topology().regions, size, MaskParams())
        a = region_alpha(fr, names, MaskParams())
        d2 = (a[2:] - 2 * a[1:-1] + a[:-2]).abs().sum((1, 2, 3)) / a[1:-1].sum((1, 2, 3)).clamp(min=1e-6)
        out[kind] = float(d2.mean())
    return out


def face_box(points: np.ndarray, shape: tuple[int, ...], margin: float = 0.35) -> tuple[int, int, int, int]:
    x0, y0 = points[:, :2].min(0)
    x1, y1 = points[:, :2].max(0)
    mx, my = (x1 - x0) * margin, (y1 - y0) * margin
    return (max(int(x0 - mx), 0), max(int(y0 - my), 0), min(int(x1 + mx), shape[1]), min(int(y1 + my), shape[0]))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", default="0-11")
    ap.add_argument("--out", type=Path, default=ROOT / "out" / "regions")
    ap.add_argument("--region-feather", type=float, help="composite.region_feather (default: the config's)")
    args = ap.parse_args(argv)
    manifest = fetch_media.load_manifest()
    clip = fetch_media.fetch("single_face_clip", manifest)
    source = fetch_media.fetch("grace_hopper", manifest)
    videos = {name: swap(clip, source, regs, args.out / name, args.frames, args.region_feather)
              for name, regs in VARIANTS.items()}
    results = {name: decoded(v) for name, v in videos.items()}
    n = len(next(iter(results.values())))
    first = int(args.frames.split("-")[0])
    plates = decoded(clip)[first:first + n]
    models = AnalysisModels.load(load_config().analysis)
    src = analyze_image(read_image(source), models)[0].embedding
    rows = measure(plates, results, src, models)
    summary = {k: {m: float(np.mean(v)) for m, v in r.items()} for k, r in rows.items()}
    if n >= 3:
        for name, regs in VARIANTS.items():
            summary[name]["jitter"] = alpha_jitter(videos[name].with_suffix(".vidswap") / "tracks.npz", regs,
                                                   plates[0].shape[:2])
    (args.out / "regions.json").write_text(json.dumps({"per_frame": rows, "mean": summary}, indent=1))
    mid = n // 2
    box = face_box(analyze_image(plates[mid], models)[0].landmarks.points, plates[mid].shape)
    tiles = [plates[mid]] + [results[k][mid] for k in VARIANTS]
    strip = np.concatenate([t[box[1]:box[3], box[0]:box[2]] for t in tiles], axis=1)
    Image.fromarray(strip).save(args.out / "regions.png", optimize=True)
    for k, r in summary.items():
        print(f"{k:11s} " + "  ".join(f"{m} {v:.4f}" if isinstance(v, float) else
                                      f"{m} raw {v['raw']:.4f} smoothed {v['smoothed']:.4f}" for m, v in r.items()))
    print(f"figure: {args.out / 'regions.png'} (plate | full swap | eyes + brows only | mouth kept)")


if __name__ == "__main__":
    main()
