"""What the plate's creases and folds cost the relit render (``relit_plate_creases``, ``relit_plate_folds``).

    python benchmarks/bench_plate_creases.py [--sizes 256 384 512] [--batch 8] [--repeat 7]

A face of the canonical mesh filling the crop (its height ~0.7 of the side) on a plate crop of smooth skin with
furrows across its forehead and between its brows and a fold down each side of the mouth (so the folds' lit sides
are found and taken, as on a crying plate). Times, per frame, the relit render without them
(:meth:`RelitRenderer.render`), with every frame taking the creases (``creases`` 1), with the folds as well
(``folds`` 1; "-" for code without them), and the creases alone (:func:`take_creases` on the render's forehead
weight): the process CPU time (all threads), minimum and median over ``--repeat`` runs after one warm-up. Run it
with ``PYTHONPATH`` at another checkout to time that code on the same inputs (the functions it calls keep their
signatures).

Record the table in benchmarks/RESULTS.md with the machine, date and load.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vidswap.appearance.relight import plate_light
from vidswap.faces.pose import canonical_face
from vidswap.faces.topology import load_topology
from vidswap.swap.geometric.plate_creases import take_creases
from vidswap.swap.geometric.relit import RelitRenderer


def plate_crops(batch: int, size: int, landmarks: torch.Tensor) -> torch.Tensor:
    """(B, 3, S, S) sRGB skin with low-frequency shading, fine noise and dark furrows: three across the forehead
    and two between the brows (MediaPipe vertex 9), each frame shifted by a pixel."""
    g = torch.Generator().manual_seed(5)
    low = torch.nn.functional.interpolate(torch.rand(batch, 1, 6, 6, generator=g), size=(size, size), mode="bicubic",
                                          align_corners=False)
    crops = (0.55 + 0.1 * low + 0.02 * torch.randn(batch, 1, size, size, generator=g)).expand(-1, 3, -1, -1).clone()
    crops[:, 1] *= 0.85
    crops[:, 2] *= 0.75
    gx, gy = landmarks[0, 9, 0].item(), landmarks[0, 9, 1].item()
    h = size * 0.7
    for b in range(batch):
        for k in (1, 2, 3):  # forehead furrows
            y = int(gy - k * 0.06 * h) + b % 2
            crops[b, :, y:y + 2, int(gx - 0.25 * h):int(gx + 0.25 * h)] *= 0.8
        for dx in (-0.03, 0.03):  # the lines between the brows
            x = int(gx + dx * h) + b % 2
            crops[b, :, int(gy - 0.05 * h):int(gy + 0.03 * h), x:x + 2] *= 0.75
        for wing, corner in ((129, 61), (358, 291)):  # a fold from each wing of the nose past the mouth's corner
            for t in torch.linspace(0.0, 1.2, 60):
                x, y = (landmarks[0, wing, :2] + t * (landmarks[0, corner, :2] - landmarks[0, wing, :2])).tolist()
                crops[b, :, int(y) - 1:int(y) + 2, int(x) - 2 + b % 2:int(x) + 2 + b % 2] *= 0.8
    return crops.clamp(0.0, 1.0)


def cpu_times(fn, repeat: int) -> list[float]:
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        out.append(time.process_time() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 384, 512])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    topo = load_topology()
    renderer = RelitRenderer(topo)
    B = args.batch
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; batch {B}; process CPU ms a frame")
    print("| crop | render without (min / median) | with creases | with creases and folds | creases alone | "
          "creases / render |")
    print("|---|---|---|---|---|---|")
    for S in args.sizes:
        lm = (canonical_face().float() * (0.36 * S) + S / 2)[None].expand(B, -1, -1).contiguous()
        space, masks = renderer.space(128)
        light = plate_light({"mean": torch.full((1, 3, 128, 128), 0.3), "weight": space.covered,
                             "broad": torch.ones(1, 3, 128, 128),
                             "lighting": torch.tensor([[[1.0 / 0.2820948] + [0.0] * 8]]),
                             "edge_blur": torch.tensor([[float("nan")]])}, masks)
        crops = plate_crops(B, S, lm)
        albedo = torch.full((1, 4, 128, 128), 0.5)
        albedo[:, 3] = 1.0
        args_ = (albedo, light, crops, lm, lm, torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]]).expand(B, -1, -1),
                 torch.tensor([0.3, 0.3]))
        ones = torch.ones(B)
        plain = cpu_times(lambda: renderer.render(*args_), args.repeat)
        creased = cpu_times(lambda: renderer.render(*args_, creases=ones), args.repeat)
        try:
            folded = cpu_times(lambda: renderer.render(*args_, creases=ones, folds=ones), args.repeat)
        except TypeError:  # code without the folds
            folded = None
        # the creases alone, on the weight the render gives them: its crease zone over the forehead box
        zone = torch.zeros(B, 1, S, S)
        gy = int(lm[0, 9, 1])
        zone[:, :, max(gy - int(0.3 * S), 0):gy, int(0.25 * S):int(0.75 * S)] = 1.0
        face = torch.full((B, 3, S, S), 0.3)
        heights = torch.full((B,), 0.7 * S)
        loops = [torch.as_tensor(topo.regions[k]) for k in ("left_brow", "right_brow", "left_eye", "right_eye")]
        alone = cpu_times(lambda: take_creases(face.clone(), crops, zone, heights, lm, loops), args.repeat)

        def ms(v: list[float]) -> str:
            return f"{1e3 * min(v) / B:.2f} / {1e3 * statistics.median(v) / B:.2f}"

        print(f"| {S} | {ms(plain)} | {ms(creased)} | {ms(folded) if folded else '-'} | {ms(alone)} | "
              f"{statistics.median(alone) / statistics.median(plain):.3f} |")


if __name__ == "__main__":
    main()
