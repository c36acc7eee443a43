"""Build a small identity-folder face set from the registry media (samples/media.yaml), for FaceDancer training
tests and the CPU learning run. Frames are written as PNG (the images themselves are not redistributable: keep the
folder in the cache, never in the repository).

    python samples/face_set.py OUT_DIR [--frames-per-clip N] [--exclude IDENTITY ...]

Layout: ``OUT/<identity>/<name>.png``; clips give one identity each (every k-th frame, N in all), stills one
identity each.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import fetch_media  # noqa: E402

CLIPS = {"pexels_woman": "pexels_clip", "single_face_man": "single_face_clip", "carphone_man": "carphone_clip"}
STILLS = {"astronaut": "astronaut", "grace_hopper": "grace_hopper", "portrait_f1": "portrait_f1",
          "portrait_m7": "portrait_m7", "single_face_photo": "single_face_image"}


def clip_frames(path: Path, count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over the clip (project reader), HxWx3 RGB uint8."""
    from vidswap.io import probe, read_frames

    info = probe(path)
    n = len(info.frame_numbers)
    step = max(1, n // count)
    numbers = range(info.frame_numbers.start, info.frame_numbers.start + step * count, step)
    numbers = range(numbers.start, min(numbers.stop, info.frame_numbers.stop), step)
    with read_frames(info, numbers) as frames:
        return [f.image for f in frames]


def build_face_set(out: str | Path, frames_per_clip: int = 12, clips: dict[str, str] | None = None,
                   stills: dict[str, str] | None = None) -> Path:
    """Write the set (skipping files already there); returns ``out``."""
    from vidswap.faces.align import as_rgb8
    from vidswap.io import read_image

    out = Path(out)
    manifest = fetch_media.load_manifest()
    for ident, name in (CLIPS if clips is None else clips).items():
        folder = out / ident
        if folder.is_dir() and len(list(folder.glob("*.png"))) >= frames_per_clip:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for i, frame in enumerate(clip_frames(fetch_media.fetch(name, manifest), frames_per_clip)):
            cv2.imwrite(str(folder / f"{i:04d}.png"), cv2.cvtColor(as_rgb8(frame), cv2.COLOR_RGB2BGR))
    for ident, name in (STILLS if stills is None else stills).items():
        folder = out / ident
        target = folder / "0000.png"
        if target.is_file():
            continue
        folder.mkdir(parents=True, exist_ok=True)
        image = as_rgb8(read_image(fetch_media.fetch(name, manifest)))
        cv2.imwrite(str(target), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--frames-per-clip", type=int, default=12)
    ap.add_argument("--exclude", nargs="*", default=[], help="identities to leave out (e.g. a held-out set)")
    a = ap.parse_args()
    unknown = sorted(set(a.exclude) - set(CLIPS) - set(STILLS))
    if unknown:
        ap.error(f"unknown identities {unknown}; known: {sorted(CLIPS) + sorted(STILLS)}")
    print(build_face_set(a.out, a.frames_per_clip, {k: v for k, v in CLIPS.items() if k not in a.exclude},
                         {k: v for k, v in STILLS.items() if k not in a.exclude}))
