"""The whip-pan clip: a real face under a fast camera pan, motion-blurred by a shutter of known angle.

The registry clips hold their camera still and their faces move slowly, so none of them shows the motion blur a
fast move leaves on a plate -- nor says what shutter the camera had. This clip pans over the Pexels woman
(``pexels_clip`` in samples/media.yaml, enlarged by ``1 + 2 x amplitude / width`` so the pan stays inside it): the
view swings ``amplitude`` pixels from side to side and a third of that up and down, and every output frame is the
mean of ``samples`` views spread evenly over the open shutter, centred on the frame's instant (``shutter`` 0.5 =
a 180-degree shutter, 1 = 360, 0 = a sharp still of each instant). Encoded with libx264 (crf 14).

What it is not: the face's own motion in the source clip is blurred by its camera, not by this one; the pan is a
rigid shift of the picture (no parallax); the enlargement softens the picture a little.

Usage: ``python samples/whip_pan.py OUT.mp4 [--frames N] [--shutter S] [--amplitude PX]``.
Importable: :func:`whip_pan_clip`, :func:`pan_offset`.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

SIZE = (360, 640)  # (H, W) of the clip
PERIOD = 60.0  # frames of one side-to-side swing
VERTICAL = (0.3, 45.0)  # the up-and-down swing: its share of the amplitude and its period in frames


def pan_offset(t: float | np.ndarray, amplitude: float) -> tuple:
    """The view's top-left corner in the enlarged picture at time ``t`` (frames): ``(x, y)`` pixels."""
    x = amplitude * (1.0 + np.sin(2.0 * math.pi * np.asarray(t) / PERIOD))
    y = amplitude * VERTICAL[0] * (1.0 + np.sin(2.0 * math.pi * np.asarray(t) / VERTICAL[1]))
    return x, y


def whip_pan_clip(source: Path | str, out: Path | str, frames: int = 60, shutter: float = 0.5,
                  amplitude: float = 80.0, samples: int = 12) -> Path:
    """Write the clip (see the module docstring) from the first ``frames`` frames of the video ``source``."""
    import av
    import cv2

    if not 0.0 <= shutter <= 1.0:
        raise ValueError(f"shutter must be in [0, 1], got {shutter}")
    h, w = SIZE
    big_w = int(math.ceil(w + 2 * amplitude)) + 2
    big_h = int(math.ceil(max(h + 2 * amplitude * VERTICAL[0], big_w * h / w))) + 2
    steps = np.zeros(1) if shutter == 0.0 else ((np.arange(samples) + 0.5) / samples - 0.5) * shutter
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(source)) as reader, av.open(str(out), "w") as writer:
        stream = writer.add_stream("libx264", rate=reader.streams.video[0].average_rate)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": "14", "preset": "fast"}
        for i, frame in enumerate(reader.decode(video=0)):
            if i >= frames:
                break
            big = cv2.resize(frame.to_ndarray(format="rgb24"), (big_w, big_h), interpolation=cv2.INTER_CUBIC)
            big = big.astype(np.float32)
            acc = np.zeros((h, w, 3), np.float32)
            for step in steps:
                x, y = pan_offset(i + step, amplitude)
                shift = np.float32([[1, 0, -float(x)], [0, 1, -float(y)]])
                acc += cv2.warpAffine(big, shift, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
            image = np.clip(acc / len(steps) + 0.5, 0, 255).astype(np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                writer.mux(packet)
        for packet in stream.encode():
            writer.mux(packet)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--shutter", type=float, default=0.5, help="share of the frame interval (0.5 = 180 degrees)")
    parser.add_argument("--amplitude", type=float, default=80.0, help="pixels of the side-to-side swing")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import fetch_media

    source = fetch_media.fetch("pexels_clip", fetch_media.load_manifest())
    print(whip_pan_clip(source, args.out, args.frames, args.shutter, args.amplitude))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
