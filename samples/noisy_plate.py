"""The low-light clip: a real face under sensor noise of a known level.

None of the registry clips is noisy, so none shows what a swap does on a grainy plate: a clean face on a noisy
picture. This clip darkens a video (``gain``, as an underexposed shot) and adds, per frame, fresh Gaussian noise of
std ``sigma`` 8-bit levels: a luminance field common to the three channels plus a chroma field half its size per
channel (the sum rescaled to ``sigma``), optionally blurred by ``blur`` pixels (film-like grain). Values clip to
0-255, so the blacks carry less of it. Encoded with libx264 (crf 10, so the codec keeps most of the noise).

What it is not: real sensor noise grows with the signal and is shaped by demosaicing; here it is the same at every
brightness (until it clips).

Usage: ``python samples/noisy_plate.py SOURCE OUT.mp4 [--frames N] [--sigma S] [--gain G] [--blur B]``.
Importable: :func:`noisy_clip`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def noisy_clip(source: Path | str, out: Path | str, frames: int = 60, sigma: float = 7.0, gain: float = 0.6,
               blur: float = 0.0, seed: int = 0) -> Path:
    """Write the clip (see the module docstring) from the first ``frames`` frames of the video ``source``."""
    import cv2

    from clip_io import map_clip

    if sigma < 0 or not 0.0 < gain <= 1.0 or blur < 0:
        raise ValueError(f"need sigma >= 0, 0 < gain <= 1, blur >= 0; got {sigma}, {gain}, {blur}")
    rng = np.random.default_rng(seed)

    def change(image: np.ndarray, index: int) -> np.ndarray:
        image = image.astype(np.float32) * gain
        noise = rng.normal(0.0, 1.0, image.shape[:2] + (1,)) + 0.5 * rng.normal(0.0, 1.0, image.shape)
        noise = noise.astype(np.float32)
        if blur > 0:
            noise = cv2.GaussianBlur(noise, (0, 0), blur)
        noise *= sigma / max(float(noise.std()), 1e-12)
        return np.clip(image + noise + 0.5, 0, 255).astype(np.uint8)

    return map_clip(source, out, frames, change, crf=10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="the video to darken and add noise to")
    ap.add_argument("out", help="the clip to write (.mp4)")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--sigma", type=float, default=7.0, help="noise std, 8-bit levels")
    ap.add_argument("--gain", type=float, default=0.6, help="exposure scale (1 = as the source)")
    ap.add_argument("--blur", type=float, default=0.0, help="grain size: the noise's blur sigma, pixels")
    a = ap.parse_args(argv)
    print(noisy_clip(a.source, a.out, a.frames, a.sigma, a.gain, a.blur))
    return 0


if __name__ == "__main__":
    sys.exit(main())
