"""Per-region style codes on a plain StyleGAN2 generator (E4S's mask-guided synthesis, without training).

E4S (Liu et al., "Fine-Grained Face Swapping via Regional GAN Inversion") gives every face region its own style
code and renders them with a mask-guided generator: at layer ``l`` the features are
``F_l = sum_j (F_{l-1} * W'_jl) . M_jl``, the layer's convolution modulated by region ``j``'s style, kept inside
that region's mask at the layer's resolution. The convolution is linear in its input for a fixed style, so this
runs on any StyleGAN2 generator as it is: each layer is evaluated once per distinct code and the results are
blended under the masks (noise, bias and activation then as usual). Layers where all codes agree run once, so
identical codes give exactly the plain synthesis.

Here the regions are soft masks that sum to one at every pixel (``C`` classes); :func:`regional_synthesize` takes
one W+ code per class. The e4s-pti core uses two: the target's pivot where the plate is kept and the swapped code
inside ``composite.regions``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from vidswap.swap.stylegan.generator import StyleGAN2Generator, SynthesisBlock
from vidswap.swap.stylegan.layers import SynthesisLayer, bias_act, modulated_conv2d, upsample2d

__all__ = ["masks_at", "regional_synthesize"]


def masks_at(masks: Tensor, size: int) -> Tensor:
    """(B, C, R, R) class masks at ``size`` (area average when smaller, bilinear when larger), renormalised to sum
    to one per pixel."""
    if masks.shape[-1] != size:
        mode = "area" if size < masks.shape[-1] else "bilinear"
        masks = F.interpolate(masks, size=(size, size), mode=mode, **({} if mode == "area" else
                                                                       {"align_corners": False}))
    return masks / masks.sum(dim=1, keepdim=True).clamp(min=1e-8)


def _same(styles: Tensor) -> bool:
    """Whether every class has the same style: styles (B, C, I)."""
    return bool((styles == styles[:, :1]).all())


def _conv(layer: SynthesisLayer, x: Tensor, styles: Tensor, masks: Tensor, noise_mode: str) -> Tensor:
    """One synthesis layer with a style per class. x: (B, I, h, w); styles (B, C, I); masks (B, C, R, R)."""
    if _same(styles):
        return layer(x, styles[:, 0], noise_mode)
    y = None
    for c in range(styles.shape[1]):
        yc = modulated_conv2d(x, layer.weight, styles[:, c], demodulate=True, up=layer.up, kernel=layer.resample_filter)
        m = masks_at(masks, yc.shape[-1])[:, c:c + 1].to(yc.dtype)
        y = yc * m if y is None else y + yc * m
    # the rest of SynthesisLayer.forward (noise, bias, activation): shared by every region
    if noise_mode == "const":
        y = y + layer.noise_const.to(y.dtype) * layer.noise_strength
    return bias_act(y, layer.bias, lrelu=True, clamp=layer.conv_clamp)


def _torgb(block: SynthesisBlock, x: Tensor, styles: Tensor, masks: Tensor) -> Tensor:
    if _same(styles):
        return block.torgb(x, styles[:, 0])
    m = masks_at(masks, x.shape[-1]).to(x.dtype)
    return sum(block.torgb(x, styles[:, c]) * m[:, c:c + 1] for c in range(styles.shape[1]))


def regional_synthesize(gen: StyleGAN2Generator, codes: Tensor, masks: Tensor, noise_mode: str = "const") -> Tensor:
    """Render one W+ code per region.

    Args:
        gen: the generator.
        codes: (B, C, num_ws, w_dim) a code per class.
        masks: (B, C, R, R) soft class masks (any side; resampled per layer and renormalised to sum to one).
        noise_mode: ``const`` or ``none``.

    Returns:
        (B, 3, R_gen, R_gen) in the generator's [-1, 1], as :func:`~vidswap.swap.stylegan.inversion.synthesize`.
    """
    if noise_mode not in ("const", "none"):
        raise ValueError(f"regional synthesis takes noise_mode const or none (deterministic), not {noise_mode!r}")
    b, c = codes.shape[:2]
    if masks.shape[:2] != (b, c):
        raise ValueError(f"masks must be (B, C, R, R) = ({b}, {c}, R, R) for codes {list(codes.shape)}, got "
                         f"{list(masks.shape)}")
    syn = gen.synthesis
    per_class = [syn.ws_to_styles(codes[:, k]) for k in range(c)]  # as plain synthesis batches them
    styles = {name: torch.stack([p[name] for p in per_class], dim=1) for name in per_class[0]}
    masks = masks.to(codes.dtype)
    x = img = None
    for res, block in syn.blocks():
        own = {name: styles[f"b{res}.{name}"] for name in block.layer_names}
        if block.in_channels == 0:
            x = block.const.unsqueeze(0).expand(b, -1, -1, -1).to(codes.dtype)
        else:
            x = _conv(block.conv0, x, own["conv0"], masks, noise_mode)
        x = _conv(block.conv1, x, own["conv1"], masks, noise_mode)
        rgb = _torgb(block, x, own["torgb"], masks)
        img = rgb if img is None else upsample2d(img, block.resample_filter) + rgb
    return img
