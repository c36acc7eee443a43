"""Peak RSS of `vidswap run` and RSS over the frames of each pass (issue 19's memory goals).

    python benchmarks/bench_memory.py PLATE:FRAMES [PLATE:FRAMES ...] [--json F] [--plot F.png] [--tree DIR]

Each ``PLATE:FRAMES`` is one fresh process running ``vidswap run PLATE --source grace_hopper -o OUT.mp4 -q
--frames 0-(FRAMES-1)`` (default preset, fresh job folder, shared analyses not reused) while a sampler thread
reads the process's resident set (``/proc/self/statm``) every 50 ms and labels each sample with the pass and the
frames it had done (the progress callback), and with the step of the render stage the main thread is in
(``crop``: the face's region cut and warped, ``core``: the swap core, ``composite``: the compositor, ``stage``:
the rest of the stage, ``loop``: reading/encoding between batches). ``--tree`` runs another checkout of the code
(its PYTHONPATH), for before/after rows in one session. The table gives the peak RSS of the whole run and of each pass; the plot shows
RSS against frames done in the render pass, one line per run.

``--make-long SRC N OUT``: ``OUT`` = the frames of ``SRC`` looped (forwards then backwards, so there is no cut)
until N frames, re-encoded with libx264 crf 12 veryfast (long plates for the flatness rows).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
MARK = "BENCH_JSON "
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2 ** 20


def label_steps(where: dict) -> None:
    """Wrap the render stage's steps so that ``where["step"]`` names the one the main thread is in."""
    from vidswap import render

    def wrap(owner, name: str, step: str) -> None:
        inner = getattr(owner, name)

        def call(*args, **kw):
            outer, where["step"] = where["step"], step
            try:
                return inner(*args, **kw)
            finally:
                where["step"] = outer

        setattr(owner, name, call)

    wrap(render, "batch_from_track", "crop")
    wrap(render, "composite_track", "composite")
    wrap(render.RenderStage, "__call__", "stage")
    swap_rows = render.RenderStage._swap_rows

    def rows(self, *args, **kw):  # the core's swap, wrapped on the instance the first time
        if not getattr(self.core, "_bench_wrapped", False):
            wrap(self.core, "swap", "core")
            self.core._bench_wrapped = True
        return swap_rows(self, *args, **kw)

    render.RenderStage._swap_rows = rows


def child(plate: str, frames: int, out: str) -> dict:
    """One `vidswap run` in this process, RSS sampled every 50 ms with the pass, frames done and render step."""
    import fetch_media

    source = fetch_media.fetch("grace_hopper")
    folder = Path(tempfile.mkdtemp(prefix="vidswap_mem_shared_"))
    from vidswap import analysis_cache, pipeline

    analysis_cache.shared_analysis_path = lambda key: folder / f"{key}.npz"
    if hasattr(pipeline, "shared_analysis_path"):
        pipeline.shared_analysis_path = analysis_cache.shared_analysis_path
    where = {"pass": "start", "done": 0, "step": "loop"}
    label_steps(where)
    samples: list[tuple[float, float, str, int, str]] = []
    stop = threading.Event()
    start = time.perf_counter()

    def sample() -> None:
        while not stop.wait(0.05):
            samples.append((time.perf_counter() - start, rss_mib(), where["pass"], where["done"], where["step"]))

    original = pipeline.run

    def run(cfg, progress=None, **kw):
        def record(stage, done, total):
            where["pass"], where["done"] = stage, done
            samples.append((time.perf_counter() - start, rss_mib(), stage, done, "loop"))
            if progress is not None:
                progress(stage, done, total)

        return original(cfg, progress=record, **kw)

    pipeline.run = run
    from vidswap.cli import main

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        main(["run", plate, "--source", str(source), "-o", out, "-q", "--frames", f"0-{frames - 1}"],
             standalone_mode=False)
    except SystemExit as exc:
        if exc.code:
            raise
    stop.set()
    thread.join()
    return {"wall": time.perf_counter() - start, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "samples": samples}


def spawn(plate: str, frames: int, tree: str, job: Path | None = None) -> dict:
    """One child run; ``job``: write into that folder (its analysis is reused when up to date), else a fresh one."""
    out = (job or Path(tempfile.mkdtemp(prefix="vidswap_mem_"))) / f"{Path(plate).stem}_{frames}.mp4"
    env = dict(os.environ, PYTHONPATH=tree)
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", plate, str(frames), str(out)],
                          capture_output=True, text=True, cwd=tree, env=env)
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"child failed ({proc.returncode}): {proc.stderr.strip()[-3000:]}")


def pass_peaks(samples: list) -> dict[str, float]:
    peaks: dict[str, float] = {}
    for _, rss, stage, *_ in samples:
        peaks[stage] = max(peaks.get(stage, 0.0), rss)
    return peaks


def step_peaks(samples: list) -> dict[str, float]:
    """The render pass's highest RSS in each step of the render stage."""
    peaks: dict[str, float] = {}
    for _, rss, stage, _, step in samples:
        if stage == "render":
            peaks[step] = max(peaks.get(step, 0.0), rss)
    return peaks


def make_long(src: str, n: int, out: str) -> None:
    """``n`` frames of ``src`` played forwards, backwards, forwards... (no cut), libx264 crf 12 veryfast."""
    import av

    with av.open(src) as inp:
        vin = inp.streams.video[0]
        rate = vin.average_rate
        frames = [f.to_ndarray(format="yuv420p") for f in inp.decode(vin)]
    w, h = vin.width, vin.height
    order = list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    with av.open(out, "w") as dst:
        vout = dst.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = w, h, "yuv420p"
        vout.options = {"crf": "12", "preset": "veryfast"}
        for k in range(n):
            frame = av.VideoFrame.from_ndarray(frames[order[k % len(order)]], format="yuv420p")
            frame.pts, frame.time_base = k, 1 / rate
            for packet in vout.encode(frame):
                dst.mux(packet)
        for packet in vout.encode(None):
            dst.mux(packet)


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for r in runs:
        s = r["samples"]
        axes[0].plot([x[0] for x in s], [x[1] for x in s], label=r["label"], lw=1)
        render = [(x[3], x[1]) for x in s if x[2] == "render"]
        if render:
            axes[1].plot([x[0] for x in render], [x[1] for x in render], ".", ms=2, label=r["label"])
    axes[0].set(xlabel="seconds", ylabel="RSS MiB", title="RSS over the run (every 50 ms)")
    axes[1].set(xlabel="frames rendered", ylabel="RSS MiB", title="RSS in the render pass")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("rows", nargs="+", help="PLATE:FRAMES[:LABEL]")
    ap.add_argument("--tree", default=str(ROOT), help="the checkout to run (PYTHONPATH)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--job", type=Path, help="reuse this folder's job (and its analysis) between runs")
    a = ap.parse_args()
    runs = []
    print(f"{datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='minutes')} {platform.node()} "
          f"({os.cpu_count()} CPUs), tree {a.tree}\n")
    print("| plate | frames | wall s | peak RSS MiB | analysis peak | render peak "
          "| RSS after the first / last render batch | load |")
    print("|---|---|---|---|---|---|---|---|")
    for row in a.rows:
        plate, frames, *label = row.split(":")
        la = Path("/proc/loadavg").read_text().split()[0]
        r = spawn(plate, int(frames), a.tree, a.job)
        r["label"] = label[0] if label else f"{Path(plate).stem} {frames}f"
        runs.append(r)
        peaks = pass_peaks(r["samples"])
        render = [x for x in r["samples"] if x[2] == "render" and x[3] > 0 and x[4] == "loop"]
        ends = f"{render[0][1]:.0f} / {render[-1][1]:.0f}" if render else ""
        print(f"| {r['label']} | {frames} | {r['wall']:.1f} | {r['peak_mib']:.0f} | {peaks.get('analyze', 0):.0f} | "
              f"{peaks.get('render', 0):.0f} | {ends} | {la} |", flush=True)
    print("\nrender pass, highest RSS MiB in each step (main thread):\n")
    steps = ("loop", "stage", "crop", "core", "composite")
    print("| run | " + " | ".join(steps) + " |\n|---|" + "---|" * len(steps))
    for r in runs:
        peaks = step_peaks(r["samples"])
        print(f"| {r['label']} | " + " | ".join(f"{peaks.get(s, 0):.0f}" for s in steps) + " |")
    if a.json:
        a.json.write_text(json.dumps(runs))
    if a.plot:
        plot(runs, a.plot)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(MARK + json.dumps(child(sys.argv[2], int(sys.argv[3]), sys.argv[4])))
    elif len(sys.argv) > 1 and sys.argv[1] == "--make-long":
        make_long(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(main())
