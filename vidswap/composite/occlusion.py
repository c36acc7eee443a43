"""The skin-colour occlusion test: a robust Gaussian model of the face's skin colour in CIE LAB, fitted on the
skin sample region, marks what is not skin inside the face (hands, hair, props) so the plate keeps it.

Masks are float ``(B, 1, H, W)`` in [0, 1] on the device of their inputs (conventions:
:mod:`vidswap.composite.masks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch
from kornia.color import rgb_to_lab

from vidswap.composite.filters import dilate, erode, gaussian_blur, in_window, per_item


@dataclass(frozen=True)
class OcclusionParams:
    """Skin-colour occlusion test (distances are Mahalanobis distances in CIE LAB).

    Attributes:
        sample_erosion: the skin sample region is the skin mask eroded by this fraction of the face size
            (cheeks, forehead, nose; away from hairline, jaw and features).
        keep_below: distance under which a pixel counts as skin (visibility 1).
        drop_above: distance over which a pixel counts as occluder (visibility 0); linear in between.
        trim: samples further than this are dropped when refitting the robust skin model.
        iterations: robust refits after the median/MAD start.
        min_std: floor on the model's per-channel std (L, a, b units), so a very flat face is not over-strict.
        luma_slack: the L std is multiplied by this (shading is not occlusion).
        open_radius: opening (erode then dilate) of the occluder map removes specks smaller than this fraction
            of the face size (pores, highlights).
        grow: occluders are grown by this fraction of the face size (covers their soft edges).
        soften: blur sigma of the final visibility, fraction of the face size.
        min_samples: fewer sample pixels than this and the model is invalid (visibility 1 everywhere).
        max_fit_pixels: the model is fitted on a regular subsample of at most about this many pixels.
    """

    sample_erosion: float = 0.06
    keep_below: float = 4.5
    drop_above: float = 6.5
    trim: float = 3.0
    iterations: int = 3
    min_std: tuple[float, float, float] = (2.0, 1.0, 1.0)
    luma_slack: float = 1.5
    open_radius: float = 0.015
    grow: float = 0.01
    soften: float = 0.004
    min_samples: int = 32
    max_fit_pixels: int = 65536


@dataclass(frozen=True)
class SkinModel:
    """Robust Gaussian model of a face's skin colour in LAB.

    Attributes:
        mean: ``(B, 3)`` LAB mean.
        cov: ``(B, 3, 3)`` LAB covariance (floors and luma slack applied).
        valid: ``(B,)`` bool, enough samples to trust the model.
    """

    mean: torch.Tensor
    cov: torch.Tensor
    valid: torch.Tensor



def _masked_median_mad(x: torch.Tensor, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row median and MAD of ``x (R, N)`` over entries with ``w (R, N) > 0.5``."""
    inside = w > 0.5
    n = inside.sum(dim=1).clamp(min=1)
    big = torch.finfo(x.dtype).max
    ks = ((n - 1) // 2 + 1).tolist()  # the lower median's rank (1-based) per row
    med = _kth(torch.where(inside, x, torch.full_like(x, big)), ks)
    dev = torch.where(inside, (x - med[:, None]).abs(), torch.full_like(x, big))
    mad = _kth(dev, ks)
    return med, mad


def _kth(x: torch.Tensor, ks: list[int]) -> torch.Tensor:
    """``(R,)`` the ``ks[r]``-th smallest value (1-based) of each row of ``x (R, N)``: an order statistic, the
    same value a sort would put there, without sorting the row."""
    return torch.stack([row.kthvalue(k).values for row, k in zip(x, ks)])


def fit_skin_model(
    image: torch.Tensor, sample_mask: torch.Tensor, params: OcclusionParams = OcclusionParams()
) -> SkinModel:
    """Fit a robust LAB colour model to the skin under ``sample_mask``.

    Starts from the per-channel median / MAD of the samples, then refits mean and full covariance on the
    samples within ``params.trim`` Mahalanobis distance, ``params.iterations`` times, so a minority of
    non-skin samples (hair, a hand over a cheek) does not bend the model.

    Args:
        image: ``(B, 3, H, W)`` RGB in [0, 1].
        sample_mask: ``(B, 1, H, W)``; pixels with value > 0.5 are samples.

    Returns:
        :class:`SkinModel` with ``mean (B, 3)``, ``cov (B, 3, 3)``, ``valid (B,)``.
    """
    b, _, h, w_ = image.shape
    step = max(1, int(np.ceil(np.sqrt(h * w_ / params.max_fit_pixels))))  # a regular subsample is plenty
    image, sample_mask = image[..., ::step, ::step], sample_mask[..., ::step, ::step]
    lab = rgb_to_lab(image.clamp(0.0, 1.0)).reshape(b, 3, -1)  # (B, 3, N)
    w = (sample_mask.reshape(b, 1, -1) > 0.5).to(lab.dtype)  # (B, 1, N)
    count = w.sum(dim=(1, 2))
    med, mad = _masked_median_mad(lab.reshape(b * 3, -1), w.expand(-1, 3, -1).reshape(b * 3, -1))
    floor = torch.tensor(params.min_std, device=lab.device, dtype=lab.dtype)
    std0 = torch.maximum(1.4826 * mad.reshape(b, 3), floor)
    mean = med.reshape(b, 3)
    cov = torch.diag_embed(std0**2)
    for _ in range(max(0, params.iterations)):
        d2 = _mahalanobis2(lab, mean, cov)  # (B, N)
        wi = w[:, 0] * (d2 < params.trim**2).to(lab.dtype)
        n = wi.sum(dim=1).clamp(min=1.0)
        mean_new = (lab * wi[:, None]).sum(dim=2) / n[:, None]
        xc = (lab - mean_new[:, :, None]) * wi[:, None].sqrt()
        cov_new = xc @ xc.transpose(1, 2) / n[:, None, None]
        ok = (wi.sum(dim=1) >= params.min_samples)[:, None]
        mean = torch.where(ok, mean_new, mean)
        cov = torch.where(ok[:, :, None], cov_new, cov)
        cov = _regularise(cov, floor)
    slack = torch.tensor([params.luma_slack, 1.0, 1.0], device=lab.device, dtype=lab.dtype)
    cov = cov * (slack[:, None] * slack[None, :])
    return SkinModel(mean=mean, cov=cov, valid=count >= params.min_samples)


def _regularise(cov: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
    """Raise each variance to at least ``floor**2`` (adds to the diagonal)."""
    diag = torch.diagonal(cov, dim1=1, dim2=2)
    add = (floor**2 - diag).clamp(min=0.0)
    return cov + torch.diag_embed(add) + 1e-6 * torch.eye(3, device=cov.device, dtype=cov.dtype)


def _mahalanobis2(lab: torch.Tensor, mean: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """Squared Mahalanobis distance of ``lab (B, 3, N)`` to ``(mean (B,3), cov (B,3,3))`` -> ``(B, N)``."""
    inv = torch.linalg.inv(cov)
    xc = lab - mean[:, :, None]
    return (xc * (inv @ xc)).sum(dim=1)


def skin_distance(image: torch.Tensor, model: SkinModel) -> torch.Tensor:
    """Mahalanobis distance of every pixel's LAB colour to the skin model.

    Args:
        image: ``(B, 3, H, W)`` RGB in [0, 1].
        model: from :func:`fit_skin_model`.

    Returns:
        ``(B, 1, H, W)`` distances (0 where the model is invalid).
    """
    b, _, h, w = image.shape
    lab = rgb_to_lab(image.clamp(0.0, 1.0)).reshape(b, 3, -1)
    d = _mahalanobis2(lab, model.mean, model.cov).clamp(min=0.0).sqrt()
    d = torch.where(model.valid[:, None], d, torch.zeros_like(d))
    return d.reshape(b, 1, h, w)


def occlusion_visibility(
    image: torch.Tensor,
    face_mask: torch.Tensor,
    model: SkinModel,
    size: torch.Tensor | float,
    protect: torch.Tensor | None = None,
    params: OcclusionParams = OcclusionParams(),
) -> torch.Tensor:
    """Visibility of the face (1) versus something in front of it (0), from skin colour.

    Pixels inside ``face_mask`` whose colour is far from the skin model are occluders, except inside
    ``protect`` (eyes, brows, mouth: not skin coloured, but part of the face). Specks smaller than
    ``open_radius`` are removed, occluders are grown by ``grow`` and the result is softened.

    Args:
        image: ``(B, 3, H, W)`` the *target* image (what is in front of the actor's face).
        face_mask: ``(B, 1, H, W)`` where to look.
        model: skin model of the same faces.
        size: ``(B,)`` face sizes in pixels.
        protect: ``(B, 1, H, W)`` regions never tested.

    Returns:
        ``(B, 1, H, W)`` visibility in [0, 1]; multiply it into the alpha.
    """
    b = image.shape[0]
    fs = per_item(size, b, image.device)
    r_open = torch.round(fs * params.open_radius)
    r_grow = torch.round(fs * params.grow)
    soft = fs * params.soften
    r_soft = torch.ceil(2.0 * soft)
    look = (face_mask > 0.0).to(torch.float32)
    if protect is not None:
        look = look * (1.0 - protect)
    span = max(params.drop_above - params.keep_below, 1e-6)

    def occluders(lk: torch.Tensor, img: torch.Tensor) -> torch.Tensor:
        d = skin_distance(img, model)
        raw = ((d - params.keep_below) / span).clamp(0.0, 1.0) * lk
        occ = dilate(erode(raw, r_open), r_open)  # opening: drops specks ...
        for _ in range(2 * int(r_open.max()) + 1):  # ... reconstruction: the surviving occluders keep their shape
            occ = torch.minimum(dilate(occ, 1, shape="square"), raw)
        occ = dilate(occ, r_grow)
        return gaussian_blur(occ, soft, r_soft, opencv=False)  # kornia's rounding, as before:
        # OpenCV's (~3e-7 apart) moved up to 12 levels at hair over the face's edge (thresholds downstream)

    reach = int((r_open + r_grow + r_soft).max()) + 1 if b else 1
    return (1.0 - in_window(look, reach, occluders, image)).clamp(0.0, 1.0)


def skin_sample_mask(skin: torch.Tensor, size: torch.Tensor | float, erosion: float = 0.06) -> torch.Tensor:
    """Where to sample skin colour: the skin region eroded by ``erosion * size`` (binary ``(B, 1, H, W)``)."""
    b = skin.shape[0]
    fs = per_item(size, b, skin.device)
    return in_window(skin, 1, lambda m: (erode(m, torch.round(fs * erosion)) > 0.5).to(skin.dtype))


def mattes_to_crop(mattes: Sequence[np.ndarray | None], frame_to_crop: np.ndarray, size: tuple[int, int]
                   ) -> np.ndarray | None:
    """(B, h, w) float32 crop-space occluders from per-frame (H, W) plate-space mattes (None: nothing in front),
    bilinear with pixel centres at integers and zeros outside the plate (the convention of
    :func:`vidswap.faces.align.warp_to_crop`, without its anti-aliasing: a face crop does not shrink the plate by
    2x); None when no frame has a matte. One ``cv2.warpAffine`` per frame with a matte (a few tenths of a ms),
    where a batched ``grid_sample`` over the plate cost tens of ms under load.

    Args:
        frame_to_crop: (B, 2, 3) plate -> crop affine matrices; size: the crop's (h, w).
    """
    if all(m is None for m in mattes):
        return None
    h, w = int(size[0]), int(size[1])
    out = np.zeros((len(mattes), h, w), np.float32)
    for b, m in enumerate(mattes):
        if m is not None:
            out[b] = cv2.warpAffine(np.asarray(m, np.float32), np.asarray(frame_to_crop[b], np.float64), (w, h),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0.0)
    return np.clip(out, 0.0, 1.0, out=out)
