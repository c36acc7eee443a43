"""FaceDancer's perceptual loss ``L_p = Σ_{i=0..n} |P_i(X_t) - P_i(X_c)|_1`` (applied where ``X_t = X_s``).

The paper's ``P_i`` is "the i-th feature map output of the VGG16 model pretrained on ImageNet", ``n`` "the final
index of outputs before the down sample step", n = 4: the five feature maps that enter VGG16's five max-pools
(relu1_2, relu2_2, relu3_3, relu4_3, relu5_3). ``train.yaml``'s ``perceptual`` section chooses ``P``:

* ``net: identity`` (default): the frozen identity encoder's first n+1 intermediate feature maps (the PReLU outputs
  that IFSR also reads; the early, pose/expression-carrying layers). No extra weights, no extra forward pass: the
  step already computes these maps for IFSR. This is what runs when no VGG weights are given, because the
  ImageNet VGG16 weights are not among the project's offline, permissively licensed models.
* ``net: vgg16`` with ``weights: file.safetensors``: the paper's VGG16, with ImageNet weights the user supplies
  in torchvision's layout (keys ``features.{i}.weight`` / ``features.{i}.bias`` for the 13 convolutions at
  ``features`` indices 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28; any ``classifier.*`` keys are ignored).
  Convert a torchvision checkpoint once with ``torch.load(path, weights_only=True)`` and
  ``safetensors.torch.save_file``. Inputs in [0, 1] RGB are normalised with ImageNet's mean and std (torchvision's
  convention for those weights). The network is frozen.

Each map contributes its per-sample mean absolute difference, so every ``P_i`` weighs the same regardless of its
size (as :func:`~.losses.feature_l1`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vidswap.errors import ConfigError, ModelError

__all__ = ["PerceptualConfig", "VGG16Features", "VGG16_CONVS", "VGG16_TAPS", "load_vgg16", "vgg16_perceptual"]

# (features index, in channels, out channels) of VGG16's 13 convolutions, torchvision numbering; a max-pool
# follows the ReLU of the convolutions marked in VGG16_TAPS (the feature maps P_0..P_4).
VGG16_CONVS: tuple[tuple[int, int, int], ...] = (
    (0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
    (17, 256, 512), (19, 512, 512), (21, 512, 512), (24, 512, 512), (26, 512, 512), (28, 512, 512))
VGG16_TAPS: tuple[int, ...] = (2, 7, 14, 21, 28)  # the conv whose ReLU output is P_i (before pool i)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class PerceptualConfig:
    """``perceptual:`` section of train.yaml: ``net`` identity | vgg16, ``weights`` the VGG16 safetensors file
    (required for vgg16, not allowed for identity). The number of maps is ``loss.perceptual_layers`` (n = 4)."""

    net: str = "identity"
    weights: str | None = None

    def __post_init__(self) -> None:
        if self.net not in ("identity", "vgg16"):
            raise ConfigError(f"perceptual.net must be identity or vgg16, got {self.net!r}")
        if self.net == "vgg16" and not self.weights:
            raise ConfigError("perceptual.net: vgg16 needs perceptual.weights: a VGG16 ImageNet safetensors file "
                              "(torchvision key layout features.N.weight/bias); none is shipped")
        if self.net == "identity" and self.weights:
            raise ConfigError("perceptual.weights is only read with perceptual.net: vgg16")


class VGG16Features(nn.Module):
    """VGG16's convolutional trunk up to relu5_3. ``forward(x, n)``: (B, 3, H, W) in [0, 1] -> the first
    ``n + 1`` of the maps P_0..P_4: (B, 64, H, W), (B, 128, H/2, W/2), (B, 256, H/4, W/4), (B, 512, H/8, W/8),
    (B, 512, H/16, W/16). Frozen (no gradients to its weights; gradients flow to ``x``)."""

    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv2d(cin, cout, 3, padding=1) for _, cin, cout in VGG16_CONVS)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)

    def train(self, mode: bool = True) -> "VGG16Features":  # frozen: always inference
        return super().train(False)

    def forward(self, x: Tensor, n: int = 4) -> list[Tensor]:
        if not 0 <= n < len(VGG16_TAPS):
            raise ValueError(f"n must be in 0..{len(VGG16_TAPS) - 1}, got {n}")
        h = (x.float() - self.mean) / self.std
        out: list[Tensor] = []
        for conv, (idx, _, _) in zip(self.convs, VGG16_CONVS):
            if idx - 3 in VGG16_TAPS:  # features[tap + 1] is the ReLU, features[tap + 2] the max-pool
                h = F.max_pool2d(h, 2)
            h = F.relu(conv(h))
            if idx == VGG16_TAPS[len(out)]:
                out.append(h)
                if len(out) == n + 1:
                    break
        return out


def load_vgg16(path: str | Path) -> VGG16Features:
    """:class:`VGG16Features` with the weights of a safetensors file in torchvision's layout. ModelError for a
    missing or unreadable file, a missing key or a wrong shape (naming it)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"VGG16 weights {path} do not exist (perceptual.weights in train.yaml)")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelError(f"VGG16 weights {path} are not a readable safetensors file: {exc}") from None
    net = VGG16Features()
    for conv, (idx, cin, cout) in zip(net.convs, VGG16_CONVS):
        for name, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,))):
            key = f"features.{idx}.{name}"
            if key not in state:
                raise ModelError(f"VGG16 weights {path} lack {key} (torchvision layout: features.N.weight/bias)")
            if tuple(state[key].shape) != shape:
                raise ModelError(f"VGG16 weights {path}: {key} has shape {tuple(state[key].shape)}, VGG16 needs "
                                 f"{shape}")
            getattr(conv, name).copy_(state[key].float())
    return net


def vgg16_perceptual(net: VGG16Features, target: Tensor, swap: Tensor, n: int = 4) -> Tensor:
    """(B, 3, H, W) twice -> (B,) ``Σ_{i=0..n}`` per-sample mean |P_i(target) - P_i(swap)| (the target's maps
    without gradient)."""
    with torch.no_grad():
        f_t = net(target, n)
    f_c = net(swap, n)
    return sum((a - b).abs().flatten(1).mean(1) for a, b in zip(f_t, f_c))
