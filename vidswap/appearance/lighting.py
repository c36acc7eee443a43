"""Low-order lighting of a face in texture space, and de-lighting: image = albedo x shading (linear light).

Lambertian shading of a convex surface under distant light is captured to ~98% by the first nine spherical
harmonics of the surface normal (Basri & Jacobs 2003; Ramamoorthi & Hanrahan 2001). With the normals of the
tracked 3D face, nine coefficients per colour channel are a small weighted least-squares fit over the skin
(where the albedo is nearly constant: the smooth-albedo prior), iteratively reweighted so specular highlights,
stubble, freckles and stray hair do not pull the fit. What the nine harmonics cannot express (cast shadows, light
fall-off across the face) is taken as a very low-frequency residual over the skin. Dividing both out leaves the
albedo with its high-frequency texture: pores, brows, lips, freckles.

Shapes: textures (B, C, U, U), normals (B, 3, U, U) unit vectors in camera coordinates, weights (B, 1, U, U).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from vidswap.appearance.quantile import weighted_quantile_along
from vidswap.appearance.encoding import luminance
from vidswap.composite.filters import gaussian_blur

__all__ = ["SH_BANDS", "sh_basis", "fit_sh", "sh_shading", "normalized_blur", "robust_lowpass", "Delit", "delight"]

SH_BANDS = 9
_EPS = 1e-6


def sh_basis(normals: Tensor) -> Tensor:
    """Real spherical harmonics up to order 2 of unit normals: (B, 3, ...) -> (B, 9, ...).

    Orthonormal on the sphere (constants 0.282095, 0.488603, 1.092548, 0.315392, 0.546274).
    """
    x, y, z = normals[:, 0], normals[:, 1], normals[:, 2]
    return torch.stack([
        torch.full_like(x, 0.282095),
        0.488603 * y, 0.488603 * z, 0.488603 * x,
        1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z,
        0.546274 * (x * x - y * y),
    ], 1)


def sh_shading(normals: Tensor, coeffs: Tensor) -> Tensor:
    """Shading of SH lighting: normals (B, 3, ...) and coefficients (B, C, 9) -> (B, C, ...)."""
    basis = sh_basis(normals)
    return torch.einsum("bk...,bck->bc...", basis, coeffs)


def fit_sh(texture: Tensor, normals: Tensor, weight: Tensor, iterations: int = 4,
           ridge: float = 1e-3, ridge_order2: float = 0.01) -> Tensor:
    """Weighted least-squares SH lighting fit per channel, ``texture ~ basis(normals) . c`` (the constant albedo
    folded into ``c``), iteratively reweighted (Cauchy weights on the relative residual) for robustness.

    Args:
        texture: (B, C, U, U) linear values.
        normals: (B, 3, U, U) unit normals.
        weight: (B, 1, U, U) sample weights (0 = unused; e.g. skin mask x visibility).
        iterations: reweighting rounds after the first fit.
        ridge: Tikhonov regulariser of the order-1 bands relative to the mean diagonal of the normal equations
            (texels seen from one side only leave some harmonics unconstrained).
        ridge_order2: the same for the five order-2 bands: mesh normals are coarse and a face covers less than a
            hemisphere, so these are the least determined; pulling them toward 0 keeps the fit to ambient plus
            a dominant direction unless the data insist.

    Returns:
        (B, C, 9) coefficients.
    """
    B, C = texture.shape[:2]
    # only the texels some frame weighs: the others add nothing to the normal equations, and the weighted
    # quantile of the residuals skips them (a skin mask is a third of a texture: U 512, 100 -> 40 ms)
    used = (weight > 0).flatten(2).any(0).any(0)  # (N,)
    used = used if bool(used.any()) else torch.ones_like(used)  # nothing weighed: as before, every texel
    # float64 normal equations: a face covers less than a hemisphere, so the 9x9 system is poorly conditioned
    A = sh_basis(normals.flatten(2)[..., used].double()).transpose(1, 2)  # (B, N', 9)
    y = texture.flatten(2)[..., used].double().transpose(1, 2)  # (B, N', C)
    w0 = weight.flatten(2)[..., used].double().transpose(1, 2).expand(-1, -1, C)  # (B, N', C)
    w = w0.clone()
    coeffs = torch.zeros(B, C, SH_BANDS, device=texture.device, dtype=torch.float64)
    penalty = torch.tensor([0.0] + [ridge] * 3 + [ridge_order2] * 5, device=texture.device, dtype=torch.float64)
    for it in range(iterations + 1):
        for c in range(C):
            wc = w[..., c:c + 1]
            AtA = (A * wc).transpose(1, 2) @ A  # (B, 9, 9)
            level = AtA.diagonal(dim1=1, dim2=2).mean(-1).clamp(min=_EPS)
            AtA = AtA + level[:, None, None] * torch.diag(penalty)
            Aty = (A * wc).transpose(1, 2) @ y[..., c:c + 1]
            coeffs[:, c] = torch.linalg.solve(AtA, Aty)[..., 0]
        if it == iterations:
            break
        pred = A @ coeffs.transpose(1, 2)  # (B, N, C)
        rel = (y - pred) / pred.abs().clamp(min=_EPS)
        scale = 1.4826 * weighted_quantile_along(rel.abs(), w0, 1).clamp(min=0.02)  # (B, C) robust spread
        w = w0 / (1.0 + (rel / (2.4 * scale[:, None])) ** 2)
    return coeffs.to(texture.dtype)


def normalized_blur(values: Tensor, weight: Tensor, sigma: float) -> tuple[Tensor, Tensor]:
    """Normalised convolution: the Gaussian-weighted mean of ``values`` where ``weight`` > 0.

    (B, C, H, W), (B, 1, H, W) -> (mean (B, C, H, W), blurred weight (B, 1, H, W)). Where no weight is near,
    the mean is 0 and the blurred weight ~0.
    """
    num = gaussian_blur(values * weight, sigma)
    den = gaussian_blur(weight, sigma)
    return num / den.clamp(min=_EPS), den


def robust_lowpass(values: Tensor, weight: Tensor, sigma: float, rounds: int = 2, tolerance: float = 0.25) -> Tensor:
    """A low-pass of positive values that ignores outliers: normalised convolution, then ``rounds`` passes that
    down-weight texels whose log-ratio to the current estimate exceeds ``tolerance`` (Cauchy weights; a strand
    of hair or a dark spectacle frame over the skin does not darken the estimate around it).

    (B, C, H, W) values > 0, (B, 1, H, W) weights -> (B, C, H, W).
    """
    est, _ = normalized_blur(values, weight, sigma)
    for _ in range(rounds):
        r = torch.log(values.clamp(min=_EPS) / est.clamp(min=_EPS)).abs().mean(1, keepdim=True)
        est, _ = normalized_blur(values, weight / (1.0 + (r / tolerance) ** 2), sigma)
    return est


@dataclass
class Delit:
    """A de-lit texture.

    albedo: (B, C, U, U) texture / shading.
    shading: (B, C or 1, U, U) SH shading x low-frequency residual, mean 1 over the skin per channel (one channel
        when achromatic).
    coeffs: (B, C or 1, 9) the SH fit (in the texture's units: the skin's mean albedo is folded in).
    """

    albedo: Tensor
    shading: Tensor
    coeffs: Tensor


def delight(texture: Tensor, normals: Tensor, weight: Tensor, skin: Tensor, *, residual_sigma: float | None = None,
            min_shading: float = 0.08, ridge: float = 1e-3, ridge_order2: float = 0.01,
            achromatic: bool = True) -> Delit:
    """Split a linear face texture into albedo and shading.

    The shading is the SH fit over the skin (:func:`fit_sh`) times, with ``residual_sigma``, the skin's remaining
    variation blurred by that sigma (normalised convolution over the skin: the part of the light the harmonics
    miss, such as cast shadows and fall-off). It is normalised to mean 1 over the visible skin per channel, so
    the albedo keeps the texture's overall colour (global colour casts are matched later, against the plate).

    Args:
        texture: (B, C, U, U) linear.
        normals: (B, 3, U, U) unit normals of the texels (camera coordinates of the image the texture came from).
        weight: (B, 1, U, U) visibility of the texels.
        skin: (1 or B, 1, U, U) skin mask (no eyes, brows, lips, nostrils).
        residual_sigma: texels; None: SH only.
        min_shading: floor of the normalised shading (grazing texels; no division blow-up).
        ridge, ridge_order2: regularisers of the SH fit (:func:`fit_sh`).
        achromatic: fit the light on the luminance and divide every channel by the same shading (default): where
            the nine bands miss the true shading (eye sockets, the nose's sides), per-channel fits miss
            differently per channel and the division paints colour casts; a photo's light colour is a global
            cast, which the plate's broad light replaces anyway.

    Returns:
        :class:`Delit`.
    """
    w = weight * skin
    fitted = luminance(texture) if achromatic else texture
    coeffs = fit_sh(fitted, normals, w, ridge=ridge, ridge_order2=ridge_order2)
    shade = sh_shading(normals, coeffs).clamp(min=_EPS)
    if residual_sigma:
        ratio, _ = normalized_blur(texture / shade, w, residual_sigma)
        level = (ratio * w).sum((2, 3), keepdim=True) / w.sum((2, 3), keepdim=True).clamp(min=_EPS)
        shade = shade * (ratio / level.clamp(min=_EPS)).clamp(min=0.25, max=4.0)
    mean = (shade * w).sum((2, 3), keepdim=True) / w.sum((2, 3), keepdim=True).clamp(min=_EPS)
    shading = (shade / mean.clamp(min=_EPS)).clamp(min=min_shading)
    return Delit(albedo=texture / shading, shading=shading, coeffs=coeffs)
