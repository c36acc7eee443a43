"""Farm splitting overhead: one `vidswap run` versus analyze + chunked renders (N at a time) + assemble.

    python benchmarks/bench_chunks.py [--frames 1000] [--chunk 100] [--workers 2] [--workdir DIR] [--keep]
                                      [--source grace_hopper] [--startup-repeats 3] [--json F]

A ``--frames``-frame shot at 640x360 (the Pexels sample looped; by stream copy when that gives a constant-rate
clip of exactly N frames, else re-encoded with libx264 crf 14), the source portrait ``grace_hopper.jpg``:

* run (one process): ``vidswap run CLIP -s SRC -o A/out.mp4 -q``, wall time.
* farm: ``vidswap analyze CLIP -s SRC -o B/out.mp4 -q`` once, then ``vidswap render ... --frames a-b -q`` for
  every ``--chunk`` frames, at most ``--workers`` tasks at a time, then ``vidswap assemble ... -q``. Recorded: the
  wall time of each task and of the render stage, and the farm's total wall time; the "as if serial" sum of every
  task's wall time and of its CPU time (user + sys of the task process and its children, from ``wait4``).
* start-up per task: ``vidswap render`` of a chunk that is already complete (it is skipped: interpreter, CLI,
  probe and the analysis load; no models), median of ``--startup-repeats``; and start-up + model loading: a
  1-frame ``vidswap render --force`` alone, its wall time minus its per-frame stages (the stage timers without
  'load'/'tune'), which adds torch import and model and source loading to the start-up.

Every command runs in a fresh process (this script re-invoked as ``--child``: the CLI in-process behind a tiny
wrapper that records the stage timers, as in bench_pipeline.py); every variant writes into a fresh folder, so no
cached analysis is reused across variants. Both outputs are checked for N frames and compared frame by frame
(md5 of the decoded rgb24 frames, ``ffmpeg -f framemd5``): the fraction of identical frames is reported, a
mismatch does not fail the benchmark.

On a machine with no more cores than ``--workers`` x torch threads, tasks running side by side slow each other
down: their summed wall time then overstates the serial cost, and the CPU-time column is the fairer "as if
serial" number. Prints a Markdown table (and the load average: other processes on the cores skew every number).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
import fetch_media  # noqa: E402

MARK = "BENCH_JSON "
FIXED_STAGES = ("load", "tune")  # once-per-process stages; everything else scales with the frames


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


# --------------------------------------------------------------------------------------------------------------
# child process (this script re-invoked): one CLI command, its stage timers


def child(args: list[str]) -> dict:
    """Run ``vidswap ARGS`` in-process; the summed stage seconds of every StageTimer it made, and its wall time."""
    from vidswap import pipeline
    from vidswap.jobs import passes

    timers: list = []

    class Recorded(pipeline.StageTimer):  # every timer the command creates, whatever function makes it
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            timers.append(self)

    pipeline.StageTimer = passes.StageTimer = Recorded
    skipped = []
    original = passes.render_chunk

    def render_chunk(*a, **k):
        result = original(*a, **k)
        skipped.append(result[1] is None)
        return result

    passes.render_chunk = render_chunk
    from vidswap.cli import main

    start = time.perf_counter()
    try:
        main(args, standalone_mode=False)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise RuntimeError(f"vidswap {' '.join(args)} exited with {exc.code}") from None
    wall = time.perf_counter() - start
    stages: dict[str, float] = {}
    for t in timers:
        for k, v in t.seconds.items():
            stages[k] = stages.get(k, 0.0) + v
    return {"inproc": wall, "stages": stages, "skipped": any(skipped)}


def spawn(args: list[str], log: Path) -> dict:
    """``vidswap ARGS`` in a fresh process: wall s, CPU s (user + sys, with its children), stages."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *args]
    with open(log, "w") as fh:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)  # per-process rusage, safe with several tasks in flight
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"vidswap {' '.join(args)} failed ({proc.returncode}): {text.strip()[-1500:]}")
    for line in text.splitlines()[::-1]:
        if line.startswith(MARK):
            result = json.loads(line[len(MARK):])
            break
    else:
        raise RuntimeError(f"no result from vidswap {' '.join(args)}: {text.strip()[-1500:]}")
    result.update(wall=wall, cpu=usage.ru_utime + usage.ru_stime)
    return result


# --------------------------------------------------------------------------------------------------------------
# the clip and the checks


def make_clip(src: Path, frames: int, dest: Path) -> tuple[Path, str]:
    """``frames`` frames of ``src`` (looped) at its own constant rate, with its audio: by stream copy when that
    gives exactly ``frames`` frames at a constant rate, else re-encoded (libx264 crf 14). (path, how)."""
    from vidswap.io import probe

    info = probe(src)
    seconds = f"{frames / float(info.fps):.6f}"
    head = [ffmpeg_exe(), "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src), "-map", "0:v:0", "-map", "0:a?",
            "-frames:v", str(frames), "-t", seconds]
    subprocess.run([*head, "-c", "copy", str(dest)], check=True)
    got = probe(dest)
    if got.frame_count == frames and not got.vfr:
        return dest, "stream copy"
    why = f"{got.frame_count} frames" if got.frame_count != frames else "a VFR clip"
    subprocess.run([*head, "-c:v", "libx264", "-crf", "14", "-preset", "fast", "-pix_fmt", "yuv420p", "-c:a", "copy",
                    str(dest)], check=True)
    got = probe(dest)
    if got.frame_count != frames:
        raise RuntimeError(f"made a {got.frame_count}-frame clip, wanted {frames}")
    return dest, f"looped, re-encoded libx264 crf 14: stream copy gave {why}"


def frame_md5s(path: Path) -> list[str]:
    """md5 of every decoded frame as rgb24, in order."""
    out = subprocess.run([ffmpeg_exe(), "-v", "error", "-i", str(path), "-map", "0:v:0", "-pix_fmt", "rgb24",
                          "-f", "framemd5", "-"], check=True, capture_output=True, text=True).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines() if line and not line.startswith("#")]


def frame_count(path: Path) -> int:
    from vidswap.io import probe

    return probe(path).frame_count


def chunks(first: int, count: int, size: int) -> list[str]:
    return [f"{a}-{min(a + size, first + count) - 1}" for a in range(first, first + count, size)]


# --------------------------------------------------------------------------------------------------------------
# the variants


def bench(clip: Path, source: Path, work: Path, chunk: int, workers: int, startup_repeats: int) -> dict:
    from vidswap.io import probe

    info = probe(clip)
    logs = work / "logs"
    for d in (work / "A", work / "B", logs):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    common = ["-s", str(source), "-q"]
    out_a, out_b = work / "A" / "out.mp4", work / "B" / "out.mp4"

    print("warm-up (imports, model files into the page cache) ...", file=sys.stderr)
    spawn(["probe", str(clip)], logs / "warmup.log")
    subprocess.run([sys.executable, "-c", "import torch, cv2, vidswap.faces.analyze"], check=True, cwd=ROOT)

    print("run (one process) ...", file=sys.stderr)
    run = spawn(["run", str(clip), "-o", str(out_a), *common], logs / "run.log")

    print("farm: analyze ...", file=sys.stderr)
    farm_start = time.perf_counter()
    analyze = spawn(["analyze", str(clip), "-o", str(out_b), *common], logs / "analyze.log")
    ranges = chunks(info.first_frame, info.frame_count, chunk)
    print(f"farm: {len(ranges)} render tasks, {workers} at a time ...", file=sys.stderr)
    render_start = time.perf_counter()

    def task(rng: str) -> dict:
        t0 = time.perf_counter() - render_start
        r = spawn(["render", str(clip), "-o", str(out_b), "--frames", rng, *common], logs / f"render_{rng}.log")
        r.update(range=rng, start=t0, end=time.perf_counter() - render_start)
        return r

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        tasks = list(pool.map(task, ranges))
    render_wall = time.perf_counter() - render_start
    print("farm: assemble ...", file=sys.stderr)
    assemble = spawn(["assemble", str(clip), "-o", str(out_b), *common], logs / "assemble.log")
    farm_wall = time.perf_counter() - farm_start

    print("start-up: re-render a complete chunk (skipped) ...", file=sys.stderr)
    startups = [spawn(["render", str(clip), "-o", str(out_b), "--frames", ranges[0], *common],
                      logs / f"startup_{i}.log") for i in range(startup_repeats)]
    if not all(s["skipped"] for s in startups):
        print("warning: the start-up probe rendered its chunk instead of skipping it", file=sys.stderr)
    print("start-up + model loading: 1-frame render tasks, one at a time ...", file=sys.stderr)
    one = f"{info.first_frame}-{info.first_frame}"
    loads = [spawn(["render", str(clip), "-o", str(out_b), "--frames", one, "--force", *common],
                   logs / f"oneframe_{i}.log") for i in range(startup_repeats)]

    print("checking the outputs ...", file=sys.stderr)
    frames_a, frames_b = frame_count(out_a), frame_count(out_b)
    md5_a, md5_b = frame_md5s(out_a), frame_md5s(out_b)
    same = sum(a == b for a, b in zip(md5_a, md5_b))
    return {"frames": info.frame_count, "size": f"{info.width}x{info.height}", "fps": str(info.fps), "chunk": chunk,
            "workers": workers, "run": run, "analyze": analyze, "tasks": tasks, "render_wall": render_wall,
            "assemble": assemble, "farm_wall": farm_wall, "startups": startups, "one_frame": loads,
            "check": {"frames_run": frames_a, "frames_farm": frames_b, "identical": same,
                      "compared": max(len(md5_a), len(md5_b))}}


# --------------------------------------------------------------------------------------------------------------
# report


def fixed_cost(r: dict) -> float:
    """A task's wall seconds not spent on per-frame stages: start-up, imports, model loading, analysis load."""
    return r["wall"] - sum(v for k, v in r["stages"].items() if k not in FIXED_STAGES)


def markdown(r: dict, source: str, clip_how: str, load: tuple[float, float, float]) -> str:
    run, an, asm, tasks = r["run"], r["analyze"], r["assemble"], r["tasks"]
    n = len(tasks)
    render_sum = sum(t["wall"] for t in tasks)
    render_cpu = sum(t["cpu"] for t in tasks)
    serial = an["wall"] + render_sum + asm["wall"]
    serial_cpu = an["cpu"] + render_cpu + asm["cpu"]
    startup = statistics.median(s["wall"] for s in r["startups"])
    startup_cpu = statistics.median(s["cpu"] for s in r["startups"])
    fixed = statistics.median(fixed_cost(s) for s in r["one_frame"])
    fixed_cpu = statistics.median(s["cpu"] for s in r["one_frame"])
    fixed_load = statistics.median(s["stages"].get("load", 0.0) for s in r["one_frame"])
    mean_task = statistics.mean(t["wall"] for t in tasks)
    mean_task_cpu = statistics.mean(t["cpu"] for t in tasks)
    base, base_cpu = run["wall"], run["cpu"]

    def row(label, wall, task_sum, cpu, note=""):
        w = f"{wall:.2f}" if wall is not None else "-"
        s = f"{task_sum:.2f}" if task_sum is not None else "-"
        ratio = f"{(task_sum if task_sum is not None else wall) / base:.3f}"
        c = f"{cpu:.2f}" if cpu is not None else "-"
        cr = f"{cpu / base_cpu:.3f}" if cpu is not None else "-"
        return f"| {label} | {w} | {s} | {ratio} | {c} | {cr} | {note} |"

    chk = r["check"]
    lines = [
        f"# bench_chunks {datetime.date.today()} on {platform.node()} ({os.cpu_count()} cores, "
        f"{platform.processor() or platform.machine()}); load average at start {load[0]:.1f}; "
        f"{r['frames']} frames {r['size']} {r['fps']} fps ({clip_how}); source {source}; "
        f"chunks of {r['chunk']}, {r['workers']} at a time",
        "",
        "| variant | wall s | sum of task s | ratio to run | CPU s | CPU ratio to run | note |",
        "|---|---|---|---|---|---|---|",
        row("run (one process)", base, None, base_cpu),
        row("farm total wall (analyze + renders + assemble)", r["farm_wall"], None, serial_cpu,
            f"render stage {r['render_wall']:.2f} s wall, {r['workers']} at a time"),
        row("farm sum of tasks (as if serial)", None, serial, serial_cpu, f"{n + 2} processes"),
        row("farm: analyze", an["wall"], an["wall"], an["cpu"], "the analysis run also does"),
        row(f"farm: {n} render tasks", None, render_sum, render_cpu,
            "side by side: each task's wall includes waiting for the cores"),
        row("farm: assemble", asm["wall"], asm["wall"], asm["cpu"], "decode FFV1 chunks, H.264 encode, mux"),
        row("mean render task", mean_task, None, mean_task_cpu, f"{r['chunk']} frames"),
        row("per-task start-up (skipped chunk)", startup, None, startup_cpu,
            f"median of {len(r['startups'])}: interpreter, CLI, probe, analysis load"),
        row(f"start-up x {n + 1} extra processes", None, startup * (n + 1), startup_cpu * (n + 1),
            f"{n} renders + assemble (analyze stands for run's own process)"),
        row("per-task start-up + model loading (1-frame render)", fixed, None, fixed_cpu,
            f"median of {len(r['one_frame'])}, alone: wall - per-frame stages ('load' stage {fixed_load:.2f} s)"),
        row(f"start-up + models x {n} render tasks", None, fixed * n, fixed_cpu * n,
            "every render task loads the models"),
    ]
    over, over_cpu = serial - base, serial_cpu - base_cpu
    extra_start = startup * (n + 1)
    extra_models = max(0.0, fixed - startup) * n - run["stages"].get("load", 0.0)
    run_encode = run["stages"].get("encode", 0.0) + run["stages"].get("mux", 0.0)
    asm_work = asm["wall"] - startup - run_encode
    rest = over - extra_start - extra_models - asm_work
    lines += [
        "",
        f"Overhead of splitting = (farm serial sum - run) / run: **{over / base:+.1%}** by wall time "
        f"({over:+.2f} s), **{over_cpu / base_cpu:+.1%}** by CPU time ({over_cpu:+.2f} s). "
        f"Farm total wall with {r['workers']} at a time / run: **{r['farm_wall'] / base:.3f}**.",
        "",
        "Where the serial overhead goes (wall s; estimates from the probes above):",
        "",
        f"- start-up x tasks: {n + 1} extra process start-ups x {startup:.2f} = {extra_start:.2f}",
        f"- model loading x tasks: {n} x {max(0.0, fixed - startup):.2f} (torch import, models, source face) "
        f"- run's own 'load' {run['stages'].get('load', 0.0):.2f} = {extra_models:.2f}",
        f"- analysis: the same in both (analyze task {an['wall']:.2f}, with its own start-up and analysis models)",
        f"- assemble: {asm['wall']:.2f} - start-up {startup:.2f} - the H.264 encode + mux run does inline "
        f"{run_encode:.2f} = {asm_work:.2f}",
        f"- the rest (tasks slowing each other {r['workers']} at a time, FFV1 chunk writes, noise): {rest:+.2f}",
        "",
        f"Outputs: run {chk['frames_run']} frames, farm {chk['frames_farm']} frames (expected {r['frames']}); "
        f"identical decoded rgb24 frames: {chk['identical']}/{chk['compared']} "
        f"({chk['identical'] / max(1, chk['compared']):.1%}).",
        "",
        "Render tasks (start/end: seconds from the start of the render stage; fixed: wall - per-frame stages):",
        "",
        "| chunk | start | end | wall s | CPU s | load s | fixed s |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in tasks:
        lines.append(f"| {t['range']} | {t['start']:.2f} | {t['end']:.2f} | {t['wall']:.2f} | {t['cpu']:.2f} | "
                     f"{t['stages'].get('load', 0.0):.2f} | {fixed_cost(t):.2f} |")
    stages = sorted(set(run["stages"]) | set(an["stages"]) | set(asm["stages"])
                    | {k for t in tasks for k in t["stages"]})
    lines += ["", "Stage seconds (the commands' StageTimers): run vs the farm's tasks:", "",
              "| | " + " | ".join(stages) + " |", "|---|" + "---|" * len(stages)]
    for label, st in (("run", run["stages"]), ("analyze", an["stages"]),
                      ("render tasks (sum)", {k: sum(t["stages"].get(k, 0.0) for t in tasks) for k in stages}),
                      ("assemble", asm["stages"])):
        lines.append(f"| {label} | " + " | ".join(f"{st.get(k, 0.0):.2f}" for k in stages) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        print(MARK + json.dumps(child(argv[1:])))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1000, help="frames in the shot (default 1000)")
    parser.add_argument("--chunk", type=int, default=100, help="frames per render task (default 100)")
    parser.add_argument("--workers", type=int, default=2, help="render tasks at a time (default 2)")
    parser.add_argument("--workdir", help="work folder (default: a new temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the clip, outputs, job folders and logs")
    parser.add_argument("--source", default="grace_hopper", help="source portrait (sample name or path)")
    parser.add_argument("--startup-repeats", type=int, default=3, help="skipped-chunk start-up probes (default 3)")
    parser.add_argument("--json", help="also write the raw numbers here")
    args = parser.parse_args(argv)
    if args.frames < 1 or args.chunk < 1 or args.workers < 1 or args.startup_repeats < 1:
        parser.error("--frames, --chunk, --workers and --startup-repeats must be >= 1")
    sample = fetch_media.fetch("pexels_clip")
    source = fetch_media.fetch(args.source) if args.source in fetch_media.load_manifest() else Path(args.source)
    load = os.getloadavg()
    temp = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="vidswap_bench_chunks_") if temp else args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    clip = work / f"clip_{args.frames}f.mp4"
    try:
        print(f"making the {args.frames}-frame clip in {work} ...", file=sys.stderr)
        clip, how = make_clip(sample, args.frames, clip)
        result = bench(clip, source, work, args.chunk, args.workers, args.startup_repeats)
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        elif temp:
            shutil.rmtree(work, ignore_errors=True)
        else:
            for p in (work / "A", work / "B", work / "logs"):
                shutil.rmtree(p, ignore_errors=True)
            clip.unlink(missing_ok=True)
    print(markdown(result, source.name, how, load))
    if args.json:
        Path(args.json).write_text(json.dumps({"result": result, "clip": how, "load_average": load}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
