"""One FaceDancer optimisation step: the generator update, then the discriminator update.

The generator runs inside :class:`SwapPass` (swap and cycle in one ``forward``, so DDP sees one forward per
backward). The adversarial term of the generator step uses the discriminator's plain module with its parameters
frozen (no discriminator gradients, no extra all-reduce); the discriminator step runs the DDP-wrapped one on
``[real; fake]`` in one call. Every loss is a per-sample vector averaged over the local batch, so DDP's gradient
average over equal local batches equals the single-process gradient of the global batch.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from vidswap.train.facedancer.identity import IdentityNet
from vidswap.train.facedancer.losses import (LossWeights, d_hinge, feature_l1, g_hinge, identity_loss, ifsr_loss,
                                             r1_penalty, reconstruction_loss)
from vidswap.train.facedancer.model import FaceDancerGenerator
from vidswap.train.facedancer.perceptual import VGG16Features, vgg16_perceptual

__all__ = ["SwapPass", "StepModels", "train_step", "perceptual_loss", "LOSS_NAMES"]

LOSS_NAMES = ("g_total", "adv", "identity", "reconstruction", "perceptual", "cycle", "ifsr", "d_total", "d_hinge",
              "r1")


class SwapPass(nn.Module):
    """``forward(target, id_source, id_target) -> (swap, cycle)``: ``X_c = G(X_t, z_s)`` and ``G(X_c, z_t)``."""

    def __init__(self, generator: FaceDancerGenerator):
        super().__init__()
        self.generator = generator

    def forward(self, target: Tensor, id_source: Tensor, id_target: Tensor) -> tuple[Tensor, Tensor]:
        swap = self.generator(target, id_source)
        return swap, self.generator(swap, id_target)


@dataclass
class StepModels:
    """The step's modules: ``swap_pass`` and ``disc`` possibly DDP-wrapped, ``disc_plain`` the bare
    discriminator, the frozen ``identity`` network, both optimisers and the perceptual network (None: the
    identity network's feature maps, ``perceptual.net: identity``; see :mod:`.perceptual`)."""

    swap_pass: nn.Module
    disc: nn.Module
    disc_plain: nn.Module
    identity: IdentityNet
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    perceptual: VGG16Features | None = None


def perceptual_loss(m: StepModels, target: Tensor, swap: Tensor, same: Tensor, f_t: list[Tensor],
                    f_c: list[Tensor], n: int) -> Tensor:
    """(B,) ``L_p`` where ``same`` (else 0). With VGG16 only the same-image rows run through it (the others
    contribute 0 either way)."""
    if m.perceptual is None:
        return feature_l1(f_t, f_c, range(n + 1)) * same
    out = torch.zeros_like(same)
    rows = same.nonzero().flatten()
    if len(rows):
        out = out.index_put((rows,), vgg16_perceptual(m.perceptual, target[rows], swap[rows], n))
    return out


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def train_step(m: StepModels, target: Tensor, source: Tensor, same: Tensor, w: LossWeights, amp: bool = False
               ) -> tuple[dict[str, Tensor], Tensor]:
    """One G step and one D step on a local batch.

    Args:
        target, source: (B, 3, S, S) in [0, 1] (augmented); same: (B,) 1 where the pair is one image.

    Returns:
        ({loss name: scalar tensor (detached, local mean)}, the swaps (B, 3, S, S), detached).
    """
    dev = target.device
    with torch.no_grad():
        z_s = m.identity(source)
        z_t, f_t = m.identity(target, features=True)
    with _autocast(dev, amp):
        swap, cycle = m.swap_pass(target, z_s, z_t)
    swap, cycle = swap.float(), cycle.float()
    z_c, f_c = m.identity(swap, features=True)
    m.disc_plain.requires_grad_(False)
    with _autocast(dev, amp):
        fake_logits = m.disc_plain(swap).float()
    m.disc_plain.requires_grad_(True)
    same = same.to(dev, torch.float32)
    parts = {
        "adv": g_hinge(fake_logits),
        "identity": identity_loss(z_s, z_c),
        "reconstruction": reconstruction_loss(target, swap, same),
        "perceptual": perceptual_loss(m, target, swap, same, f_t, f_c, w.perceptual_layers),
        "cycle": (target - cycle).abs().mean(dim=(1, 2, 3)),
        "ifsr": ifsr_loss(f_t, f_c, w.ifsr_first, w.margins(), w.ifsr_scale),
    }
    g_total = (w.adversarial * parts["adv"] + w.identity * parts["identity"]
               + w.reconstruction * parts["reconstruction"] + w.perceptual * parts["perceptual"]
               + w.cycle * parts["cycle"] + w.ifsr * parts["ifsr"]).mean()
    m.opt_g.zero_grad(set_to_none=True)
    g_total.backward()
    m.opt_g.step()

    real = target.detach().requires_grad_(True)
    fake = swap.detach()
    with _autocast(dev, amp):
        logits = m.disc(torch.cat([real, fake])).float()
    real_logits, fake_logits_d = logits[: len(real)], logits[len(real):]
    hinge = d_hinge(real_logits, fake_logits_d)
    r1 = r1_penalty(real_logits, real)
    d_total = (hinge + w.gp * r1).mean()
    m.opt_d.zero_grad(set_to_none=True)
    d_total.backward()
    m.opt_d.step()

    out = {k: v.detach().mean() for k, v in parts.items()}
    out.update(g_total=g_total.detach(), d_total=d_total.detach(), d_hinge=hinge.detach().mean(),
               r1=r1.detach().mean())
    return out, swap.detach()
