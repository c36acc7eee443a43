"""FaceDancer's losses, each returned per sample ((B,) tensors) so that a batch mean over B processes of equal
local batches equals the mean over the global batch (DDP averages gradients: this keeps 1 process and N processes
on the same global batch identical).

``L_G = L_adv + λ_i L_i + λ_r L_r + λ_p L_p + λ_c L_c + λ_ifsr L_ifsr`` with the paper's weights
(:class:`LossWeights`: 10, 5, 0.2, 1, 1; the discriminator's gradient penalty λ_gp = 10).

* identity ``L_i = 1 - cos(I(X_s), I(X_c))``;
* reconstruction ``L_r = |X_t - X_c|_1`` (mean over pixels) where ``X_t = X_s``, else 0;
* perceptual ``L_p = Σ_{i=0..n} |P_i(X_t) - P_i(X_c)|_1`` (n = 4) where ``X_t = X_s``. The paper's P is VGG16
  (ImageNet), used with user-supplied weights (``perceptual.net: vgg16``); by default P is the frozen identity
  network's first n+1 feature maps (its early, attribute-carrying layers; see IFSR and :mod:`.perceptual`);
* cycle ``L_c = |X_t - G(X_c, I(X_t))|_1``;
* IFSR ``Σ_{i=k..n} max(1 - cos(I_i(X_t), I_i(X_c)) - m_i·s, 0)`` over the identity network's intermediate
  feature maps flattened to vectors (k = 2, n = 13, s = 1.2). The paper prints ``min(·, 0)``, which would
  reward distance; the hinge ``max`` is what its text describes (match the margin, do not minimise further);
* adversarial: hinge; ``L_adv = -D(X_c)``, ``L_D = max(0, 1 - D(real)) + max(0, 1 + D(X_c))`` plus the R1
  gradient penalty ``λ_gp · ½ |∇_x D(x)|²`` on real images (StarGAN-v2's, whose discriminator FaceDancer uses).

Margins m_i: the paper measures them as mean cosine distances between targets and swaps of a pretrained swapper
(a pre-study). ``ifsr_margins`` takes them (one per layer k..n); empty means 0 for every layer (strict).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.errors import ConfigError

__all__ = ["LossWeights", "identity_loss", "reconstruction_loss", "feature_l1", "ifsr_loss", "d_hinge",
           "g_hinge", "r1_penalty"]


@dataclass(frozen=True)
class LossWeights:
    """Loss weights (paper defaults) and the IFSR settings."""

    adversarial: float = 1.0
    identity: float = 10.0
    reconstruction: float = 5.0
    perceptual: float = 0.2
    cycle: float = 1.0
    ifsr: float = 1.0
    gp: float = 10.0
    perceptual_layers: int = 4  # n: feature maps 0..n
    ifsr_first: int = 2  # k
    ifsr_last: int = 13  # n
    ifsr_scale: float = 1.2  # s
    ifsr_margins: tuple[float, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.ifsr_first < 0 or self.ifsr_last < self.ifsr_first:
            raise ConfigError(f"loss.ifsr_first/ifsr_last: need 0 <= k <= n, got {self.ifsr_first}, {self.ifsr_last}")
        n = self.ifsr_last - self.ifsr_first + 1
        if self.ifsr_margins and len(self.ifsr_margins) != n:
            raise ConfigError(f"loss.ifsr_margins needs {n} values (layers {self.ifsr_first}..{self.ifsr_last}), "
                              f"got {len(self.ifsr_margins)}")

    def margins(self) -> list[float]:
        return list(self.ifsr_margins) or [0.0] * (self.ifsr_last - self.ifsr_first + 1)


def identity_loss(id_source: Tensor, id_swap: Tensor) -> Tensor:
    """(B, D) unit vectors each -> (B,) ``1 - cos``."""
    return 1.0 - (F.normalize(id_source, dim=-1) * F.normalize(id_swap, dim=-1)).sum(-1)


def reconstruction_loss(target: Tensor, swap: Tensor, same: Tensor) -> Tensor:
    """(B, 3, S, S) twice, ``same`` (B,) 0/1 -> (B,) mean absolute difference where same, else 0."""
    return (target - swap).abs().mean(dim=(1, 2, 3)) * same.to(target.dtype)


def feature_l1(feats_a: list[Tensor], feats_b: list[Tensor], layers: range) -> Tensor:
    """Σ over ``layers`` of the per-sample mean absolute difference of feature maps -> (B,)."""
    return sum((feats_a[i] - feats_b[i]).abs().flatten(1).mean(1) for i in layers)


def ifsr_loss(feats_t: list[Tensor], feats_c: list[Tensor], first: int, margins: list[float], scale: float) -> Tensor:
    """IFSR per sample (B,): ``Σ_i max(1 - cos(flat(f_t[i]), flat(f_c[i])) - m_i·s, 0)`` for i = first .. first +
    len(margins) - 1."""
    total = 0.0
    for j, m in enumerate(margins):
        a, b = feats_t[first + j].flatten(1), feats_c[first + j].flatten(1)
        cos = F.cosine_similarity(a.float(), b.float(), dim=1, eps=1e-8)
        total = total + torch.clamp(1.0 - cos - m * scale, min=0.0)
    return total


def d_hinge(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator hinge loss per sample (B,)."""
    return F.relu(1.0 - real_logits) + F.relu(1.0 + fake_logits)


def g_hinge(fake_logits: Tensor) -> Tensor:
    """Generator hinge loss per sample (B,)."""
    return -fake_logits


def r1_penalty(real_logits: Tensor, real: Tensor) -> Tensor:
    """R1 per sample (B,): ``½ |∂ D(x) / ∂x|²`` (``real`` must require grad; the graph is kept for backward)."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real, create_graph=True)
    return 0.5 * grad.pow(2).flatten(1).sum(1)
