"""What per-clip generator tuning does to a swap: swap core alone vs core + tuned generator, same sources.

    python benchmarks/bench_tune_effect.py [--clips single_face_clip,pexels_clip] [--frames 0-47]
                                           [--source astronaut] [--out DIR] [--video-frames 48]

For each clip it renders the shot twice with the real CLI (``vidswap run --no-tune`` and ``--tune``, default
tuning settings; CPU: ``tune.cpu_steps``), evaluates both with ``vidswap.eval.report.evaluate`` against the plate
and prints a table:

* flicker: motion-compensated temporal change in the face region, relative to the plate's own (1.0 = as steady as
  the plate; goal <= 1.1),
* jitter: RMS second difference of the judge's 106 landmarks on the result, relative to the plate's (goal <= 1.1),
* identity: ArcFace (independent judge) cosine of the result to the source (tuning may not lower it by > 0.02),
* tuning seconds, steps run, best step.

It also writes, per clip, ``<clip>_side_by_side.mp4`` (plate | core | tuned, H.264) and
``<clip>_side_by_side.png`` (a contact sheet of the same three columns) for judging by eye.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

import fetch_media  # noqa: E402

VIDSWAP = [sys.executable, "-m", "vidswap.cli"]


def render(clip: Path, source: Path, frames: str, out: Path, tune: bool) -> float:
    start = time.perf_counter()
    args = [*VIDSWAP, "run", str(clip), "-s", str(source), "--frames", frames, "-o", str(out), "-q",
            "--tune" if tune else "--no-tune"]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"vidswap run failed: {proc.stderr.strip()}")
    return time.perf_counter() - start


def tune_info(out: Path) -> dict:
    """The tuning record the run left in the job folder (steps, best step, seconds per step)."""
    found = sorted((out.parent / f"{out.stem}.vidswap" / "tune").glob("*.json"))
    return json.loads(found[-1].read_text()) if found else {}


def side_by_side(plate: Path, core: Path, tuned: Path, out_video: Path, out_sheet: Path, count: int) -> None:
    from vidswap.composite.burnin import burn_in
    from vidswap.io import EncodeSettings, Frame, open_sink, probe, read_frames

    infos = [probe(p) for p in (core, tuned)]
    n = min(count, infos[0].frame_count)
    first = infos[0].frame_numbers[0] if infos[0].kind == "sequence" else 0
    rows = []
    pinfo = probe(plate)
    size = (pinfo.width * 3, pinfo.height)
    with read_frames(pinfo, range(first, first + n)) as p, read_frames(infos[0], range(0, n)) as c, \
            read_frames(infos[1], range(0, n)) as t, \
            open_sink(out_video, pinfo, EncodeSettings(codec="h264", crf=18), size=size) as sink:
        for k, (fp, fc, ft) in enumerate(zip(p, c, t)):
            tiles = [burn_in(fp.image, "plate", "", "", ""), burn_in(fc.image, "swap core", "", "", ""),
                     burn_in(ft.image, "core + tuned generator", "", "", "")]
            sink.write(Frame(number=fp.number, pts=fp.pts, timecode=None, image=np.hstack(tiles),
                             duration=fp.duration))
            if k % max(1, n // 4) == 0:
                rows.append(np.hstack(tiles))
    if rows:
        cv2.imwrite(str(out_sheet), np.vstack(rows)[..., ::-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default="single_face_clip,pexels_clip")
    ap.add_argument("--frames", default="0-47")
    ap.add_argument("--source", default="astronaut")
    ap.add_argument("--out", type=Path, default=Path("tune_effect"))
    ap.add_argument("--video-frames", type=int, default=48)
    args = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # what the CLI does; the evaluation runs in-process

    from vidswap.eval.report import evaluate

    manifest = fetch_media.load_manifest()
    source = fetch_media.fetch(args.source, manifest)
    first, last = (int(x) for x in args.frames.split("-"))
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.clips.split(","):
        clip = fetch_media.fetch(name, manifest)
        result = {}
        for variant in ("core", "tuned"):
            out = args.out / name / f"{variant}.mkv"
            seconds = render(clip, source, args.frames, out, variant == "tuned")
            metrics = evaluate(out, clip, [source], args.out / name / f"eval_{variant}",
                               frames=range(first, last + 1), threads=2)
            result[variant] = {"seconds": seconds, "flicker": metrics["temporal"]["flicker"]["ratio"],
                               "jitter": metrics["temporal"]["jitter"]["ratio"],
                               "identity": metrics["identity"]["to_source"]["mean"],
                               "tune": tune_info(out) if variant == "tuned" else {}}
        side_by_side(clip, args.out / name / "core.mkv", args.out / name / "tuned.mkv",
                     args.out / f"{name}_side_by_side.mp4", args.out / f"{name}_side_by_side.png", args.video_frames)
        rows.append((name, result))
        (args.out / "results.json").write_text(json.dumps(dict(rows), indent=1, default=str))

    print(f"# bench_tune_effect {date.today()} on {platform.node()} ({os.cpu_count()} cores); "
          f"frames {args.frames}, source {args.source}; load average {os.getloadavg()[0]:.1f}")
    print("| clip | variant | flicker (x plate) | jitter (x plate) | ArcFace to source | identity change | "
          "tune s | steps (best) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, result in rows:
        for variant in ("core", "tuned"):
            r = result[variant]
            t = r["tune"]
            change = r["identity"] - result["core"]["identity"]
            steps = f"{t.get('steps_run', '')} ({t.get('best_step', '')})" if t else ""
            print(f"| {name} | {variant} | {r['flicker']:.3f} | {r['jitter']:.3f} | {r['identity']:.3f} | "
                  f"{change:+.3f} | {t.get('seconds', 0.0) if t else 0.0:.0f} | {steps} |")
    print(f"\nside-by-side videos and sheets: {args.out}/<clip>_side_by_side.mp4 / .png")


if __name__ == "__main__":
    main()
