"""Encoder-free GAN inversion: W+ optimisation, then pivotal tuning (PTI) of the generator.

* :func:`invert` finds, for each image, the W+ code whose synthesis reconstructs it: the codes start at the
  mapping network's mean W (:func:`mean_w`) at every layer and are moved by Adam for a fixed number of steps on a
  reconstruction loss (:func:`reconstruction_loss`: pixel L2 + L1, plus L1 at coarser scales of an image pyramid;
  no VGG/LPIPS weights needed). Each image is optimised on its own (a batch is a loop of single inversions), so
  the result never depends on how frames were batched -- a farm chunk inverts a frame exactly as a whole-clip pass
  does. (Batching them in one optimisation with a summed loss is equal only in exact arithmetic: batched kernels
  differ in the last bits, and Adam's normalised step turns near-zero gradients of either sign into +-lr moves;
  measured 8.6e-3 apart after 10 steps on a 64 px generator.)
* :func:`pivotal_tuning` (Roich et al. 2021, "Pivotal Tuning for Latent-based Editing of Real Images") keeps those
  codes fixed as pivots and fine-tunes a copy of the generator's weights so that the pivots reproduce the images,
  with a locality term (mean squared distance of the weights to the starting ones) that keeps the rest of the
  latent space near the original generator.

Images are (B, 3, R, R) in [0, 1]; the generator works in [-1, 1] (:func:`to_unit` / :func:`from_unit`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.swap.stylegan.generator import StyleGAN2Generator

__all__ = ["InversionParams", "PTIParams", "PTIResult", "from_unit", "invert", "mean_w", "pivotal_tuning", "psnr",
           "reconstruction_loss", "synthesize", "to_unit"]


@dataclass(frozen=True)
class InversionParams:
    """W+ optimisation: Adam ``steps`` at ``lr`` on ``w_l2`` · MSE + ``w_l1`` · L1 + ``w_multiscale`` · (L1 at
    1/2 and 1/4 scale), plus ``w_reg`` · mean squared distance of the codes to the mean W. ``noise_mode`` of the
    synthesis ('const': deterministic)."""

    steps: int = 100
    lr: float = 0.05
    w_l2: float = 1.0
    w_l1: float = 0.5
    w_multiscale: float = 0.5
    w_reg: float = 0.0
    noise_mode: str = "const"

    def __post_init__(self) -> None:
        if self.steps < 0 or self.lr <= 0:
            raise ValueError(f"inversion needs steps >= 0 and lr > 0, got {self.steps}, {self.lr}")


@dataclass(frozen=True)
class PTIParams:
    """Pivotal tuning: Adam ``steps`` at ``lr`` over minibatches of ``batch`` (image, pivot) pairs drawn with
    ``seed``; the reconstruction loss of :class:`InversionParams` weights (``recon``) plus ``w_locality`` · mean
    squared weight distance to the starting generator."""

    steps: int = 100
    lr: float = 3e-4
    batch: int = 4
    w_locality: float = 0.0
    seed: int = 0
    recon: InversionParams = field(default_factory=InversionParams)


@dataclass
class PTIResult:
    """The tuned generator and the per-step loss terms."""

    generator: StyleGAN2Generator
    losses: list[float] = field(default_factory=list)
    terms: dict[str, list[float]] = field(default_factory=dict)


def to_unit(images: Tensor) -> Tensor:
    """[0, 1] images -> the generator's [-1, 1]."""
    return images * 2.0 - 1.0


def from_unit(images: Tensor) -> Tensor:
    """The generator's [-1, 1] -> [0, 1], clamped."""
    return ((images + 1.0) * 0.5).clamp(0, 1)


@torch.no_grad()
def mean_w(gen: StyleGAN2Generator, samples: int = 4096, seed: int = 0) -> Tensor:
    """(w_dim,) the mapping network's mean W: the tracked ``w_avg`` when the checkpoint has one, else the mean
    over ``samples`` seeded z (a generator built here, which never tracked it)."""
    avg = gen.mapping.w_avg
    if bool(avg.abs().sum() > 0):
        return avg.detach().clone().float()
    z = torch.randn(samples, gen.cfg.z_dim, generator=torch.Generator().manual_seed(seed))
    return gen.mapping(z.to(avg.device)).mean(0).float()


def synthesize(gen: StyleGAN2Generator, ws: Tensor, noise_mode: str = "const") -> Tensor:
    """W+ (B, num_ws, w_dim) -> (B, 3, R, R) in the generator's [-1, 1] (unclamped, differentiable)."""
    return gen.synthesis(ws, noise_mode=noise_mode)


def reconstruction_loss(fake: Tensor, real: Tensor, params: InversionParams) -> dict[str, Tensor]:
    """Per-sample loss terms (each (B,)) between ``fake`` and ``real`` (both (B, 3, R, R), [-1, 1])."""
    terms = {"l2": (fake - real).square().flatten(1).mean(1), "l1": (fake - real).abs().flatten(1).mean(1)}
    if params.w_multiscale > 0:
        ms, a, b = fake.new_zeros(fake.shape[0]), fake, real
        for _ in range(2):
            if a.shape[-1] < 8:
                break
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
            ms = ms + (a - b).abs().flatten(1).mean(1)
        terms["multiscale"] = ms
    return terms


def _weighted(terms: dict[str, Tensor], params: InversionParams) -> Tensor:
    weights = {"l2": params.w_l2, "l1": params.w_l1, "multiscale": params.w_multiscale, "reg": params.w_reg}
    return sum(weights[k] * v for k, v in terms.items())


def invert(gen: StyleGAN2Generator, images: Tensor, params: InversionParams | None = None,
           start: Tensor | None = None) -> Tensor:
    """W+ codes (B, num_ws, w_dim) reconstructing ``images`` (B, 3, R, R) in [0, 1] (see the module doc).

    ``start``: (w_dim,) the starting code (default :func:`mean_w`). The generator's weights are not changed (nor
    their ``requires_grad`` flags); the result does not depend on how images are batched.
    """
    params = params or InversionParams()
    res = gen.cfg.resolution
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[-2:] != (res, res):
        raise ValueError(f"inversion needs (B, 3, {res}, {res}) images, got {list(images.shape)}")
    w0 = (mean_w(gen) if start is None else start).to(images.device).float()
    if params.steps == 0 or images.shape[0] == 0:
        return w0[None, None].repeat(images.shape[0], gen.num_ws, 1)
    flags = [p.requires_grad for p in gen.parameters()]
    gen.requires_grad_(False)
    try:
        return torch.cat([_invert_one(gen, image[None], w0, params) for image in images.float()])
    finally:
        for p, flag in zip(gen.parameters(), flags):
            p.requires_grad_(flag)


def _invert_one(gen: StyleGAN2Generator, image: Tensor, w0: Tensor, params: InversionParams) -> Tensor:
    """(1, num_ws, w_dim): the code of one (1, 3, R, R) image, from ``w0`` at every layer."""
    real = to_unit(image)
    ws = w0[None, None].repeat(1, gen.num_ws, 1).requires_grad_(True)
    with torch.enable_grad():
        optim = torch.optim.Adam([ws], lr=params.lr)
        for _ in range(params.steps):
            optim.zero_grad(set_to_none=True)
            terms = reconstruction_loss(synthesize(gen, ws, params.noise_mode), real, params)
            if params.w_reg > 0:
                terms["reg"] = (ws - w0).square().flatten(1).mean(1)
            _weighted(terms, params).sum().backward()
            optim.step()
    return ws.detach()


def pivotal_tuning(gen: StyleGAN2Generator, pivots: Tensor, images: Tensor, params: PTIParams | None = None,
                   render: Callable[[StyleGAN2Generator, Tensor], Tensor] | None = None) -> PTIResult:
    """A copy of ``gen`` fine-tuned so that ``pivots`` (N, num_ws, w_dim) synthesise ``images`` (N, 3, R, R) in
    [0, 1] (see the module doc). Minibatches are drawn with the params' seed, so a run is reproducible.

    ``render(generator, rows)``: the images ([-1, 1]) of the pivots at ``rows`` (a LongTensor) with ``generator``;
    None is :func:`synthesize` of ``pivots[rows]`` (E4S passes its mask-guided synthesis of per-region codes, whose
    pivots are then (N, C, num_ws, w_dim))."""
    params = params or PTIParams()
    if render is None:
        def render(g: StyleGAN2Generator, rows: Tensor) -> Tensor:
            return synthesize(g, pivots[rows], params.recon.noise_mode)
    if pivots.shape[0] != images.shape[0] or pivots.shape[0] == 0:
        raise ValueError(f"PTI needs one pivot per image, got {pivots.shape[0]} pivots and {images.shape[0]} images")
    tuned = copy.deepcopy(gen).train().requires_grad_(True)
    start = {k: v.detach().clone() for k, v in tuned.named_parameters()}
    real = to_unit(images.float())
    pivots = pivots.detach().float()
    optim = torch.optim.Adam(tuned.synthesis.parameters(), lr=params.lr)
    sampler = torch.Generator().manual_seed(params.seed)
    n = pivots.shape[0]
    result = PTIResult(generator=tuned)
    with torch.enable_grad():
        for _ in range(params.steps):
            rows = torch.randperm(n, generator=sampler)[:max(1, params.batch)].to(pivots.device)
            optim.zero_grad(set_to_none=True)
            terms = {k: v.mean() for k, v in reconstruction_loss(render(tuned, rows), real[rows], params.recon).items()}
            loss = _weighted(terms, params.recon)
            if params.w_locality > 0:
                terms["locality"] = sum(((p - start[k]) ** 2).mean() for k, p in tuned.named_parameters()) / len(start)
                loss = loss + params.w_locality * terms["locality"]
            loss.backward()
            optim.step()
            result.losses.append(loss.item())
            for k, v in terms.items():
                result.terms.setdefault(k, []).append(v.item())
    tuned.eval().requires_grad_(False)
    return result


@torch.no_grad()
def psnr(a: Tensor, b: Tensor) -> Tensor:
    """(B,) PSNR in dB between images in [0, 1] (B, C, H, W)."""
    mse = (a.float() - b.float()).square().flatten(1).mean(1).clamp_min(1e-12)
    return 10.0 * torch.log10(1.0 / mse)
