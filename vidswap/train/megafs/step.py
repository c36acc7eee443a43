"""One MegaFS optimisation step: the encoder stage (reconstruct the image through its W++ codes) or the FTM stage
(swap with the encoder frozen). Every loss is per sample ((B,)) and averaged over the local batch, so DDP over equal
local batches equals one process on the global batch (see :mod:`vidswap.train.facedancer.step`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vidswap.swap.stylegan.megafs import MegaFS, WPlusPlus
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.facedancer.losses import feature_l1, identity_loss
from vidswap.train.facedancer.perceptual import VGG16Features, vgg16_perceptual
from vidswap.train.megafs.config import MegaFSLossWeights
from vidswap.train.megafs.data import arcface_crops

__all__ = ["ENCODER_LOSSES", "FTM_LOSSES", "EncoderPass", "FTMPass", "StageModels", "encoder_step", "ftm_step"]

ENCODER_LOSSES = ("total", "rec", "perceptual", "identity", "w_reg")
FTM_LOSSES = ("total", "rec", "perceptual", "identity", "norm")


class EncoderPass(nn.Module):
    """``forward(images) -> (reconstruction [-1, 1], W+ codes)`` (the encoder's parameters only train)."""

    def __init__(self, model: MegaFS):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        codes = self.model.encode(images)
        return self.model.decode(codes), codes.ws


class FTMPass(nn.Module):
    """``forward(source ws, target ws) -> (s2t, s2s, t2t)`` swapped W+ codes (the FTM's parameters only train)."""

    def __init__(self, model: MegaFS):
        super().__init__()
        self.model = model

    def forward(self, ws_s: Tensor, ws_t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        ftm = self.model.ftm
        return ftm(ws_s, ws_t), ftm(ws_s, ws_s), ftm(ws_t, ws_t)


@dataclass
class StageModels:
    """The step's pass (possibly DDP-wrapped), the bare model, the identity network, the stage's optimiser and
    the VGG16 of the perceptual term (None: the identity network's feature maps)."""

    step_pass: nn.Module
    model: MegaFS
    identity: IdentityNet
    opt: torch.optim.Optimizer
    vgg: VGG16Features | None = None


def _perceptual(m: StageModels, w: MegaFSLossWeights, real: Tensor, fake: Tensor, f_real, f_fake) -> Tensor:
    """(B,) perceptual distance of ``fake`` to ``real`` ([0, 1]): VGG16 maps or the identity network's."""
    if m.vgg is not None:
        return vgg16_perceptual(m.vgg, real, fake, w.perceptual_layers)
    return feature_l1(f_real, f_fake, range(w.perceptual_layers + 1))


def _id(identity: IdentityNet, images01: Tensor, kps: Tensor):
    return identity(arcface_crops(images01, kps), features=True)


def _l2(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).square().flatten(1).mean(1)


def _optimise(m: StageModels, parts: dict[str, Tensor], total: Tensor) -> dict[str, Tensor]:
    """One optimiser step on ``total``; returns each loss term's local mean and the total (detached)."""
    m.opt.zero_grad(set_to_none=True)
    total.backward()
    m.opt.step()
    res = {k: v.detach().mean() for k, v in parts.items()}
    res["total"] = total.detach()
    return res


def encoder_step(m: StageModels, images: Tensor, kps: Tensor, w: MegaFSLossWeights
                 ) -> tuple[dict[str, Tensor], Tensor]:
    """images (B, 3, R, R) in [0, 1], kps (B, 5, 2) -> ({loss: local mean}, reconstruction in [0, 1])."""
    recon, ws = m.step_pass(images)
    out01 = (recon + 1) * 0.5
    with torch.no_grad():
        z_x, f_x = _id(m.identity, images, kps)
    z_y, f_y = _id(m.identity, out01, kps)
    parts = {"rec": _l2(recon, images * 2 - 1),
             "perceptual": _perceptual(m, w, images, out01, f_x, f_y),
             "identity": identity_loss(z_x, z_y),
             "w_reg": (ws - m.model.w_avg).square().mean(dim=(1, 2))}
    total = (w.rec * parts["rec"] + w.perceptual * parts["perceptual"] + w.identity * parts["identity"]
             + w.w_reg * parts["w_reg"]).mean()
    return _optimise(m, parts, total), out01.detach().clamp(0, 1)


def ftm_step(m: StageModels, source: Tensor, target: Tensor, kps_s: Tensor, kps_t: Tensor, w: MegaFSLossWeights
             ) -> tuple[dict[str, Tensor], Tensor]:
    """source / target (B, 3, R, R) in [0, 1] with keypoints -> ({loss: local mean}, the swaps in [0, 1])."""
    model = m.model
    with torch.no_grad():
        cs, ct = model.encode(source), model.encode(target)
        z_s, _ = _id(m.identity, source, kps_s)
        _, f_t = _id(m.identity, target, kps_t)
    s2t, s2s, t2t = m.step_pass(cs.ws, ct.ws)
    y = model.decode(WPlusPlus(ct.const, s2t))
    y_s, y_t = model.decode(WPlusPlus(cs.const, s2s)), model.decode(WPlusPlus(ct.const, t2t))
    y01 = (y + 1) * 0.5
    z_y, f_y = _id(m.identity, y01, kps_t)
    low = model.cfg.low_codes
    parts = {"rec": _l2(y_s, source * 2 - 1) + _l2(y_t, target * 2 - 1),
             "perceptual": _perceptual(m, w, target, y01, f_t, f_y),
             "identity": identity_loss(z_s, z_y),
             "norm": (cs.ws[:, low:] - s2t[:, low:]).square().mean(dim=(1, 2))}
    total = (w.ftm_rec * parts["rec"] + w.ftm_perceptual * parts["perceptual"] + w.ftm_identity * parts["identity"]
             + w.ftm_norm * parts["norm"]).mean()
    return _optimise(m, parts, total), y01.detach().clamp(0, 1)
