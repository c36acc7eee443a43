"""CPU cost per frame of each stage of the analyze pass at 640x360, 1920x1080 and 3840x2160 (issue 19: the
analysis's cost should follow the face, not the plate).

    python benchmarks/bench_analysis_stages.py [--frames 48] [--rows 360,1080,4k] [--json F]

Plates: the Pexels sample and its upscaled copies that ``bench_speed.py`` makes (cached in
``~/.cache/vidswap/bench/``). Every row runs the analysis pass (``analysis_cache.analyze_shot``, default preset,
grace_hopper as the source) in a fresh process with a private, empty analysis cache (a temporary
``VIDSWAP_HOME`` whose models / media / bench folders link to the real ones), so nothing is reused.

The stage timers read the main thread's CPU clock instead of the wall clock (the child replaces
``time.perf_counter`` with ``time.thread_time`` before importing vidswap), so a shared, loaded machine gives the same
figures as an idle one; torch runs in that thread (``OMP_NUM_THREADS=1``). ONNX Runtime's pool threads (detector,
mesh, hands) and the decoder's thread are not in the stage figures; ``process`` is the whole process's CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
MARK = "BENCH_JSON "
PLATE_FRAMES = {"360": 120, "1080": 120, "4k": 48}  # as bench_speed.py makes them (the 4K plate has 48 frames)
STAGES = ("appearance", "colour", "motion", "cuts", "hands", "detect", "landmarks", "identity", "smooth", "track")


def child(plate: str, frames: int, out: str) -> dict:
    """One analysis pass; per-stage main-thread CPU seconds and the process's CPU seconds."""
    time.perf_counter = time.thread_time  # the stage timers: CPU of the thread that does the work
    from vidswap import cli_options
    from vidswap.analysis_cache import analyze_shot
    from vidswap.faces.analyze import AnalysisModels
    from vidswap.pipeline import plan_shot
    from vidswap.timing import StageTimer

    opts = dict(input=plate, sources=(str(Path.home() / ".cache/vidswap/media/grace_hopper.jpg"),),
                output=str(Path(out) / "o.mp4"), frames=f"0-{frames - 1}", preview=False, scale=None, every=None,
                shot=None, preset=None, device=None, batch_size=None, codec=None, crf=None, target_mode=None,
                target_index=None, target_face=None, mapping=(), passthrough=None)
    cfg = cli_options.build_config(cli_options.job_layers(**opts))
    plan = plan_shot(cfg)
    models = AnalysisModels.load(cfg.analysis)
    timer = StageTimer()
    start = time.process_time()
    analyze_shot(cfg, plan.info, plan.numbers, models, Path(out) / "tracks.npz", timer, None, plan.colour,
                 plan.work_size)
    return {"process": time.process_time() - start, "stages": dict(timer.seconds), "frames": len(plan.numbers)}


def private_home(root: Path) -> Path:
    """A VIDSWAP_HOME whose shared folders link to the real cache and whose shot_analyses is empty."""
    real = Path(os.environ.get("VIDSWAP_HOME", Path.home() / ".cache" / "vidswap"))
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    for name in ("models", "media", "downloads", "bench", "analysis"):
        if (real / name).exists():
            (home / name).symlink_to(real / name)
    return home


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=48, help="frames analysed per plate (at most 48 at 4K)")
    ap.add_argument("--rows", default="360,1080,4k")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(MARK + json.dumps(child(a.child[0], int(a.child[1]), a.child[2])))
        return 0
    from bench_speed import SIZES, make_plate, sample

    clip = sample("pexels_clip")
    rows = {}
    with tempfile.TemporaryDirectory(prefix="vidswap_analysis_") as tmp:
        env = dict(os.environ, VIDSWAP_HOME=str(private_home(Path(tmp))), OMP_NUM_THREADS="1")
        for row in a.rows.split(","):
            plate = make_plate(clip, SIZES[row], PLATE_FRAMES[row])  # bench_speed's cached plates
            out = Path(tmp) / row
            frames = min(a.frames, PLATE_FRAMES[row])
            run = subprocess.run([sys.executable, __file__, "--child", str(plate), str(frames), str(out)],
                                 env=env, capture_output=True, text=True, check=True)
            rows[row] = json.loads(next(ln for ln in run.stdout.splitlines() if ln.startswith(MARK))[len(MARK):])
    print(f"ms of CPU per frame ({a.frames} frames; load {os.getloadavg()[0]:.1f}); stages: main thread")
    print("| plate | process | " + " | ".join(STAGES) + " |")
    print("|---|" + "---|" * (len(STAGES) + 1))
    for row, r in rows.items():
        per = {k: 1000.0 * v / r["frames"] for k, v in r["stages"].items()}
        print(f"| {row} | {1000.0 * r['process'] / r['frames']:.1f} | "
              + " | ".join(f"{per.get(s, 0.0):.1f}" for s in STAGES) + " |")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
