"""x264's own memory, time and size at the output's settings and with a shorter look-ahead (issue 19's memory goal).

    python benchmarks/bench_encoder_memory.py [--frames-1080 120] [--frames-4k 48]

Each variant runs in a fresh process (PyAV decode + libx264 crf 18 preset medium, frame types chosen by x264, as
``bench_speed.py``'s transcode baseline) on bench_speed's upscaled plates (built by it in the bench cache), and
prints its peak RSS, CPU and wall time and the file size. The peak RSS of the default row is the floor under any
``vidswap run`` that encodes the same plate with the same settings.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS = {"default (crf 18, medium)": {}, "rc-lookahead=20": {"x264-params": "rc-lookahead=20"},
            "rc-lookahead=10": {"x264-params": "rc-lookahead=10"}, "threads=2": {"threads": "2"},
            "rc-lookahead=20:threads=2": {"x264-params": "rc-lookahead=20:threads=2"}}


def child(src: str, frames: int, extra: dict) -> dict:
    """bench_speed's transcode with ``extra`` encoder options, in this (fresh) process; plus the file's size."""
    from bench_speed import child_transcode

    with tempfile.TemporaryDirectory() as tmp:
        dest = os.path.join(tmp, "out.mp4")
        r = child_transcode(src, dest, frames, options=extra)
        return {**r, "bytes": os.path.getsize(dest)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames-1080", type=int, default=120)
    ap.add_argument("--frames-4k", type=int, default=48)
    args = ap.parse_args()
    bench = Path(os.environ.get("VIDSWAP_HOME", Path.home() / ".cache" / "vidswap")) / "bench"
    plates = {"1920x1080": (bench / f"pexels_1920x1080_{args.frames_1080}f.mp4", args.frames_1080),
              "3840x2160": (bench / f"pexels_3840x2160_{args.frames_4k}f.mp4", args.frames_4k)}
    print(f"{time.strftime('%Y-%m-%dT%H:%M', time.gmtime())} UTC, load {os.getloadavg()[0]:.2f}\n")
    print("| plate | x264 | peak RSS MiB | CPU s | wall s | bytes (vs default) |")
    print("|---|---|---|---|---|---|")
    for plate, (src, frames) in plates.items():
        if not src.exists():
            print(f"| {plate} | missing {src.name}: run bench_speed.py first | | | | |")
            continue
        base = None
        for name, extra in VARIANTS.items():
            out = subprocess.run([sys.executable, __file__, "--child", str(src), str(frames), json.dumps(extra)],
                                 capture_output=True, text=True, check=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            base = base or r["bytes"]
            print(f"| {plate} | {name} | {r['rss_mib']:.0f} | {r['cpu']:.2f} | {r['wall']:.2f} | "
                  f"{r['bytes']} ({r['bytes'] / base - 1:+.1%}) |", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))))
        sys.exit(0)
    sys.exit(main())
