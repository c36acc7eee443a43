"""The relit swap against the texture swap it replaces: measures and side-by-side sheets, clips x sources.

    python benchmarks/bench_relit.py [--clips pexels_clip single_face_clip turning_head ...] [--sources astronaut ...]
                                     [--frames pexels_clip=0-119 ...] [--out DIR] [--figures benchmarks/figures]

For every clip x source, `vidswap run` renders the shot twice in one run, `--appearance texture` (the core before
relighting) and `--appearance relit` (the default), to lossless FFV1, and each once more over the range's first
``--short`` frames; `vidswap eval` measures both whole renders with the independent judges. Printed: a table per pair
(lighting correlation, seam ratio, tone step point by point and over the whole border, ArcFace similarity to the
source, flicker and jitter relative to the plate, mouth and eye opening correlation and eye error, seconds a run and
milliseconds a frame -- ``(whole - short) / (its frames - short's)``, without what a job pays once: start-up, the
sources' preparation), the acceptance checks of the photoreal-swap issue (the time relit / texture over whole runs
and per frame), and a sheet per pair, plate | texture | relit at four sampled frames, written to --figures
(face crops, PNG). ``turning_head`` is the head scan rendered turning +-45 degrees (samples/turning_head.py, 90
frames), not a registry clip.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

import fetch_media  # noqa: E402

from vidswap.faces.tracksfile import ShotAnalysis  # noqa: E402

DEFAULT_FRAMES = {"pexels_clip": "0-119"}


def clip_path(name: str, manifest: dict) -> Path:
    """A registry clip of samples/media.yaml, or ``turning_head``: the head scan's turning clip (rendered once)."""
    if name == "turning_head":
        import turning_head

        return turning_head.turning_head_clip()[0]
    return fetch_media.fetch(name, manifest)


def run(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for packet in container.demux(video=0) if packet.size)


def per_frame_seconds(row: dict, mode: str) -> float:
    """A mode's time per frame from its whole and short runs (NaN without a short run)."""
    if f"seconds_{mode}_short" not in row or row[f"frames_{mode}"] <= row[f"frames_{mode}_short"]:
        return float("nan")
    return ((row[f"seconds_{mode}"] - row[f"seconds_{mode}_short"])
            / (row[f"frames_{mode}"] - row[f"frames_{mode}_short"]))


def vidswap(*args: str) -> list[str]:
    return [sys.executable, "-m", "vidswap.cli", *args]


def read_frames(path: Path, wanted: list[int]) -> dict[int, np.ndarray]:
    out = {}
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i in wanted:
                out[i] = frame.to_ndarray(format="bgr24")
    return out


def face_sheet(out: Path, tracks: Path, picks: list[int], videos: list[Path], labels: list[str],
               first: int) -> None:
    """Rows of face crops (plate | texture | relit) at ``picks`` (positions in the rendered range)."""
    track = max(ShotAnalysis.load(tracks).tracks, key=lambda t: len(t.frames))
    clips = [read_frames(v, [p + (first if k == 0 else 0) for p in picks]) for k, v in enumerate(videos)]
    rows = []
    for p in picks:
        row = track.index_of(first + p)
        if row is None:
            continue
        lm = track.smoothed[row]
        centre = lm[:468, :2].mean(0)
        side = float(lm[:468, 1].max() - lm[:468, 1].min()) * 1.6
        x0, y0 = int(centre[0] - side / 2), int(centre[1] - side / 2)
        cells = []
        for k, clip in enumerate(clips):
            img = cv2.copyMakeBorder(clip[p + (first if k == 0 else 0)], 600, 600, 600, 600,
                                     cv2.BORDER_CONSTANT, value=(0, 0, 0))  # outside the frame: black
            cut = img[y0 + 600:y0 + 600 + int(side), x0 + 600:x0 + 600 + int(side)]
            cell = cv2.resize(cut, (256, 256), interpolation=cv2.INTER_AREA if side > 256 else cv2.INTER_CUBIC)
            cv2.putText(cell, labels[k], (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
            cv2.putText(cell, labels[k], (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
            cells.append(cell)
        rows.append(np.concatenate(cells, 1))
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.concatenate(rows, 0))


def measures(metrics: Path) -> dict[str, float]:
    m = json.loads(metrics.read_text())
    q, e, t, i = m["quality"], m["expression"], m["temporal"], m["identity"]
    nan = float("nan")
    return {"light": q["lighting_correlation"]["mean"], "seam": q["seam_ratio"]["mean"],
            "step": q["boundary_step"]["mean"], "tone": q["boundary_tone"]["mean"],
            "arcface": i["to_source"]["mean"],
            "flicker": t["flicker"]["ratio"], "jitter": t["jitter"]["ratio"] or nan,
            "mouth_corr": e["mouth_correlation"] if e["mouth_correlation"] is not None else nan,
            "eye_corr": e["eyes_correlation"] if e["eyes_correlation"] is not None else nan,
            "eye_err": e["eye_open_error"]["mean"], "sharp": q["sharpness_ratio"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", nargs="+", default=["pexels_clip", "single_face_clip", "face_noface_clip"])
    ap.add_argument("--sources", nargs="+", default=["astronaut", "single_face_image", "portrait_f1"])
    ap.add_argument("--frames", nargs="*", default=[], help="CLIP=RANGE overrides")
    ap.add_argument("--out", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--figures", type=Path, default=ROOT / "benchmarks" / "figures")
    ap.add_argument("--json", type=Path, help="write the rows as JSON")
    ap.add_argument("--config", type=Path, help="a job config (YAML) passed to every `vidswap run`")
    ap.add_argument("--short", type=int, default=15,
                    help="frames of the short run per mode for the per-frame time (0: whole runs only)")
    ap.add_argument("--modes", nargs="+", default=["texture", "relit"], choices=["texture", "relit"],
                    help="appearances to run (the acceptance checks and sheets need both)")
    args = ap.parse_args()
    frames = dict(DEFAULT_FRAMES, **dict(f.split("=", 1) for f in args.frames))
    manifest = fetch_media.load_manifest()
    work = args.out or Path(tempfile.mkdtemp(prefix="bench_relit_"))
    rows = []
    for clip in args.clips:
        plate = clip_path(clip, manifest)
        rng = frames.get(clip)
        first = int(rng.split("-")[0]) if rng else 0
        ranges = [rng] + ([f"{first}-{first + args.short - 1}"] if args.short > 0 else [])
        for r in ranges:  # untimed: the timed runs all read the shot's analysis (shared between jobs)
            run(vidswap("analyze", str(plate), "-s", str(fetch_media.fetch(args.sources[0], manifest)), "-o",
                        str(work / f"{clip}_analysis.mkv"), "-q", *(["--frames", r] if r else [])))
        for source in args.sources:
            src = fetch_media.fetch(source, manifest)
            row = {"clip": clip, "source": source}
            outs = {}
            for mode in args.modes:
                out = work / f"{clip}_{source}_{mode}.mkv"
                flags = ["--frames", rng] if rng else []
                config = ["--config", str(args.config)] if args.config else []
                row[f"seconds_{mode}"] = run(vidswap("run", str(plate), "-s", str(src), "-o", str(out), "-q",
                                                     "--appearance", mode, *config, *flags))
                if args.short > 0:  # the same job over the range's first frames: its fixed cost and those frames
                    short = work / f"{clip}_{source}_{mode}_short.mkv"
                    row[f"seconds_{mode}_short"] = run(vidswap(
                        "run", str(plate), "-s", str(src), "-o", str(short), "-q", "--appearance", mode, *config,
                        "--frames", f"{first}-{first + args.short - 1}"))
                    row[f"frames_{mode}"], row[f"frames_{mode}_short"] = count_frames(out), count_frames(short)
                report = work / f"{clip}_{source}_{mode}_eval"
                run(vidswap("eval", str(out), "--target", str(plate), "-s", str(src), "-o", str(report), "-q",
                            *flags))
                row[mode] = measures(report / "metrics.json")
                outs[mode] = out
            if len(outs) < 2:
                rows.append(row)
                print_row(row)
                continue
            with av.open(str(outs["relit"])) as c:
                n = c.streams.video[0].frames or 48
            picks = np.linspace(0, max(0, n - 1), 4).round().astype(int).tolist()
            sheet = args.figures / f"relit_{clip}_{source}.png"
            face_sheet(sheet, work / f"{clip}_{source}_relit.vidswap" / "tracks.npz", picks,
                       [plate, outs["texture"], outs["relit"]], ["plate", "texture", "relit"], first)
            row["sheet"] = str(sheet.relative_to(ROOT)) if sheet.is_relative_to(ROOT) else str(sheet)
            rows.append(row)
            print_row(row)
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


COLUMNS = ("light", "seam", "step", "tone", "arcface", "flicker", "jitter", "mouth_corr", "eye_corr", "eye_err",
           "sharp")


def print_row(row: dict) -> None:
    for mode in ("texture", "relit"):
        if mode not in row:
            continue
        vals = " ".join(f"{k}={row[mode][k]:.3f}" for k in COLUMNS)
        print(f"{row['clip']:18s} {row['source']:18s} {mode:8s} {vals}", flush=True)


def print_table(rows: list[dict]) -> None:
    head = "| clip | source | mode | " + " | ".join(COLUMNS) + " | s/run | ms/frame |"
    print("\n" + head + "\n|" + "---|" * (len(COLUMNS) + 5))
    for row in rows:
        for mode in ("texture", "relit"):
            if mode not in row:
                continue
            vals = " | ".join(f"{row[mode][k]:.3f}" for k in COLUMNS)
            print(f"| {row['clip']} | {row['source']} | {mode} | {vals} | {row[f'seconds_{mode}']:.1f} | "
                  f"{1000 * per_frame_seconds(row, mode):.1f} |")
    if any(mode not in r for r in rows for mode in ("texture", "relit")):
        return
    relit = [r["relit"] for r in rows]
    tex = [r["texture"] for r in rows]
    light = [r["light"] for r in relit]
    print(f"\nlighting correlation: mean {np.mean(light):.3f}, min {np.min(light):.3f} (want >= 0.95 mean, >= 0.9 each)")
    print(f"seam ratio: max {max(r['seam'] for r in relit):.3f} (want <= 1.05)")
    d = [a["arcface"] - b["arcface"] for a, b in zip(relit, tex)]
    print(f"ArcFace relit - texture: min {min(d):+.3f}, mean {np.mean(d):+.3f} (want >= -0.02 each, > 0 mean)")
    print(f"flicker: max {max(r['flicker'] for r in relit):.3f}, jitter: max {np.nanmax([r['jitter'] for r in relit]):.3f}"
          " (want <= 1.05)")
    whole = np.mean([r["seconds_relit"] / r["seconds_texture"] for r in rows])
    print(f"time relit / texture: {whole:.2f} (whole runs)")
    per_frame = [per_frame_seconds(r, "relit") / per_frame_seconds(r, "texture") for r in rows]
    if not np.isnan(per_frame).all():
        print(f"time relit / texture per frame: mean {np.nanmean(per_frame):.2f}, pairs {np.nanmin(per_frame):.2f}-"
              f"{np.nanmax(per_frame):.2f} (want <= 1.3)")


if __name__ == "__main__":
    sys.exit(main())
