"""Time FaceDancer training steps (generator + discriminator update) on synthetic inputs, for docs/training.md.

    python benchmarks/bench_facedancer_step.py [--size 256] [--batch 2] [--steps 3] [--paper C] [--device cpu|cuda]
                                               [--vgg] [--vgg-only]

Prints the median step time over ``steps`` timed steps (after one warm-up) and, on CUDA, the peak memory. The
inputs are random images (the step's cost does not depend on the pixels); the identity network is the real SFace.
``--vgg``: the perceptual loss on VGG16 (``perceptual.net: vgg16``) with randomly initialised weights (same cost as
ImageNet weights); without it the default identity-feature perceptual loss. ``--vgg-only``: time just the VGG16
term (forward on target and swap, backward) on the batch's same-image rows (20 % of ``--batch``, at least one).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.facedancer.losses import LossWeights
from vidswap.train.facedancer.model import Discriminator, FaceDancerConfig, FaceDancerGenerator
from vidswap.train.facedancer.perceptual import VGG16Features, vgg16_perceptual
from vidswap.train.facedancer.step import StepModels, SwapPass, train_step


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--paper", default="C")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--vgg", action="store_true")
    ap.add_argument("--vgg-only", action="store_true")
    a = ap.parse_args()
    dev = torch.device(a.device)
    if a.vgg_only:
        return vgg_only(a, dev)
    cfg = FaceDancerConfig.paper(a.paper, size=a.size)
    g, d = FaceDancerGenerator(cfg).to(dev), Discriminator(cfg).to(dev)
    idn = IdentityNet.load().to(dev)
    opt = lambda m: torch.optim.Adam(m.parameters(), lr=1e-4, betas=(0.0, 0.99))  # noqa: E731
    vgg = VGG16Features().to(dev) if a.vgg else None
    models = StepModels(SwapPass(g), d, d, idn, opt(g), opt(d), vgg)
    x = torch.rand(a.batch, 3, a.size, a.size, device=dev)
    s = torch.rand(a.batch, 3, a.size, a.size, device=dev)
    same = torch.zeros(a.batch)
    same[0] = 1
    times = []
    for k in range(a.steps + 1):
        t0 = time.perf_counter()
        train_step(models, x, s, same, LossWeights(), amp=a.amp)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if k:
            times.append(time.perf_counter() - t0)
    line = (f"FaceDancer config {a.paper} {a.size}², batch {a.batch}, {dev.type}, threads "
            f"{torch.get_num_threads()}{', VGG16 perceptual' if a.vgg else ''}: median step "
            f"{statistics.median(times):.3f} s over {len(times)} steps; "
            f"G {g.num_parameters() / 1e6:.1f} M parameters")
    if dev.type == "cuda":
        line += f"; peak memory {torch.cuda.max_memory_allocated(dev) / 2**30:.2f} GiB"
    print(line)


def vgg_only(a, dev: torch.device) -> None:
    net = VGG16Features().to(dev)
    rows = max(1, round(0.2 * a.batch))
    t = torch.rand(rows, 3, a.size, a.size, device=dev)
    c = torch.rand(rows, 3, a.size, a.size, device=dev, requires_grad=True)
    times = []
    for k in range(a.steps + 1):
        t0 = time.perf_counter()
        vgg16_perceptual(net, t, c).sum().backward()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        if k:
            times.append(time.perf_counter() - t0)
    print(f"VGG16 perceptual term alone: {rows} same-image row(s) of batch {a.batch} at {a.size}², {dev.type}, "
          f"threads {torch.get_num_threads()}: median {statistics.median(times):.3f} s over {len(times)}")


if __name__ == "__main__":
    main()
