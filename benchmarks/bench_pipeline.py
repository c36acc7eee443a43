"""End-to-end speed of `vidswap run` against the I/O floor and the frame-at-a-time pattern of popular tools.

    python benchmarks/bench_pipeline.py [--quick] [--frames-360 N] [--frames-1080 N] [--no-baseline] [--json F]

For the Pexels sample at 640x360 and upscaled to 1920x1080 (ffmpeg lanczos, made once and cached), over the
first N frames:

* ours: ``python -m vidswap.cli run CLIP --source SRC -o OUT.mp4 -q --frames 0-(N-1)`` in a fresh process (the
  CLI in-process behind a tiny wrapper that records the pipeline's ``RunSummary``): wall time, frames/s, per-stage
  ms/frame (``RunSummary.stage_seconds``: model loading, the analysis stages, swap, encode, ...), peak RSS.
  Every run writes into a fresh folder, so the cached analysis (``OUT.vidswap/tracks.npz``) is never reused.
* I/O floor: a bare ffmpeg transcode of the same frames with the same encoder settings (libx264 crf 18, preset
  medium = the default preset's output): ours / floor is how far above pure decode + encode we are.
* frame-at-a-time baseline (FaceFusion / roop style): ffmpeg extracts the frames to PNG files, each PNG goes
  through our CLI one at a time as an image input (in one process, so Python and torch import once, but the
  models are loaded per frame, as a per-image call does; the table also shows the baseline without that model
  loading), each result is written as a PNG, and ffmpeg encodes the PNGs. Speed-up = baseline / ours.

Prints a Markdown table (and the machine's load average: other processes on the cores skew every number).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
import fetch_media  # noqa: E402

CRF, PRESET = 18, "medium"
MARK = "BENCH_JSON "


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# --------------------------------------------------------------------------------------------------------------
# child processes (run by this script itself)


def _capture_pipeline() -> list:
    """Patch ``vidswap.pipeline.run`` so every RunSummary it returns is kept."""
    from vidswap import pipeline

    summaries = []
    original = pipeline.run

    def run(*args, **kwargs):
        summary = original(*args, **kwargs)
        summaries.append(summary)
        return summary

    pipeline.run = run
    return summaries


def _cli(args: list[str]) -> None:
    from vidswap.cli import main

    try:
        main(args, standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"vidswap {' '.join(args)} exited with {exc.code}") from None


def child_run(args: list[str]) -> dict:
    """One CLI run; its summary, wall time and peak RSS."""
    summaries = _capture_pipeline()
    start = time.perf_counter()
    _cli(args)
    wall = time.perf_counter() - start
    s = summaries[-1]
    return {"wall": wall, "frames": s.frames_written, "swapped": s.frames_swapped, "stages": s.stage_seconds,
            "seconds": s.seconds, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def child_frames(in_dir: str, out_dir: str, source: str) -> dict:
    """The baseline's processing step: every PNG through the CLI, one at a time."""
    summaries = _capture_pipeline()
    pngs = sorted(Path(in_dir).glob("*.png"))
    start = time.perf_counter()
    for png in pngs:
        _cli(["run", str(png), "--source", source, "-o", str(Path(out_dir) / f"{png.stem}.####.png"), "-q"])
    wall = time.perf_counter() - start
    stages: dict[str, float] = {}
    for s in summaries:
        for k, v in s.stage_seconds.items():
            stages[k] = stages.get(k, 0.0) + v
    return {"wall": wall, "frames": len(pngs), "swapped": sum(s.frames_swapped for s in summaries),
            "stages": stages, "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _spawn(mode: str, *args: str) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), mode, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"benchmark child failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")


# --------------------------------------------------------------------------------------------------------------
# measurements


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def make_1080p(src: Path, frames: int, cache: Path) -> Path:
    """The first ``frames`` frames of ``src`` upscaled to 1920x1080 (cached by frame count)."""
    out = cache / f"pexels_1080p_{frames}f.mp4"
    if not out.exists():
        cache.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".part.mp4")
        subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(src), "-frames:v", str(frames), "-map", "0:v:0",
                        "-vf", "scale=1920:1080:flags=lanczos", "-c:v", "libx264", "-crf", "14", "-preset", "fast",
                        "-pix_fmt", "yuv420p", str(tmp)], check=True)
        os.replace(tmp, out)
    return out


def ffmpeg_floor(clip: Path, frames: int, work: Path, repeats: int = 3) -> float:
    """Best-of wall seconds of a bare ffmpeg decode + x264 encode of the first ``frames`` frames."""
    cmd = [ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-frames:v", str(frames), "-map", "0:v:0",
           "-c:v", "libx264", "-crf", str(CRF), "-preset", PRESET, "-pix_fmt", "yuv420p", str(work / "floor.mp4")]
    return min(_timed(cmd) for _ in range(repeats))


def ours(clip: Path, source: Path, frames: int, work: Path) -> dict:
    out = work / "ours"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return _spawn("--child-run", "run", str(clip), "--source", str(source), "-o", str(out / "out.mp4"), "-q",
                  "--frames", f"0-{frames - 1}")


def baseline(clip: Path, source: Path, frames: int, fps: float, work: Path) -> dict:
    pngs, outs = work / "png_in", work / "png_out"
    for d in (pngs, outs):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    extract = _timed([ffmpeg_exe(), "-v", "error", "-y", "-i", str(clip), "-frames:v", str(frames),
                      str(pngs / "%06d.png")])
    proc = _spawn("--child-frames", str(pngs), str(outs), str(source))
    encode = _timed([ffmpeg_exe(), "-v", "error", "-y", "-framerate", f"{fps}", "-pattern_type", "glob", "-i",
                     str(outs / "*.png"), "-c:v", "libx264", "-crf", str(CRF), "-preset", PRESET,
                     "-pix_fmt", "yuv420p", str(work / "baseline.mp4")])
    load = proc["stages"].get("load", 0.0)
    return {"extract": extract, "process": proc["wall"], "encode": encode, "load": load,
            "total": extract + proc["wall"] + encode, "total_no_load": extract + proc["wall"] - load + encode,
            "frames": proc["frames"], "swapped": proc["swapped"], "stages": proc["stages"], "rss_mib": proc["rss_mib"]}


def bench_clip(label: str, clip: Path, source: Path, frames: int, work: Path, with_baseline: bool) -> dict:
    from vidswap.io import probe

    info = probe(clip)
    frames = min(frames, len(info.frame_numbers))
    work.mkdir(parents=True, exist_ok=True)
    print(f"[{label}] ffmpeg floor ...", file=sys.stderr)
    floor = ffmpeg_floor(clip, frames, work)
    print(f"[{label}] vidswap run ({frames} frames) ...", file=sys.stderr)
    run = ours(clip, source, frames, work)
    row = {"label": label, "size": f"{info.width}x{info.height}", "frames": frames, "floor_s": floor, "ours": run,
           "ratio_to_floor": run["wall"] / floor}
    if with_baseline:
        print(f"[{label}] frame-at-a-time baseline ...", file=sys.stderr)
        base = baseline(clip, source, frames, float(info.fps), work)
        row["baseline"] = base
        row["speedup"] = base["total"] / run["wall"]
        row["speedup_no_load"] = base["total_no_load"] / (run["wall"] - run["stages"].get("load", 0.0))
    return row


# --------------------------------------------------------------------------------------------------------------
# report


def markdown(rows: list[dict], source: str, load: tuple[float, float, float]) -> str:
    lines = [f"# bench_pipeline {datetime.date.today()} on {platform.node()} ({os.cpu_count()} cores, "
             f"{platform.processor() or platform.machine()}); load average at start {load[0]:.1f}; source "
             f"{source}; H.264 crf {CRF} preset {PRESET}", "",
             "| clip | frames | ours s | ours frames/s | swapped | peak RSS MiB | ffmpeg floor s | ours / floor "
             "| baseline s | baseline w/o model loads s | speed-up | speed-up w/o loads |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        o = r["ours"]
        b = r.get("baseline")
        lines.append(
            f"| {r['label']} {r['size']} | {r['frames']} | {o['wall']:.1f} | {r['frames'] / o['wall']:.2f} "
            f"| {o['swapped']} | {o['rss_mib']:.0f} | {r['floor_s']:.2f} | {r['ratio_to_floor']:.1f} "
            + (f"| {b['total']:.1f} | {b['total_no_load']:.1f} | {r['speedup']:.2f} | {r['speedup_no_load']:.2f} |"
               if b else "| - | - | - | - |"))
    stages = sorted({k for r in rows for k in r["ours"]["stages"]})
    lines += ["", "Per-stage ms/frame of `vidswap run` (RunSummary.stage_seconds / frames; 'load' = model loading, "
              "once per run):", "",
              "| clip | " + " | ".join(stages) + " | total |", "|---|" + "---|" * (len(stages) + 1)]
    for r in rows:
        st = r["ours"]["stages"]
        lines.append(f"| {r['label']} | " + " | ".join(f"{1000 * st.get(k, 0.0) / r['frames']:.1f}" for k in stages)
                     + f" | {1000 * r['ours']['wall'] / r['frames']:.1f} |")
    if any("baseline" in r for r in rows):
        bstages = sorted({k for r in rows if "baseline" in r for k in r["baseline"]["stages"]})
        lines += ["", "Frame-at-a-time baseline, ms/frame (extract / per-PNG CLI calls / encode; the calls' own "
                  "stages below, 'load' = model loading repeated per frame):", "",
                  "| clip | extract | process | encode | " + " | ".join(bstages) + " |",
                  "|---|---|---|---|" + "---|" * len(bstages)]
        for r in rows:
            if "baseline" not in r:
                continue
            b, n = r["baseline"], r["frames"]
            lines.append(f"| {r['label']} | {1000 * b['extract'] / n:.1f} | {1000 * b['process'] / n:.1f} | "
                         f"{1000 * b['encode'] / n:.1f} | "
                         + " | ".join(f"{1000 * b['stages'].get(k, 0.0) / n:.1f}" for k in bstages) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child-run"]:
        print(MARK + json.dumps(child_run(argv[1:])))
        return 0
    if argv[:1] == ["--child-frames"]:
        print(MARK + json.dumps(child_frames(*argv[1:4])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few frames (a smoke run: 24 at 360p, 8 at 1080p)")
    parser.add_argument("--frames-360", type=int, help="frames at 640x360 (default 120)")
    parser.add_argument("--frames-1080", type=int, help="frames at 1920x1080 (default 48)")
    parser.add_argument("--no-baseline", action="store_true", help="skip the frame-at-a-time baseline")
    parser.add_argument("--source", default="astronaut", help="source portrait (sample name or path)")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args(argv)
    n360 = args.frames_360 or (24 if args.quick else 120)
    n1080 = args.frames_1080 or (8 if args.quick else 48)
    clip = fetch_media.fetch("pexels_clip")
    source = fetch_media.fetch(args.source) if args.source in fetch_media.load_manifest() else Path(args.source)
    load = os.getloadavg()
    from vidswap.models.sources import cache_home

    rows = []
    with tempfile.TemporaryDirectory(prefix="vidswap_bench_") as tmp:
        work = Path(tmp)
        rows.append(bench_clip("360p", clip, source, n360, work / "360p", not args.no_baseline))
        big = make_1080p(clip, max(n1080, 8), cache_home() / "bench")
        rows.append(bench_clip("1080p", big, source, n1080, work / "1080p", not args.no_baseline))
    text = markdown(rows, source.name, load)
    print(text)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "load_average": load}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
