"""Full-resolution speed of `vidswap run` against a plain transcode of the same clip (issue 19).

    python benchmarks/bench_speed.py [--frames 120] [--frames-4k 48] [--pairs 2] [--rows 360,1080,4k,4kcanvas]
                                     [--no-passthrough] [--no-preview] [--no-farm] [--json F]
                                     [--run-args "--render-threads 1"]

Plates: the Pexels sample (640x360, frames 0..N-1) and its first N frames upscaled with PyAV (swscale lanczos) to
1920x1080 and 3840x2160, encoded once (libx264 crf 12, veryfast) and cached in ``~/.cache/vidswap/bench/``; the
``4kcanvas`` row puts the 1080p pictures at the centre of a 3840x2160 frame (the face keeps its 1080p size, the
plate grows 4x; around them the clip's wall, stretched). "above the transcode" is the median per-frame difference
of the paired runs' wall times: what the swap adds to a plain transcode of the same plate; "CPU above the
transcode" the same of their process CPU times (all threads), which the machine's load moves less. A run has fixed
costs (models loaded, per-track set-up, the encoder's flush) that weigh 2.5x as much per frame over the 4K rows'
48 frames as over 120: compare plate sizes at equal counts (``--frames 48 --rows 1080,4kcanvas``).

Every measurement runs in a fresh process and is *paired* with its baseline in the same run (baseline, then
vidswap, repeated ``--pairs`` times; the table shows medians and the median of the per-pair ratios), because the
machine is shared and its load changes from minute to minute (the load average is printed with the table):

* transcode: PyAV decode + libx264 crf 18 preset medium encode of the same frames, frame threads, frames handed
  from decoder to encoder in YUV, the encoder choosing its own frame types (what ``ffmpeg -i in -c:v libx264 -crf 18
  -preset medium out.mp4`` does: FFmpeg resets each decoded frame's picture type; a decoded frame handed on as it
  is makes x264 copy the source's I/P/B types and skip its own frame-type decision, ~9 % less CPU at 1080p:
  ``--child-transcode SRC DEST N source-types``, the baseline before passthru-s12);
* vidswap run: ``vidswap run PLATE --source grace_hopper -o OUT.mp4 -q --frames 0-(N-1)`` (default preset), in
  a fresh job folder (the analysis is never reused), the CLI in-process behind a wrapper that keeps its
  ``RunSummary`` (per-stage seconds) and peak RSS (the process's: the render threads are in it); ``--run-args``
  adds options to these runs (e.g. ``--render-threads 1``, the one-thread render of before);
* pass-through: the same with ``--passthrough``;
* preview: the same with ``--preview`` (paired with the default run, at 1080p);
* farm render-task fixed cost: ``vidswap render-chunk`` of one chunk after ``vidswap analyze``: wall time from the
  process start to the first frame handed to the encoder.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
MARK = "BENCH_JSON "
SIZES = {"360": (640, 360), "1080": (1920, 1080), "4k": (3840, 2160), "4kcanvas": (3840, 2160)}
#: the ``4kcanvas`` row: the 1080p plate's pictures at the centre of a 4K frame, so the face keeps its 1080p size
#: while the plate grows 4x (what the issue's "grows with plate size, not face size" asks to see); around them
#: the clip's own background (its left 128 px of wall, no face, stretched over the canvas)
CANVAS_OF = {"4kcanvas": "1080"}
START = time.perf_counter()


def cache_dir() -> Path:
    return Path(os.environ.get("VIDSWAP_BENCH_CACHE", Path.home() / ".cache" / "vidswap" / "bench"))


def sample(name: str) -> Path:
    import fetch_media

    return fetch_media.fetch(name)


# --------------------------------------------------------------------------------------------------------------
# plates


def make_plate(src: Path, size: tuple[int, int], frames: int, inner: tuple[int, int] | None = None) -> Path:
    """The first ``frames`` frames of ``src`` scaled to ``size`` (lanczos), cached; ``src`` itself at its size.
    ``inner``: the frames scaled to ``inner`` instead, at the centre of a ``size`` canvas whose surround is the
    frame's left 128 columns (the sample's wall) stretched over it."""
    import av

    with av.open(str(src)) as probe:
        stream = probe.streams.video[0]
        if (stream.width, stream.height) == size and inner is None:
            return src
    tag = f"_canvas{inner[0]}x{inner[1]}" if inner else ""
    out = cache_dir() / f"pexels_{size[0]}x{size[1]}{tag}_{frames}f.mp4"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".part.mp4")
    with av.open(str(src)) as inp, av.open(str(tmp), "w") as dst:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = dst.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = size[0], size[1], "yuv420p"
        vout.options = {"crf": "12", "preset": "veryfast"}
        vout.codec_context.thread_type = "AUTO"
        for k, frame in enumerate(inp.decode(vin)):
            if k >= frames:
                break
            if inner is None:
                big = frame.reformat(width=size[0], height=size[1], format="yuv420p", interpolation="LANCZOS")
            else:
                big = _on_canvas(frame, size, inner)
            big.pts = k
            big.time_base = 1 / vin.average_rate
            for packet in vout.encode(big):
                dst.mux(packet)
        for packet in vout.encode(None):
            dst.mux(packet)
    os.replace(tmp, out)
    return out


def _on_canvas(frame, size: tuple[int, int], inner: tuple[int, int]):
    """A ``size`` yuv420p frame: ``frame`` scaled to ``inner`` at the centre, its left 128 columns around it."""
    import av
    import cv2

    rgb = frame.to_ndarray(format="rgb24")
    canvas = cv2.resize(rgb[:, :128], size, interpolation=cv2.INTER_LINEAR)
    x0, y0 = (size[0] - inner[0]) // 2, (size[1] - inner[1]) // 2
    canvas[y0:y0 + inner[1], x0:x0 + inner[0]] = cv2.resize(rgb, inner, interpolation=cv2.INTER_LANCZOS4)
    return av.VideoFrame.from_ndarray(canvas, format="rgb24").reformat(format="yuv420p")


# --------------------------------------------------------------------------------------------------------------
# children (this script re-invoked): one measurement each, in a fresh process


def child_transcode(src: str, dest: str, frames: int, source_types: bool = False, options: dict | None = None) -> dict:
    """PyAV decode + libx264 crf 18 preset medium of the first ``frames`` frames (YUV in, YUV out); the encoder
    chooses the frame types as in FFmpeg, or (``source_types``) is handed the decoded frames' own. ``options``: more
    encoder options (e.g. ``{"x264-params": "rc-lookahead=20"}``, bench_encoder_memory.py)."""
    import av
    from av.video.frame import PictureType

    start = time.perf_counter()
    with av.open(src) as inp, av.open(dest, "w") as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        vout = out.add_stream("libx264", rate=vin.average_rate)
        vout.width, vout.height, vout.pix_fmt = vin.width, vin.height, "yuv420p"
        vout.options = {"crf": "18", "preset": "medium", **(options or {})}
        vout.codec_context.thread_count = 0
        vout.codec_context.thread_type = "AUTO"
        for k, frame in enumerate(inp.decode(vin)):
            if k >= frames:
                break
            frame.pts, frame.time_base = k, 1 / vin.average_rate
            if not source_types:
                frame.pict_type = PictureType.NONE  # as FFmpeg's encoder front end does
            for packet in vout.encode(frame):
                out.mux(packet)
        for packet in vout.encode(None):
            out.mux(packet)
    return {"wall": time.perf_counter() - start, "process": time.perf_counter() - START, "cpu": time.process_time(),
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _first_frame_probe() -> dict:
    """Record when the first frame reaches an encoder (the farm task's fixed cost ends there)."""
    from vidswap.io import writers

    seen: dict = {}
    original = writers.VideoSink.write

    def write(self, frame):
        seen.setdefault("first_frame", time.perf_counter() - START)
        return original(self, frame)

    writers.VideoSink.write = write
    from vidswap import render

    stage_call = render.RenderStage.__call__

    def call(self, frames):
        seen.setdefault("first_batch", time.perf_counter() - START)
        return stage_call(self, frames)

    render.RenderStage.__call__ = call
    return seen


def _private_shared_analyses() -> None:
    """Analyses other jobs shared ($VIDSWAP_HOME/shot_analyses) are not reused: each run analyses its frames, as a
    new user's first run does (a farm render task still reads the analysis of its own job folder)."""
    import importlib

    folder = Path(tempfile.mkdtemp(prefix="vidswap_bench_shared_"))
    for name in ("vidswap.analysis_cache", "vidswap.pipeline"):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(module, "shared_analysis_path"):
            module.shared_analysis_path = lambda key: folder / f"{key}.npz"


def child_cli(args: list[str]) -> dict:
    """One CLI command in-process: wall time, the RunSummary's stage seconds, peak RSS, time to the first frame."""
    import vidswap.cli  # noqa: F401  first: it sets OpenMP's wait policy before torch loads, as in a user's run
    seen = _first_frame_probe()
    _private_shared_analyses()
    from vidswap import pipeline

    summaries = []
    original = pipeline.run

    def run(*a, **k):
        summaries.append(original(*a, **k))
        return summaries[-1]

    pipeline.run = run
    from vidswap.cli import main

    start = time.perf_counter()
    try:
        main(args, standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    wall = time.perf_counter() - start
    s = summaries[-1] if summaries else None
    gpu = None
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        gpu = sys.modules["torch"].cuda.max_memory_allocated() / 2 ** 20
    return {"wall": wall, "process": time.perf_counter() - START, "cpu": time.process_time(),
            "first_frame": seen.get("first_frame"),
            "first_batch": seen.get("first_batch"),
            "frames": s.frames_written if s else None, "stages": dict(s.stage_seconds) if s else {},
            "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "gpu_mib": gpu}


def spawn(mode: str, *args: str, env: dict | None = None) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), mode, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"benchmark child failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


# --------------------------------------------------------------------------------------------------------------
# paired measurements


def load() -> str:
    return Path("/proc/loadavg").read_text().split()[0]


def paired(plate: Path, frames: int, source: Path, pairs: int, extra: list[str], work: Path,
           baseline: list[str] | None = None) -> list[dict]:
    """``pairs`` x (baseline, vidswap run with ``extra``); baseline None: the transcode."""
    out = []
    for k in range(pairs):
        job = work / f"p{k}_{len(out)}_{os.getpid()}"
        shutil.rmtree(job, ignore_errors=True)
        job.mkdir(parents=True)
        rng = f"0-{frames - 1}"
        la = load()
        if baseline is None:
            base = spawn("--child-transcode", str(plate), str(job / "t.mp4"), str(frames))
        else:
            base = spawn("--child-cli", "run", str(plate), "--source", str(source), "-o", str(job / "b.mp4"), "-q",
                         "--frames", rng, *baseline)
        ours = spawn("--child-cli", "run", str(plate), "--source", str(source), "-o", str(job / "o.mp4"), "-q",
                     "--frames", rng, *extra)
        out.append({"base": base, "ours": ours, "ratio": ours["wall"] / base["wall"], "load": la})
        shutil.rmtree(job, ignore_errors=True)
    return out


def farm_fixed_cost(plate: Path, frames: int, source: Path, work: Path, pairs: int) -> list[dict]:
    """Seconds from a render-chunk process's start to its first encoded frame (after one analyze)."""
    job = work / "farm"
    shutil.rmtree(job, ignore_errors=True)
    job.mkdir(parents=True)
    cfg = job / "shot.yaml"
    cfg.write_text(json.dumps({"input": str(plate), "sources": [str(source)], "frames": f"0-{frames - 1}",
                               "output": {"path": str(job / "out.mp4")}}))
    spawn("--child-cli", "analyze", "--config", str(cfg))
    out = []
    for _ in range(pairs):
        out.append(render_once(job, cfg, frames))
    return out


def render_once(job: Path, cfg: Path, frames: int) -> dict:
    shutil.rmtree(job / "out.vidswap" / "chunks", ignore_errors=True)  # or the chunk is found complete and skipped
    return spawn("--child-cli", "render", "--config", str(cfg), "--frames", f"0-{min(frames, 24) - 1}")


def med(values) -> float:
    return statistics.median(values)


def stage_ms(rows: list[dict], frames: int) -> dict[str, float]:
    keys = sorted({k for r in rows for k in r["ours"]["stages"]})
    return {k: 1000 * med([r["ours"]["stages"].get(k, 0.0) for r in rows]) / frames for k in keys}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--frames-4k", type=int, default=48)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--rows", default="360,1080,4k,4kcanvas")
    ap.add_argument("--no-passthrough", action="store_true")
    ap.add_argument("--no-preview", action="store_true")
    ap.add_argument("--no-farm", action="store_true")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--run-args", default="", help="extra `vidswap run` options for the plate rows, e.g. "
                    "\"--render-threads 1\" (split on spaces)")
    a = ap.parse_args()
    clip, source = sample("pexels_clip"), sample("grace_hopper")
    work = Path(tempfile.mkdtemp(prefix="vidswap_speed_"))
    results: dict = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes"),
                     "machine": platform.node(), "cpus": os.cpu_count(), "load_start": load(), "rows": {},
                     "run_args": a.run_args}
    try:
        for row in filter(None, a.rows.split(",")):  # --rows "": the preview (and pass-through, farm) rows only
            n = a.frames_4k if row.startswith("4k") else a.frames
            plate = make_plate(clip, SIZES[row], n, SIZES[CANVAS_OF[row]] if row in CANVAS_OF else None)
            runs = paired(plate, n, source, a.pairs, a.run_args.split(), work)
            results["rows"][row] = {"frames": n, "runs": runs}
            print(f"[{time.strftime('%H:%M:%S')}] {row} done, load {load()}: {json.dumps(results['rows'][row])}",
                  file=sys.stderr, flush=True)  # kept if the run is cut short
        if not a.no_passthrough:
            plate = make_plate(clip, SIZES["1080"], a.frames)
            results["passthrough"] = {"frames": a.frames,
                                      "runs": paired(plate, a.frames, source, a.pairs, ["--passthrough"], work)}
        if not a.no_preview:
            plate = make_plate(clip, SIZES["1080"], a.frames)
            results["preview"] = {"frames": a.frames, "runs": paired(plate, a.frames, source, a.pairs,
                                                                     ["--preview"], work, baseline=[])}
        if not a.no_farm:
            plate = make_plate(clip, SIZES["1080"], a.frames)
            results["farm"] = farm_fixed_cost(plate, a.frames, source, work, a.pairs)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    results["load_end"] = load()
    report(results)
    if a.json:
        a.json.write_text(json.dumps(results, indent=1))
    return 0


def ab(before: str, frames: int, frames_4k: int) -> int:
    """Before/after on the same plates, back to back (each row's runs within a minute or two of each other, so the
    machine's load is shared): ``before`` is a checkout of the code before the change (its PYTHONPATH)."""
    clip, source = sample("pexels_clip"), sample("grace_hopper")
    work = Path(tempfile.mkdtemp(prefix="vidswap_ab_"))
    trees = {"before": before, "after": str(ROOT)}

    def env(tree: str) -> dict:
        return dict(os.environ, PYTHONPATH=trees[tree])

    def line(*cells) -> None:
        print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)

    print(f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='minutes')} {platform.node()}, "
          f"load {load()}\n")
    line("plate", "frames", "code", "wall s", "frames/s", "peak RSS GB", "load", "ms/frame by stage")
    line(*["---"] * 8)
    try:
        for row, n in (("1080", frames), ("4k", frames_4k), ("360", frames)):
            plate = make_plate(clip, SIZES[row], max(n, 24)) if row != "360" else clip
            for tree in ("before", "after"):
                la = load()
                r = spawn("--child-cli", "run", str(plate), "--source", str(source), "-o",
                          str(work / f"{row}_{tree}.mp4"), "-q", "--frames", f"0-{n - 1}", env=env(tree))
                st = {k: f"{1000 * v / n:.0f}" for k, v in sorted(r["stages"].items(), key=lambda kv: -kv[1])
                      if 1000 * v / n >= 5}
                line(row, n, tree, f"{r['wall']:.1f}", f"{n / r['wall']:.2f}", f"{r['rss_mib'] / 1024:.2f}", la,
                     ", ".join(f"{k} {v}" for k, v in st.items()))
        plate = make_plate(clip, SIZES["1080"], 120)
        t = spawn("--child-transcode", str(plate), str(work / "t.mp4"), "120")
        line("1080 transcode", 120, "PyAV", f"{t['wall']:.2f}", f"{120 / t['wall']:.1f}", f"{t['rss_mib'] / 1024:.2f}",
             load(), "")
        for tree in ("before", "after"):
            la = load()
            r = spawn("--child-cli", "run", str(plate), "-o", str(work / f"pt_{tree}.mp4"), "-q", "--passthrough",
                      env=env(tree))
            line("1080 --passthrough", 120, tree, f"{r['wall']:.2f}", f"{120 / r['wall']:.1f}",
                 f"{r['rss_mib'] / 1024:.2f}", la, f"ratio to the transcode {r['wall'] / t['wall']:.2f}")
        job = work / "farm"
        job.mkdir()
        cfg = job / "shot.yaml"
        plate = make_plate(clip, SIZES["1080"], 24)
        cfg.write_text(json.dumps({"input": str(plate), "sources": [str(source)], "frames": "0-23",
                                   "output": {"path": str(job / "out.mp4")}}))
        for tree in ("before", "after"):  # each analyses its own job folder (the record of its sources too)
            shutil.rmtree(job / "out.vidswap", ignore_errors=True)
            spawn("--child-cli", "analyze", "--config", str(cfg), env=env(tree))
            la = load()
            r = spawn("--child-cli", "render", "--config", str(cfg), "--frames", "0-7", env=env(tree))
            line("farm render task", 8, tree, f"{r['wall']:.1f}", "", f"{r['rss_mib'] / 1024:.2f}", la,
                 f"process start -> first batch {r['first_batch']:.2f} s, -> first frame encoded "
                 f"{r['first_frame']:.2f} s")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def gpu_matrix(frames: int, frames_4k: int, batches: list[int]) -> int:
    """On a CUDA machine: `vidswap run --device cuda --batch-size B` at 1080p and 4K, frames/s and GPU memory."""
    clip, source = sample("pexels_clip"), sample("grace_hopper")
    work = Path(tempfile.mkdtemp(prefix="vidswap_gpu_"))
    print("| plate | batch | frames | wall s | frames/s end to end | render pass frames/s | peak GPU MiB | peak RSS GB |")
    print("|---|---|---|---|---|---|---|---|")
    try:
        for row, n in (("1080", frames), ("4k", frames_4k)):
            plate = make_plate(clip, SIZES[row], n)
            for b in batches:
                r = spawn("--child-cli", "run", str(plate), "--source", str(source), "-o", str(work / f"{row}_{b}.mp4"),
                          "-q", "--frames", f"0-{n - 1}", "--device", "cuda", "--batch-size", str(b))
                st = r["stages"]
                render = sum(st.get(k, 0.0) for k in ("swap", "encode", "decode", "mux"))
                print(f"| {row} | {b} | {n} | {r['wall']:.1f} | {n / r['wall']:.1f} | "
                      f"{n / render if render else float('nan'):.1f} | {r['gpu_mib'] or 0:.0f} | "
                      f"{r['rss_mib'] / 1024:.2f} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def _base_rss(runs: list[dict]) -> str:
    """The transcode's own peak RSS (its child process: decoder + x264 with the same settings), the floor under ours."""
    rss = [x["base"]["rss_mib"] for x in runs if "rss_mib" in x.get("base", {})]
    return f"{max(rss) / 1024:.2f} GB" if rss else ""


def _cpu_above(runs: list[dict], frames: int) -> str:
    """The median per-frame difference of the paired runs' process CPU time (all threads): what the swap adds in
    work, which the machine's load moves less than the wall time; "" for runs without CPU times."""
    if not all("cpu" in x["ours"] and "cpu" in x["base"] for x in runs):
        return ""
    return f"{1000 * med([x['ours']['cpu'] - x['base']['cpu'] for x in runs]) / frames:.0f} ms/frame"


def report(r: dict) -> None:
    print(f"{r['date']} {r['machine']} ({r['cpus']} CPUs), load {r['load_start']} -> {r['load_end']}"
          + (f", plate rows run with `{r['run_args']}`" if r.get("run_args") else "") + "\n")
    print("| plate | frames | vidswap run | transcode | ratio | above the transcode | CPU above the transcode | "
          "vidswap peak RSS | transcode peak RSS | load |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    names = {"360": "640x360", "1080": "1920x1080", "4k": "3840x2160",
             "4kcanvas": "3840x2160 canvas, 1080p picture at its centre"}
    for row, v in r["rows"].items():
        runs, n = v["runs"], v["frames"]
        ours, base = med([x["ours"]["wall"] for x in runs]), med([x["base"]["wall"] for x in runs])
        print(f"| {names[row]} | {n} | {ours:.1f} s ({n / ours:.1f} frames/s) | {base:.2f} s | "
              f"{med([x['ratio'] for x in runs]):.2f}x | "
              f"{1000 * med([x['ours']['wall'] - x['base']['wall'] for x in runs]) / n:.0f} ms/frame | "
              f"{_cpu_above(runs, n)} | {max(x['ours']['rss_mib'] for x in runs) / 1024:.2f} GB | "
              f"{_base_rss(runs)} | {', '.join(x['load'] for x in runs)} |")
    if "passthrough" in r:
        runs = r["passthrough"]["runs"]
        print(f"| 1920x1080 --passthrough | {r['passthrough']['frames']} | "
              f"{med([x['ours']['wall'] for x in runs]):.2f} s | {med([x['base']['wall'] for x in runs]):.2f} s | "
              f"{med([x['ratio'] for x in runs]):.2f}x | "
              f"{1000 * med([x['ours']['wall'] - x['base']['wall'] for x in runs]) / n:.0f} ms/frame | "
              f"{_cpu_above(runs, r['passthrough']['frames'])} | "
              f"{max(x['ours']['rss_mib'] for x in runs) / 1024:.2f} GB | "
              f"{_base_rss(runs)} | {', '.join(x['load'] for x in runs)} |")
    if "preview" in r:
        runs = r["preview"]["runs"]
        print(f"\n--preview at 1080p: {med([x['ours']['wall'] for x in runs]):.1f} s vs default "
              f"{med([x['base']['wall'] for x in runs]):.1f} s: **{med([1 / x['ratio'] for x in runs]):.2f}x** faster")
        if all("cpu" in x["ours"] and "cpu" in x["base"] for x in runs):
            print(f"  process CPU: {med([x['ours']['cpu'] for x in runs]):.1f} s vs default "
                  f"{med([x['base']['cpu'] for x in runs]):.1f} s: "
                  f"{med([x['base']['cpu'] / x['ours']['cpu'] for x in runs]):.2f}x")
    if "farm" in r:
        for key, what in (("first_batch", "first batch handed to the render stage"),
                          ("first_frame", "first frame handed to the encoder")):
            ff = [x[key] for x in r["farm"] if x.get(key) is not None]
            if ff:
                print(f"\nfarm `vidswap render` task: process start -> {what}: "
                      f"{', '.join(f'{x:.2f}' for x in ff)} s (median {med(ff):.2f} s)")
    print("\nms per frame of `vidswap run` by stage (median of the pairs):\n")
    rows = {names[k]: stage_ms(v["runs"], v["frames"]) for k, v in r["rows"].items()}
    if "preview" in r:
        rows["1080p --preview"] = stage_ms(r["preview"]["runs"], r["preview"]["frames"])
    keys = sorted({k for v in rows.values() for k in v}, key=lambda k: -max(v.get(k, 0) for v in rows.values()))
    print("| plate | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for name, v in rows.items():
        print(f"| {name} | " + " | ".join(f"{v.get(k, 0):.1f}" for k in keys) + " |")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-transcode":
        print(MARK + json.dumps(child_transcode(sys.argv[2], sys.argv[3], int(sys.argv[4]),
                                                source_types=sys.argv[5:6] == ["source-types"])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-cli":
        print(MARK + json.dumps(child_cli(sys.argv[2:])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--ab":
        sys.exit(ab(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--gpu-matrix":
        sys.exit(gpu_matrix(int(sys.argv[2]), int(sys.argv[3]), [int(b) for b in sys.argv[4].split(",")]))
    else:
        sys.exit(main())
