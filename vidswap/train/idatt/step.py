"""One IDATT optimisation step in each of the three stages. Every loss is per sample ((B,)) and averaged over the
local batch, so DDP over equal local batches equals one process on the global batch.

The paper's L_all = λ_adv L_adv + λ_rec L_rec + λ_p L_p + λ_id L_id + λ_3d L_3d, here without L_adv (no
discriminator, as MegaFS here) and L_3d (no Deep3DFaceRecon weights offline):

* ``encoder`` (our stand-in for the pretrained pSp the paper starts from): reconstruct the target through its
  W+ codes: rec (pixel L2), perceptual, identity (1 - cos, ArcFace of the input vs of the reconstruction).
* ``idatt`` (Sec. 3.1: the feature pyramid frozen, IDATT + latent head trained): the swap I_Sw of source into
  target; rec = |I_Sw - I_t|^2 on same-image pairs (the paper: same identity, rate 0.5), perceptual (I_Sw vs
  I_t), identity (I_Sw vs I_s).
* ``blend``: the blender's final face; the same three terms plus background (pixel L2 to the target outside the
  inner-face mask, ours).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vidswap.swap.stylegan.idatt import IDATT, inner_face_mask
from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.facedancer.losses import feature_l1, identity_loss
from vidswap.train.facedancer.perceptual import VGG16Features, vgg16_perceptual
from vidswap.train.idatt.config import IDATTLossWeights
from vidswap.train.megafs.data import arcface_crops

__all__ = ["STAGES", "STAGE_LOSSES", "STAGE_PARTS", "EncoderPass", "TransferPass", "BlendPass", "StageModels",
           "encoder_step", "idatt_step", "blend_step"]

STAGES = ("encoder", "idatt", "blend")
STAGE_LOSSES = {"encoder": ("total", "rec", "perceptual", "identity"),
                "idatt": ("total", "rec", "perceptual", "identity"),
                "blend": ("total", "rec", "perceptual", "identity", "background")}
#: the submodules each stage trains
STAGE_PARTS = {"encoder": ("features", "latent"), "idatt": ("attn", "latent"), "blend": ("blend",)}


class EncoderPass(nn.Module):
    """``forward(images [0, 1]) -> reconstruction [-1, 1]``."""

    def __init__(self, model: IDATT):
        super().__init__()
        self.model = model

    def forward(self, images: Tensor) -> Tensor:
        return self.model.side(self.model.codes(self.model.encode_features(images)))[0]


class TransferPass(nn.Module):
    """``forward(source features, target features) -> swapped W+ (B, L, D)``."""

    def __init__(self, model: IDATT):
        super().__init__()
        self.model = model

    def forward(self, fs: list[Tensor], ft: list[Tensor]) -> Tensor:
        return self.model.codes(self.model.transfer(fs, ft))


class BlendPass(nn.Module):
    """``forward(side features, side image, target [-1, 1], mask) -> final [-1, 1]``."""

    def __init__(self, model: IDATT):
        super().__init__()
        self.model = model

    def forward(self, feats: dict[int, Tensor], side: Tensor, target: Tensor, mask: Tensor) -> Tensor:
        return self.model.blend(feats, side, target, mask)


@dataclass
class StageModels:
    """The stage's pass (possibly DDP-wrapped), the bare model, the identity network, the stage's optimiser and
    the VGG16 of the perceptual term (None: the identity network's feature maps)."""

    step_pass: nn.Module
    model: IDATT
    identity: IdentityNet
    opt: torch.optim.Optimizer
    vgg: VGG16Features | None = None


def _perceptual(m: StageModels, w: IDATTLossWeights, real: Tensor, fake: Tensor, f_real, f_fake) -> Tensor:
    if m.vgg is not None:
        return vgg16_perceptual(m.vgg, real, fake, w.perceptual_layers)
    return feature_l1(f_real, f_fake, range(w.perceptual_layers + 1))


def _l2(a: Tensor, b: Tensor) -> Tensor:
    return (a - b).square().flatten(1).mean(1)


def _finish(m: StageModels, w: IDATTLossWeights, parts: dict[str, Tensor]) -> dict[str, Tensor]:
    """Weighted sum, one optimiser step; each term's local mean and the total (detached)."""
    total = sum(getattr(w, k) * v for k, v in parts.items()).mean()
    m.opt.zero_grad(set_to_none=True)
    total.backward()
    m.opt.step()
    res = {k: v.detach().mean() for k, v in parts.items()}
    res["total"] = total.detach()
    return res


def _swap_terms(m: StageModels, w: IDATTLossWeights, y: Tensor, source: Tensor, target: Tensor, kps_s: Tensor,
                kps_t: Tensor, same: Tensor) -> dict[str, Tensor]:
    """rec / perceptual / identity of a swap ``y`` ([-1, 1]) of source into target ([0, 1])."""
    y01 = (y + 1) * 0.5
    with torch.no_grad():
        z_s, _ = m.identity(arcface_crops(source, kps_s), features=True)
        _, f_t = m.identity(arcface_crops(target, kps_t), features=True)
    z_y, f_y = m.identity(arcface_crops(y01, kps_t), features=True)
    return {"rec": _l2(y, target * 2 - 1) * same.to(y.dtype), "perceptual": _perceptual(m, w, target, y01, f_t, f_y),
            "identity": identity_loss(z_s, z_y)}


def encoder_step(m: StageModels, images: Tensor, kps: Tensor, w: IDATTLossWeights
                 ) -> tuple[dict[str, Tensor], Tensor]:
    """images (B, 3, R, R) in [0, 1], kps (B, 5, 2) -> ({loss: local mean}, reconstruction in [0, 1])."""
    recon = m.step_pass(images)
    parts = _swap_terms(m, w, recon, images, images, kps, kps, torch.ones(len(images)))
    return _finish(m, w, parts), ((recon.detach() + 1) * 0.5).clamp(0, 1)


def idatt_step(m: StageModels, source: Tensor, target: Tensor, kps_s: Tensor, kps_t: Tensor, same: Tensor,
               w: IDATTLossWeights) -> tuple[dict[str, Tensor], Tensor]:
    """source / target (B, 3, R, R) in [0, 1], keypoints, same (B,) 0/1 -> ({loss}, the swaps in [0, 1])."""
    model = m.model
    with torch.no_grad():
        fs, ft = model.encode_features(source), model.encode_features(target)
    y, _ = model.side(m.step_pass(fs, ft))
    parts = _swap_terms(m, w, y, source, target, kps_s, kps_t, same)
    return _finish(m, w, parts), ((y.detach() + 1) * 0.5).clamp(0, 1)


def blend_step(m: StageModels, source: Tensor, target: Tensor, kps_s: Tensor, kps_t: Tensor, same: Tensor,
               w: IDATTLossWeights) -> tuple[dict[str, Tensor], Tensor]:
    """As :func:`idatt_step`, training the blender on the frozen first pass."""
    model = m.model
    with torch.no_grad():
        side, feats = model.side(model.codes(model.transfer(model.encode_features(source),
                                                            model.encode_features(target))))
        mask = inner_face_mask(kps_t, target.shape[-1], model.cfg.mask_feather)
    y = m.step_pass(feats, side, target * 2 - 1, mask)
    parts = _swap_terms(m, w, y, source, target, kps_s, kps_t, same)
    parts["background"] = ((1 - mask) * (y - (target * 2 - 1))).square().flatten(1).mean(1)
    return _finish(m, w, parts), ((y.detach() + 1) * 0.5).clamp(0, 1)
