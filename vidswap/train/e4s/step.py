"""One E4S optimisation step: reconstruct each face through its per-region codes (the paper's RGI proxy task).
Every loss is per sample ((B,)) and averaged over the local batch, so DDP over equal local batches equals one
process on the global batch (see :mod:`vidswap.train.facedancer.step`).

* :func:`trainable` -- which parameters train: the encoder, and with ``tune_generator`` the generator's layers fed
  by the first ``masked_layers`` W+ codes (their convolutions, affines, biases, noise strengths, toRGBs) and its
  constant input (the paper fine-tunes the first K = 13 layers).
* :func:`flip_faces` -- the paper's random horizontal flip, keypoints mirrored with the image.
* :func:`e4s_losses` / :func:`e4s_step` -- the loss terms (:class:`~vidswap.train.e4s.config.E4SLossWeights`) and
  one Adam step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidswap.swap.stylegan.e4s import E4S
from vidswap.train.e4s.config import E4SLossWeights
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.facedancer.losses import feature_l1, identity_loss
from vidswap.train.facedancer.perceptual import VGG16Features, vgg16_perceptual
from vidswap.train.megafs.data import arcface_crops

__all__ = ["LOSSES", "E4SPass", "E4SModels", "trainable", "flip_faces", "e4s_losses", "e4s_step"]

LOSSES = ("total", "mse", "perceptual", "identity", "multiscale")


def trainable(model: E4S, tune_generator: bool) -> list[nn.Parameter]:
    """Set ``requires_grad`` (encoder; the generator's first ``masked_layers`` layers when ``tune_generator``) and
    return the parameters that train, in a fixed order."""
    model.generator.requires_grad_(False)
    params = list(model.encoder.parameters())
    if tune_generator:
        syn = model.generator.synthesis
        for name, idx in syn.layer_ws_index().items():
            if idx < model.masked_layers:
                layer = syn.get_submodule(name)
                layer.requires_grad_(True)
                params += list(layer.parameters())
        syn.b4.const.requires_grad_(True)
        params.append(syn.b4.const)
    return params


class E4SPass(nn.Module):
    """``forward(images [0, 1], masks) -> reconstruction [-1, 1]`` through the regional codes."""

    def __init__(self, model: E4S):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, masks: Tensor) -> Tensor:
        return self.model.decode(self.model.encode(images, masks), masks)


@dataclass
class E4SModels:
    """The step's pass (possibly DDP-wrapped), the bare model, the identity network, the optimiser and the VGG16
    of the perceptual term (None: the identity network's feature maps)."""

    step_pass: nn.Module
    model: E4S
    identity: IdentityNet
    opt: torch.optim.Optimizer
    vgg: VGG16Features | None = None


def flip_faces(images: Tensor, kps: Tensor, flags: Tensor) -> tuple[Tensor, Tensor]:
    """Mirror the faces where ``flags`` (B,) bool: images (B, 3, R, R) left-right, keypoints (B, 5, 2) in crop
    pixels mirrored (x -> R - x) with the eyes and mouth corners swapped so the image-left one stays first."""
    if not bool(flags.any()):
        return images, kps
    width = images.shape[-1]
    mirrored = kps[:, [1, 0, 2, 4, 3]].clone()
    mirrored[..., 0] = width - mirrored[..., 0]
    f = flags.to(images.device)
    return (torch.where(f[:, None, None, None], images.flip(-1), images),
            torch.where(f[:, None, None], mirrored, kps))


def _down(x: Tensor, level: int) -> Tensor:
    return x if level == 0 else F.avg_pool2d(x, 2 ** level)


def e4s_losses(m: E4SModels, images: Tensor, kps: Tensor, recon: Tensor, w: E4SLossWeights) -> dict[str, Tensor]:
    """Per-sample loss terms (each (B,)) of ``recon`` ([-1, 1]) against ``images`` ([0, 1]) with keypoints."""
    real = images * 2 - 1
    out01 = (recon + 1) * 0.5
    parts = {"mse": (recon - real).square().flatten(1).mean(1)}
    ms = recon.new_zeros(recon.shape[0])
    for level in (1, 2):
        if images.shape[-1] // 2 ** level >= 8:
            ms = ms + (_down(recon, level) - _down(real, level)).abs().flatten(1).mean(1)
    parts["multiscale"] = ms
    perc = recon.new_zeros(recon.shape[0])
    ident = recon.new_zeros(recon.shape[0])
    for level in range(w.perceptual_scales):
        x, y = _down(images, level), _down(out01, level)
        k = kps / 2 ** level
        with torch.no_grad():
            z_x, f_x = m.identity(arcface_crops(x, k), features=True)
        z_y, f_y = m.identity(arcface_crops(y, k), features=True)
        if m.vgg is not None:
            perc = perc + vgg16_perceptual(m.vgg, x, y, w.perceptual_layers)
        else:
            perc = perc + feature_l1(f_x, f_y, range(min(w.perceptual_layers + 1, len(f_x))))
        if level == 0:  # multi-scale identity: the embedding and the first feature levels
            ident = identity_loss(z_x, z_y)
            for i in range(min(w.identity_levels, len(f_x))):
                ident = ident + 1.0 - F.cosine_similarity(f_x[i].flatten(1), f_y[i].flatten(1), dim=1, eps=1e-8)
    parts["perceptual"], parts["identity"] = perc, ident
    return parts


def e4s_step(m: E4SModels, images: Tensor, kps: Tensor, w: E4SLossWeights) -> tuple[dict[str, Tensor], Tensor]:
    """images (B, 3, R, R) in [0, 1], kps (B, 5, 2) crop pixels -> ({loss: local mean}, reconstruction [0, 1])."""
    masks = m.model.masks(kps)
    recon = m.step_pass(images, masks)
    parts = e4s_losses(m, images, kps, recon, w)
    total = (w.mse * parts["mse"] + w.perceptual * parts["perceptual"] + w.identity * parts["identity"]
             + w.multiscale * parts["multiscale"]).mean()
    m.opt.zero_grad(set_to_none=True)
    total.backward()
    m.opt.step()
    res = {k: v.detach().mean() for k, v in parts.items()}
    res["total"] = total.detach()
    return res, ((recon.detach() + 1) * 0.5).clamp(0, 1)
