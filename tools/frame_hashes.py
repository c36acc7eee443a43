"""Render fixed jobs and print the sha256 of every decoded output frame (refactoring check: before vs after).

    python tools/frame_hashes.py OUT.json            # render and write {job: [sha256 per frame]}
    python tools/frame_hashes.py OUT.json --compare BEFORE.json

Jobs: the sample shot (Pexels frames 0-47, grace_hopper) and single_face (all frames, astronaut), default preset,
FFV1 output so the hashes see the pipeline's pixels, not the encoder's.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

import fetch_media  # noqa: E402

JOBS = {
    "pexels_0-47_grace_hopper": ("pexels_clip", "grace_hopper", ["--frames", "0-47"]),
    "single_face_astronaut": ("single_face_clip", "astronaut", []),
}


def frame_hashes(path: Path) -> list[str]:
    import av

    with av.open(str(path)) as container:
        return [hashlib.sha256(f.to_ndarray(format="rgb24").tobytes()).hexdigest()
                for f in container.decode(video=0)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--compare", type=Path)
    ap.add_argument("--extra", nargs="*", default=[], help="more run flags for every job")
    args = ap.parse_args()
    manifest = fetch_media.load_manifest()
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        for job, (clip, source, flags) in JOBS.items():
            out = Path(tmp) / f"{job}.mkv"
            cmd = [sys.executable, "-m", "vidswap.cli", "run", str(fetch_media.fetch(clip, manifest)),
                   "-s", str(fetch_media.fetch(source, manifest)), "-o", str(out), "-q", *flags, *args.extra]
            subprocess.run(cmd, check=True)
            result[job] = frame_hashes(out)
            print(f"{job}: {len(result[job])} frames")
    args.out.write_text(json.dumps(result, indent=1))
    if args.compare:
        before = json.loads(args.compare.read_text())
        bad = 0
        for job, hashes in result.items():
            old = before.get(job, [])
            diff = [i for i, (a, b) in enumerate(zip(old, hashes)) if a != b]
            same = len(old) == len(hashes) and not diff
            bad += not same
            print(f"{job}: {'identical' if same else f'DIFFERENT frames {diff[:10]} (counts {len(old)} vs {len(hashes)})'}")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
