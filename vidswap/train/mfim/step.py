"""One MFIM optimisation step: the encoder update (the swap's losses), then the discriminator update.

Per step: the source and target crops are encoded; the swap takes the target's coarse codes and style maps and the
source's codes at the identity blocks (:meth:`~vidswap.swap.stylegan.mfim.MFIM.transfer`) and is rendered by the
frozen generator. Encoder loss (paper Eq. 6 without the 3DMM terms): ``identity`` 1 - cos(R(swap), R(source)),
``rec_l1`` + ``perceptual`` (L_recon against the target), ``adv`` (non-saturating, softplus(-D(swap))). The
discriminator then takes softplus(-D(target)) + softplus(D(swap)) + ``r1`` · ½|∇D(target)|². Every loss is per
sample ((B,)) and averaged over the local batch, so DDP over equal local batches equals one process on the global
batch (as :mod:`vidswap.train.facedancer.step`). The adversarial term of the encoder step uses the plain
discriminator with its parameters frozen; the discriminator step runs the DDP-wrapped one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidswap.swap.stylegan.mfim import MFIM
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.facedancer.losses import feature_l1, identity_loss, r1_penalty
from vidswap.train.facedancer.perceptual import VGG16Features, vgg16_perceptual
from vidswap.train.megafs.data import arcface_crops
from vidswap.train.mfim.config import MFIMLossWeights

__all__ = ["LOSSES", "SwapPass", "StepModels", "mfim_step"]

LOSSES = ("total", "identity", "rec_l1", "perceptual", "adv", "d_total", "d_loss", "r1")


class SwapPass(nn.Module):
    """``forward(source, target) -> swap`` ([0, 1] crops in, [-1, 1] out; the encoder's parameters train)."""

    def __init__(self, model: MFIM):
        super().__init__()
        self.model = model

    def forward(self, source: Tensor, target: Tensor) -> Tensor:
        m = self.model
        return m.decode(m.transfer(m.encode(source).styles, m.encode(target)))


@dataclass
class StepModels:
    """The swap pass and discriminator (possibly DDP-wrapped), the bare discriminator, the frozen identity
    network, both optimisers and the VGG16 of the perceptual term (None: the identity network's feature maps)."""

    swap_pass: nn.Module
    disc: nn.Module
    disc_plain: nn.Module
    identity: IdentityNet
    opt_e: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    vgg: VGG16Features | None = None


def mfim_step(m: StepModels, source: Tensor, target: Tensor, kps_s: Tensor, kps_t: Tensor, w: MFIMLossWeights
              ) -> tuple[dict[str, Tensor], Tensor]:
    """source / target (B, 3, R, R) in [0, 1] with their (B, 5, 2) keypoints -> ({loss: local mean}, the swaps in
    [0, 1])."""
    with torch.no_grad():
        z_s, _ = m.identity(arcface_crops(source, kps_s), features=True)
        _, f_t = m.identity(arcface_crops(target, kps_t), features=True)
    y = m.swap_pass(source, target)
    y01 = (y + 1) * 0.5
    z_y, f_y = m.identity(arcface_crops(y01, kps_t), features=True)
    m.disc_plain.requires_grad_(False)
    fake_logits = m.disc_plain(y01)
    m.disc_plain.requires_grad_(True)
    perceptual = (vgg16_perceptual(m.vgg, target, y01, w.perceptual_layers) if m.vgg is not None
                  else feature_l1(f_t, f_y, range(w.perceptual_layers + 1)))
    parts = {"identity": identity_loss(z_s, z_y), "rec_l1": (y01 - target).abs().flatten(1).mean(1),
             "perceptual": perceptual, "adv": F.softplus(-fake_logits)}
    total = (w.identity * parts["identity"] + w.rec_l1 * parts["rec_l1"] + w.perceptual * parts["perceptual"]
             + w.adv * parts["adv"]).mean()
    m.opt_e.zero_grad(set_to_none=True)
    total.backward()
    m.opt_e.step()

    real = target.detach().requires_grad_(True)
    fake = y01.detach()
    logits = m.disc(torch.cat([real, fake]))
    real_logits, fake_logits_d = logits[: len(real)], logits[len(real):]
    d_loss = F.softplus(-real_logits) + F.softplus(fake_logits_d)
    r1 = r1_penalty(real_logits, real)
    d_total = (d_loss + w.r1 * r1).mean()
    m.opt_d.zero_grad(set_to_none=True)
    d_total.backward()
    m.opt_d.step()

    out = {k: v.detach().mean() for k, v in parts.items()}
    out.update(total=total.detach(), d_total=d_total.detach(), d_loss=d_loss.detach().mean(), r1=r1.detach().mean())
    return out, y01.detach().clamp(0, 1)
