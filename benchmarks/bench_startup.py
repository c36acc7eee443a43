"""Fixed costs of the CLI (issue 19): start-up, pass-through against a transcode, a farm render task's start-up.

    python benchmarks/bench_startup.py [--before TREE] [--pairs 3] [--frames 120] [--no-farm]

Each measurement is a fresh process; ``--before TREE`` (a checkout of the code before a change, its PYTHONPATH)
runs every row for that tree and this one back to back, so both see the same load. Rows:

* ``--help``: ``python -m vidswap.cli --help``, whole process (wall and CPU seconds, from ``getrusage`` of the
  child), and whether torch was imported;
* pass-through: ``python -m vidswap.cli run PLATE -o OUT -q --passthrough`` of the 1080p bench plate (120
  frames), whole process, paired with the PyAV transcode child of ``bench_speed.py`` (also a whole process; the
  encoder choosing its frame types, as FFmpeg does) and with the same child handed the source's frame types (the
  baseline before passthru-s12: cheaper for x264); ratios per pair, medians; whether each tree wrote the same
  pictures as the other and as the transcode (SHA-256 over every decoded frame's planes, in the encoded pixel
  format);
* farm render task: ``vidswap render --frames 0-1`` of an 8-frame 1080p job after ``vidswap analyze``, in a fresh
  process: seconds and process CPU seconds from the process start to the first ``RenderStage`` call and to the
  first frame handed to the encoder.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "samples"))
MARK = "BENCH_JSON "


def timed(cmd: list[str], env: dict) -> dict:
    """Run ``cmd`` to its end: wall seconds, CPU seconds (user + system of the child), its last JSON line."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/tmp", env=env)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    data = {}
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith(MARK):
            data = json.loads(line[len(MARK):])
            break
    return {"wall": wall, "cpu": cpu, **data}


def frames_hash(path: Path) -> tuple[int, str]:
    """(frames, SHA-256) over every decoded picture's planes of ``path``'s video stream, in its own pixel format
    (what the encoder wrote; no conversion)."""
    import hashlib

    import av

    digest, count = hashlib.sha256(), 0
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            digest.update(frame.to_ndarray().tobytes())  # the planes without their row padding
            count += 1
    return count, digest.hexdigest()


def child_farm(args: list[str]) -> None:
    """In a fresh process: the CLI's ``render`` up to its first frame handed to the encoder, then exit."""
    start_cpu = time.process_time()  # the interpreter's own start-up before this line is ~0.05 s, not counted
    start = time.perf_counter()
    seen: dict = {}
    from vidswap.io import writers
    from vidswap import render

    def done(key: str) -> None:
        seen.setdefault(key, {"wall": time.perf_counter() - start, "cpu": time.process_time() - start_cpu})

    write, call = writers.VideoSink.write, render.RenderStage.__call__

    def first_frame(self, frame):
        done("first_frame")
        print(MARK + json.dumps(seen | {"modules": sorted(m for m in HEAVY if m in sys.modules)}), flush=True)
        os._exit(0)  # the fixed cost ends here; the rest of the task is the frames' cost

    def first_batch(self, frames):
        done("first_batch")
        if os.environ.get("BENCH_STARTUP_STOP") == "first_batch":  # --farm-only: the frames' cost not measured
            first_frame(self, None)
        return call(self, frames)

    writers.VideoSink.write, render.RenderStage.__call__ = first_frame, first_batch
    from vidswap.cli import main

    main(args, standalone_mode=False)
    raise RuntimeError("no frame reached the encoder")


HEAVY = ("torch", "kornia", "scipy.ndimage", "scipy", "cv2", "onnxruntime", "matplotlib")


def child_modules(args: list[str]) -> None:
    """Run the CLI in-process and print which heavy modules it imported."""
    from vidswap.cli import main

    try:
        main(args, standalone_mode=False)
    except SystemExit:
        pass
    print(MARK + json.dumps({"modules": sorted(m for m in HEAVY if m in sys.modules)}), flush=True)


def med(values) -> float:
    return statistics.median(values)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", help="PYTHONPATH of the code before the change (rows run for both, back to back)")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--no-farm", action="store_true", help="skip the farm render task rows")
    ap.add_argument("--farm-only", action="store_true",
                    help="only the farm render task rows, each task stopped at its first batch")
    a = ap.parse_args()
    import bench_speed

    trees = {"after": str(ROOT)} | ({"before": a.before} if a.before else {})
    order = [t for t in ("before", "after") if t in trees]
    py = sys.executable
    me = str(Path(__file__).resolve())
    env = {t: dict(os.environ, PYTHONPATH=p, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
           for t, p in trees.items()}
    clip, source = bench_speed.sample("pexels_clip"), bench_speed.sample("grace_hopper")
    plate = bench_speed.make_plate(clip, bench_speed.SIZES["1080"], a.frames)
    work = Path(tempfile.mkdtemp(prefix="vidswap_startup_"))
    print(f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='minutes')}, "
          f"load {Path('/proc/loadavg').read_text().split()[0]}, {os.cpu_count()} CPUs\n")

    def row(*cells) -> None:
        print("| " + " | ".join(str(c) for c in cells) + " |", flush=True)

    try:
        row("what", "code", "wall s (median)", "CPU s (median)", "runs (wall / CPU)", "heavy modules imported")
        row(*["---"] * 6)
        for _ in range(0 if a.farm_only else 1):
            help_runs = {t: [timed([py, "-m", "vidswap.cli", "--help"], env[t]) for _ in range(a.pairs)]
                         for t in order}
        for t in order if not a.farm_only else ():
            mods = timed([py, me, "--child-modules", "--help"], env[t])["modules"]
            rs = help_runs[t]
            row("`vidswap --help`", t, f"{med([r['wall'] for r in rs]):.2f}", f"{med([r['cpu'] for r in rs]):.2f}",
                ", ".join(f"{r['wall']:.2f}/{r['cpu']:.2f}" for r in rs), " ".join(mods) or "none")
        runs: dict[str, list] = {t: [] for t in order}
        for k in range(0 if a.farm_only else a.pairs):
            transcode = [py, str(ROOT / "benchmarks" / "bench_speed.py"), "--child-transcode", str(plate)]
            base = timed(transcode + [str(work / "t.mp4"), str(a.frames)], env["after"])
            forced = timed(transcode + [str(work / "t_src.mp4"), str(a.frames), "source-types"], env["after"])
            for t in order:
                ours = timed([py, "-m", "vidswap.cli", "run", str(plate), "-o", str(work / f"pt_{t}.mp4"), "-q",
                              "--passthrough"], env[t])
                runs[t].append((base, ours, forced))
        for t in order if not a.farm_only else ():
            rs = runs[t]
            row(f"pass-through 1080p {a.frames} f", t, f"{med([o['wall'] for _, o, _ in rs]):.2f}",
                f"{med([o['cpu'] for _, o, _ in rs]):.2f}",
                ", ".join(f"{o['wall']:.2f}/{o['cpu']:.2f}" for _, o, _ in rs),
                f"transcode {med([b['wall'] for b, _, _ in rs]):.2f} s / {med([b['cpu'] for b, _, _ in rs]):.2f} "
                f"CPU s; ratio wall {med([o['wall'] / b['wall'] for b, o, _ in rs]):.2f}x, "
                f"CPU {med([o['cpu'] / b['cpu'] for b, o, _ in rs]):.2f}x; against the source-types transcode "
                f"({med([f['wall'] for _, _, f in rs]):.2f} s / {med([f['cpu'] for _, _, f in rs]):.2f} CPU s): "
                f"wall {med([o['wall'] / f['wall'] for _, o, f in rs]):.2f}x, "
                f"CPU {med([o['cpu'] / f['cpu'] for _, o, f in rs]):.2f}x")
        if not a.farm_only:
            hashes = {t: frames_hash(work / f"pt_{t}.mp4") for t in order}
            hashes["transcode"] = frames_hash(work / "t.mp4")
            print(f"\npass-through decoded frames: " + ", ".join(f"{t} {n} frames sha256 {h[:16]}"
                                                               for t, (n, h) in hashes.items())
                  + f"; identical: {len(set(hashes.values())) == 1}\n")
        if a.no_farm:
            return 0
        job = work / "farm"
        job.mkdir()
        cfg = job / "shot.yaml"
        small = bench_speed.make_plate(clip, bench_speed.SIZES["1080"], 24)
        cfg.write_text(json.dumps({"input": str(small), "sources": [str(source)], "frames": "0-7",
                                   "output": {"path": str(job / "out.mp4")}}))
        farm: dict[str, list] = {t: [] for t in order}
        if a.farm_only:
            for t in order:
                env[t]["BENCH_STARTUP_STOP"] = "first_batch"
        for t in order:  # each tree analyses its own job folder (the record of its sources too)
            shutil.rmtree(job / "out.vidswap", ignore_errors=True)
            timed([py, "-m", "vidswap.cli", "analyze", "--config", str(cfg), "-q"], env[t])
            shutil.copytree(job / "out.vidswap", work / f"job_{t}")
        for _ in range(a.pairs):
            for t in order:
                shutil.rmtree(job / "out.vidswap", ignore_errors=True)
                shutil.copytree(work / f"job_{t}", job / "out.vidswap")
                farm[t].append(timed([py, me, "--child-farm", "render", "--config", str(cfg), "--frames", "0-1",
                                      "-q"], env[t]))
        for t in order:
            rs = farm[t]
            for key in ("first_batch",) if a.farm_only else ("first_batch", "first_frame"):
                row(f"farm render task -> {key.replace('_', ' ')}", t, f"{med([r[key]['wall'] for r in rs]):.2f}",
                    f"{med([r[key]['cpu'] for r in rs]):.2f}",
                    ", ".join(f"{r[key]['wall']:.2f}/{r[key]['cpu']:.2f}" for r in rs), " ".join(rs[0]["modules"]))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nload at the end {Path('/proc/loadavg').read_text().split()[0]}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-farm":
        child_farm(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-modules":
        child_modules(sys.argv[2:])
    else:
        sys.exit(main())
