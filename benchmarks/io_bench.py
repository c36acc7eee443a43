"""I/O benchmark: pass-through `vidswap run` versus a bare ffmpeg transcode of the same clip, same encoder settings.

Reports, for a 10 s clip and a 2 min clip (the Pexels sample, trimmed / looped by stream copy), the wall time of
both, their ratio (goal <= 1.15) and the peak RSS of each (goal: equal within 10% between 10 s and 2 min, i.e.
memory does not grow with clip length). Run: `python benchmarks/io_bench.py` (or `make bench`).
"""

from __future__ import annotations

import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imageio_ffmpeg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))
import fetch_media  # noqa: E402

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
VIDSWAP = [sys.executable, "-m", "vidswap.cli"]
MEASURE = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
           "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode; "
           "dt = time.perf_counter() - t; "
           "print(rc, dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def measure(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of ``cmd`` run in a fresh child process."""
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, check=True)
    rc, seconds, rss_kb = out.stdout.split()
    if int(rc) != 0:
        raise RuntimeError(f"command failed ({rc}): {' '.join(cmd)}")
    return float(seconds), int(rss_kb) / 1024


def make_clip(src: Path, seconds: float, dest: Path) -> Path:
    """``seconds`` of ``src`` (looped if shorter) by stream copy: same codec, same frames."""
    subprocess.run([FFMPEG, "-v", "error", "-y", "-stream_loop", "-1", "-i", str(src), "-t", f"{seconds}",
                    "-map", "0", "-c", "copy", str(dest)], check=True)
    return dest


def bench(clip: Path, source: Path, work: Path, crf: int, preset: str, repeats: int) -> dict:
    ff_out, vs_out = work / "ffmpeg_out.mp4", work / "vidswap_out.mp4"
    ff_cmd = [FFMPEG, "-v", "error", "-y", "-i", str(clip), "-map", "0:v:0", "-map", "0:a?", "-c:v", "libx264",
              "-crf", str(crf), "-preset", preset, "-pix_fmt", "yuv420p", "-c:a", "copy", str(ff_out)]
    vs_cmd = [*VIDSWAP, "run", str(clip), "--source", str(source), "--passthrough", "-q", "-o", str(vs_out),
              "--crf", str(crf)]
    ff_times, vs_times, ff_rss, vs_rss = [], [], 0.0, 0.0
    for _ in range(repeats):  # interleaved, best of N: both see the same machine state
        t, r = measure(ff_cmd)
        ff_times.append(t)
        ff_rss = max(ff_rss, r)
        t, r = measure(vs_cmd)
        vs_times.append(t)
        vs_rss = max(vs_rss, r)
    return {"ffmpeg_s": min(ff_times), "vidswap_s": min(vs_times), "ratio": min(vs_times) / min(ff_times),
            "ffmpeg_rss": ff_rss, "vidswap_rss": vs_rss}


def main() -> int:
    clip = fetch_media.fetch("pexels_clip")
    source = fetch_media.fetch("astronaut")
    repeats = int(os.environ.get("BENCH_REPEATS", "2"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for label, seconds in (("10 s", 10.0), ("2 min", 120.0)):
            c = make_clip(clip, seconds, work / f"clip_{int(seconds)}s.mp4")
            rows.append((label, bench(c, source, work, crf=18, preset="medium", repeats=repeats)))
    print(f"# io_bench {datetime.date.today()} on {platform.node()} ({os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}), H.264 crf 18 preset medium, 640x360 23.976 fps")
    print("| clip | ffmpeg s | vidswap s | ratio | ffmpeg peak RSS MiB | vidswap peak RSS MiB |")
    print("|---|---|---|---|---|---|")
    for label, r in rows:
        print(f"| {label} | {r['ffmpeg_s']:.2f} | {r['vidswap_s']:.2f} | {r['ratio']:.3f} | "
              f"{r['ffmpeg_rss']:.0f} | {r['vidswap_rss']:.0f} |")
    growth = rows[1][1]["vidswap_rss"] / rows[0][1]["vidswap_rss"]
    print(f"vidswap peak RSS 2 min / 10 s: {growth:.3f} (goal <= 1.10)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
