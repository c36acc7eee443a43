"""vidswap.composite.filters against kornia's filters and morphology: speed and equality on the shapes the
compositor uses (issue 15, "hand-written where a maintained library fits").

    PYTHONPATH=. python benchmarks/bench_filters_kornia.py [--repeat 5] [--threads 2]

Blur: ``gaussian_blur`` vs ``kornia.filters.gaussian_blur2d`` (per-item sigma as a (B, 2) tensor, one kernel size
for the batch, replicate border).  Since the comparison recorded in RESULTS.md (against the shifted multiply-add
blur of commit d0f6138) ``gaussian_blur`` is kornia's, grouped by truncation radius: these rows now time that
wrapper's overhead.  Morphology: ``erode`` / ``dilate`` with the octagon and square elements (O(log r) doubling) vs
``kornia.morphology.erosion`` / ``dilation`` with the same structuring element (the element is read back from
vidswap's own dilation of an impulse) and the ``geodesic`` border (pixels beyond the border are ignored).
Prints a markdown table: shape, radius, ms per call for each, the largest absolute difference.
"""

from __future__ import annotations

import argparse
import time

import kornia
import torch

from vidswap.composite.filters import dilate, erode, gaussian_blur


def timed(fn, repeat: int) -> tuple[float, torch.Tensor]:
    out = fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeat):
        out = fn()
    return (time.perf_counter() - start) / repeat * 1000.0, out


def element(radius: int, shape: str) -> torch.Tensor:
    """vidswap's structuring element: its dilation of a single impulse."""
    size = 2 * radius + 1
    impulse = torch.zeros(1, 1, size + 2, size + 2)
    impulse[..., radius + 1, radius + 1] = 1.0
    return dilate(impulse, radius, shape=shape)[0, 0, 1:-1, 1:-1]


def masks(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Soft face-like masks: a blurred ellipse with noise, per item."""
    g = torch.Generator().manual_seed(seed)
    b, c, h, w = shape
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    base = ((xx / 0.6) ** 2 + (yy / 0.8) ** 2 < 1).float()
    return (base + 0.3 * torch.rand(shape, generator=g)).clamp(0, 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = ["| filter | input (B, C, H, W) | radius | vidswap ms | kornia ms | max abs diff |",
            "|---|---|---|---|---|---|"]
    for shape, sigma in (((8, 1, 256, 256), 3.0), ((8, 3, 256, 256), 2.0), ((1, 1, 1080, 1920), 6.0)):
        x = masks(shape)
        radius = int(torch.ceil(torch.tensor(3.0 * sigma)))
        ours_ms, ours = timed(lambda: gaussian_blur(x, sigma), args.repeat)
        sig = torch.full((shape[0], 2), sigma)
        theirs_ms, theirs = timed(lambda: kornia.filters.gaussian_blur2d(
            x, (2 * radius + 1, 2 * radius + 1), sig, border_type="replicate"), args.repeat)
        rows.append(f"| gaussian blur sigma {sigma:g} | {shape} | {radius} | {ours_ms:.1f} | {theirs_ms:.1f} | "
                    f"{float((ours - theirs).abs().max()):.1e} |")
    for shape, radius, kind in (((8, 1, 256, 256), 5, "octagon"), ((8, 1, 256, 256), 15, "octagon"),
                                ((8, 1, 256, 256), 5, "square"), ((1, 1, 720, 1280), 8, "octagon")):
        x = masks(shape, 1)
        kernel = element(radius, kind)
        for name, ours_fn, kornia_fn in (("erode", erode, kornia.morphology.erosion),
                                         ("dilate", dilate, kornia.morphology.dilation)):
            ours_ms, ours = timed(lambda: ours_fn(x, radius, shape=kind), args.repeat)
            theirs_ms, theirs = timed(lambda: kornia_fn(x, kernel, border_type="geodesic"), args.repeat)
            rows.append(f"| {name} {kind} | {shape} | {radius} | {ours_ms:.1f} | {theirs_ms:.1f} | "
                        f"{float((ours - theirs).abs().max()):.1e} |")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
