"""Shot-cut detection: vidswap's CutDetector against PySceneDetect's AdaptiveDetector (issue 15).

    PYTHONPATH=. python benchmarks/bench_cuts.py          # needs `pip install scenedetect` (not a dependency)

Clips: the registry clips (samples/media.yaml) with their shot boundaries labelled by eye (frames checked in a
contact sheet: face_noface has a face shot, one black frame at 72, a sky title from 73; noface_face a sky title,
the face from 96 and a black last frame at 168; the others are single shots), plus a concatenation of real clips
with 7 hard cuts, two of them between non-adjacent parts of the same shot of the same person (jump cuts), one
into the 176x144 carphone clip scaled up; and two synthetic no-cut stresses made from the pexels clip: a whip pan
(24 px a frame over the frame scaled 3x) and one-frame camera flashes (1.8x brighter, every 30 frames).  A cut counts as found when a detection lies within one frame of a
labelled boundary; boundaries one frame apart (a one-frame black) count as one event.  Both detectors see the
same decoded frames (PySceneDetect as BGR, as it reads them from OpenCV) and run with their defaults.
Prints a markdown table per clip and the totals: found / missed / false cuts, and ms per frame.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "samples"))

import fetch_media  # noqa: E402

from vidswap.faces.cuts import CutDetector  # noqa: E402
from vidswap.io import probe, read_frames  # noqa: E402

SIZE = (640, 360)
# clip: (registry name, labelled boundary events, each a tuple of the frames that start a new shot)
CLIPS = {
    "face_noface": ("face_noface_clip", [(72, 73)]),
    "noface_face": ("noface_face_clip", [(96,), (168,)]),
    "no_face": ("no_face_clip", []),
    "pexels": ("pexels_clip", []),
    "single_face": ("single_face_clip", []),
    "carphone": ("carphone_clip", []),
}
# concatenation: (registry name, first frame, last frame) segments; a cut at every segment start but the first
CONCAT = [("pexels_clip", 0, 95), ("single_face_clip", 0, 71), ("pexels_clip", 300, 395), ("carphone_clip", 0, 119),
          ("pexels_clip", 120, 215), ("no_face_clip", 0, 94), ("single_face_clip", 10, 71), ("pexels_clip", 400, 471)]


def frames_of(path: Path, first: int = 0, last: int | None = None) -> list[np.ndarray]:
    info = probe(path)
    out = []
    with read_frames(info) as frames:
        for frame in frames:
            if frame.number < first or (last is not None and frame.number > last):
                continue
            image = frame.image
            out.append(image if image.shape[1::-1] == SIZE else cv2.resize(image, SIZE, interpolation=cv2.INTER_AREA))
    return out


def fast_pan(frame: np.ndarray, count: int = 60, step: int = 24) -> list[np.ndarray]:
    """A whip pan over one frame scaled up 3x: a 640x360 window moving ``step`` px a frame (no cut)."""
    big = cv2.resize(frame, (SIZE[0] * 3, SIZE[1] * 3), interpolation=cv2.INTER_CUBIC)
    x = np.linspace(0, big.shape[1] - SIZE[0], count).astype(int) if step is None else \
        np.minimum(np.arange(count) * step, big.shape[1] - SIZE[0])
    return [np.ascontiguousarray(big[SIZE[1]:2 * SIZE[1], x0:x0 + SIZE[0]]) for x0 in x]


def flashes(frames: list[np.ndarray], every: int = 30) -> list[np.ndarray]:
    """Photographers' flashes: every ``every``-th frame brightened 1.8x for one frame (no cut)."""
    out = []
    for i, f in enumerate(frames):
        out.append(np.clip(f.astype(np.float32) * 1.8, 0, 255).astype(np.uint8) if i % every == every // 2 else f)
    return out


def ours(frames: list[np.ndarray]) -> list[int]:
    detector = CutDetector()
    for f in frames:
        detector.push(f)
    return detector.cuts


def pyscenedetect(frames: list[np.ndarray], fps: float = 24.0) -> list[int]:
    from scenedetect import AdaptiveDetector, FrameTimecode

    detector = AdaptiveDetector()
    cuts = []
    for i, f in enumerate(frames):
        cuts += detector.process_frame(FrameTimecode(i, fps=fps), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    cuts += detector.post_process(FrameTimecode(len(frames) - 1, fps=fps))
    return sorted(int(c.frame_num) for c in cuts)


def score(found: list[int], events: list[tuple[int, ...]]) -> tuple[int, int, int]:
    """(events found, events missed, false detections) with one frame of tolerance."""
    used = set()
    hits = 0
    for event in events:
        near = [c for c in found if min(event) - 1 <= c <= max(event) + 1]
        if near:
            hits += 1
            used.update(near)
    return hits, len(events) - hits, len([c for c in found if c not in used])


def main() -> None:
    manifest = fetch_media.load_manifest()
    cases = {name: (frames_of(fetch_media.fetch(clip, manifest)), events) for name, (clip, events) in CLIPS.items()}
    concat, events, start = [], [], 0
    for i, (clip, first, last) in enumerate(CONCAT):
        part = frames_of(fetch_media.fetch(clip, manifest), first, last)
        if i:
            events.append((start,))
        concat += part
        start += len(part)
    cases["concatenation"] = (concat, events)
    cases["fast pan (synthetic)"] = (fast_pan(cases["pexels"][0][0]), [])
    cases["camera flashes (synthetic)"] = (flashes(cases["pexels"][0][:120]), [])
    rows = ["| clip | frames | cuts | vidswap found / missed / false | vidswap ms/frame | PySceneDetect found / "
            "missed / false | PySceneDetect ms/frame |", "|---|---|---|---|---|---|---|"]
    totals = {"vidswap": np.zeros(3, int), "PySceneDetect": np.zeros(3, int)}
    for name, (frames, events) in cases.items():
        cells = []
        for label, fn in (("vidswap", ours), ("PySceneDetect", pyscenedetect)):
            start_t = time.perf_counter()
            found = fn(frames)
            ms = (time.perf_counter() - start_t) / len(frames) * 1000
            result = score(found, events)
            totals[label] += result
            cells += [f"{result[0]} / {result[1]} / {result[2]} {found if result[1] or result[2] else ''}".strip(),
                      f"{ms:.2f}"]
        rows.append(f"| {name} | {len(frames)} | {len(events)} | " + " | ".join(cells) + " |")
    rows.append("| total | | | " + " | ".join(f"{' / '.join(map(str, totals[k]))} | " for k in totals).rstrip(" |")
                + " |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
