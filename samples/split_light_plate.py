"""The split-light clip: a real face half in a warm key light, half in a cool fill, with a shadow edge across it.

None of the registry clips has a hard light edge across the face, so none shows what a swap does when the light does
not fall on the face as one: a face half in sunlight and half in a building's shadow, a practical lamp on one cheek
and a window on the other. This clip relights a video in linear light: every pixel is multiplied by the fill's
colour ``fill`` plus, left of a vertical edge, the key's colour ``key`` (a linear ramp ``softness`` pixels wide
across the edge). The edge stays at ``edge[0]`` (x in pixels) or, with two values, moves from ``edge[0]`` to
``edge[1]`` over the clip (a shadow sweeping across the face). Encoded with libx264 (crf 12).

What it is not: a real light falls off with the face's shape (the edge here is straight in the picture whatever the
face's relief does) and casts no shadow of the nose.

Usage: ``python samples/split_light_plate.py SOURCE OUT.mp4 [--frames N] [--edge X0 [X1]] [--softness S]``.
Importable: :func:`split_light_clip`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

#: the key and fill lights' colours (linear RGB gains): a warm key, a cool, dimmer fill
KEY = (1.25, 0.95, 0.7)
FILL = (0.3, 0.33, 0.5)


def _to_linear(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def _to_srgb(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def light_gain(width: int, edge: float, softness: float, key: Sequence[float] = KEY,
               fill: Sequence[float] = FILL) -> np.ndarray:
    """(1, W, 3) the linear gain of each column: ``fill + key x lit``, ``lit`` 1 left of ``edge`` and 0 right of
    it, a linear ramp ``softness`` px wide centred on it (a step at ``softness`` 0)."""
    x = np.arange(width, dtype=np.float64)
    lit = np.clip((edge - x) / max(softness, 1e-6) + 0.5, 0.0, 1.0)
    return (np.asarray(fill)[None, :] + np.asarray(key)[None, :] * lit[:, None])[None]


def split_light_clip(source: Path | str, out: Path | str, frames: int = 60, edge: Sequence[float] = (455.0,),
                     softness: float = 12.0, key: Sequence[float] = KEY, fill: Sequence[float] = FILL) -> Path:
    """Write the clip (see the module docstring) from the first ``frames`` frames of the video ``source``."""
    from clip_io import map_clip

    if not 1 <= len(edge) <= 2 or softness < 0 or frames < 1:
        raise ValueError(f"need one or two edge positions, softness >= 0 and frames >= 1; got {edge}, {softness}, "
                         f"{frames}")

    def change(image: np.ndarray, index: int) -> np.ndarray:
        x = edge[0] + (edge[-1] - edge[0]) * index / max(frames - 1, 1)
        lit = _to_srgb(_to_linear(image / 255.0) * light_gain(image.shape[1], x, softness, key, fill))
        return (lit * 255.0 + 0.5).astype(np.uint8)

    return map_clip(source, out, frames, change, crf=12)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--edge", type=float, nargs="+", default=[455.0], help="x of the shadow edge (from, to)")
    ap.add_argument("--softness", type=float, default=12.0, help="width of the edge's ramp in pixels")
    args = ap.parse_args(argv)
    split_light_clip(args.source, args.out, args.frames, tuple(args.edge), args.softness)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
